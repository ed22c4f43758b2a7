"""The interface every degradation D(x, t) implements (Bansal et al. 2022, "cold diffusion").

* ``T``: the most severe step. t ranges over {0, ..., T}; D(x, 0) = x exactly; severity grows with t.
* ``sample_state(n, generator, device)``: everything random about a degradation (a noise image, a mask order,
  a scribble), drawn once per image and held fixed across t. Given its state, D is deterministic, which is
  what lets Algorithm 2 cancel D(x0_hat, s) against D(x0_hat, s-1).
* ``degrade(x0, t, state)``: x0 float [B, 1, 28, 28] in [-1, 1], t int64 [B] -> x_t, same shape.
* ``endpoint(state)``: x_T drawn *without data*, for unconditional generation. For operators whose endpoint
  depends on x, it is the documented approximation (e.g. a flat image of a plausible mean brightness).

All operators are batched and vectorised: per-step constants (matrices, weights) are precomputed for every
t, and a batch with mixed t is handled by indexing, not by a Python loop over images.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from mnist_diffusion.diffusion.schedules import check_steps

State = dict[str, Tensor]


class Degradation(ABC):
    name: str = "abstract"

    def __init__(self, T: int) -> None:
        self.T = check_steps(T, "degradation T")

    def sample_state(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> State:
        """The per-image randomness (empty for deterministic operators)."""
        return {}

    @abstractmethod
    def degrade(self, x0: Tensor, t: Tensor, state: State) -> Tensor:
        """D(x0, t) for a batch; t int64 [B] in {0..T}."""

    @abstractmethod
    def endpoint(self, state: State) -> Tensor:
        """A draw of x_T that needs no data: float [n, 1, 28, 28] in [-1, 1]."""

    def describe(self) -> dict[str, Any]:
        """Name and settings, for logs and the report."""
        return {"name": self.name, "T": self.T}

    @staticmethod
    def keep_clean_at_zero(x0: Tensor, t: Tensor, degraded: Tensor) -> Tensor:
        """Return x0 itself wherever t = 0, so that D(x, 0) = x holds bit for bit."""
        return torch.where((t == 0).view(-1, 1, 1, 1), x0, degraded)


def select_state(state: State, index: Tensor | slice) -> State:
    """The state of a subset of the images (same keys, rows picked by ``index``)."""
    return {key: value[index] for key, value in state.items()}


def repeat_state(state: State, repeats: int) -> State:
    """Each image's state repeated ``repeats`` times in a row (to degrade one image at several t at once)."""
    return {key: value.repeat_interleave(repeats, dim=0) for key, value in state.items()}
