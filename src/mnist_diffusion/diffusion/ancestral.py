"""Ancestral sampling of the DDPM (Ho et al. 2020, Algorithm 2; Prince eq. 18.x).

For t = T, ..., 1:

    z_{t-1} = ( z_t - beta_t / sqrt(1 - alpha_t) * g(z_t, t) ) / sqrt(1 - beta_t) + sigma_t * eps,   eps ~ N(0, I)

with no noise on the last step (t = 1). Two standard choices of sigma_t^2: ``"beta"`` (sigma_t^2 = beta_t,
Ho et al.'s default and the coursework's) and ``"posterior"`` (the variance of q(z_{t-1} | z_t, x)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.diffusion.common import SampleResult, make_generator, record, start_noise, steps_bar

VARIANCES = ("beta", "posterior")


@torch.inference_mode()
def ancestral_sample(
    model: nn.Module,
    diffusion: GaussianDiffusion,
    n: int,
    *,
    seed: int = 0,
    variance: str = "beta",
    clip_x0: bool = True,
    return_steps: Iterable[int] = (),
    progress: bool = False,
) -> SampleResult:
    """Draw ``n`` images by running the learned reverse process over all T steps.

    The whole batch moves together (one network call per step); randomness comes from one generator
    seeded with ``seed`` on the diffusion's device, so the same seed gives the same images.
    ``return_steps``: the t in {0..T} whose z_t to keep (T is the starting noise, 0 the output).
    ``clip_x0`` (default on): see :func:`~mnist_diffusion.diffusion.ddim.ddim_sample`.
    """
    if variance not in VARIANCES:
        raise UserError(f"unknown ancestral variance {variance!r}; choose one of {', '.join(VARIANCES)}")
    device = diffusion.device
    schedule = diffusion.schedule
    sigma = (schedule.beta if variance == "beta" else schedule.posterior_variance).sqrt().tolist()
    generator = make_generator(seed, device)
    wanted = set(return_steps)
    trajectory: dict = {}
    z = start_noise(n, generator, device)
    record(trajectory, wanted, diffusion.T, z)
    for t in steps_bar(range(diffusion.T, 0, -1), diffusion.T, progress, "ancestral"):
        eps_hat = diffusion.eps_at(model, z, t, clip_x0)
        beta_t, alpha_t = diffusion.beta_at[t], diffusion.alpha_at[t]
        z = torch.sub(z, eps_hat, alpha=beta_t / math.sqrt(1 - alpha_t)).mul_(1 / math.sqrt(1 - beta_t))
        if t > 1:
            z.add_(torch.randn(z.shape, generator=generator, device=device), alpha=sigma[t])
        record(trajectory, wanted, t - 1, z)
    return SampleResult(images=z.clamp(-1, 1), trajectory=trajectory)
