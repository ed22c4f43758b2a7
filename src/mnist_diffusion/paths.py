"""Where things live: repository root, data root, run folders, and the active profile."""

from __future__ import annotations

import os
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
    from .errors import UserError

    chosen = profile or os.environ.get(PROFILE_ENV) or "full"
    if chosen not in PROFILES:
        raise UserError(f"unknown profile {chosen!r}; choose one of {', '.join(PROFILES)}")
    return chosen


def runs_root(profile: str = "full") -> Path:
    """Folder for training runs. Smoke runs go to a scratch folder beside them, never into ``results/``."""
    base = repo_root() / "runs"
    return base / "smoke" if profile == "smoke" else base
