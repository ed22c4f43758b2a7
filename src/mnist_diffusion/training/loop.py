"""The training loop, readable top to bottom: build, (resume), step, log, sample, checkpoint.

A run folder holds ``config.yaml``, ``log.jsonl`` (one JSON line per log interval: step, loss, lr,
train_seconds, images_seen, img_per_s), ``samples/step_*.png`` grids, ``checkpoints/step_*.pt`` (full
state for resuming, each with a ``.sha256`` record), ``snapshots/step_*.pt`` (weights only, at
``train.snapshot_steps``, for quality-per-compute curves) and, at the end, ``ema.pt`` (EMA weights + config,
small enough to commit).

The same function runs one process or many under torchrun (see :mod:`mnist_diffusion.training.distributed`): every
rank builds the same global batch and noise, trains on its share, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from mnist_diffusion.training import checkpoint as ckpt
from mnist_diffusion.training.batches import InMemoryBatches
from mnist_diffusion.training.build import build_network, build_process, resolve_device
from mnist_diffusion.training.config import Config
from mnist_diffusion.data import mnist_tensors, to_uint8
from mnist_diffusion.training.distributed import barrier, init_distributed, mean_across_ranks, shard_bounds, shutdown
from mnist_diffusion.training.ema import make_ema, update_ema
from mnist_diffusion.errors import UserError
from mnist_diffusion.reporting.grids import save_grid
from mnist_diffusion.scale import Scale, resolve_scale
from mnist_diffusion.training.sampling import sample_batch


def learning_rate(config: Config, step: int) -> float:
    """The LR of step ``step`` (0-based): a linear warm-up over ``optim.warmup_steps`` steps, then ``optim.lr``
    held (``optim.decay`` constant) or decayed as lr * (1 + cos(pi s)) / 2 with s the fraction of the steps after
    the warm-up that are done (cosine: lr at the warm-up's end, 0 after the last step)."""
    o, total = config.optim, config.train.steps
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.decay == "cosine":
        done = (step - o.warmup_steps) / max(total - o.warmup_steps, 1)
        return o.lr * 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))
    return o.lr


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def default_run_dir(config: Config, scale: Scale | str = "full") -> Path:
    """``<the scale's runs folder>/<config name>``: ``runs/<name>``, or the smoke scale's scratch folder."""
    return resolve_scale(scale).runs_root() / config.name


def autocast_settings(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None for fp32, whether a gradient scaler is needed)."""
    if precision == "fp16" and device.type != "cuda":
        raise UserError("train.precision=fp16 needs a CUDA device; use fp32 (or bf16) here")
    return {"fp32": (None, False), "bf16": (torch.bfloat16, False), "fp16": (torch.float16, True)}[precision]


@dataclass
class Trainee:
    """What one optimisation step updates: the network's ``model`` (run as ``network``, its compiled or DDP
    wrapper when there is one), its EMA copy, the optimiser, the gradient scaler and the autocast dtype (None: fp32)."""

    model: torch.nn.Module
    network: torch.nn.Module
    ema: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    memory_format: torch.memory_format


def build_trainee(config: Config, device: torch.device) -> tuple[Trainee, Any]:
    """Everything a run trains, built from ``train.seed`` (the same on every rank): the network in the config's
    memory format, its EMA copy, the optimiser, the gradient scaler, and the network to call (compiled when
    ``train.compile``; the loop wraps it for data parallelism); and the run's process (DDPM or cold)."""
    tc = config.train
    amp_dtype, needs_scaler = autocast_settings(tc.precision, device)
    torch.manual_seed(tc.seed)
    memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
    model = build_network(config).to(device=device, memory_format=memory_format)
    ema = make_ema(model)
    process = build_process(config, device)
    optimizer = make_optimizer(config, model.parameters())
    scaler = torch.amp.GradScaler(device.type, enabled=needs_scaler)
    network = torch.compile(model) if tc.compile else model
    return Trainee(model, network, ema, optimizer, scaler, amp_dtype, memory_format), process


def optimisation_step(config: Config, step: int, lr: float, trainee: Trainee, process: Any, x: torch.Tensor,
                      noise_generator: torch.Generator, shard: tuple[int, int] | None = None) -> torch.Tensor:
    """One training step on the batch ``x`` [B, 1, 28, 28] in [-1, 1]: the learning rate ``lr`` set, the process's
    loss (its noise from ``noise_generator``) backpropagated, gradients clipped at ``optim.grad_clip``, an optimiser
    step, and the EMA updated for step ``step``. Returns the loss (a 0-d tensor, not synchronised)."""
    t = trainee
    for group in t.optimizer.param_groups:
        group["lr"] = lr
    device_type = x.device.type
    with torch.autocast(device_type, dtype=t.amp_dtype, enabled=t.amp_dtype is not None):
        loss = process.loss(t.network, x, noise_generator, shard=shard)
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    if config.optim.grad_clip:
        t.scaler.unscale_(t.optimizer)
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), config.optim.grad_clip)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    update_ema(t.ema, t.model, config.train.ema_decay, step)
    return loss


def truncate_log(path: Path, last_step: int) -> None:
    """Drop log lines after ``last_step`` (and a torn last line) so a resumed run does not log a step twice."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    path.write_text("".join(f"{line}\n" for line in kept))


def train(config: Config, run_dir: Path | None = None, *, resume: bool = False, scale: Scale | str = "full",
          progress: bool = True) -> Path:
    """Train the network of ``config`` and return the run folder (default: in the scale's runs folder).
    ``resume`` continues from its newest good checkpoint; a scratch scale's run that does not resume starts afresh."""
    tc = config.train
    dist_info, device = init_distributed(resolve_device(tc.device))
    try:
        return _train(config, tc, dist_info, device, run_dir, resume, resolve_scale(scale),
                      progress and dist_info.is_main)
    finally:
        shutdown(dist_info)


def _train(config, tc, dist_info, device, run_dir, resume, scale: Scale, progress) -> Path:
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config, scale)
    checkpoint_dir = run_dir / "checkpoints"
    main = dist_info.is_main
    if main and scale.scratch and not resume and run_dir.resolve().is_relative_to(scale.runs_root().resolve()):
        shutil.rmtree(run_dir, ignore_errors=True)  # scratch runs: a rerun starts afresh
    barrier(dist_info)
    if ckpt.list_checkpoints(checkpoint_dir) and not resume:
        raise UserError(f"{run_dir} already holds checkpoints; pass --resume to continue, or choose another --out")
    shard = shard_bounds(tc.batch_size, dist_info) if dist_info.enabled else None

    # --- build everything from the seed (identically on every rank) ------------------------------
    trainee, process = build_trainee(config, device)
    model, ema, optimizer, scaler = trainee.model, trainee.ema, trainee.optimizer, trainee.scaler
    images, _ = mnist_tensors("train", config.data.root)
    if config.data.subset:
        images = images[: config.data.subset]
    batches = InMemoryBatches(images, tc.batch_size, seed=tc.seed, device=device)
    noise_generator = torch.Generator(device=device).manual_seed(tc.seed + 1)
    step, train_seconds = 0, 0.0

    # --- resume from the newest checkpoint that verifies -----------------------------------------
    if resume and (found := ckpt.load_newest_good(checkpoint_dir, map_location=device,
                                                 warn=print if main else lambda message: None)):
        path, state = found
        ckpt.load_state_strict(model, state["model"], f"checkpoint {path}")
        ckpt.load_state_strict(ema, state["ema"], f"EMA of checkpoint {path}")
        optimizer.load_state_dict(state["optimizer"])
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["rng"]["torch"])
        noise_generator.set_state(state["rng"]["noise"].cpu())
        step, train_seconds = int(state["step"]), float(state["stats"]["train_seconds"])
        if main:
            print(f"resuming {config.name} in {path.parent.parent} from {path.name} (step {step})")

    # The network the loop calls (compiled when asked for) wrapped for data parallelism across ranks.
    if dist_info.enabled:
        trainee.network = DistributedDataParallel(trainee.network,
                                                  device_ids=[device.index] if device.type == "cuda" else None)

    if main:
        for stale in checkpoint_dir.glob(".*.tmp"):  # left by a process killed while saving
            stale.unlink(missing_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        truncate_log(run_dir / "log.jsonl", step)

    def save(at_step: int) -> None:
        ckpt.save_atomic(
            {
                "format": ckpt.FORMAT, "config": config.to_dict(), "step": at_step,
                "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(), "batches": batches.state_dict(),
                "rng": {"torch": torch.get_rng_state(), "noise": noise_generator.get_state()},
                "stats": {"train_seconds": train_seconds, "images_seen": at_step * tc.batch_size},
            },
            checkpoint_dir / ckpt.checkpoint_name(at_step),
        )
        ckpt.prune_checkpoints(checkpoint_dir, tc.keep_checkpoints)

    def snapshot(at_step: int) -> None:
        ckpt.save_atomic(
            {"format": ckpt.FORMAT, "config": config.to_dict(), "step": at_step, "model": model.state_dict(),
             "ema": ema.state_dict(), "stats": {"train_seconds": train_seconds, "images_seen": at_step * tc.batch_size}},
            run_dir / "snapshots" / ckpt.checkpoint_name(at_step),
        )

    def write_grid(at_step: int) -> None:
        s = config.sample
        ema.eval()
        grid = sample_batch(ema, process, s.n_grid, sampler=s.sampler, steps=s.steps, eta=s.eta,
                            variance=s.variance, clip_x0=s.clip_x0, seed=0)
        save_grid(to_uint8(grid).cpu().numpy(), run_dir / "samples" / f"step_{at_step:08d}.png")

    # --- the loop ----------------------------------------------------------------------------------
    snapshot_steps = set(tc.snapshot_steps)
    model.train()
    loss_sum, loss_count, seconds_at_last_log = 0.0, 0, train_seconds
    bar = tqdm(total=tc.steps, initial=step, desc=config.name, disable=not progress, dynamic_ncols=True)
    log = (run_dir / "log.jsonl").open("a") if main else contextlib.nullcontext()
    with log:
        while step < tc.steps:
            started = time.perf_counter()
            lr = learning_rate(config, step)
            x = batches.next().contiguous(memory_format=trainee.memory_format)
            loss = optimisation_step(config, step, lr, trainee, process, x, noise_generator, shard)
            step += 1
            loss_value = mean_across_ranks(loss.item(), dist_info, device)
            if not math.isfinite(loss_value):
                raise UserError(f"loss became {loss_value} at step {step}; lower optim.lr or set optim.grad_clip "
                                f"(the last good checkpoint in {checkpoint_dir} is kept)")
            train_seconds += time.perf_counter() - started
            loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
            bar.update(1)

            if main and (step % tc.log_every == 0 or step == tc.steps):
                elapsed = max(train_seconds - seconds_at_last_log, 1e-9)
                record = {"step": step, "loss": loss_sum / loss_count, "lr": lr, "train_seconds": round(train_seconds, 3),
                          "images_seen": step * tc.batch_size, "img_per_s": round(loss_count * tc.batch_size / elapsed, 1)}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['img_per_s']:.0f}")
                loss_sum, loss_count, seconds_at_last_log = 0.0, 0, train_seconds
            if main and (step % tc.checkpoint_every == 0 or step == tc.steps):
                save(step)
            if main and step in snapshot_steps:
                snapshot(step)
            if main and ((tc.sample_every and step % tc.sample_every == 0) or step == tc.steps):
                write_grid(step)
                model.train()
    bar.close()
    if main:
        ckpt.save_atomic({"format": ckpt.FORMAT, "config": config.to_dict(), "step": step, "ema": ema.state_dict(),
                          "stats": {"train_seconds": train_seconds, "images_seen": step * tc.batch_size}},
                         run_dir / "ema.pt")
    barrier(dist_info)
    return run_dir
