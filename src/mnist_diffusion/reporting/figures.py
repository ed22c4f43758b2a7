"""Figure helpers: uint8 image grids (forward-degradation strips, sampling trajectories) and the data of the
copying figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mnist_diffusion.data import to_uint8
from mnist_diffusion.cold.degradations import Degradation, repeat_state
from mnist_diffusion.reporting.grids import tile


def degradation_strip(
    degradation: Degradation, x0: Tensor, steps: Sequence[int] | None = None, seed: int = 0, columns: int = 8
) -> np.ndarray:
    """x0 [n, 1, 28, 28] in [-1, 1] degraded at ``steps`` (default: ``columns`` evenly spaced t from 0 to T).

    Returns uint8 [n, len(steps), 28, 28]: row i is image i from clean (t = 0) to most degraded, with one
    state per image held fixed along the row, exactly as training and sampling use it.
    """
    if steps is None:
        steps = torch.linspace(0, degradation.T, columns).round().long().tolist()
    n, k = x0.shape[0], len(steps)
    state = degradation.sample_state(n, torch.Generator(device=x0.device).manual_seed(seed), x0.device)
    t = torch.tensor(list(steps), device=x0.device).repeat(n)
    degraded = degradation.degrade(x0.repeat_interleave(k, dim=0), t, repeat_state(state, k))
    return to_uint8(degraded).cpu().numpy().reshape(n, k, 28, 28)


def trajectory_rows(trajectory: dict[int, Tensor], count: int = 8) -> np.ndarray:
    """The first ``count`` images of a sampler trajectory {t: x_t}, most degraded first: uint8 [count, steps, 28, 28]."""
    steps = sorted(trajectory, reverse=True)
    frames = torch.stack([trajectory[t][:count] for t in steps], dim=1)  # [count, steps, 1, 28, 28]
    return to_uint8(frames.flatten(0, 1)).cpu().numpy().reshape(frames.shape[0], len(steps), 28, 28)


def rows_to_grid(rows: np.ndarray) -> np.ndarray:
    """Tile uint8 [rows, columns, 28, 28] into one picture with the columns side by side."""
    r, c = rows.shape[:2]
    return tile(rows.reshape(r * c, 28, 28), ncol=c)


def forward_rows(diffusion, x0: Tensor, steps: Sequence[int], seed: int = 0) -> np.ndarray:
    """The DDPM forward process q(z_t | x) on x0 [n, 1, 28, 28] in [-1, 1] at each t in ``steps``, with one noise
    draw eps per image held fixed along its row: uint8 [n, len(steps), 28, 28] (z_t clipped to [-1, 1] for display)."""
    n, k = x0.shape[0], len(steps)
    eps = torch.randn(x0.shape, generator=torch.Generator(device=x0.device).manual_seed(seed), device=x0.device)
    t = torch.tensor(list(steps), device=x0.device).repeat(n)
    z = diffusion.q_sample(x0.repeat_interleave(k, dim=0), t, eps.repeat_interleave(k, dim=0))
    return to_uint8(z.clamp(-1, 1)).cpu().numpy().reshape(n, k, 28, 28)


def reverse_rows(trained, n: int, steps: Sequence[int], sampler: str | None = None, seed: int = 0) -> np.ndarray:
    """The states x_t (cold) or z_t (DDPM, ancestral) of ``n`` unconditional samples at each t in ``steps``, most
    degraded first: uint8 [n, len(steps), 28, 28]. ``trained`` is a :class:`~mnist_diffusion.training.sampling.TrainedModel`."""
    from mnist_diffusion.cold.restoration import ColdDiffusion
    from mnist_diffusion.cold import cold_sample
    from mnist_diffusion.diffusion import ancestral_sample

    if isinstance(trained.process, ColdDiffusion):
        result = cold_sample(trained.network, trained.process, n, algorithm=sampler or "alg2", seed=seed,
                             return_steps=steps)
    else:
        result = ancestral_sample(trained.network, trained.process, n, seed=seed, return_steps=steps)
    return trajectory_rows({t: z.clamp(-1, 1) for t, z in result.trajectory.items()}, count=n)


#: How the copying figure names the traced palimpsest's Algorithm 2 variants (by their sampler labels).
TRACE_PRIOR_LABELS = {"alg2": "from training traces", "alg2-mixtureprior": "mixture prior",
                      "alg2-heldoutprior": "held-out mixture prior"}


def copying_panels(checks: dict[str, dict[str, Any]], labels: dict[str, str],
                   traced: str = "cold_palimpsest_trace") -> tuple[dict[str, dict[str, Any]], float] | None:
    """The copying figure's panels from the runs' copying checks ({run: metrics.json "copying"}), with ``labels``
    naming the runs: left, each check's nearest-training distances beside the test digits'; right, the ``traced``
    run started from training traces, its nearest and its source-digit distances. Returns (panels of histogram
    counts for :func:`~mnist_diffusion.reporting.plots.distance_histograms`, the memorisation threshold), or None
    when ``traced`` has no check from training traces."""
    reference = checks.get(traced, {}).get("alg2")
    if not reference or "source" not in reference:
        return None
    nearest = {"test digits": reference["test_nearest"]["counts"]}
    for run, run_checks in checks.items():
        for label, check in run_checks.items():
            name = f"{labels[run]}, {TRACE_PRIOR_LABELS.get(label, label)}" if run == traced else labels[run]
            nearest[name] = check["nearest"]["counts"]
    own = f"{labels[traced]}, {TRACE_PRIOR_LABELS['alg2']}"
    sources = {"test digits": nearest["test digits"], own: nearest[own], "its source digit": reference["source"]["counts"]}
    return {"nearest training image": nearest, "from training traces": sources}, reference["threshold"]
