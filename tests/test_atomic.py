"""Atomic writes: the old file or the new one, never a torn one, and no temporary files left behind."""

import os
import stat

import numpy as np
import pytest

from mnist_diffusion.paths import write_atomic
from mnist_diffusion.training.sampling import save_samples


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "file.bin"
    write_atomic(target, [b"old"])
    write_atomic(target, [b"new ", b"bytes"])
    assert target.read_bytes() == b"new bytes"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_a_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    target = tmp_path / "file.bin"
    write_atomic(target, [b"previous"])

    def disk_fills_up():
        yield b"half of the new"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        write_atomic(target, disk_fills_up())
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_written_files_honour_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "f", [b"x"])
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_an_invalid_samples_save_leaves_the_cached_file_untouched(tmp_path):
    path = tmp_path / "samples.npz"
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    save_samples(path, images, {"seed": 0})
    with pytest.raises(ValueError, match="uint8"):
        save_samples(path, images.astype(np.float32), {"seed": 1})
    stored = np.load(path)
    np.testing.assert_array_equal(stored["images"], images)
    assert '"seed": 0' in str(stored["meta"])
