"""Variance schedules beta_1..beta_T and the quantities derived from them.

Notation follows Prince, *Understanding Deep Learning* (2023), ch. 18, as the report does:

* ``beta[t]``  = beta_t, the variance added by the forward step q(z_t | z_{t-1}) = N(sqrt(1-beta_t) z_{t-1}, beta_t I).
* ``alpha[t]`` = alpha_t = prod_{s=1..t} (1 - beta_s), the *cumulative* product. (Ho et al. 2020 write this
  as alpha-bar_t; Prince writes alpha_t, and so do we.)

Every tensor has length T + 1 and is indexed by the time step itself: index 0 is the clean image
(beta_0 = 0, alpha_0 = 1), indices 1..T are the diffusion steps. No off-by-one translation is needed
anywhere else in the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mnist_diffusion.errors import UserError

#: The noise schedules :func:`make_schedule` builds (``diffusion.schedule``).
SCHEDULES = ("linear", "cosine")


def check_steps(T: int, name: str = "T") -> int:
    """Return ``T`` if it is a valid number of steps (T >= 1), else raise a one-line UserError naming ``name``.

    The one check of a step count, shared by the schedules, the degradations and config validation
    (``name`` is how the user wrote it, e.g. ``"diffusion.T"`` or ``"cold.T"``).
    """
    if T < 1:
        raise UserError(f"{name} must be >= 1, got {T}")
    return T


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> Tensor:
    """Ho et al.'s linear schedule: beta_t evenly spaced from beta_1 to beta_T. float64 [T + 1], beta_0 = 0."""
    betas = torch.zeros(T + 1, dtype=torch.float64)
    betas[1:] = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)
    return betas


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal's (2021) cosine schedule. float64 [T + 1], beta_0 = 0.

    alpha_t = f(t) / f(0) with f(t) = cos^2(pi/2 * (t/T + s) / (1 + s)); beta_t = 1 - alpha_t / alpha_{t-1},
    clipped at ``max_beta`` so that the last steps stay finite (alpha_T is exactly 0 before clipping).
    """
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha = f / f[0]
    betas = torch.zeros(T + 1, dtype=torch.float64)
    betas[1:] = (1 - alpha[1:] / alpha[:-1]).clamp(max=max_beta)
    return betas


@dataclass(frozen=True)
class NoiseSchedule:
    """A variance schedule and the derived quantities the forward process and the samplers use.

    All tensors are float64, shape [T + 1], indexed by the time step t in {0..T}.
    """

    beta: Tensor

    @property
    def T(self) -> int:
        """Number of diffusion steps."""
        return self.beta.numel() - 1

    @property
    def alpha(self) -> Tensor:
        """alpha_t = prod_{s<=t} (1 - beta_s): the signal fraction of q(z_t | x). alpha_0 = 1."""
        return torch.cumprod(1 - self.beta, dim=0)

    @property
    def posterior_variance(self) -> Tensor:
        """Variance of q(z_{t-1} | z_t, x): beta_t (1 - alpha_{t-1}) / (1 - alpha_t); 0 at t = 0 and t = 1."""
        alpha = self.alpha
        var = torch.zeros_like(self.beta)
        var[1:] = self.beta[1:] * (1 - alpha[:-1]) / (1 - alpha[1:])
        return var


def make_schedule(name: str, T: int, beta_1: float = 1e-4, beta_T: float = 0.02, cosine_s: float = 0.008) -> NoiseSchedule:
    """The named schedule (one of :data:`SCHEDULES`) with T >= 1 steps: its ``beta`` is float64 [T + 1], beta_0 = 0."""
    check_steps(T, "diffusion.T")
    if name == "linear":
        if not 0 < beta_1 <= beta_T < 1:
            raise UserError(f"linear schedule needs 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
        return NoiseSchedule(linear_betas(T, beta_1, beta_T))
    if name == "cosine":
        return NoiseSchedule(cosine_betas(T, cosine_s))
    raise UserError(f"unknown noise schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
