"""Samples drawn from a run's weights, cached by weights digest, sampler options (with the fitted prior they use), N
and seed, and resumable.

Both the evaluations (:mod:`.running`) and the notebooks' sample grids (:func:`.results.samples`) draw through
:func:`draw_samples`, so the same arguments always give the same images, drawn once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mnist_diffusion.experiments.registry import SampleOptions, evaluation_key
from mnist_diffusion.training.checkpoint import digest_path, load_checkpoint, resolve_checkpoint

#: A draw of samples that takes longer saves its finished batches this often (seconds), so that a stopped draw
#: (a session's end, ^C) resumes where it was instead of starting again.
PARTIAL_SAVE_SECONDS = 300.0


def weights_digest(path: Path) -> str:
    """The first 16 hex digits of a checkpoint's recorded sha256 (``nodigest`` when it has no record)."""
    sidecar = digest_path(path)
    return sidecar.read_text().split()[0][:16] if sidecar.is_file() else "nodigest"


def prior_tag(weights: Path, options: SampleOptions) -> str:
    """What the options' key does not say about the endpoint prior: ``_k<K>`` for the ``heldout`` trace prior, the
    component count its selection chose for the weights' trace cell (a new selection must not reuse draws from the
    old prior); ``""`` otherwise."""
    if options.prior != "heldout":
        return ""
    from mnist_diffusion.cold.trace_prior import prior_components
    from mnist_diffusion.training.config import from_dict

    cell = from_dict(load_checkpoint(resolve_checkpoint(weights))["config"]).cold.trace_cell
    return f"_k{prior_components(options.prior, cell) or 0}"


def sample_file(weights: Path, options: SampleOptions, n: int, seed: int, cache: Path) -> Path:
    """Where :func:`draw_samples` keeps a draw. DDPM samples clipped to [-1, 1] (the default) end in ``_clip``, so
    that files of samples drawn otherwise (``-noclip`` in their key) are never mistaken for them; draws from the
    held-out trace prior name its component count (:func:`prior_tag`)."""
    clip = "_clip" if options.clip else ""
    key = evaluation_key(options, n) + prior_tag(weights, options)
    return cache / f"{weights_digest(weights)}_{key}_seed{seed}{clip}.npz"


def draw_samples(weights: Path, options: SampleOptions, n: int, seed: int, cache: Path,
                 progress: bool = True) -> tuple[Any, float]:
    """``n`` samples (uint8 [n, 28, 28]) drawn from a checkpoint with ``options``, cached in ``cache``.

    Returns (images, the seconds their sampling took, also when cached). A long draw keeps its finished batches
    in ``<name>.partial.npz`` every :data:`PARTIAL_SAVE_SECONDS` and resumes from them; their images are the ones
    an uninterrupted draw gives, and the seconds count only the batches kept."""
    import numpy as np

    from mnist_diffusion.training.sampling import default_batch_size, generate, load_trained, save_samples

    file = sample_file(weights, options, n, seed, cache)
    if file.is_file():
        with np.load(file) as data:
            return data["images"], float(json.loads(str(data["meta"]))["sampling_seconds"])
    trained = load_trained(weights, device="auto")
    kwargs = options.generate_kwargs()
    meta = {"checkpoint": str(weights), "n": n, "seed": seed, "batch_size": default_batch_size(trained), **kwargs}
    partial = file.with_name(file.name.replace(".npz", ".partial.npz"))
    done, seconds_before = None, 0.0
    if partial.is_file():
        with np.load(partial) as data:
            kept = json.loads(str(data["meta"]))
            if {k: kept.get(k) for k in meta} == meta:  # else it was drawn otherwise (e.g. another batch size): redraw
                done, seconds_before = data["images"], float(kept["sampling_seconds"])
                if progress:
                    print(f"resuming {file.name} after {len(done)} of {n} samples")
    started = last_save = time.perf_counter()

    def save_partial(out: Any, filled: int) -> None:
        nonlocal last_save
        if filled < n and time.perf_counter() - last_save >= PARTIAL_SAVE_SECONDS:
            save_samples(partial, out[:filled], meta | {"sampling_seconds": seconds_before + time.perf_counter() - started})
            last_save = time.perf_counter()

    images = generate(trained, n, seed=seed, batch_size=meta["batch_size"], progress=progress, done=done,
                      after_batch=save_partial, **kwargs)
    seconds = seconds_before + time.perf_counter() - started
    save_samples(file, images, meta | {"sampling_seconds": seconds})
    partial.unlink(missing_ok=True)
    return images, seconds
