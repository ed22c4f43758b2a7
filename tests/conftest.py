"""Shared pytest setup: where the real MNIST files are, and the ``network`` marker policy.

The real data root is ``$MNIST_DIFFUSION_DATA`` (a folder holding ``MNIST/raw``). When that is
unset and the shared offline copy ``<repo>/../shared/data/MNIST/raw`` exists, it is used. Tests
that need real data take the ``mnist_root`` fixture and are skipped, with a reason, when there is
none. Tests marked ``network`` are skipped when ``MNIST_DIFFUSION_OFFLINE=1``.
"""

from __future__ import annotations

import os
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
