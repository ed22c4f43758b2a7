"""The evaluation's on-disk cache: real-data statistics and floors, keyed by what they depend on.

Folder: ``$MNIST_DIFFUSION_CACHE``, else ``<repo>/.cache`` (gitignored). Inside, ``evaluation/<key>/``
where ``key`` is the first 16 hex digits of the classifier's (or Inception network's) sha256, or
``pixels`` for what depends on the MNIST files alone. Every entry also stores the metadata it was made
with (:func:`load_tensors` compares it), so a stale or foreign entry is recomputed, never reused.
Writes are atomic (temporary file + rename); an unreadable entry is treated as missing.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from mnist_diffusion.paths import write_atomic
from mnist_diffusion.paths import repo_root

CACHE_ENV = "MNIST_DIFFUSION_CACHE"


def cache_root() -> Path:
    """``$MNIST_DIFFUSION_CACHE`` if set, else ``<repo>/.cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else repo_root() / ".cache"


def cache_folder(key: str) -> Path:
    """``<cache root>/evaluation/<key>`` (not created)."""
    return cache_root() / "evaluation" / key


def save_tensors(path: Path, payload: dict[str, Any], meta: dict[str, Any]) -> None:
    """Store tensors and builtins (``payload``) with the ``meta`` they depend on, atomically."""
    buffer = io.BytesIO()
    torch.save({"meta": meta, "payload": payload}, buffer)
    write_atomic(path, [buffer.getvalue()])


def load_tensors(path: Path, meta: dict[str, Any]) -> dict[str, Any] | None:
    """The payload stored at ``path`` if it exists, is readable and was made with exactly ``meta``; else None."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged cache entry is recomputed
        return None
    if not isinstance(stored, dict) or stored.get("meta") != meta:
        return None
    return stored.get("payload")


def save_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    write_atomic(path, [(json.dumps(obj, indent=2) + "\n").encode()])


def load_json(path: Path) -> Any | None:
    """Parsed JSON at ``path``, or None when missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
