"""Cold diffusion (Bansal et al. 2022): training a restoration network R(x_t, t) ~ x for a degradation D.

* degradation  x_t = D(x, t), t in {0..T}, D(x, 0) = x  (operators in :mod:`mnist_diffusion.cold.degradations`)
* objective    L = || R(D(x, t), t) - x ||_1,  t ~ U{1..T}, the degradation's random state drawn per image

The samplers (Algorithms 1 and 2 and the direct one-shot restoration) live in
:mod:`mnist_diffusion.cold.samplers`. Networks see time as t / T in [0, 1], as in the DDPM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_diffusion.cold.degradations.base import Degradation, select_state


class ColdDiffusion:
    """A degradation plus the l1 restoration objective. Images are float [B, 1, 28, 28] in [-1, 1]."""

    def __init__(self, degradation: Degradation, device: torch.device | str = "cpu") -> None:
        self.degradation = degradation
        self.T = degradation.T
        self.device = torch.device(device)

    def model_time(self, t: Tensor) -> Tensor:
        """The time a network sees: t / T as float32 [B] in [0, 1]."""
        return t.to(torch.float32) / self.T

    def sample_t(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """t ~ U{1, ..., T}: int64 [batch_size]."""
        return torch.randint(1, self.T + 1, (batch_size,), generator=generator, device=self.device)

    def restore(self, model: nn.Module, x_t: Tensor, t: Tensor, clip_x0: bool = True) -> Tensor:
        """R(x_t, t): the network's estimate of the clean image, clipped to [-1, 1] unless ``clip_x0`` is off."""
        x0_hat = model(x_t, self.model_time(t))
        return x0_hat.clamp(-1, 1) if clip_x0 else x0_hat

    def loss(self, model: nn.Module, x: Tensor, generator: torch.Generator | None = None,
             shard: tuple[int, int] | None = None) -> Tensor:
        """Bansal et al.'s l1 restoration loss, mean over batch and pixels: mean |R(D(x, t), t) - x|.

        t and the degradation's state are drawn for the whole batch; ``shard`` = (start, stop) keeps those rows
        (see :meth:`mnist_diffusion.diffusion.ddpm.GaussianDiffusion.loss`).
        """
        t = self.sample_t(x.shape[0], generator)
        state = self.degradation.sample_state(x.shape[0], generator, x.device)
        if shard is not None:
            rows = slice(*shard)
            x, t, state = x[rows], t[rows], select_state(state, rows)
        x_t = self.degradation.degrade(x, t, state)
        return F.l1_loss(model(x_t, self.model_time(t)), x)
