"""The DDPM forward process and training objective (Ho et al. 2020), in Prince's notation.

Read beside the report's equations (Prince 2023, ch. 18):

* forward step        q(z_t | z_{t-1}) = N(sqrt(1 - beta_t) z_{t-1}, beta_t I)
* closed form         q(z_t | x)       = N(sqrt(alpha_t) x, (1 - alpha_t) I),  alpha_t = prod_{s<=t}(1 - beta_s)
* reparameterised     z_t = sqrt(alpha_t) x + sqrt(1 - alpha_t) eps,          eps ~ N(0, I)
* objective           L = || eps - g(z_t, t) ||^2,                            t ~ U{1..T}

``g`` is the noise-prediction network (Prince's g_t[z_t, phi]). Networks see time as t / T in [0, 1]
so that the same architecture serves any T. Images are float tensors in [-1, 1], shape [B, 1, 28, 28].
The reverse-process samplers live in :mod:`mnist_diffusion.diffusion` (ancestral, DDIM).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_diffusion.diffusion.schedules import NoiseSchedule


def _per_sample(values: Tensor, t: Tensor) -> Tensor:
    """Gather ``values[t]`` for a batch of integer steps t [B] and shape it [B, 1, 1, 1] to broadcast over images."""
    return values[t].view(-1, 1, 1, 1)


class GaussianDiffusion:
    """Schedule-dependent math of the DDPM, with the schedule's tensors held as float32 on ``device``.

    Attributes ``beta``, ``alpha``, ``sqrt_alpha``, ``sqrt_one_minus_alpha`` and ``posterior_variance``
    are float32 [T + 1], indexed by t in {0..T} (see :mod:`mnist_diffusion.diffusion.schedules`).
    """

    def __init__(self, schedule: NoiseSchedule, device: torch.device | str = "cpu") -> None:
        self.schedule = schedule
        self.T = schedule.T
        self.device = torch.device(device)
        as_f32 = lambda v: v.to(device=self.device, dtype=torch.float32)  # noqa: E731
        self.beta = as_f32(schedule.beta)
        self.alpha = as_f32(schedule.alpha)
        self.sqrt_alpha = as_f32(schedule.alpha.sqrt())
        self.sqrt_one_minus_alpha = as_f32((1 - schedule.alpha).sqrt())
        self.posterior_variance = as_f32(schedule.posterior_variance)
        # Samplers move a whole batch through the same step t, so they use these per-step scalars (exact
        # float64 values as Python floats) instead of per-sample gathers: fewer, cheaper tensor operations.
        self.alpha_at: list[float] = schedule.alpha.tolist()
        self.beta_at: list[float] = schedule.beta.tolist()
        self._model_times = self.model_time(torch.arange(self.T + 1, device=self.device))

    def model_time(self, t: Tensor) -> Tensor:
        """The time a network sees: t / T as float32 [B] in [0, 1]."""
        return t.to(torch.float32) / self.T

    def sample_t(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """t ~ U{1, ..., T}: int64 [batch_size]. (t = T is included; t = 0 is the data itself.)"""
        return torch.randint(1, self.T + 1, (batch_size,), generator=generator, device=self.device)

    def q_sample(self, x: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """A draw from q(z_t | x) = N(sqrt(alpha_t) x, (1 - alpha_t) I), given the noise eps ~ N(0, I).

        x, eps: [B, 1, 28, 28]; t: int64 [B] in {0..T}. Returns z_t of the same shape as x.
        """
        return _per_sample(self.sqrt_alpha, t) * x + _per_sample(self.sqrt_one_minus_alpha, t) * eps

    def predict_x0(self, z_t: Tensor, t: Tensor, eps_hat: Tensor) -> Tensor:
        """The x implied by z_t and a noise estimate: x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t)."""
        return (z_t - _per_sample(self.sqrt_one_minus_alpha, t) * eps_hat) / _per_sample(self.sqrt_alpha, t)

    def predict_eps(self, z_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """The noise implied by z_t and an estimate of x: (z_t - sqrt(alpha_t) x0) / sqrt(1 - alpha_t). Needs t >= 1."""
        return (z_t - _per_sample(self.sqrt_alpha, t) * x0) / _per_sample(self.sqrt_one_minus_alpha, t)

    def denoise(self, model: nn.Module, z_t: Tensor, t: Tensor, clip_x0: bool = False) -> tuple[Tensor, Tensor]:
        """Run the network at step t and return (eps_hat, x0_hat).

        With ``clip_x0`` the estimate of x is clipped to the data range [-1, 1] and eps_hat is recomputed
        from the clipped x0_hat, so that every sampler gets the clipping through one code path.
        """
        eps_hat = model(z_t, self.model_time(t))
        x0_hat = self.predict_x0(z_t, t, eps_hat)
        if clip_x0:
            x0_hat = x0_hat.clamp(-1, 1)
            eps_hat = self.predict_eps(z_t, t, x0_hat)
        return eps_hat, x0_hat

    def eps_at(self, model: nn.Module, z_t: Tensor, t: int, clip_x0: bool = False) -> Tensor:
        """The noise estimate for a batch z_t [B, 1, 28, 28] that shares the step t (an int in 1..T), as samplers use it.

        Without ``clip_x0`` this is the network's output g(z_t, t); with it, the noise implied by the clipped
        estimate of x (the scalar-coefficient twin of :meth:`denoise`).
        """
        eps_hat = model(z_t, self._model_times[t].expand(z_t.shape[0]))
        if clip_x0:
            a = self.alpha_at[t]
            x0_hat = self.x0_at(z_t, t, eps_hat).clamp_(-1, 1)
            eps_hat = torch.sub(z_t, x0_hat, alpha=math.sqrt(a)).mul_(1 / math.sqrt(1 - a))
        return eps_hat

    def x0_at(self, z_t: Tensor, t: int, eps_hat: Tensor) -> Tensor:
        """x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t) for a batch sharing the step t (an int)."""
        a = self.alpha_at[t]
        return torch.sub(z_t, eps_hat, alpha=math.sqrt(1 - a)).mul_(1 / math.sqrt(a))

    def loss(self, model: nn.Module, x: Tensor, generator: torch.Generator | None = None,
             shard: tuple[int, int] | None = None) -> Tensor:
        """The epsilon-prediction objective, mean over batch and pixels: mean || eps - g(z_t, t) ||^2 with t ~ U{1..T}.

        x: clean images [B, 1, 28, 28] in [-1, 1]. Randomness (t and eps) comes from ``generator``, drawn for the
        whole batch; ``shard`` = (start, stop) then keeps only those rows, so that data-parallel processes
        together compute exactly the single-process loss.
        """
        t = self.sample_t(x.shape[0], generator)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if shard is not None:
            x, t, eps = x[shard[0] : shard[1]], t[shard[0] : shard[1]], eps[shard[0] : shard[1]]
        z_t = self.q_sample(x, t, eps)
        return F.mse_loss(model(z_t, self.model_time(t)), eps)
