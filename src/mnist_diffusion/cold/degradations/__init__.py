"""Degradation operators D(x, t) for cold diffusion (Bansal et al. 2022). See :mod:`.base` for the interface."""

from __future__ import annotations

from mnist_diffusion.diffusion.schedules import check_steps
from mnist_diffusion.errors import UserError
from mnist_diffusion.cold.degradations.base import Degradation, State, repeat_state, select_state
from mnist_diffusion.cold.degradations.linear import GaussianBlur, Pixelate
from mnist_diffusion.cold.degradations.masking import Masking
from mnist_diffusion.cold.degradations.noise import GaussianNoise
from mnist_diffusion.cold.degradations.palimpsest import Palimpsest, TracedPalimpsest, random_scribbles
from mnist_diffusion.cold.degradations.with_noise import WithNoise

#: The operators by name (``cold.degradation``); :data:`DEGRADATIONS` lists the names.
OPERATORS: dict[str, type[Degradation]] = {
    "noise": GaussianNoise,
    "blur": GaussianBlur,
    "pixelate": Pixelate,
    "mask": Masking,
    "palimpsest": Palimpsest,
    "palimpsest_trace": TracedPalimpsest,
}
DEGRADATIONS = tuple(OPERATORS)


def make_degradation(name: str, T: int, noise: float = 0.0) -> Degradation:
    """The operator called ``name`` (one of :data:`DEGRADATIONS`) with T >= 1 steps, its other settings at their
    documented defaults; ``noise`` > 0 adds a fixed Gaussian noise image of that standard deviation for t >= 1
    (:class:`WithNoise`). A bad name, T or noise is a UserError."""
    if name not in OPERATORS:
        raise UserError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    if noise < 0:
        raise UserError(f"cold.noise must be >= 0 (0 = none), got {noise}")
    operator = OPERATORS[name](T=check_steps(T, "degradation T"))  # checked before an operator precomputes its steps
    return WithNoise(operator, noise) if noise else operator


__all__ = ["DEGRADATIONS", "OPERATORS", "Degradation", "State", "make_degradation", "random_scribbles", "repeat_state",
           "select_state", "GaussianBlur", "GaussianNoise", "Masking", "Palimpsest", "Pixelate", "TracedPalimpsest",
           "WithNoise"]
