"""Deterministic separable linear degradations: Gaussian blur and pixelation.

Both act on rows and columns with the same 28x28 matrix K_t: D(x, t) = K_t x K_t^T. The matrices for every
t are built once ([T + 1, 28, 28], K_0 = I), and a batch with mixed t gathers its own K_t, so the whole
batch is two batched matrix products. At t = T both reach the flat image of x's mean brightness
(K_T = the averaging matrix), so their data-free endpoint is a flat image whose level is drawn from the
distribution of MNIST's mean brightness (measured on the training split; checked by a test).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor

from mnist_diffusion.cold.degradations.base import Degradation, State

SIZE = 28
#: Mean and standard deviation of the per-image mean pixel of MNIST's training split, in [-1, 1] units.
MNIST_MEAN_LEVEL = -0.7387
MNIST_STD_LEVEL = 0.0866


class SeparableLinear(Degradation):
    """D(x, t) = K_t x K_t^T with precomputed K [T + 1, 28, 28]."""

    def __init__(self, T: int, matrices: Tensor) -> None:
        super().__init__(T)
        if matrices.shape != (T + 1, SIZE, SIZE):
            raise ValueError(f"expected matrices [T + 1, 28, 28], got {tuple(matrices.shape)}")
        self.matrices = matrices.float()

    def degrade(self, x0: Tensor, t: Tensor, state: State) -> Tensor:
        k = self.matrices.to(x0.device)[t].unsqueeze(1)  # [B, 1, 28, 28]
        return self.keep_clean_at_zero(x0, t, k @ x0 @ k.transpose(-1, -2))

    def sample_state(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> State:
        level = MNIST_MEAN_LEVEL + MNIST_STD_LEVEL * torch.randn(n, generator=generator, device=device)
        return {"level": level.clamp(-1, 1)}

    def endpoint(self, state: State) -> Tensor:
        return state["level"].view(-1, 1, 1, 1).expand(-1, 1, SIZE, SIZE).clone()


def averaging_matrix() -> Tensor:
    return torch.full((SIZE, SIZE), 1.0 / SIZE, dtype=torch.float64)


class GaussianBlur(SeparableLinear):
    """Blur with a Gaussian whose width grows geometrically from ``sigma_min`` (t = 1) to ``sigma_max`` (t = T - 1);
    t = T is the full average. Each row of K_t holds Gaussian weights renormalised to sum to 1, so the image
    border does not darken (no zero padding). Bansal et al. blur MNIST the same way in spirit: a fixed
    deterministic path to a nearly flat image."""

    name = "blur"

    def __init__(self, T: int = 40, sigma_min: float = 0.5, sigma_max: float = 20.0) -> None:
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        positions = torch.arange(SIZE, dtype=torch.float64)
        distance2 = (positions[:, None] - positions[None, :]) ** 2
        mats = [torch.eye(SIZE, dtype=torch.float64)]
        for t in range(1, T):
            sigma = sigma_min * (sigma_max / sigma_min) ** ((t - 1) / max(T - 2, 1))
            weights = torch.exp(-distance2 / (2 * sigma**2))
            mats.append(weights / weights.sum(dim=1, keepdim=True))
        mats.append(averaging_matrix())
        super().__init__(T, torch.stack(mats))

    def describe(self):
        return {**super().describe(), "sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


class Pixelate(SeparableLinear):
    """Average over square blocks, then repeat each block's mean over its pixels ("pixelation").

    The block grids are nested so that every coarser grid only merges cells of the finer one: 28, 14, 7 and
    1 cells per side (blocks of 1, 2, 4 and 28 pixels). The T steps are spread evenly over the three
    transitions, each step a cross-fade K_t = (1 - lam) P_finer + lam P_coarser, so the severity grows
    smoothly and D(x, T) is the flat mean. (Grids that do not nest, such as 7 then 4 cells, make the
    cross-fade briefly *less* severe, which a test catches.)
    """

    name = "pixelate"
    GRIDS = (28, 14, 7, 1)

    def __init__(self, T: int = 20) -> None:
        identity = torch.eye(SIZE, dtype=torch.float64)
        levels = []
        for cells in self.GRIDS:
            pooled = F.adaptive_avg_pool1d(identity.unsqueeze(0), cells)  # rows: e_i pooled into `cells` bins
            back = F.interpolate(pooled, size=SIZE, mode="nearest").squeeze(0)
            levels.append(back.T.contiguous())
        mats = []
        for t in range(T + 1):
            position = t / T * (len(levels) - 1)  # 0 .. 3 along the list of grids
            i = min(int(position), len(levels) - 2)
            lam = position - i
            mats.append((1 - lam) * levels[i] + lam * levels[i + 1])
        super().__init__(T, torch.stack(mats))

    def describe(self):
        return {**super().describe(), "grids": list(self.GRIDS)}


def mean_level_statistics(train_images_uint8: Tensor) -> tuple[float, float]:
    """Mean and std of the per-image mean brightness in [-1, 1] units (used by a test to re-derive the constants)."""
    levels = train_images_uint8.float().mean(dim=(1, 2)) / 127.5 - 1
    return levels.mean().item(), levels.std().item()


__all__ = ["GaussianBlur", "Pixelate", "SeparableLinear", "MNIST_MEAN_LEVEL", "MNIST_STD_LEVEL"]
