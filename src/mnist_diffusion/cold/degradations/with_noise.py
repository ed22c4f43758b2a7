"""A small Gaussian noise term added to any degradation: D'(x, t) = D(x, t) + sigma e for t >= 1, and D'(x, 0) = x.

Rissanen et al. (2023, inverse heat dissipation) and Hoogeboom & Salimans (2023, blurring diffusion) add noise to a
blurring degradation so that its endpoint, which otherwise tells the restorer almost nothing, differs from sample to
sample in a way the restorer was trained on. Here the noise image e ~ N(0, I) is part of the per-image state, held
fixed along t as every state is: the restorer learns from noisy inputs, generation draws a fresh e with the endpoint,
Algorithm 2's updates D'(x0_hat, s - 1) - D'(x0_hat, s) cancel the noise at every step but the last, and that one
removes it (D'(., 0) has none). Unlike noise added to x_T at generation only (``perturb``), nothing of it is left
in x_0 and the restorer has seen inputs like it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mnist_diffusion.cold.degradations.base import Degradation, State


class WithNoise(Degradation):
    """``base`` plus ``sigma`` times a fixed Gaussian noise image (state ``noise``, [n, 1, 28, 28]) for t >= 1."""

    def __init__(self, base: Degradation, sigma: float) -> None:
        if not sigma > 0:
            raise ValueError(f"the noise's standard deviation must be > 0, got {sigma}")
        super().__init__(base.T)
        self.base, self.sigma, self.name = base, sigma, base.name

    def sample_state(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> State:
        """The base's state (drawn first, so a seed gives the base the same state as without noise), then ``noise``."""
        state = self.base.sample_state(n, generator, device)
        state["noise"] = torch.randn((n, 1, 28, 28), generator=generator, device=device)
        return state

    def degrade(self, x0: Tensor, t: Tensor, state: State) -> Tensor:
        return self.keep_clean_at_zero(x0, t, self.base.degrade(x0, t, state) + self.sigma * state["noise"])

    def endpoint(self, state: State) -> Tensor:
        return self.base.endpoint(state) + self.sigma * state["noise"]

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "noise": self.sigma}

    def __getattr__(self, name: str) -> Any:
        """The base's own attributes (a traced palimpsest's prior, its cell); ``with_prior`` keeps the noise."""
        if name == "base":  # not set yet (e.g. while copying): no delegation
            raise AttributeError(name)
        if name == "with_prior" and hasattr(self.base, "with_prior"):
            return lambda prior: WithNoise(self.base.with_prior(prior), self.sigma)
        return getattr(self.base, name)
