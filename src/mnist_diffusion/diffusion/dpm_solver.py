"""DPM-Solver++(2M) and SDE-DPM-Solver++(2M) (Lu et al. 2022) on a sub-sequence of the DDPM's steps.

Notation as in :mod:`.ddpm` and :mod:`.schedules`: alpha_t is the *cumulative* signal fraction (Ho et al.'s
alpha-bar_t), z_t = sqrt(alpha_t) x + sqrt(1 - alpha_t) eps. Lu et al.'s alpha_t and sigma_t are our
sqrt(alpha_t) and sqrt(1 - alpha_t). The solvers step in the half-log-SNR

    lambda_t = log( sqrt(alpha_t) / sqrt(1 - alpha_t) )        (+inf at t = 0, where alpha_0 = 1)

and integrate the data prediction x_hat rather than the noise prediction. The visited steps are DDIM's
(:func:`~mnist_diffusion.diffusion.ddim.ddim_timesteps`: evenly spaced from T down to 0), one network call on
every visited step but the last, so ``steps`` network calls in all. For consecutive steps s > t, with s' the
step visited before s:

    x_hat_s = (z_s - sqrt(1 - alpha_s) eps_hat) / sqrt(alpha_s)           eps_hat = g(z_s, s); clipped to [-1, 1]
    h       = lambda_t - lambda_s,      r = (lambda_s - lambda_s') / h
    D       = (1 + 1/(2r)) x_hat_s - 1/(2r) x_hat_s'                      second order (Lu et al., Algorithm 2)
    D       = x_hat_s                                                     first order: first and last step

    2M:      z_t = sqrt(1 - alpha_t) / sqrt(1 - alpha_s) * z_s
                   - sqrt(alpha_t) (e^{-h} - 1) D
    SDE-2M:  z_t = sqrt(1 - alpha_t) / sqrt(1 - alpha_s) * e^{-h} z_s
                   + sqrt(alpha_t) (1 - e^{-2h}) D
                   + sqrt(1 - alpha_t) sqrt(1 - e^{-2h}) eps,             eps ~ N(0, I)

The first step has no x_hat_s' yet (Lu et al.'s warm-up). The last step lands on t = 0, where lambda_0 = +inf,
e^{-h} = 0 and r = 0: the second-order D is undefined there and both updates reduce to z_0 = x_hat_s (the
"lower order final step"; diffusers' ``final_sigmas_type="zero"``). The first-order 2M step is exactly DDIM
(eta = 0); the first-order SDE-2M step is DDIM with eta = 1 (the posterior variance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from mnist_diffusion.diffusion.common import Run, SampleResult, steps_bar
from mnist_diffusion.diffusion.ddim import ddim_timesteps
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError

#: "2m": DPM-Solver++(2M), deterministic given z_T; "sde-2m": SDE-DPM-Solver++(2M), fresh noise every step.
SOLVERS = ("2m", "sde-2m")


def half_log_snr(alpha: float) -> float:
    """lambda = log(sqrt(alpha) / sqrt(1 - alpha)) for a cumulative alpha_t; +inf at alpha = 1 (t = 0)."""
    return 0.5 * math.log(alpha / (1 - alpha)) if alpha < 1 else math.inf


@torch.inference_mode()
def dpm_solver_sample(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    n: int,
    *,
    steps: int = 20,
    solver: str = "2m",
    seed: int = 0,
    clip_x0: bool = True,
    return_steps: Iterable[int] = (),
    progress: bool = False,
) -> SampleResult:
    """Draw ``n`` images with ``steps`` network calls. ``return_steps`` keeps z_t for visited t only.

    ``solver``: one of :data:`SOLVERS`. Randomness (z_T, then for ``"sde-2m"`` one draw of eps per step with
    t > 0, in step order) comes from one generator seeded with ``seed`` on the diffusion's device.
    ``clip_x0`` (default on): clip x_hat to the data range [-1, 1] before it enters D, as
    :func:`~mnist_diffusion.diffusion.ddim.ddim_sample` does and for the same reason. The solver uses x_hat
    only, so it clips x_hat itself rather than take the implied noise from ``eps_at(..., clip_x0=True)``.
    """
    if solver not in SOLVERS:
        raise UserError(f"unknown DPM-Solver++ variant {solver!r}; choose one of {', '.join(SOLVERS)}")
    device = diffusion.device
    taus = ddim_timesteps(diffusion.T, steps).tolist()
    run = Run.start(n, seed, device, taus[0], return_steps)
    z, generator = run.z, run.generator
    x_hat_prev, lambda_prev = None, None  # x_hat_s' and lambda_s' of the step visited before s
    pairs = list(zip(taus[:-1], taus[1:]))
    for s, t in steps_bar(pairs, len(pairs), progress, f"dpm-solver++ {solver}"):
        alpha_s, alpha_t = diffusion.alpha_at[s], diffusion.alpha_at[t]
        lambda_s, lambda_t = half_log_snr(alpha_s), half_log_snr(alpha_t)
        eps_hat = diffusion.eps_at(model, z, s)
        x_hat = (z - math.sqrt(1 - alpha_s) * eps_hat) / math.sqrt(alpha_s)
        if clip_x0:
            x_hat = x_hat.clamp(-1, 1)
        h = lambda_t - lambda_s
        if x_hat_prev is None or t == 0:  # warm-up (no x_hat_s' yet); last step (lambda_0 = +inf, r = 0)
            D = x_hat
        else:
            r = (lambda_s - lambda_prev) / h
            D = (1 + 1 / (2 * r)) * x_hat - 1 / (2 * r) * x_hat_prev
        if solver == "2m":
            z = (math.sqrt(1 - alpha_t) / math.sqrt(1 - alpha_s) * z
                 - math.sqrt(alpha_t) * (math.exp(-h) - 1) * D)
        else:
            z = (math.sqrt(1 - alpha_t) / math.sqrt(1 - alpha_s) * math.exp(-h) * z
                 + math.sqrt(alpha_t) * (1 - math.exp(-2 * h)) * D)
            if t > 0:
                eps = torch.randn(z.shape, generator=generator, device=device)
                z = z + math.sqrt(1 - alpha_t) * math.sqrt(1 - math.exp(-2 * h)) * eps
        x_hat_prev, lambda_prev = x_hat, lambda_s
        run.keep(t, z)
    return run.result(z)
