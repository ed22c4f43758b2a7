"""Checkpoints: atomic writes, weights-only loading, and rebuilding a model from what a checkpoint holds.

A training checkpoint is a dict of tensors and builtins (so ``torch.load(weights_only=True)`` can read it):
``format``, ``config`` (Config.to_dict()), ``step``, ``model``, ``ema``, ``optimizer``, ``rng`` and ``stats``.
An EMA-only export (``ema.pt``, small enough to commit) holds ``format``, ``config``, ``step`` and ``ema``.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import UserError

FORMAT = "mnist-diffusion/1"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Write ``obj`` with torch.save to a temporary file beside ``path``, fsync it, then rename over ``path``.

    A crash or a failed write at any point leaves either the old file or the new one, never a torn file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every ``step_*.pt`` in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest step checkpoints."""
    for _, path in list_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint file with weights-only unpickling; a bad file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot read checkpoint {path}: {reason[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not an mnist-diffusion checkpoint (expected format {FORMAT!r})")
    return state


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or for a run folder its newest ``checkpoints/step_*.pt`` (else its ``ema.pt``)."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path / "checkpoints")
        if found:
            return found[-1][1]
        if (path / "ema.pt").is_file():
            return path / "ema.pt"
        raise UserError(f"run folder {path} holds no checkpoints (looked in {path / 'checkpoints'} and for ema.pt)")
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    return path


def load_state_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict that names missing, unexpected and mis-shaped keys in one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(k for k in set(own) & set(state_dict) if own[k].shape != state_dict[k].shape)
    if missing or unexpected or shapes:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
        raise UserError(f"{what} does not fit the configured network ({'; '.join(parts)})")
    module.load_state_dict(state_dict)
