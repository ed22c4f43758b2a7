"""Crash safety with real processes and files: kill -9, torn and corrupted checkpoints, failed writes, NaN."""

import os
import random
import signal
import subprocess
import time

import pytest
import torch
from fault_helpers import assert_same_weights, final_state, run, train_command, write_config

from mnist_diffusion.training import checkpoint as ckpt
from mnist_diffusion.training.config import load_config
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.training.loop import train


@pytest.fixture(scope="module")
def reference(mnist_root, tmp_path_factory):
    """An uninterrupted 12-step run, trained in this process."""
    folder = tmp_path_factory.mktemp("reference")
    return train(load_config(write_config(folder)), folder / "run", progress=False)


def log_lines(run_dir):
    path = run_dir / "log.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_kill_minus_nine_at_random_points_then_resume_is_bitwise_identical(reference, tmp_path):
    config, out = write_config(tmp_path), tmp_path / "run"
    rng = random.Random(2026)
    kills = 0
    while kills < 3:
        process = subprocess.Popen(train_command(config, out, "--resume"), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        start_lines = log_lines(out)
        deadline = time.monotonic() + 120
        while log_lines(out) <= start_lines and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # wait until this process is training
        time.sleep(rng.uniform(0.0, 0.6))  # then strike at a random point: mid-step, mid-save, mid-log
        if process.poll() is not None:
            break
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 2, "the run finished before it could be interrupted twice; make it longer"
    finished = run(train_command(config, out, "--resume"))
    assert finished.returncode == 0, finished.stderr
    assert final_state(out)["step"] == 12
    assert_same_weights(final_state(reference), final_state(out))
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13)), "the log holds each step once, in order"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(reference, tmp_path, damage, capsys):
    config = load_config(write_config(tmp_path, steps=8))
    out = tmp_path / "run"
    train(config, out, progress=False)
    newest = ckpt.list_checkpoints(out / "checkpoints")[-1][1]
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x40  # inside a tensor: torch.load alone would not notice
    newest.write_bytes(bytes(data))
    with pytest.raises(UserError, match="corrupted" if damage == "flip" else "cannot read|corrupted"):
        ckpt.load_checkpoint(newest)
    resumed = train(load_config(write_config(tmp_path, steps=12)), out, resume=True, progress=False)
    printed = capsys.readouterr()
    assert "step_00000008.pt" in printed.out and "trying the previous checkpoint" in printed.out
    assert "from step_00000006.pt" in printed.out
    assert_same_weights(final_state(reference), final_state(resumed))


def test_failed_write_leaves_the_previous_checkpoint_intact(mnist_root, tmp_path, monkeypatch):
    config = load_config(write_config(tmp_path, steps=4))
    real_stage = ckpt.stage

    def disk_full_on_second_checkpoint(path, chunks):
        if path.name != "step_00000004.pt":
            return real_stage(path, chunks)

        def half_then_full():  # the disk fills up after part of the bytes reached the temporary file
            data = b"".join(chunks)
            yield data[: len(data) // 2]
            raise OSError(28, "No space left on device")
        return real_stage(path, half_then_full())

    monkeypatch.setattr(ckpt, "stage", disk_full_on_second_checkpoint)
    with pytest.raises(OSError, match="No space"):
        train(config, tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "checkpoints"
    assert [step for step, _ in ckpt.list_checkpoints(folder)] == [2]
    assert ckpt.load_checkpoint(folder / "step_00000002.pt")["step"] == 2
    assert not list(folder.glob(".*.tmp")), "no temporary files are left behind"


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(mnist_root, tmp_path, monkeypatch):
    real_loss = GaussianDiffusion.loss
    calls = {"n": 0}

    def loss_that_explodes_at_step_5(self, *args, **kwargs):
        calls["n"] += 1
        value = real_loss(self, *args, **kwargs)
        return value * float("nan") if calls["n"] == 5 else value

    monkeypatch.setattr(GaussianDiffusion, "loss", loss_that_explodes_at_step_5)
    with pytest.raises(UserError, match="loss became nan at step 5"):
        train(load_config(write_config(tmp_path)), tmp_path / "run", progress=False)
    found = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [step for step, _ in found] == [2, 4]
    state = ckpt.load_checkpoint(found[-1][1])
    assert all(torch.isfinite(v).all() for v in state["model"].values())
