"""DDIM sampling (Song, Meng & Ermon 2021) on a sub-sequence of the DDPM's steps.

For consecutive steps t > t' of the sub-sequence (ending at t' = 0), with x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t):

    sigma^2   = eta^2 * (1 - alpha_t') / (1 - alpha_t) * (1 - alpha_t / alpha_t')
    z_t'      = sqrt(alpha_t') x_hat + sqrt(1 - alpha_t' - sigma^2) eps_hat + sigma * eps,   eps ~ N(0, I)

eta = 0 is deterministic given z_T; eta = 1 over all T steps is ancestral sampling with the posterior variance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from mnist_diffusion.diffusion.common import Run, SampleResult, steps_bar
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError


def ddim_timesteps(T: int, steps: int) -> Tensor:
    """The visited steps, descending from T to 0: int64 [steps + 1], evenly spaced and rounded (steps in 1..T)."""
    if not 1 <= steps <= T:
        raise UserError(f"DDIM steps must be between 1 and T={T}, got {steps}")
    return torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long()


@torch.inference_mode()
def ddim_sample(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    n: int,
    *,
    steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    clip_x0: bool = True,
    return_steps: Iterable[int] = (),
    progress: bool = False,
) -> SampleResult:
    """Draw ``n`` images with ``steps`` network calls: float32 [n, 1, 28, 28], clamped to [-1, 1].

    Each step draws z_t' from N(sqrt(alpha_t') x_hat + sqrt(1 - alpha_t' - sigma^2) eps_hat, sigma^2 I) (the module
    docstring); randomness (z_T ~ N(0, I), then one eps per step with t' > 0 when sigma > 0) comes from one generator
    seeded with ``seed`` on the diffusion's device. ``return_steps`` keeps z_t for visited t only (unclamped).

    ``clip_x0`` (default on, as in Ho et al.'s and Nichol & Dhariwal's released samplers): clip x_hat to the data
    range [-1, 1] and use the noise it implies (:meth:`~mnist_diffusion.diffusion.ddpm.GaussianDiffusion.eps_at`).
    Near t = T, x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t) multiplies the network's error by
    1 / sqrt(alpha_T) (150 for the linear schedule, 20,000 for the cosine one); without the clip a trained MNIST
    network's samples come out as saturated noise.
    """
    if eta < 0:
        raise UserError(f"DDIM eta must be >= 0, got {eta}")
    device = diffusion.device
    taus = ddim_timesteps(diffusion.T, steps).tolist()
    run = Run.start(n, seed, device, taus[0], return_steps)
    z, generator = run.z, run.generator
    pairs = list(zip(taus[:-1], taus[1:]))
    for t, t_prev in steps_bar(pairs, len(pairs), progress, "ddim"):
        eps_hat = diffusion.eps_at(model, z, t, clip_x0)
        x0_hat = diffusion.x0_at(z, t, eps_hat)
        alpha_t, alpha_prev = diffusion.alpha_at[t], diffusion.alpha_at[t_prev]
        sigma = eta * math.sqrt((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev))
        # z_t' = sqrt(alpha_t') x_hat + sqrt(1 - alpha_t' - sigma^2) eps_hat (+ sigma eps below)
        z = torch.add(x0_hat.mul_(math.sqrt(alpha_prev)), eps_hat, alpha=math.sqrt(max(1 - alpha_prev - sigma**2, 0.0)))
        if t_prev > 0 and sigma > 0:
            z.add_(torch.randn(z.shape, generator=generator, device=device), alpha=sigma)
        run.keep(t_prev, z)
    return run.result(z)
