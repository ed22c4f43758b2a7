"""Ancestral sampling of the DDPM (Ho et al. 2020, Algorithm 2; Prince eq. 18.x).

For t = T, ..., 1, a draw from the learned reverse step p(z_{t-1} | z_t) = N(mu_t, sigma_t^2 I):

    mu_t    = ( z_t - beta_t / sqrt(1 - alpha_t) * eps_hat ) / sqrt(1 - beta_t),     eps_hat = g(z_t, t)
    z_{t-1} = mu_t + sigma_t * eps,                                                   eps ~ N(0, I)

with no noise on the last step (t = 1). mu_t is also the mean of the posterior q(z_{t-1} | z_t, x) at
x = x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t). Two standard choices of sigma_t^2
(:data:`VARIANCES`): ``"beta"`` (sigma_t^2 = beta_t, Ho et al.'s default and the coursework's) and
``"posterior"`` (the variance of q(z_{t-1} | z_t, x)).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from mnist_diffusion.diffusion.common import Run, SampleResult, steps_bar
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError

#: The choices of the reverse step's variance sigma_t^2 (``sample --variance``, ``sample.variance``).
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
    """Draw ``n`` images by running the learned reverse process p(z_{t-1} | z_t) over all T steps.

    Returns images float32 [n, 1, 28, 28] clamped to [-1, 1]. The whole batch moves together (one network call per
    step); randomness (z_T ~ N(0, I), then one eps per step t > 1, in step order) comes from one generator seeded with
    ``seed`` on the diffusion's device, so the same seed gives the same images.
    ``variance``: one of :data:`VARIANCES`. ``return_steps``: the t in {0..T} whose z_t to keep (T is the starting
    noise, 0 the output). ``clip_x0`` (default on): eps_hat is the noise implied by x_hat clipped to [-1, 1]
    (:meth:`~mnist_diffusion.diffusion.ddpm.GaussianDiffusion.eps_at`), so mu_t is the posterior mean at the
    clipped x_hat; see :func:`~mnist_diffusion.diffusion.ddim.ddim_sample` for why.
    """
    if variance not in VARIANCES:
        raise UserError(f"unknown ancestral variance {variance!r}; choose one of {', '.join(VARIANCES)}")
    device = diffusion.device
    schedule = diffusion.schedule
    sigma = (schedule.beta if variance == "beta" else schedule.posterior_variance).sqrt().tolist()
    run = Run.start(n, seed, device, diffusion.T, return_steps)
    z, generator = run.z, run.generator
    for t in steps_bar(range(diffusion.T, 0, -1), diffusion.T, progress, "ancestral"):
        eps_hat = diffusion.eps_at(model, z, t, clip_x0)
        beta_t, alpha_t = diffusion.beta_at[t], diffusion.alpha_at[t]
        # mu_t = (z_t - beta_t / sqrt(1 - alpha_t) * eps_hat) * (1 / sqrt(1 - beta_t))
        z = torch.sub(z, eps_hat, alpha=beta_t / math.sqrt(1 - alpha_t)).mul_(1 / math.sqrt(1 - beta_t))
        if t > 1:
            z.add_(torch.randn(z.shape, generator=generator, device=device), alpha=sigma[t])  # + sigma_t eps
        run.keep(t - 1, z)
    return run.result(z)
