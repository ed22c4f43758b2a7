"""Shared by the evaluation tests: one fresh cache folder for the whole test session.

The evaluation caches real-data statistics on disk. Tests must not trust a cache left by an earlier run,
but the costly entry (the memorisation threshold: 10,000 x 60,000 pixel distances) should be computed once
per session, not once per module: every evaluation test module points ``MNIST_DIFFUSION_CACHE`` at
``<pytest basetemp>/evaluation-cache`` with this fixture.
"""

from pathlib import Path

import pytest

from mnist_diffusion.paths import CACHE_ENV
from mnist_diffusion.paths import clear_caches


def session_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<basetemp>/evaluation-cache``: the same folder for every module of one pytest session."""
    return tmp_path_factory.getbasetemp() / "evaluation-cache"


@pytest.fixture(scope="module")
def evaluation_cache(tmp_path_factory):
    """Point the evaluation cache at the session's fresh folder for a module; forget in-memory caches around it."""
    mp = pytest.MonkeyPatch()
    folder = session_cache_folder(tmp_path_factory)
    mp.setenv(CACHE_ENV, str(folder))
    clear_caches()
    yield folder
    mp.undo()
    clear_caches()
