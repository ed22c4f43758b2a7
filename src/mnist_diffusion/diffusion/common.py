"""Pieces shared by the samplers: the result type, the starting noise and trajectory bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

IMAGE_SHAPE = (1, 28, 28)


@dataclass
class SampleResult:
    """Output of a sampler.

    images: float32 [N, 1, 28, 28], the final z_0, clamped to [-1, 1].
    trajectory: {t: z_t} for each requested step t (float32 [N, 1, 28, 28], on the CPU), unclamped.
    """

    images: Tensor
    trajectory: dict[int, Tensor] = field(default_factory=dict)


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed``: the only source of randomness of a sampling run."""
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def start_noise(n: int, generator: torch.Generator, device: torch.device | str) -> Tensor:
    """z_T ~ N(0, I): float32 [n, 1, 28, 28]."""
    return torch.randn((n, *IMAGE_SHAPE), generator=generator, device=device)


def steps_bar(steps: Iterable, total: int, progress: bool, desc: str):
    """Wrap the step iterator in a tqdm bar when ``progress`` is on."""
    return tqdm(steps, total=total, desc=desc, leave=False, disable=not progress)


def record(trajectory: dict[int, Tensor], wanted: set[int], t: int, z: Tensor) -> None:
    """Keep a CPU copy of z_t if step t was asked for."""
    if t in wanted:
        trajectory[t] = z.detach().to("cpu", copy=True)
