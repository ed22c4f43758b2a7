"""The DDPM forward process and training objective (Ho et al. 2020), in Prince's notation.

Read beside the report's equations (Prince 2023, ch. 18):

* forward step        q(z_t | z_{t-1}) = N(sqrt(1 - beta_t) z_{t-1}, beta_t I)
* closed form         q(z_t | x)       = N(sqrt(alpha_t) x, (1 - alpha_t) I),  alpha_t = prod_{s<=t}(1 - beta_s)
* reparameterised     z_t = sqrt(alpha_t) x + sqrt(1 - alpha_t) eps,          eps ~ N(0, I)
* objective           L = || eps - g(z_t, t) ||^2,                            t ~ U{1..T}
* estimate of x       x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t),  eps_hat = g(z_t, t)

``g`` is the noise-prediction network (Prince's g_t[z_t, phi]). Two variants of the objective, both options:

* v-prediction (Salimans & Ho 2022): the network outputs v_hat for v = sqrt(alpha_t) eps - sqrt(1 - alpha_t) x and
  the loss is || v - v_hat ||^2; then eps_hat = sqrt(alpha_t) v_hat + sqrt(1 - alpha_t) z_t, so every sampler
  works unchanged through :meth:`GaussianDiffusion.eps_at`. Since eps_hat - eps = sqrt(alpha_t) (v_hat - v), the
  v-loss is the eps-loss weighted by 1 / alpha_t = 1 + 1 / SNR_t.
* min-SNR-gamma weighting (Hang et al. 2023), SNR_t = alpha_t / (1 - alpha_t): each image's loss is multiplied by
  min(SNR_t, gamma) / SNR_t (eps) or min(SNR_t, gamma) / (SNR_t + 1) (v), which in both cases is the x-loss
  || x - x_hat ||^2 weighted by min(SNR_t, gamma): the easy, low-noise steps no longer dominate the gradient.

Networks see time as t / T in [0, 1] so that the same architecture serves any T. Images are float tensors in
[-1, 1], shape [B, 1, 28, 28].

Time comes in two forms, one per direction. Training draws its own t for every image, so the forward process
(:meth:`GaussianDiffusion.q_sample`, :meth:`GaussianDiffusion.loss`) takes t as an int64 tensor [B]. The
samplers move a whole batch through the same step, so the reverse-process quantities
(:meth:`GaussianDiffusion.eps_at`, :meth:`GaussianDiffusion.x0_at`) take t as a Python int and use exact
float64 scalars of the schedule. The samplers themselves live in :mod:`mnist_diffusion.diffusion` (ancestral, DDIM).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_diffusion.diffusion.schedules import NoiseSchedule


#: What a DDPM network outputs: the noise eps, or v = sqrt(alpha_t) eps - sqrt(1 - alpha_t) x.
PREDICTIONS = ("eps", "v")


def _per_sample(values: Tensor, t: Tensor) -> Tensor:
    """Gather ``values[t]`` for a batch of integer steps t [B] and shape it [B, 1, 1, 1] to broadcast over images."""
    return values[t].view(-1, 1, 1, 1)


class GaussianDiffusion:
    """Schedule-dependent math of the DDPM, with the schedule's tensors held as float32 on ``device``.

    Attributes ``beta``, ``alpha``, ``sqrt_alpha`` and ``sqrt_one_minus_alpha`` are float32 [T + 1], indexed by
    t in {0..T} (see :mod:`mnist_diffusion.diffusion.schedules`); ``alpha_at`` and ``beta_at`` are the same
    alpha_t and beta_t as float64 Python floats, a list of T + 1, for the samplers' per-step scalars.
    ``prediction`` (one of :data:`PREDICTIONS`) is what the network outputs and ``min_snr_gamma`` (> 0) turns on
    min-SNR weighting; ``loss_weight`` is then the per-step weight of the native loss, float32 [T + 1] (else None).
    """

    def __init__(self, schedule: NoiseSchedule, device: torch.device | str = "cpu", prediction: str = "eps",
                 min_snr_gamma: float = 0.0) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if min_snr_gamma < 0:
            raise ValueError(f"min_snr_gamma must be >= 0 (0 = off), got {min_snr_gamma}")
        self.prediction = prediction
        self.min_snr_gamma = min_snr_gamma
        self.schedule = schedule
        self.T = schedule.T
        self.device = torch.device(device)
        as_f32 = lambda v: v.to(device=self.device, dtype=torch.float32)  # noqa: E731
        self.beta = as_f32(schedule.beta)
        self.alpha = as_f32(schedule.alpha)
        self.sqrt_alpha = as_f32(schedule.alpha.sqrt())
        self.sqrt_one_minus_alpha = as_f32((1 - schedule.alpha).sqrt())
        snr = schedule.alpha / (1 - schedule.alpha)  # float64; inf at t = 0, which training never draws
        # Per-step weight of the native loss (eps- or v-MSE) under min-SNR-gamma; see the module docstring.
        self.loss_weight = as_f32(snr.clamp(max=min_snr_gamma) / (snr + (prediction == "v"))) if min_snr_gamma else None
        # Samplers move a whole batch through the same step t, so they use these per-step scalars (exact
        # float64 values as Python floats) instead of per-sample gathers: fewer, cheaper tensor operations.
        self.alpha_at: list[float] = schedule.alpha.tolist()
        self.beta_at: list[float] = schedule.beta.tolist()
        self._model_times = self.model_time(torch.arange(self.T + 1, device=self.device))

    # --- forward process and objective: a step t per image, int64 [B] ---------------------------------------

    def model_time(self, t: Tensor) -> Tensor:
        """The time a network sees for steps t (int64 [B] in {0..T}): t / T as float32 [B] in [0, 1]."""
        return t.to(torch.float32) / self.T

    def sample_t(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """t ~ U{1, ..., T}: int64 [batch_size] on the diffusion's device (t = T included; t = 0 is the data itself)."""
        return torch.randint(1, self.T + 1, (batch_size,), generator=generator, device=self.device)

    def q_sample(self, x: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """A draw from q(z_t | x) = N(sqrt(alpha_t) x, (1 - alpha_t) I), given the noise eps ~ N(0, I).

        x, eps: float32 [B, 1, 28, 28] (x in [-1, 1]); t: int64 [B] in {0..T}, one step per image.
        Returns z_t = sqrt(alpha_t) x + sqrt(1 - alpha_t) eps, float32 [B, 1, 28, 28].
        """
        return _per_sample(self.sqrt_alpha, t) * x + _per_sample(self.sqrt_one_minus_alpha, t) * eps

    def loss(self, model: nn.Module, x: Tensor, generator: torch.Generator | None = None,
             shard: tuple[int, int] | None = None) -> Tensor:
        """The training objective, mean over batch and pixels: mean || eps - g(z_t, t) ||^2 with t ~ U{1..T}, or
        its v-prediction and min-SNR-gamma variants (module docstring): mean over images of w_t || v - v_hat ||^2.

        x: clean images float32 [B, 1, 28, 28] in [-1, 1]. Randomness (t ~ U{1..T} [B], then eps ~ N(0, I) of x's
        shape) comes from ``generator``, drawn for the whole batch; ``shard`` = (start, stop) then keeps only those
        rows, so that data-parallel processes together compute exactly the single-process loss. Returns a scalar.
        """
        t = self.sample_t(x.shape[0], generator)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        if shard is not None:
            x, t, eps = x[shard[0] : shard[1]], t[shard[0] : shard[1]], eps[shard[0] : shard[1]]
        z_t = self.q_sample(x, t, eps)
        target = eps if self.prediction == "eps" else self.v_target(x, t, eps)
        output = model(z_t, self.model_time(t))
        if self.loss_weight is None:
            return F.mse_loss(output, target)
        per_image = (output - target).square().mean(dim=(1, 2, 3))
        return (per_image * self.loss_weight[t]).mean()

    def v_target(self, x: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """v = sqrt(alpha_t) eps - sqrt(1 - alpha_t) x for images x, noise eps [B, 1, 28, 28] and steps t int64 [B]."""
        return _per_sample(self.sqrt_alpha, t) * eps - _per_sample(self.sqrt_one_minus_alpha, t) * x

    # --- reverse process: one step t (a Python int in 1..T) shared by the batch --------------------------------

    def x0_at(self, z_t: Tensor, t: int, eps_hat: Tensor) -> Tensor:
        """The estimate of x implied by z_t and a noise estimate eps_hat:

            x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t).

        z_t, eps_hat: float32 [B, 1, 28, 28], the whole batch at the step t (an int in 1..T). Returns x_hat, same
        shape, a new tensor (unbounded: x_hat is not clipped here). It is the mean of x under q(x | z_t) when
        eps_hat = E[eps | z_t].
        """
        sqrt_alpha_t, sqrt_one_minus_alpha_t = math.sqrt(self.alpha_at[t]), math.sqrt(1 - self.alpha_at[t])
        # (z_t - sqrt(1 - alpha_t) eps_hat) * (1 / sqrt(alpha_t)): a fused multiply-subtract, then one multiply.
        return torch.sub(z_t, eps_hat, alpha=sqrt_one_minus_alpha_t).mul_(1 / sqrt_alpha_t)

    def eps_at(self, model: nn.Module, z_t: Tensor, t: int, clip_x0: bool = False) -> Tensor:
        """The noise estimate eps_hat of a batch z_t that shares the step t, as every sampler uses it.

        z_t: float32 [B, 1, 28, 28]; t: an int in 1..T (the network sees t / T). Returns float32 [B, 1, 28, 28]:

        * without ``clip_x0``: the network's output eps_hat = g(z_t, t) (a v-predicting network's v_hat becomes
          eps_hat = sqrt(alpha_t) v_hat + sqrt(1 - alpha_t) z_t);
        * with it: the noise implied by the clipped estimate of x,
          eps_hat = (z_t - sqrt(alpha_t) clip(x_hat, -1, 1)) / sqrt(1 - alpha_t), x_hat = :meth:`x0_at`,
          so that the x_hat a sampler then computes from eps_hat lies in the data range [-1, 1] (to float rounding).
        """
        eps_hat = model(z_t, self._model_times[t].expand(z_t.shape[0]))
        if self.prediction == "v":
            eps_hat = torch.add(eps_hat * math.sqrt(self.alpha_at[t]), z_t, alpha=math.sqrt(1 - self.alpha_at[t]))
        if clip_x0:
            sqrt_alpha_t, sqrt_one_minus_alpha_t = math.sqrt(self.alpha_at[t]), math.sqrt(1 - self.alpha_at[t])
            x0_hat = self.x0_at(z_t, t, eps_hat).clamp_(-1, 1)
            # (z_t - sqrt(alpha_t) x0_hat) * (1 / sqrt(1 - alpha_t)): a fused multiply-subtract, then one multiply.
            eps_hat = torch.sub(z_t, x0_hat, alpha=sqrt_alpha_t).mul_(1 / sqrt_one_minus_alpha_t)
        return eps_hat
