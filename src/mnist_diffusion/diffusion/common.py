"""Pieces shared by the samplers: the result type, the starting noise and trajectory bookkeeping."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import torch
from torch import Tensor
from tqdm.auto import tqdm

IMAGE_SHAPE = (1, 28, 28)
T_step = TypeVar("T_step")


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


@dataclass
class Run:
    """The state every DDPM sampler starts from: its one generator (seeded), the starting noise z_T
    (float32 [n, 1, 28, 28]) and the trajectory bookkeeping (the steps to keep, and what was kept)."""

    generator: torch.Generator
    z: Tensor
    wanted: set[int]
    trajectory: dict[int, Tensor] = field(default_factory=dict)

    @classmethod
    def start(cls, n: int, seed: int, device: torch.device | str, T: int, return_steps: Iterable[int]) -> Run:
        """Seed the generator, draw z_T ~ N(0, I) from it and keep z_T if step T is wanted."""
        generator = make_generator(seed, device)
        run = cls(generator, start_noise(n, generator, device), set(return_steps))
        run.keep(T, run.z)
        return run

    def keep(self, t: int, z: Tensor) -> None:
        """Record z_t if step t is wanted (see :func:`record`)."""
        record(self.trajectory, self.wanted, t, z)

    def result(self, z_0: Tensor) -> SampleResult:
        """The sampler's output: z_0 clamped to [-1, 1], and the kept trajectory."""
        return SampleResult(images=z_0.clamp(-1, 1), trajectory=self.trajectory)


def steps_bar(steps: Iterable[T_step], total: int, progress: bool, desc: str) -> Iterable[T_step]:
    """The step iterator, wrapped in a tqdm bar of ``total`` steps when ``progress`` is on (yields the same items)."""
    return tqdm(steps, total=total, desc=desc, leave=False, disable=not progress)


def record(trajectory: dict[int, Tensor], wanted: set[int], t: int, z: Tensor) -> None:
    """Keep a CPU copy of z_t (float32 [N, 1, 28, 28]) in ``trajectory[t]`` if step t is in ``wanted``."""
    if t in wanted:
        trajectory[t] = z.detach().to("cpu", copy=True)
