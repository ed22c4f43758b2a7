"""The Cambridge M2 coursework's starter network, reproduced as the project's baseline.

A plain stack of 7x7 convolutions at full 28x28 resolution (no down-sampling), each followed by a
LayerNorm over (C, H, W) and GELU. Time enters once: t in [0, 1] is encoded with 16 frequencies
(0 and 2*pi*1.5^i for i = 0..14) as [sin(w t), cos(w t) - 1] (32 numbers), passed through an MLP
32 -> 128 -> 128 -> 128 -> C0 and added to the output of the first block. A final 3x3 convolution
maps back to one channel. The network predicts the noise eps, shape [B, 1, 28, 28].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ConvLayerNormBlock(nn.Module):
    """Conv2d (same padding) -> LayerNorm over (C, H, W) -> GELU."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)
        self.norm = nn.LayerNorm((c_out, *image_size))
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


class CourseworkCNN(nn.Module):
    """The coursework baseline. ``forward(x, t)``: x [B, 1, 28, 28], t float [B] in [0, 1] -> eps_hat [B, 1, 28, 28]."""

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 32, 16),
        kernel_size: int = 7,
        final_kernel_size: int = 3,
        n_frequencies: int = 16,
        mlp_width: int = 128,
        image_size: tuple[int, int] = (28, 28),
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            ConvLayerNormBlock(c_in, c_out, kernel_size, image_size) for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.final = nn.Conv2d(widths[-1], in_channels, final_kernel_size, padding=final_kernel_size // 2)
        frequencies = [0.0] + [2 * math.pi * 1.5**i for i in range(n_frequencies - 1)]
        self.register_buffer("frequencies", torch.tensor(frequencies, dtype=torch.float32))
        self.time_mlp = nn.Sequential(
            nn.Linear(2 * n_frequencies, mlp_width),
            nn.GELU(),
            nn.Linear(mlp_width, mlp_width),
            nn.GELU(),
            nn.Linear(mlp_width, mlp_width),
            nn.GELU(),
            nn.Linear(mlp_width, channels[0]),
        )

    def time_features(self, t: Tensor) -> Tensor:
        """[sin(w t), cos(w t) - 1] for each frequency w: float [B, 2 * n_frequencies]."""
        phase = t[:, None] * self.frequencies[None, :]
        return torch.cat([torch.sin(phase), torch.cos(phase) - 1], dim=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        h = self.blocks[0](x) + self.time_mlp(self.time_features(t))[:, :, None, None]
        for block in self.blocks[1:]:
            h = block(h)
        return self.final(h)
