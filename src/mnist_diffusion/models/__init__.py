"""Networks with the common call signature ``model(x, t)``: x [B, 1, 28, 28], t float [B] in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from mnist_diffusion.errors import UserError
from mnist_diffusion.models.coursework_cnn import CourseworkCNN
from mnist_diffusion.models.unet import UNet

ARCHITECTURES = ("coursework_cnn", "unet")


def build_model(arch: str, channels: Sequence[int], blocks_per_level: int = 1, dropout: float = 0.0,
                attention: bool = False) -> nn.Module:
    """Build a network by name. ``channels`` are the CNN's hidden widths or the UNet's per-level widths;
    ``attention`` (UNet only) adds self-attention at the lowest resolution."""
    if not channels or any(c <= 0 for c in channels):
        raise UserError(f"model.channels must be a non-empty list of positive widths, got {list(channels)}")
    if arch == "coursework_cnn":
        if attention:
            raise UserError("model.attention is for the unet; the coursework CNN has no attention block")
        return CourseworkCNN(channels=channels)
    if arch == "unet":
        return UNet(channels=channels, blocks_per_level=blocks_per_level, dropout=dropout, attention=attention)
    raise UserError(f"unknown model.arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["ARCHITECTURES", "CourseworkCNN", "UNet", "build_model", "count_parameters"]
