"""The training engine: it learns, it resumes bit for bit, it writes what it promises."""

import json
import math

import pytest
import torch

from mnist_diffusion.training.batches import InMemoryBatches
from mnist_diffusion.training.build import build_diffusion, build_network
from mnist_diffusion.training.checkpoint import list_checkpoints, load_checkpoint
from mnist_diffusion.training.config import from_dict
from mnist_diffusion.data import mnist_tensors, to_model_range
from mnist_diffusion.training.ema import make_ema, update_ema
from mnist_diffusion.errors import UserError
from mnist_diffusion.training.loop import learning_rate, train


def tiny_config(steps: int, **train_overrides):
    return from_dict({
        "name": "tiny",
        "data": {"subset": 256},
        "diffusion": {"T": 100},
        "model": {"arch": "unet", "channels": [8, 16]},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"steps": steps, "batch_size": 16, "ema_decay": 0.9, "log_every": 2, "checkpoint_every": 3,
                  "sample_every": 0, "device": "cpu", **train_overrides},
        "sample": {"steps": 2, "n_grid": 4},
    })


# Measured on the 2-core CPU: the UNet reaches 6x in 20 steps, the CNN 4.6x in 60 steps.
@pytest.mark.parametrize("arch, channels, steps, factor", [
    ("unet", [16, 32], 25, 4.0),
    ("coursework_cnn", [16, 32, 32, 16], 60, 3.0),
])
def test_overfitting_one_batch_drives_the_loss_down(mnist_root, arch, channels, steps, factor):
    torch.manual_seed(0)
    images, _ = mnist_tensors("train")
    x = to_model_range(images[:64])
    config = from_dict({"model": {"arch": arch, "channels": channels}})
    model, diffusion = build_network(config), build_diffusion(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def fixed_loss():  # the same t and eps every time, so the numbers are comparable
        with torch.no_grad():
            return diffusion.loss(model, x, torch.Generator().manual_seed(123)).item()

    before = fixed_loss()
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = diffusion.loss(model, x, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_loss()
    assert after < before / factor, f"loss {before:.3f} -> {after:.3f}"


def test_resume_is_bitwise_identical_to_an_uninterrupted_run(mnist_root, tmp_path):
    straight = train(tiny_config(6), tmp_path / "straight", progress=False)
    train(tiny_config(3), tmp_path / "split", progress=False)
    split = train(tiny_config(6), tmp_path / "split", resume=True, progress=False)
    a = load_checkpoint(list_checkpoints(straight / "checkpoints")[-1][1])
    b = load_checkpoint(list_checkpoints(split / "checkpoints")[-1][1])
    assert a["step"] == b["step"] == 6
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resuming"
    for k, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][k][name])
    assert torch.equal(a["rng"]["noise"], b["rng"]["noise"])


def test_run_folder_contents_and_log(mnist_root, tmp_path):
    run = train(tiny_config(6, keep_checkpoints=1), tmp_path / "run", progress=False)
    assert [step for step, _ in list_checkpoints(run / "checkpoints")] == [6]  # older ones pruned
    assert (run / "ema.pt").is_file() and (run / "config.yaml").is_file()
    assert (run / "samples" / "step_00000006.png").is_file()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6]
    assert records[-1]["images_seen"] == 6 * 16
    assert all(r["loss"] > 0 and r["img_per_s"] > 0 for r in records)
    assert records[0]["lr"] == pytest.approx(1e-3)  # warm-up of 2 steps is over by step 2
    ema_only = load_checkpoint(run / "ema.pt")
    assert set(ema_only) == {"format", "config", "step", "ema", "stats"}
    assert ema_only["stats"]["images_seen"] == 6 * 16 and ema_only["stats"]["train_seconds"] > 0


def test_refuses_to_overwrite_a_run_without_resume(mnist_root, tmp_path):
    train(tiny_config(3), tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="--resume"):
        train(tiny_config(3), tmp_path / "run", progress=False)


def test_ema_is_the_exponential_average():
    model = torch.nn.Linear(3, 1)
    ema = make_ema(model)
    start = ema.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    update_ema(ema, model, decay=0.99, step=1000)  # warm-up factor (1001/1010) > 0.99: d = 0.99
    torch.testing.assert_close(ema.weight, 0.99 * start + 0.01 * model.weight)
    update_ema(ema, model, decay=0.0, step=0)
    torch.testing.assert_close(ema.weight, model.weight)


def test_batches_visit_every_image_once_per_epoch():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1).expand(40, 28, 28).contiguous()
    batches = InMemoryBatches(images, batch_size=8, seed=0)
    first_epoch = torch.cat([batches.next() for _ in range(5)])
    ids = ((first_epoch[:, 0, 0, 0] + 1) * 127.5).round().long()
    assert sorted(ids.tolist()) == list(range(40))
    assert first_epoch.min() >= -1 and first_epoch.max() <= 1
    state = batches.state_dict()
    nxt = batches.next()
    batches.load_state_dict(state)
    assert torch.equal(batches.next(), nxt)


def logged_losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def eager_losses(mnist_root, tmp_path_factory):
    """The per-step losses of 4 plain (fp32, NCHW, eager) steps of the tiny run: the reference for the variants."""
    losses = logged_losses(train(tiny_config(4, log_every=1), tmp_path_factory.mktemp("eager") / "run", progress=False))
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], f"the loss must fall over 4 steps: {losses}"
    return losses


def test_bf16_autocast_and_channels_last_train_on_cpu(mnist_root, tmp_path, eager_losses):
    """bf16 keeps 8 bits of mantissa (relative rounding 2^-8 = 0.4%), so the network's outputs stay within a few
    percent of fp32 and the loss, a mean over 12,544 squared errors, within 1% (measured: 0.05%) step for step.
    The losses must also differ from fp32's at all, or autocast did not run."""
    torch.manual_seed(0)
    network = build_network(tiny_config(1)).to(memory_format=torch.channels_last)
    x = torch.randn(16, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    t = torch.rand(16)
    with torch.no_grad():
        fp32 = network(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = network(x, t)
    assert bf16.dtype == torch.bfloat16
    assert ((bf16.float() - fp32).norm() / fp32.norm()).item() < 0.03  # measured 0.012

    losses = logged_losses(train(tiny_config(4, log_every=1, precision="bf16", channels_last=True), tmp_path / "run",
                                 progress=False))
    assert losses != eager_losses, "bf16 autocast must change the arithmetic"
    assert losses == pytest.approx(eager_losses, rel=1e-2)


def test_fp16_needs_cuda(mnist_root, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here; fp16 is allowed")
    with pytest.raises(UserError, match="fp16 needs a CUDA device"):
        train(tiny_config(2, precision="fp16"), tmp_path / "run", progress=False)


@pytest.mark.slow
def test_compiled_network_trains(mnist_root, tmp_path, eager_losses, monkeypatch):
    """torch.compile changes how the network runs, not what it computes: the compiled run's loss falls step for step
    with the eager run's, to float32 rounding (rel 1e-4; measured at most 1e-7). (Slow only on the first run: the
    inductor compiles the tiny UNet's kernels in about a minute on 2 cores, then caches them.)"""
    pytest.importorskip("torch._inductor")
    compiled = []
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(model) or real_compile(model, **kw))
    losses = logged_losses(train(tiny_config(4, log_every=1, compile=True), tmp_path / "run", progress=False))
    assert len(compiled) == 1, "the loop must compile the network"
    assert losses == pytest.approx(eager_losses, rel=1e-4)
    assert losses[-1] < 0.9 * losses[0]


def test_snapshots_hold_the_weights_and_budget_at_their_steps(mnist_root, tmp_path):
    run = train(tiny_config(6, snapshot_steps=[3, 5, 99], keep_checkpoints=5), tmp_path / "run", progress=False)
    assert [step for step, _ in list_checkpoints(run / "snapshots")] == [3, 5]  # 99 is past the end: ignored
    snapshot, full = load_checkpoint(run / "snapshots" / "step_00000003.pt"), load_checkpoint(run / "checkpoints" / "step_00000003.pt")
    for part in ("model", "ema"):
        for key, value in full[part].items():
            assert torch.equal(snapshot[part][key], value)
    assert snapshot["stats"] == full["stats"] and snapshot["stats"]["images_seen"] == 3 * 16
    assert "optimizer" not in snapshot


def test_learning_rate_warms_up_then_holds_or_follows_a_cosine_to_zero():
    constant = tiny_config(102)  # warm-up of 2 steps, then 100 steps
    cosine = from_dict({**constant.to_dict(), "optim": {**constant.to_dict()["optim"], "decay": "cosine"}})
    assert [learning_rate(c, 0) for c in (constant, cosine)] == [5e-4, 5e-4]  # (step + 1) / warm-up
    assert learning_rate(constant, 2) == learning_rate(constant, 101) == 1e-3
    lrs = [learning_rate(cosine, s) for s in range(2, 102)]
    assert lrs[0] == 1e-3 and lrs[50] == pytest.approx(5e-4) and lrs[-1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 0.99)))
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
