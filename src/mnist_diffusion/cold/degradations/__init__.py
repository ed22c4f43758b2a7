"""Degradation operators D(x, t) for cold diffusion (Bansal et al. 2022). See :mod:`.base` for the interface."""

from __future__ import annotations

from mnist_diffusion.diffusion.schedules import check_steps
from mnist_diffusion.errors import UserError
from mnist_diffusion.cold.degradations.base import Degradation, State, repeat_state, select_state
from mnist_diffusion.cold.degradations.linear import GaussianBlur, Pixelate
from mnist_diffusion.cold.degradations.masking import Masking
from mnist_diffusion.cold.degradations.noise import GaussianNoise
from mnist_diffusion.cold.degradations.palimpsest import Palimpsest, TracedPalimpsest, random_scribbles

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


def make_degradation(name: str, T: int) -> Degradation:
    """The operator called ``name`` (one of :data:`DEGRADATIONS`) with T >= 1 steps, its other settings at their
    documented defaults. A bad name or T is a UserError."""
    if name not in OPERATORS:
        raise UserError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    return OPERATORS[name](T=check_steps(T, "degradation T"))  # checked before an operator precomputes its steps


__all__ = ["DEGRADATIONS", "OPERATORS", "Degradation", "State", "make_degradation", "random_scribbles", "repeat_state",
           "select_state", "GaussianBlur", "GaussianNoise", "Masking", "Palimpsest", "Pixelate", "TracedPalimpsest"]
