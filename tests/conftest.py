"""Shared pytest setup: where the real MNIST files are, and the ``network`` marker policy.

The real data root is ``$MNIST_DIFFUSION_DATA`` (a folder holding ``MNIST/raw``). When that is
unset and the shared offline copy ``<repo>/../shared/data/MNIST/raw`` exists, it is used. Tests
that need real data take the ``mnist_root`` fixture and are skipped, with a reason, when there is
none. Tests marked ``network`` are skipped when ``MNIST_DIFFUSION_OFFLINE=1``.

Smoke-scale runs, results and figures of the whole session go to a fresh temporary folder
(``$MNIST_DIFFUSION_RUNS``, set here for the session and inherited by subprocesses), never into the
repository's ``runs/``, ``results/`` or ``figures/``; it is deleted at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SHARED_DATA = REPO.parent / "shared" / "data"

if (_SHARED_DATA / "MNIST" / "raw").is_dir():
    # Set at import time (not with monkeypatch) so subprocesses started by tests inherit it too.
    os.environ.setdefault("MNIST_DIFFUSION_DATA", str(_SHARED_DATA))


def _real_data_root() -> Path | None:
    env = os.environ.get("MNIST_DIFFUSION_DATA")
    if env and (Path(env).expanduser() / "MNIST" / "raw").is_dir():
        return Path(env).expanduser()
    return None


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data root holding the real ``MNIST/raw`` files; skips the test when there is none."""
    root = _real_data_root()
    if root is None:
        pytest.skip(
            "no real MNIST data: set MNIST_DIFFUSION_DATA to a folder holding MNIST/raw "
            "or run 'python -m mnist_diffusion data fetch'"
        )
    return root


_SCRATCH: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point the smoke scale at a fresh temporary folder for the session (``$MNIST_DIFFUSION_RUNS``)."""
    from mnist_diffusion.scale import RUNS_ENV

    folder = Path(tempfile.mkdtemp(prefix="mnist-diffusion-tests-"))
    _SCRATCH.update(folder=folder, env=RUNS_ENV, before=os.environ.get(RUNS_ENV))
    os.environ[RUNS_ENV] = str(folder / "smoke")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Delete the session's smoke folder and restore ``$MNIST_DIFFUSION_RUNS``."""
    if not _SCRATCH:
        return
    shutil.rmtree(_SCRATCH["folder"], ignore_errors=True)
    if _SCRATCH["before"] is None:
        os.environ.pop(_SCRATCH["env"], None)
    else:
        os.environ[_SCRATCH["env"]] = _SCRATCH["before"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``network`` tests when ``MNIST_DIFFUSION_OFFLINE=1``."""
    if os.environ.get("MNIST_DIFFUSION_OFFLINE") != "1":
        return
    skip = pytest.mark.skip(reason="MNIST_DIFFUSION_OFFLINE=1: test needs a package registry")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """No test may leave torch on another thread count: later tests compare bits with runs in subprocesses,
    which start with the default count, and a different count changes the order of floating-point sums."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
