"""Priors p(trace) for the traced palimpsest's data-free endpoint: where generation gets a digit's trace from.

The trace of a digit x is its ink (x + 1) / 2 averaged over ``cell`` x ``cell`` blocks: float [1, 28 / cell,
28 / cell] in [0, 1] (16 numbers for cell 7; :func:`trace_cells`). At t = T the traced palimpsest shows the trace
of the digit under a scribble, so generation, which has no digit, draws a trace from a prior (:data:`TRACE_PRIORS`):

* ``"training"`` (:class:`TrainingTraces`): the empirical distribution of the 60,000 training digits' traces,
  p(trace) = (1 / N) sum_i delta(trace - trace(x_i)): a uniformly drawn training digit's trace;
* ``"mixture"`` (:class:`MixtureTraces`): a 10-component full-covariance Gaussian mixture fitted by EM to those
  traces (:mod:`mnist_diffusion.cold.mixture`), its draws clipped to [0, 1]: no training image is used at
  generation time, only the mixture's parameters.

A prior is an object of its own, built once and handed to the operator
(:class:`~mnist_diffusion.cold.degradations.palimpsest.TracedPalimpsest`), which only draws from it.
:func:`load_trace_prior` builds the named priors from the training split, loading the images and fitting EM
once per process (cell size), and shares them between operators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from mnist_diffusion.cold.mixture import GaussianMixture, fit_gaussian_mixture
from mnist_diffusion.paths import memo

#: The trace priors by name (``sample --prior``; :meth:`TracedPalimpsest.with_prior`).
TRACE_PRIORS = ("training", "mixture")

_SIZE = 28


def trace_cells(ink: Tensor, cell: int) -> Tensor:
    """The trace of ink [n, 1, 28, 28] in [0, 1]: its ``cell`` x ``cell`` block means, [n, 1, 28 / cell, 28 / cell]."""
    return F.avg_pool2d(ink, cell)


def check_prior_name(name: str) -> str:
    """``name`` if it is one of :data:`TRACE_PRIORS`, else a ValueError listing them."""
    if name not in TRACE_PRIORS:
        raise ValueError(f"unknown trace prior {name!r}; choose one of {', '.join(TRACE_PRIORS)}")
    return name


class TracePrior(ABC):
    """A distribution over traces: float [1, k, k] in [0, 1] with k = 28 / ``cell``."""

    name: str = "abstract"

    def __init__(self, cell: int) -> None:
        if _SIZE % cell:
            raise ValueError(f"the trace's cell must divide {_SIZE}, got {cell}")
        self.cell = cell

    @property
    def shape(self) -> tuple[int, int, int]:
        """The shape of one trace: (1, 28 / cell, 28 / cell)."""
        return (1, _SIZE // self.cell, _SIZE // self.cell)

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        """n independent draws trace ~ p(trace): float32 [n, 1, k, k] in [0, 1] on ``device``.

        The randomness comes from ``generator`` alone, drawn on the generator's device (the CPU when it is None),
        so that a seed gives the same traces whatever ``device`` they are put on.
        """


class TrainingTraces(TracePrior):
    """The empirical prior: p(trace) uniform over the traces of the training digits.

    traces: float32 [N, 1, k, k] in [0, 1] (the CPU), e.g. :func:`training_traces` of the 60,000 training images.
    """

    name = "training"

    def __init__(self, traces: Tensor) -> None:
        super().__init__(_SIZE // traces.shape[-1])
        if tuple(traces.shape[1:]) != self.shape:
            raise ValueError(f"traces must be [N, 1, k, k] with k dividing {_SIZE}, got {tuple(traces.shape)}")
        self.traces = traces

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        """The traces of n training digits drawn uniformly with replacement: i ~ U{0..N-1}, trace = traces[i]."""
        draw_device = generator.device if generator is not None else "cpu"
        pick = torch.randint(0, self.traces.shape[0], (n,), generator=generator, device=draw_device)
        return self.traces[pick.cpu()].to(device)


class MixtureTraces(TracePrior):
    """The parametric prior: trace = clip(z, 0, 1) with z ~ sum_k pi_k N(mu_k, Sigma_k), a Gaussian mixture over
    the flattened traces ([k * k]). Build it from training traces with :meth:`fit`."""

    name = "mixture"

    #: Mixture components fitted by :meth:`fit`: one per digit class, not tuned.
    COMPONENTS = 10

    def __init__(self, mixture: GaussianMixture, cell: int) -> None:
        super().__init__(cell)
        if mixture.means.shape[1] != self.shape[1] * self.shape[2]:
            raise ValueError(f"a mixture over {mixture.means.shape[1]} numbers does not fit traces {self.shape}")
        self.mixture = mixture

    @classmethod
    def fit(cls, traces: Tensor, components: int = COMPONENTS) -> MixtureTraces:
        """The maximum-likelihood mixture of ``components`` Gaussians for traces [N, 1, k, k], by EM
        (:func:`~mnist_diffusion.cold.mixture.fit_gaussian_mixture` with its fixed seed: the fit is deterministic;
        100 iterations on the 60,000 training traces take 20-40 s on a 2-core CPU)."""
        mixture, _ = fit_gaussian_mixture(traces.reshape(len(traces), -1), components)
        return cls(mixture, _SIZE // traces.shape[-1])

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        """n draws z ~ the mixture (float64, on the generator's device), clipped to [0, 1], as float32 [n, 1, k, k]."""
        draw_device = generator.device if generator is not None else "cpu"
        drawn = self.mixture.to(draw_device).sample(n, generator).clamp(0, 1).float()
        return drawn.view(n, *self.shape).to(device)


def training_traces(cell: int = 7) -> Tensor:
    """The traces of all 60,000 training images: float32 [60000, 1, 28 / cell, 28 / cell] in [0, 1] (the CPU)."""
    from mnist_diffusion.data import mnist_tensors

    return trace_cells(mnist_tensors("train")[0].unsqueeze(1).float() / 255, cell)


def load_trace_prior(name: str, cell: int = 7) -> TracePrior:
    """The named prior (one of :data:`TRACE_PRIORS`) built from the training split, once per process and cell:
    ``"training"`` loads the 60,000 training traces, ``"mixture"`` fits :class:`MixtureTraces` to them. Later
    calls return the same object."""
    check_prior_name(name)
    return _training_prior(cell) if name == "training" else _mixture_prior(cell)


@memo(maxsize=None)
def _training_prior(cell: int) -> TrainingTraces:
    return TrainingTraces(training_traces(cell))


@memo(maxsize=None)
def _mixture_prior(cell: int) -> MixtureTraces:
    return MixtureTraces.fit(_training_prior(cell).traces)
