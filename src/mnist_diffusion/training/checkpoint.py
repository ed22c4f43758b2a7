"""Checkpoints: atomic writes, weights-only loading, and rebuilding a model from what a checkpoint holds.

A training checkpoint is a dict of tensors and builtins (so ``torch.load(weights_only=True)`` can read it):
``format``, ``config`` (Config.to_dict()), ``step``, ``model``, ``ema``, ``optimizer``, ``rng`` and ``stats``.
An EMA-only export (``ema.pt``, small enough to commit) holds ``format``, ``config``, ``step`` and ``ema``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnist_diffusion.paths import stage
from mnist_diffusion.errors import UserError

FORMAT = "mnist-diffusion/1"
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}.pt"


def digest_path(path: Path) -> Path:
    """The sidecar that records a checkpoint's sha256: ``step_00000010.pt.sha256``."""
    return path.with_name(path.name + ".sha256")


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """Save ``obj`` so that a crash or a failed write never leaves a torn or unverifiable checkpoint.

    The bytes go to a temporary file beside ``path`` (fsynced), their sha256 to a temporary sidecar; then the
    sidecar and the checkpoint are renamed into place, in that order. Any failure before the final rename
    leaves the previous files untouched. :func:`load_checkpoint` checks the sha256, because torch.load does
    not notice flipped bytes inside a tensor.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    tmp_data = stage(path, [data])
    try:
        tmp_digest = stage(path, [f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode()])
        try:
            os.replace(tmp_digest, digest_path(path))
        except BaseException:
            tmp_digest.unlink(missing_ok=True)
            raise
        os.replace(tmp_data, path)
    except BaseException:
        tmp_data.unlink(missing_ok=True)
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
        digest_path(path).unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with weights-only unpickling after checking its sha256 record (when it has one).

    A missing, truncated, corrupted or foreign file, or one carrying code, is a one-line UserError.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} not found")
    data = path.read_bytes()
    record = digest_path(path)
    if record.is_file():
        expected = record.read_text().split()[0] if record.read_text().strip() else ""
        if hashlib.sha256(data).hexdigest() != expected:
            raise UserError(f"checkpoint {path} is corrupted: its sha256 does not match {record.name}")
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch reports both garbage bytes and forbidden objects as "Weights only load failed"; only the
        # latter names an unsupported global (a class or function the file would import and call).
        if "unsupported global" in str(exc).lower():
            raise UserError(f"refusing to load {path}: it holds Python objects or code, not only tensors "
                            "(weights-only loading)") from None
        raise UserError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means an unusable file
        raise UserError(f"cannot read checkpoint {path}: {_first_line(exc)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{path} is not an mnist-diffusion checkpoint (expected format {FORMAT!r})")
    return state


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def load_newest_good(directory: Path, map_location: str | torch.device = "cpu",
                     warn=lambda message: print(message, file=sys.stderr)) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``directory`` that loads and verifies; unusable newer ones are reported and
    skipped. None when there are no checkpoints; a UserError when there are some but none is usable."""
    found = list_checkpoints(directory)
    problems = []
    for _, path in reversed(found):
        try:
            return path, load_checkpoint(path, map_location)
        except UserError as exc:
            problems.append(str(exc))
            warn(f"warning: {exc}; trying the previous checkpoint")
    if found:
        raise UserError(f"no usable checkpoint in {directory}: {problems[-1]}")
    return None


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
