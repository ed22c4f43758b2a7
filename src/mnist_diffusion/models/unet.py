"""A small UNet for 28x28 images (28 -> 14 -> 7 -> 14 -> 28), sized for a 2-core CPU.

Each resolution level has residual blocks (GroupNorm -> SiLU -> 3x3 conv, twice, with the time embedding
added between the two convolutions), the encoder's activations are concatenated into the decoder at the
same resolution (skip connections), and a sinusoidal embedding of t feeds every residual block.

Speed (measured by ``benchmarks/``): the decoder's "nearest x2 upsample, then 3x3 conv" is computed in its
sub-pixel form on NCHW tensors (:func:`upsample_conv`), and the residual and time-embedding additions are done
in place on convolution outputs (which backward does not need), saving a tensor allocation and pass each.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0, time_scale: float = 1000.0) -> Tensor:
    """Transformer-style embedding of t in [0, 1] (scaled by ``time_scale``): float [B, dim] = [cos(w_k s), sin(w_k s)]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    phase = (t.float() * time_scale)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(phase), torch.sin(phase)], dim=1)


def group_norm(channels: int, max_groups: int) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= max_groups that divides ``channels``."""
    groups = math.gcd(channels, max_groups)
    return nn.GroupNorm(groups, channels)


def _collapse_taps(weight: Tensor, dim: int) -> Tensor:
    """The 3 taps (w0, w1, w2) along ``dim`` as the 2-tap kernels of the two output parities, stacked first:
    parity 0 sees input offsets (-1, 0) with (w0, w1 + w2), parity 1 sees (0, +1) with (w0 + w1, w2)."""
    w0, w1, w2 = weight.unbind(dim)
    return torch.stack([torch.stack([w0, w1 + w2], dim), torch.stack([w0 + w1, w2], dim)])


def upsample_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """``conv(F.interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3 conv with padding 1: [B, C, H, W] -> [B, O, 2H, 2W].

    The faster form for the tensor's layout: on NCHW tensors the sub-pixel form (:func:`subpixel_upsample_conv`,
    about 1.5x faster forward + backward on a 2-core CPU); on channels_last tensors oneDNN's 3x3 kernel on the
    upsampled image is as fast, so that is used as written.
    """
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    return subpixel_upsample_conv(x, conv)


def subpixel_upsample_conv(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """The sub-pixel form of ``conv(F.interpolate(x, scale_factor=2, mode="nearest"))``, x [B, C, H, W] in any memory
    layout, for a 3x3 conv with padding 1: [B, O, 2H, 2W], equal to float rounding with the same parameters.

    After a nearest x2 upsampling, the output pixel (2i + a, 2j + b) only sees input rows i - 1, i (a = 0) or
    i, i + 1 (a = 1), and likewise columns, so its 3x3 kernel collapses to a 2x2 one whose taps are sums of the
    original taps. One 2x2 convolution (padding 1) of the *small* image with the four collapsed kernels stacked as
    4 x O output channels gives all four parities on an (H + 1) x (W + 1) grid; parity (a, b) is that grid's H x W
    window at offset (a, b), and the four windows are interleaved into the output. That is 16 instead of 36
    multiply-adds per output value and no upsampled tensor.
    """
    batch, c_in, height, width = x.shape
    c_out = conv.out_channels
    kernels = _collapse_taps(_collapse_taps(conv.weight, 2), 4).transpose(0, 1)  # [2 (a), 2 (b), O, C, 2, 2]
    grid = F.conv2d(x, kernels.reshape(4 * c_out, c_in, 2, 2), conv.bias.repeat(4), padding=1)
    grid = grid.unflatten(1, (2, 2, c_out))  # [B, 2 (a), 2 (b), O, H + 1, W + 1]
    rows = [torch.stack([grid[:, a, b, :, a : a + height, b : b + width] for b in (0, 1)], dim=-1) for a in (0, 1)]
    return torch.stack(rows, dim=3).reshape(batch, c_out, 2 * height, 2 * width)  # [B, O, H, 2, W, 2] -> [B, O, 2H, 2W]


class ResidualBlock(nn.Module):
    """x -> GN -> SiLU -> conv -> (+ time) -> GN -> SiLU -> dropout -> conv, plus a (1x1 if needed) skip."""

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = group_norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, c_out)
        self.norm2 = group_norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, time_emb: Tensor) -> Tensor:
        # In-place adds are safe here: a convolution's backward needs its input and weight, not its output.
        h = self.conv1(F.silu(self.norm1(x)))
        h = h.add_(self.time_proj(time_emb)[:, :, None, None])
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h.add_(self.skip(x))


#: Heads of :class:`SelfAttention` (they split its channels, so they must divide them).
ATTENTION_HEADS = 4


class SelfAttention(nn.Module):
    """x + proj(attention(GN(x))): multi-head self-attention over the H x W positions of x [B, C, H, W].

    Used at the lowest resolution only (7 x 7 = 49 positions), where every position seeing every other is cheap
    and lets the network relate the far ends of a stroke. ``heads`` must divide C; the output projection starts
    at zero, so the block starts as the identity.
    """

    def __init__(self, channels: int, groups: int, heads: int = ATTENTION_HEADS) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention heads ({heads}) must divide the channels ({channels})")
        self.heads = heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(batch, 3, self.heads, channels // self.heads, height * width)
        q, k, v = qkv.transpose(-1, -2).unbind(1)  # each [B, heads, HW, C / heads]
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, HW, C / heads]
        h = h.transpose(-1, -2).reshape(batch, channels, height, width)
        return x + self.proj(h)


class UNet(nn.Module):
    """``forward(x, t)``: x [B, 1, 28, 28], t float [B] in [0, 1] -> output [B, 1, 28, 28].

    channels: width of each resolution level (28, 14, 7, ...); blocks_per_level residual blocks per level
    on each side; ``attention`` adds a :class:`SelfAttention` block after the middle block (lowest resolution).
    The output is eps_hat (or v_hat) for the DDPM and x0_hat for cold-diffusion restoration.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32, 64),
        blocks_per_level: int = 1,
        time_dim: int | None = None,
        groups: int = 8,
        dropout: float = 0.0,
        in_channels: int = 1,
        attention: bool = False,
    ) -> None:
        super().__init__()
        channels = list(channels)
        time_dim = time_dim or 4 * channels[0]
        self.embed_dim = channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(channels[0], time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(in_channels, channels[0], 3, padding=1)

        block = lambda c_in, c_out: ResidualBlock(c_in, c_out, time_dim, groups, dropout)  # noqa: E731
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c_prev = channels[0]
        for level, c in enumerate(channels):
            self.down_blocks.append(nn.ModuleList(block(c_prev if i == 0 else c, c) for i in range(blocks_per_level)))
            c_prev = c
            if level < len(channels) - 1:
                self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
        self.middle = block(c_prev, c_prev)
        self.attention = SelfAttention(c_prev, groups) if attention else None
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(len(channels))):
            c = channels[level]
            self.up_blocks.append(
                nn.ModuleList(block((c_prev + c) if i == 0 else c, c) for i in range(blocks_per_level))
            )
            c_prev = c
            if level > 0:
                self.upsample.append(nn.Conv2d(c, channels[level - 1], 3, padding=1))
                c_prev = channels[level - 1]
        self.out_norm = group_norm(channels[0], groups)
        self.out_conv = nn.Conv2d(channels[0], in_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_mlp(sinusoidal_embedding(t, self.embed_dim))
        h = self.stem(x)
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.middle(h, emb)
        if self.attention is not None:
            h = self.attention(h)
        for level, blocks in enumerate(self.up_blocks):
            h = torch.cat([h, skips.pop()], dim=1)
            for blk in blocks:
                h = blk(h, emb)
            if level < len(self.upsample):
                h = upsample_conv(h, self.upsample[level])  # nearest x2 upsample, then the 3x3 conv
        return self.out_conv(F.silu(self.out_norm(h)))
