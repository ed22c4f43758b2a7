"""The training loop, readable top to bottom: build, (resume), step, log, sample, checkpoint.

A run folder holds ``config.yaml``, ``log.jsonl`` (one JSON line per log interval: step, loss, lr,
train_seconds, images_seen, img_per_s), ``samples/step_*.png`` grids, ``checkpoints/step_*.pt`` (full
state for resuming) and, at the end, ``ema.pt`` (EMA weights + config, small enough to commit).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .batches import InMemoryBatches
from .build import build_network, build_process, resolve_device
from .config import Config
from .data import mnist_tensors, to_uint8
from .ema import make_ema, update_ema
from .errors import UserError
from .grids import save_grid
from .paths import runs_root
from .sampling import sample_batch


def learning_rate(config: Config, step: int) -> float:
    """Constant LR after a linear warm-up over ``optim.warmup_steps`` steps."""
    warmup = config.optim.warmup_steps
    return config.optim.lr * min(1.0, (step + 1) / warmup) if warmup else config.optim.lr


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optim
    cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def default_run_dir(config: Config, profile: str) -> Path:
    return runs_root(profile) / config.name


def _rng_state(noise_generator: torch.Generator) -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "noise": noise_generator.get_state()}


def train(config: Config, run_dir: Path | None = None, *, resume: bool = False, profile: str = "full",
          progress: bool = True) -> Path:
    """Train the network of ``config`` and return the run folder. ``resume`` continues from its newest checkpoint."""
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(config, profile)
    checkpoint_dir = run_dir / "checkpoints"
    if profile == "smoke" and not resume and run_dir.resolve().is_relative_to(runs_root("smoke").resolve()):
        shutil.rmtree(run_dir, ignore_errors=True)  # smoke runs are scratch: a rerun starts afresh
    existing = ckpt.list_checkpoints(checkpoint_dir)
    if existing and not resume:
        raise UserError(f"{run_dir} already holds checkpoints; pass --resume to continue, or choose another --out")
    device = resolve_device(config.train.device)
    tc = config.train

    # --- build everything from the seed --------------------------------------------------------
    torch.manual_seed(tc.seed)
    model = build_network(config).to(device)
    memory_format = torch.channels_last if tc.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    ema = make_ema(model)
    process = build_process(config, device)
    optimizer = make_optimizer(config, model.parameters())
    images, _ = mnist_tensors("train", config.data.root)
    if config.data.subset:
        images = images[: config.data.subset]
    batches = InMemoryBatches(images, tc.batch_size, seed=tc.seed, device=device)
    noise_generator = torch.Generator(device=device).manual_seed(tc.seed + 1)
    step, train_seconds = 0, 0.0

    # --- resume ----------------------------------------------------------------------------------
    if resume and existing:
        state = ckpt.load_checkpoint(existing[-1][1], map_location=device)
        ckpt.load_state_strict(model, state["model"], f"checkpoint {existing[-1][1]}")
        ckpt.load_state_strict(ema, state["ema"], f"EMA of checkpoint {existing[-1][1]}")
        optimizer.load_state_dict(state["optimizer"])
        batches.load_state_dict(state["batches"])
        torch.set_rng_state(state["rng"]["torch"])
        noise_generator.set_state(state["rng"]["noise"])
        step, train_seconds = int(state["step"]), float(state["stats"]["train_seconds"])

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))

    def save(at_step: int) -> None:
        ckpt.save_atomic(
            {
                "format": ckpt.FORMAT, "config": config.to_dict(), "step": at_step,
                "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
                "batches": batches.state_dict(), "rng": _rng_state(noise_generator),
                "stats": {"train_seconds": train_seconds, "images_seen": at_step * tc.batch_size},
            },
            checkpoint_dir / ckpt.checkpoint_name(at_step),
        )
        ckpt.prune_checkpoints(checkpoint_dir, tc.keep_checkpoints)

    def write_grid(at_step: int) -> None:
        s = config.sample
        ema.eval()
        grid = sample_batch(ema, process, s.n_grid, sampler=s.sampler, steps=s.steps, eta=s.eta,
                            variance=s.variance, clip_x0=s.clip_x0, seed=0)
        save_grid(to_uint8(grid).cpu().numpy(), run_dir / "samples" / f"step_{at_step:08d}.png")

    # --- the loop ----------------------------------------------------------------------------------
    model.train()
    loss_sum, loss_count, seconds_at_last_log = 0.0, 0, train_seconds
    bar = tqdm(total=tc.steps, initial=step, desc=config.name, disable=not progress, dynamic_ncols=True)
    with (run_dir / "log.jsonl").open("a") as log:
        while step < tc.steps:
            started = time.perf_counter()
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x = batches.next().contiguous(memory_format=memory_format)
            loss = process.loss(model, x, noise_generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            update_ema(ema, model, tc.ema_decay, step)
            step += 1
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise UserError(f"loss became {loss_value} at step {step}; lower optim.lr or set optim.grad_clip "
                                f"(the last good checkpoint in {checkpoint_dir} is kept)")
            train_seconds += time.perf_counter() - started
            loss_sum, loss_count = loss_sum + loss_value, loss_count + 1
            bar.update(1)

            if step % tc.log_every == 0 or step == tc.steps:
                elapsed = max(train_seconds - seconds_at_last_log, 1e-9)
                record = {"step": step, "loss": loss_sum / loss_count, "lr": lr, "train_seconds": round(train_seconds, 3),
                          "images_seen": step * tc.batch_size, "img_per_s": round(loss_count * tc.batch_size / elapsed, 1)}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['img_per_s']:.0f}")
                loss_sum, loss_count, seconds_at_last_log = 0.0, 0, train_seconds
            if step % tc.checkpoint_every == 0 or step == tc.steps:
                save(step)
            if (tc.sample_every and step % tc.sample_every == 0) or step == tc.steps:
                write_grid(step)
                model.train()
    bar.close()
    ckpt.save_atomic({"format": ckpt.FORMAT, "config": config.to_dict(), "step": step, "ema": ema.state_dict()},
                     run_dir / "ema.pt")
    return run_dir
