"""Where things live (repository root, data root, run folders, the active profile) and how files are written:
atomically, so that a reader sees the old file or the new one, never a torn one (sessions end by killing
processes mid-write; checkpoints, MNIST IDX files, the evaluation cache and sample files all go through here)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

#: Environment variable naming the data root (a folder holding ``MNIST/raw``).
DATA_ENV = "MNIST_DIFFUSION_DATA"
#: Environment variable selecting a profile (``smoke`` shrinks everything to seconds).
PROFILE_ENV = "MNIST_DIFFUSION_PROFILE"
PROFILES = ("full", "smoke")


def repo_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``), for an editable install."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else ``$MNIST_DIFFUSION_DATA``, else ``<repo>/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return repo_root() / "data"


def active_profile(profile: str | None = None) -> str:
    """The profile: the argument, else ``$MNIST_DIFFUSION_PROFILE``, else ``full``."""
    from mnist_diffusion.errors import UserError

    chosen = profile or os.environ.get(PROFILE_ENV) or "full"
    if chosen not in PROFILES:
        raise UserError(f"unknown profile {chosen!r}; choose one of {', '.join(PROFILES)}")
    return chosen


def runs_root(profile: str = "full") -> Path:
    """Folder for training runs. Smoke runs go to a scratch folder beside them, never into ``results/``."""
    base = repo_root() / "runs"
    return base / "smoke" if profile == "smoke" else base

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
