"""Masking (inpainting): pixels are blacked out in a random order of smooth blobs until none is left.

State: a per-image order u in [0, 1) for every pixel, made by smoothing white noise (so that masked regions
are blobs, as in inpainting, not salt-and-pepper) and replacing values by their rank. Pixel p is masked
(set to -1, the background) at step t when u_p < t / T. At t = T every pixel is masked, so the endpoint is
the black image: a data-free but *deterministic* endpoint, which is why this operator is a reference for
conditional restoration rather than a generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mnist_diffusion.cold.degradations.base import Degradation, State

SIZE = 28


def blob_order(n: int, generator: torch.Generator | None, device, smoothing: float = 2.0) -> Tensor:
    """Rank-normalised smoothed noise: float [n, 1, 28, 28], each image a permutation of (0..783) / 784."""
    noise = torch.randn((n, 1, SIZE, SIZE), generator=generator, device=device)
    radius = int(3 * smoothing)
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    kernel = torch.exp(-(offsets**2) / (2 * smoothing**2))
    kernel = kernel / kernel.sum()
    smooth = F.conv2d(noise, kernel.view(1, 1, 1, -1), padding=(0, radius))
    smooth = F.conv2d(smooth, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    ranks = smooth.flatten(1).argsort(dim=1).argsort(dim=1).float() / (SIZE * SIZE)
    return ranks.view(n, 1, SIZE, SIZE)


class Masking(Degradation):
    name = "mask"

    def __init__(self, T: int = 20, smoothing: float = 2.0) -> None:
        super().__init__(T)
        self.smoothing = smoothing

    def sample_state(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> State:
        return {"order": blob_order(n, generator, device, self.smoothing)}

    def degrade(self, x0: Tensor, t: Tensor, state: State) -> Tensor:
        masked = state["order"] < (t.float() / self.T).view(-1, 1, 1, 1)
        return self.keep_clean_at_zero(x0, t, x0.masked_fill(masked, -1.0))

    def endpoint(self, state: State) -> Tensor:
        return torch.full_like(state["order"], -1.0)

    def describe(self):
        return {**super().describe(), "smoothing": self.smoothing}
