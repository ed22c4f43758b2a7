"""Priors p(trace) for the traced palimpsest's data-free endpoint: where generation gets a digit's trace from.

The trace of a digit x is its ink (x + 1) / 2 averaged over ``cell`` x ``cell`` blocks: float [1, 28 / cell,
28 / cell] in [0, 1] (16 numbers for cell 7; :func:`trace_cells`). At t = T the traced palimpsest shows the trace
of the digit under a scribble, so generation, which has no digit, draws a trace from a prior (:data:`TRACE_PRIORS`):

* ``"training"`` (:class:`TrainingTraces`): the empirical distribution of the 60,000 training digits' traces,
  p(trace) = (1 / N) sum_i delta(trace - trace(x_i)): a uniformly drawn training digit's trace;
* ``"mixture"`` (:class:`MixtureTraces`): a 10-component full-covariance Gaussian mixture fitted by EM to those
  traces (:mod:`mnist_diffusion.cold.mixture`), its draws clipped to [0, 1]: no training image is used at
  generation time, only the mixture's parameters;
* ``"heldout"``: the same kind of mixture with the component count that maximised the log-likelihood of held-out
  training traces (:data:`MixtureTraces.HELD_OUT_COMPONENTS` among :data:`MixtureTraces.CANDIDATES`, per cell;
  the selection is recorded in the traced run's ``metrics.json``), the very fit the selection scored (on five
  sixths of the training traces): capacity chosen on training data, never on test data or FID.

A prior is an object of its own, built once and handed to the operator
(:class:`~mnist_diffusion.cold.degradations.palimpsest.TracedPalimpsest`), which only draws from it.
:func:`load_trace_prior` builds the named priors from the training split, loading the images and fitting EM
once per process (cell size), and shares them between operators.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mnist_diffusion.cold.mixture import GaussianMixture, fit_gaussian_mixture, held_out_split
from mnist_diffusion.errors import UserError
from mnist_diffusion.paths import cache_root, memo, write_atomic

#: The trace priors by name (``sample --prior``; :meth:`TracedPalimpsest.with_prior`).
TRACE_PRIORS = ("training", "mixture", "heldout")

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

    def draw(self, n: int, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> tuple[Tensor, Tensor | None]:
        """:meth:`sample`'s traces and, for a prior that hands out training digits' traces, the index of the
        training digit each came from (int64 [n], on the CPU; None for a prior that uses no training image)."""
        return self.sample(n, generator, device), None


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
        return self.draw(n, generator, device)[0]

    def draw(self, n: int, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> tuple[Tensor, Tensor | None]:
        draw_device = generator.device if generator is not None else "cpu"
        pick = torch.randint(0, self.traces.shape[0], (n,), generator=generator, device=draw_device).cpu()
        return self.traces[pick].to(device), pick


class MixtureTraces(TracePrior):
    """The parametric prior: trace = clip(z, 0, 1) with z ~ sum_k pi_k N(mu_k, Sigma_k), a Gaussian mixture over
    the flattened traces ([k * k]). Build it from training traces with :meth:`fit`."""

    #: Mixture components of the ``mixture`` prior: one per digit class, not tuned.
    COMPONENTS = 10
    #: Component counts tried for the ``heldout`` prior, and per trace cell the one whose fit to five sixths of the
    #: training traces gave the held-out sixth the highest mean log-likelihood (mixture.held_out_log_likelihood,
    #: seed 0; a test checks each against the selection recorded in the committed results).
    #: 400 was added when 200, the largest first tried, won for cell 7; 400 then won by 0.002 nats a trace (the
    #: held-out curve flat), and 800 was not tried: EM's [K, n, d] intermediates would take about 10 GB. For the
    #: 2 x 2 trace (cell 14, a training variant) 200 wins and 400 falls back (7.035 against 7.028 nats a trace).
    CANDIDATES = (1, 2, 5, 10, 20, 50, 100, 200, 400)
    HELD_OUT_COMPONENTS = {7: 400, 14: 200}

    def __init__(self, mixture: GaussianMixture, cell: int, name: str = "mixture") -> None:
        super().__init__(cell)
        self.name = name
        if mixture.means.shape[1] != self.shape[1] * self.shape[2]:
            raise ValueError(f"a mixture over {mixture.means.shape[1]} numbers does not fit traces {self.shape}")
        self.mixture = mixture

    @classmethod
    def fit(cls, traces: Tensor, components: int = COMPONENTS, name: str = "mixture") -> MixtureTraces:
        """The maximum-likelihood mixture of ``components`` Gaussians for traces [N, 1, k, k], by EM
        (:func:`~mnist_diffusion.cold.mixture.fit_gaussian_mixture` with its fixed seed: the fit is deterministic;
        100 iterations on the 60,000 training traces take 20-40 s for 10 components on a 2-core CPU, about
        linearly more for more)."""
        mixture, _ = fit_gaussian_mixture(traces.reshape(len(traces), -1), components)
        return cls(mixture, _SIZE // traces.shape[-1], name)

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
        """n draws z ~ the mixture (float64, on the generator's device), clipped to [0, 1], as float32 [n, 1, k, k]."""
        draw_device = generator.device if generator is not None else "cpu"
        drawn = self.mixture.to(draw_device).sample(n, generator).clamp(0, 1).float()
        return drawn.view(n, *self.shape).to(device)


def training_traces(cell: int = 7) -> Tensor:
    """The traces of all 60,000 training images: float32 [60000, 1, 28 / cell, 28 / cell] in [0, 1] (the CPU)."""
    from mnist_diffusion.data import mnist_tensors

    return trace_cells(mnist_tensors("train")[0].unsqueeze(1).float() / 255, cell)


#: Trace resolutions whose information is measured (:func:`trace_information`): 2 x 2, 4 x 4 (ours) and 7 x 7 numbers.
TRACE_CELLS = (14, 7, 4)


def trace_information(cell: int = 7, chunk: int = 1_000) -> dict[str, Any]:
    """How much a trace gives away of its digit: the share of the 10,000 test digits whose trace's nearest training
    trace (Euclidean, over the 28 / cell squared numbers) belongs to a digit of the same class (1-NN accuracy;
    chance is about 0.1), and the mean distance to that nearest trace. Training data and test labels only; no model."""
    from mnist_diffusion.data import mnist_tensors

    train, test = training_traces(cell).flatten(1), trace_cells(mnist_tensors("test")[0].unsqueeze(1).float() / 255,
                                                                cell).flatten(1)
    train_labels, test_labels = mnist_tensors("train")[1], mnist_tensors("test")[1]
    nearest, distance = [], []
    for start in range(0, len(test), chunk):
        d, i = torch.cdist(test[start:start + chunk], train).min(dim=1)
        nearest.append(i)
        distance.append(d)
    correct = train_labels[torch.cat(nearest)] == test_labels
    return {"cell": cell, "numbers": train.shape[1], "nn_class_accuracy": correct.float().mean().item(),
            "mean_nn_distance": torch.cat(distance).mean().item()}


def load_trace_prior(name: str, cell: int = 7) -> TracePrior:
    """The named prior (one of :data:`TRACE_PRIORS`) built from the training split, once per process and cell:
    ``"training"`` loads the 60,000 training traces, ``"mixture"`` and ``"heldout"`` fit :class:`MixtureTraces`
    to them (kept in the disk cache, ``<cache root>/trace_prior/``, as fitting a large mixture takes minutes).
    Later calls return the same object."""
    check_prior_name(name)
    if name == "training":
        return _training_prior(cell)
    return _mixture_prior(cell, name)


def prior_components(prior: str | None, cell: int) -> int | None:
    """The component count that a trace prior's name does not fix: for ``heldout``, the count its selection chose
    for ``cell`` (None before one is chosen); None for every other prior."""
    return MixtureTraces.HELD_OUT_COMPONENTS.get(cell) if prior == "heldout" else None


@memo(maxsize=None)
def _training_prior(cell: int) -> TrainingTraces:
    return TrainingTraces(training_traces(cell))


@memo(maxsize=None)
def _mixture_prior(cell: int, name: str) -> MixtureTraces:
    traces = _training_prior(cell).traces
    if name == "heldout":  # the fit that won the selection: on the selection's fit part of the traces
        if cell not in MixtureTraces.HELD_OUT_COMPONENTS:
            raise UserError(f"no held-out trace prior for cell {cell} yet: its component count is chosen by the "
                            f"run's prior_selection check (experiment evaluate RUN --only prior_selection) and "
                            f"entered in MixtureTraces.HELD_OUT_COMPONENTS")
        components = MixtureTraces.HELD_OUT_COMPONENTS[cell]
        return MixtureTraces(fitted_mixture(held_out_split(traces)[0], components), cell, name)
    return MixtureTraces(fitted_mixture(traces, MixtureTraces.COMPONENTS), cell, name)


#: Names the settings of the cached fits (fit_gaussian_mixture's defaults: 100 EM iterations, seed 0, 1e-6 on the
#: diagonal, tolerance 1e-7), so that fits made with other settings are never mistaken for them.
FIT_VERSION = "em100-s0-r1e-6-t1e-7"


def fitted_mixture(traces: Tensor, components: int) -> GaussianMixture:
    """EM's mixture of ``components`` Gaussians for ``traces`` [N, ...] (flattened to [N, d] in float64): from the
    disk cache (``<cache root>/trace_prior/``, keyed by the points' digest and the component count), or fitted
    (:func:`~mnist_diffusion.cold.mixture.fit_gaussian_mixture`) and cached."""
    import hashlib
    import io

    traces = traces.detach().to(torch.float64).reshape(len(traces), -1).contiguous()
    digest = hashlib.sha256(traces.numpy().tobytes()).hexdigest()[:16]
    # the fit's settings are fit_gaussian_mixture's defaults; a change to them must change FIT_VERSION
    path = cache_root() / "trace_prior" / f"mixture_{digest}_k{components}_{FIT_VERSION}.pt"
    if path.is_file():
        stored = torch.load(path, weights_only=True)
        return GaussianMixture(stored["weights"], stored["means"], stored["covariances"])
    mixture, _ = fit_gaussian_mixture(traces, components)
    buffer = io.BytesIO()
    torch.save({"weights": mixture.weights, "means": mixture.means, "covariances": mixture.covariances}, buffer)
    write_atomic(path, [buffer.getvalue()])
    return mixture
