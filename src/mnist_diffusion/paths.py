"""Where things live (repository root, data root; each scale's folders are in :mod:`mnist_diffusion.scale`) and
how files are written: atomically, so that a reader sees the old file or the new one, never a torn one (sessions
end by killing processes mid-write; checkpoints, MNIST IDX files, the evaluation cache and sample files all go through here).
Also the one kind of in-process cache (:func:`memo`) and the one function that empties them all (:func:`clear_caches`)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

#: Environment variable naming the data root (a folder holding ``MNIST/raw``).
DATA_ENV = "MNIST_DIFFUSION_DATA"


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


#: Where derived data that are slow to compute and cheap to keep (reference features, fitted priors) are cached.
CACHE_ENV = "MNIST_DIFFUSION_CACHE"


def cache_root() -> Path:
    """``$MNIST_DIFFUSION_CACHE`` if set, else ``<repo>/.cache``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else repo_root() / ".cache"


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


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` to ``path`` as indented JSON (the layout of the committed results and caches), atomically."""
    write_atomic(path, [(json.dumps(obj, indent=2) + "\n").encode()])


_Function = TypeVar("_Function", bound=Callable)
_Container = TypeVar("_Container", dict, set)
#: The ``clear`` of every in-process cache, called by :func:`clear_caches`.
_CACHES: list[Callable[[], None]] = []


def memo(maxsize: int | None) -> Callable[[_Function], _Function]:
    """``functools.lru_cache(maxsize)`` that :func:`clear_caches` empties: every in-process cache is made with it."""
    def decorate(function: _Function) -> _Function:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _CACHES.append(cached.cache_clear)
        return cached  # type: ignore[return-value]
    return decorate


def memo_container(container: _Container) -> _Container:
    """Register a dict or set that serves as a cache (one :func:`memo` cannot express) with :func:`clear_caches`."""
    _CACHES.append(container.clear)
    return container


def clear_caches() -> None:
    """Empty every :func:`memo` cache (loaded MNIST tensors and checks, networks, reference statistics, floors); files
    on disk stay. For tests that switch data or cache folders, or after files were replaced."""
    for clear in _CACHES:
        clear()
