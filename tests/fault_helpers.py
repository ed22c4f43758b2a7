"""Shared pieces of the fault-tolerance tests: a tiny run config and ways to run and compare trainings."""

import subprocess
import sys
from pathlib import Path

import torch
import yaml

from mnist_diffusion.training.checkpoint import list_checkpoints, load_checkpoint

TINY = {
    "name": "tiny",
    "data": {"subset": 256},
    "diffusion": {"T": 100},
    "model": {"arch": "unet", "channels": [8, 16]},
    "optim": {"lr": 1e-3, "warmup_steps": 2},
    "train": {"steps": 12, "batch_size": 16, "ema_decay": 0.9, "log_every": 1, "checkpoint_every": 2,
              "sample_every": 0, "keep_checkpoints": 3, "device": "cpu"},
    "sample": {"steps": 2, "n_grid": 4},
}


def write_config(folder: Path, **train_overrides) -> Path:
    values = {**TINY, "train": {**TINY["train"], **train_overrides}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def train_command(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mnist_diffusion", "train", "--config", str(config), "--out", str(out),
            "--no-progress", *extra]


def run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(list_checkpoints(run_dir / "checkpoints")[-1][1])


def assert_same_weights(a: dict, b: dict, exact: bool = True, atol: float = 0.0) -> None:
    for part in ("model", "ema"):
        for key, value in a[part].items():
            if exact:
                assert torch.equal(value, b[part][key]), f"{part}.{key} differs"
            else:
                torch.testing.assert_close(value, b[part][key], atol=atol, rtol=0, msg=f"{part}.{key} differs")
