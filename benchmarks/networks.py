"""The networks the benchmarks compare, all with the project's call signature ``net(x, t)``.

* ``cnn``: the coursework baseline ``CourseworkCNN`` (16, 32, 32, 16).
* ``unet-s``: the project's recipe, ``UNet`` (16, 32, 64) with one residual block per level.
* ``unet-m``: a wider ``UNet`` (32, 64, 128).
* ``diffusers-s`` / ``diffusers-m``: diffusers' ``UNet2DModel`` built from a config (never downloaded) with the
  same plan as ours (three levels 28 -> 14 -> 7, ResNet blocks with GroupNorm + SiLU and the time embedding in
  every block, no attention, one block per level going down) and widths (m, 2m, 4m), m a multiple of 4, chosen
  so that its parameter count is the closest to ``unet-s`` / ``unet-m``. diffusers puts more blocks in the
  decoder and the middle, so a matched model is narrower than ours.

diffusers is imported only when a diffusers network is built: it is a benchmark-only (dev) dependency.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mnist_diffusion.models import CourseworkCNN, UNet, count_parameters

#: Our networks: name -> (constructor, keyword arguments).
OURS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "cnn": (CourseworkCNN, {"channels": (16, 32, 32, 16)}),
    "unet-s": (UNet, {"channels": (16, 32, 64)}),
    "unet-m": (UNet, {"channels": (32, 64, 128)}),
}
#: diffusers networks: name -> the network of ours whose parameter count they match.
DIFFUSERS_MATCH = {"diffusers-s": "unet-s", "diffusers-m": "unet-m"}
NETWORKS = (*OURS, *DIFFUSERS_MATCH)
#: diffusers' timesteps are integers in [0, 1000); ours are t / T in [0, 1].
DIFFUSERS_T = 1000


class DiffusersUNet(nn.Module):
    """diffusers' ``UNet2DModel`` behind the project's interface: ``forward(x, t)`` with t in [0, 1]."""

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        from diffusers import UNet2DModel

        self.widths = widths
        self.unet = UNet2DModel(
            sample_size=28, in_channels=1, out_channels=1, block_out_channels=widths, layers_per_block=1,
            down_block_types=("DownBlock2D",) * len(widths), up_block_types=("UpBlock2D",) * len(widths),
            add_attention=False, norm_num_groups=4,
        )

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        return self.unet(x, t * DIFFUSERS_T).sample


def matched_widths(target_parameters: int, max_m: int = 128) -> tuple[int, int, int]:
    """diffusers widths (m, 2m, 4m), m a multiple of 4, with the parameter count closest to ``target_parameters``."""
    best: tuple[int, tuple[int, int, int]] | None = None
    for m in range(4, max_m + 1, 4):
        widths = (m, 2 * m, 4 * m)
        gap = abs(count_parameters(DiffusersUNet(widths)) - target_parameters)
        if best is not None and gap > best[0]:
            break  # the count grows with m: past the closest one
        best = (gap, widths)
    assert best is not None
    return best[1]


def build_network(name: str, seed: int = 0) -> nn.Module:
    """A freshly initialised network by name (see the module docstring), seeded for reproducibility."""
    torch.manual_seed(seed)
    if name in OURS:
        cls, kwargs = OURS[name]
        return cls(**kwargs)
    if name in DIFFUSERS_MATCH:
        target = count_parameters(build_network(DIFFUSERS_MATCH[name], seed))
        torch.manual_seed(seed)
        return DiffusersUNet(matched_widths(target))
    raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")


def describe(name: str, network: nn.Module) -> dict[str, Any]:
    """What a network is, for the JSON: implementation, widths and parameter count."""
    if isinstance(network, DiffusersUNet):
        return {"network": name, "implementation": "diffusers UNet2DModel", "widths": list(network.widths),
                "parameters": count_parameters(network), "matched_to": DIFFUSERS_MATCH.get(name)}
    return {"network": name, "implementation": type(network).__name__, "widths": list(OURS[name][1]["channels"]),
            "parameters": count_parameters(network)}
