"""Degradation operators D(x, t) for cold diffusion (Bansal et al. 2022). See :mod:`.base` for the interface."""

from __future__ import annotations

from mnist_diffusion.errors import UserError
from mnist_diffusion.cold.degradations.base import Degradation, State, repeat_state, select_state
from mnist_diffusion.cold.degradations.linear import GaussianBlur, Pixelate
from mnist_diffusion.cold.degradations.masking import Masking
from mnist_diffusion.cold.degradations.noise import GaussianNoise
from mnist_diffusion.cold.degradations.palimpsest import Palimpsest, TracedPalimpsest, random_scribbles

OPERATORS: dict[str, type[Degradation]] = {
    "noise": GaussianNoise,
    "blur": GaussianBlur,
    "pixelate": Pixelate,
    "mask": Masking,
    "palimpsest": Palimpsest,
    "palimpsest_trace": TracedPalimpsest,
}


def make_degradation(name: str, T: int) -> Degradation:
    """The operator called ``name`` with T steps (its other settings at their documented defaults)."""
    if name not in OPERATORS:
        raise UserError(f"unknown degradation {name!r}; choose one of {', '.join(OPERATORS)}")
    if T < 1:
        raise UserError(f"degradation T must be >= 1, got {T}")
    return OPERATORS[name](T=T)


__all__ = ["OPERATORS", "Degradation", "State", "make_degradation", "random_scribbles", "repeat_state", "select_state",
           "GaussianBlur", "GaussianNoise", "Masking", "Palimpsest", "Pixelate",
           "TracedPalimpsest"]
