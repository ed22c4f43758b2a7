"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

Everything the project writes that a later run reads back (checkpoints, MNIST IDX files, the evaluation
cache, cached samples) goes through here, because sessions end by killing processes mid-write.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def stage(path: Path, chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to a fresh temporary file beside ``path`` and fsync it; return the temporary path.

    The caller renames it into place with ``os.replace`` (see :func:`write_atomic`) or unlinks it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are mode 0600; open(..., "xb") honours the umask like a plain write.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "xb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def write_atomic(path: str | os.PathLike, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    tmp = stage(path, chunks)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
