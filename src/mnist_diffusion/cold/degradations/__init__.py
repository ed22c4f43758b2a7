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


def make_degradation(name: str, T: int, noise: float = 0.0, trace_cell: int = 7) -> Degradation:
    """The operator called ``name`` (one of :data:`DEGRADATIONS`) with T >= 1 steps, its other settings at their
    documented defaults; ``noise`` > 0 adds a fixed Gaussian noise image of that standard deviation for t >= 1
    (:class:`WithNoise`); ``trace_cell``: the traced palimpsest's trace block size (only it has one). A bad name, T,
    noise or cell is a UserError."""
    if name not in OPERATORS:
        raise UserError(f"unknown degradation {name!r}; choose one of {', '.join(DEGRADATIONS)}")
    if noise < 0:
        raise UserError(f"cold.noise must be >= 0 (0 = none), got {noise}")
    if trace_cell < 1 or 28 % trace_cell or (trace_cell != 7 and name != "palimpsest_trace"):
        raise UserError(f"cold.trace_cell {trace_cell} does not fit the {name} degradation (the traced palimpsest "
                        f"takes a divisor of 28; every other operator has no trace)")
    settings = {"cell": trace_cell} if name == "palimpsest_trace" else {}
    operator = OPERATORS[name](T=check_steps(T, "degradation T"), **settings)  # T checked before steps are precomputed
    return WithNoise(operator, noise) if noise else operator


__all__ = ["DEGRADATIONS", "OPERATORS", "Degradation", "State", "make_degradation", "random_scribbles", "repeat_state",
           "select_state", "GaussianBlur", "GaussianNoise", "Masking", "Palimpsest", "Pixelate", "TracedPalimpsest",
           "WithNoise"]
