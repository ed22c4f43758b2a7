"""The project's own degradation: *palimpsest*, a digit scraped off and written over by a random pen.

A palimpsest is a manuscript page whose text was scraped away and overwritten. Here, as t goes from 0 to T:

1. the digit's ink dries out: its strokes thin (a 3x3 grey-scale erosion, blended in as t grows) and fade
   (intensity scaled by 1 - t/T), reaching no ink at t = T;
2. a random pen scribble is written over it *along its own length*, in pen order, with MNIST's stroke width
   and anti-aliased edges: at step t the pen has drawn the first t/T of its trajectory;
3. the two inks overlap as ink does on paper: the brighter wins (x_t = 2 max(digit ink, scribble ink) - 1).

Why this suits handwritten digits. MNIST is pen strokes on an empty page, so the natural way to destroy a
digit is with *other strokes*. Because ink composites by max, wherever the scribble crosses the digit the
restorer cannot tell whose ink it sees: it must judge which strokes make a plausible digit. Run backwards
(Algorithm 2), the pen is lifted off the page stroke by stroke while the network decides which of the ink
it sees is a digit, so a random scribble is read as a digit.

What the endpoint does and does not give. D(x, T) is the finished scribble alone: it does not depend on x,
and the scribble is procedural (1 to 3 smooth strokes whose start, heading, curvature drift, step length and pen
width are all random), so x_T is sampled without any data and every generated image starts from its own
scribble. We expected the strokes' randomness to spread the samples over the ten digits. It does so only
partly: because x_T says nothing about x, the restorer's best first estimate R(x_T, T) is nearly the same
image for every scribble (see :func:`mnist_diffusion.experiments.endpoint_spread`), Algorithm 2 writes it
into every sample, and a sample departs from it only where the restorer reads scribble strokes as the
digit's. The trained model's samples favour a few digits (measured in ``results/cold_palimpsest``).
:class:`TracedPalimpsest` keeps a coarse trace of the digit at t = T to give each sample its own start.

State per image: ``ink`` (the finished scribble, [n, 1, 28, 28] in [0, 1]) and ``pen_time`` (the fraction of
the pen's path at which each pixel is drawn, [n, 1, 28, 28] in [0, 1]). Unlike the blending, eraser-mask, zoom
and row/column-averaging degradations of earlier attempts at this study, nothing here mixes in another data
set or removes pixels: ink is added along stroke paths and the digit's own strokes dry out.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mnist_diffusion.cold.degradations.base import Degradation, State
from mnist_diffusion.cold.trace_prior import TracePrior, check_prior_name, load_trace_prior, trace_cells

SIZE = 28
_CENTRE = (SIZE - 1) / 2


def _uniform(shape, low: float, high: float, generator, device) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def random_scribbles(
    n: int,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    *,
    max_strokes: int = 3,
    points: int = 16,
    box: float = 19.0,
) -> tuple[Tensor, Tensor]:
    """Draw ``n`` random pen scribbles, vectorised over images, strokes and segments.

    Each stroke is a path of ``points`` points: a random start, a random heading, and a turning rate that
    drifts as a random walk, so strokes curve and hook like handwriting. Strokes beyond the first are kept
    with probability 1/2. The scribble is then centred and scaled so its longer side spans ``box`` pixels (MNIST digits
    fill a 20x20 box; small curls are enlarged at most 3x), and rasterised with a random pen radius and a one-pixel anti-aliased edge.
    Returns (ink, pen_time), each float [n, 1, 28, 28] in [0, 1].
    """
    g, dev = generator, device
    k, p = max_strokes, points
    start = _uniform((n, k, 1, 2), 6.0, 21.0, g, dev)
    heading = _uniform((n, k, 1), 0.0, 2 * math.pi, g, dev)
    turn0 = 0.25 * torch.randn((n, k, 1), generator=g, device=dev)
    turn = turn0 + torch.cumsum(0.08 * torch.randn((n, k, p - 1), generator=g, device=dev), dim=2)
    angle = heading + torch.cumsum(turn, dim=2)
    step = _uniform((n, k, 1, 1), 1.0, 1.7, g, dev)
    moves = step * torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)  # [n, k, p-1, 2]
    path = torch.cat([start, start + torch.cumsum(moves, dim=2)], dim=2)  # [n, k, p, 2] (x, y)

    active = torch.rand((n, k), generator=g, device=dev) < 0.5
    active[:, 0] = True
    # Centre the active strokes' bounding box and shrink it into the digit box.
    big = torch.tensor(1e4, device=dev)
    flat = path.reshape(n, k * p, 2)
    mask = active.repeat_interleave(p, dim=1).unsqueeze(-1)
    low = torch.where(mask, flat, big).amin(dim=1, keepdim=True)
    high = torch.where(mask, flat, -big).amax(dim=1, keepdim=True)
    scale = (box / (high - low).amax(dim=2, keepdim=True).clamp(min=1e-6)).clamp(max=3.0)
    flat = (flat - (low + high) / 2) * scale + _CENTRE
    path = flat.view(n, k, p, 2)

    # Rasterise by stamping: resample each stroke densely (spacing < 0.45 px), and let each pen position ink
    # only the 5x5 pixels around it (the pen radius is < 1.5 px). Each pixel keeps the darkest ink any
    # position gives it and the earliest pen time at which it got ink. This touches n * points * 25 values
    # instead of n * 784 * segments, and scatter_reduce does the per-pixel max/min without Python loops.
    dense = F.interpolate(path.reshape(n * k, p, 2).transpose(1, 2), size=4 * (p - 1) + 1, mode="linear",
                          align_corners=True).transpose(1, 2).reshape(n, k, -1, 2)
    m = dense.shape[2]
    along = torch.arange(m, device=dev, dtype=torch.float32) / (m - 1)
    time = ((torch.arange(k, device=dev, dtype=torch.float32)[:, None] + along[None, :]) / k).expand(n, k, m)
    offsets = torch.arange(-2, 3, device=dev, dtype=torch.float32)
    px = dense[..., 0].floor().reshape(n, -1, 1, 1) + offsets.view(1, 1, 1, 5)  # [n, k*m, 1, 5]
    py = dense[..., 1].floor().reshape(n, -1, 1, 1) + offsets.view(1, 1, 5, 1)  # [n, k*m, 5, 1]
    dist = torch.sqrt((px - dense[..., 0].reshape(n, -1, 1, 1)) ** 2 + (py - dense[..., 1].reshape(n, -1, 1, 1)) ** 2)
    radius = _uniform((n, 1, 1, 1), 0.8, 1.4, g, dev)
    ink_values = (radius + 0.5 - dist).clamp(0, 1)  # [n, k*m, 5, 5]
    ink_values = ink_values * active.repeat_interleave(m, dim=1).view(n, -1, 1, 1)
    inside = (px >= 0) & (px < SIZE) & (py >= 0) & (py < SIZE)
    index = torch.where(inside, py * SIZE + px, torch.full_like(px, SIZE * SIZE)).long()  # outside -> spare slot
    index, ink_values = index.reshape(n, -1), ink_values.reshape(n, -1)
    time_values = torch.where(ink_values > 0, time.reshape(n, -1, 1, 1).expand(-1, -1, 5, 5).reshape(n, -1), 1.0)
    ink = torch.zeros(n, SIZE * SIZE + 1, device=dev).scatter_reduce_(1, index, ink_values, "amax")
    pen_time = torch.ones(n, SIZE * SIZE + 1, device=dev).scatter_reduce_(1, index, time_values, "amin")
    ink, pen_time = ink[:, :-1], pen_time[:, :-1]
    return ink.view(n, 1, SIZE, SIZE), pen_time.view(n, 1, SIZE, SIZE)


class Palimpsest(Degradation):
    """x_t = 2 max(fade_t(digit ink), scribble ink drawn up to t/T of the pen path) - 1. See the module docstring."""

    name = "palimpsest"

    def __init__(self, T: int = 50, reveal_width: float = 0.1) -> None:
        super().__init__(T)
        self.reveal_width = reveal_width

    def sample_state(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> State:
        ink, pen_time = random_scribbles(n, generator, device)
        return {"ink": ink, "pen_time": pen_time}

    def dried_ink(self, digit: Tensor, w: Tensor) -> Tensor:
        """The digit's ink [B, 1, 28, 28] in [0, 1] at w = t / T ([B, 1, 1, 1]): thinned and faded to nothing."""
        thinned = -F.max_pool2d(-digit, kernel_size=3, stride=1, padding=1)  # grey-scale erosion
        return (1 - w) * ((1 - w) * digit + w * thinned)

    def degrade(self, x0: Tensor, t: Tensor, state: State) -> Tensor:
        w = (t.float() / self.T).view(-1, 1, 1, 1)
        drawn = ((w * (1 + self.reveal_width) - state["pen_time"]) / self.reveal_width).clamp(0, 1)
        ink_t = torch.maximum(self.dried_ink((x0 + 1) / 2, w), state["ink"] * drawn)
        return self.keep_clean_at_zero(x0, t, 2 * ink_t - 1)

    def endpoint(self, state: State) -> Tensor:
        return 2 * state["ink"] - 1

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "reveal_width": self.reveal_width}


class TracedPalimpsest(Palimpsest):
    """The palimpsest whose scraping leaves a trace, as real palimpsests do: x_t = 2 max(digit_t, scribble_t) - 1
    with digit_t = (1 - w)^2 digit + (1 - w) w eroded + w trace(digit), w = t / T, where trace(x) is the digit
    averaged over ``cell`` x ``cell`` blocks (4 x 4 numbers for cell 7) and smoothly upsampled: a grey blur that
    keeps the undertext's rough shape but none of its strokes.

    Why. The plain palimpsest's endpoint is the scribble alone, independent of the digit, so the restorer's first
    estimate R(x_T, T) is one and the same image for every scribble, and every sample starts from it (measured by
    :func:`mnist_diffusion.experiments.endpoint_spread`). The trace gives each sample its own start. Generation
    draws it, like Bansal et al. draw the blur endpoint from a distribution fitted to the data: the ``trace``
    of the state is a draw from a trace prior, [n, 1, 28 / cell, 28 / cell] in [0, 1] (16 numbers per image; a
    training digit's trace tells its class only about 3 times in 4 by nearest neighbour).

    ``prior`` is that prior (:mod:`mnist_diffusion.cold.trace_prior`): a
    :class:`~mnist_diffusion.cold.trace_prior.TracePrior` object, which the operator only draws from, or the name of
    one of :data:`~mnist_diffusion.cold.trace_prior.TRACE_PRIORS`: ``"training"`` (the default: a uniformly drawn
    training digit's trace), ``"mixture"`` (a 10-component Gaussian mixture fitted to the training traces) or
    ``"heldout"`` (the mixture whose size held-out likelihood chose; its first fit takes minutes, then cached), which
    :func:`~mnist_diffusion.cold.trace_prior.load_trace_prior` builds, once per process, when a state is first
    drawn. Training does not depend on the prior's choice (it draws traces only to keep its random stream the same);
    :meth:`with_prior` gives the same operator with another prior, so one trained model is sampled both ways."""

    name = "palimpsest_trace"

    def __init__(self, T: int = 50, reveal_width: float = 0.1, cell: int = 7,
                 prior: TracePrior | str = "training") -> None:
        super().__init__(T, reveal_width)
        if SIZE % cell:
            raise ValueError(f"the trace's cell must divide {SIZE}, got {cell}")
        self.cell = cell
        self._prior = self._checked(prior)

    def with_prior(self, prior: TracePrior | str) -> TracedPalimpsest:
        """The same operator whose states draw their traces from ``prior`` (an object or a name; ``self`` unchanged)."""
        other = copy.copy(self)
        other._prior = self._checked(prior)
        return other

    def _checked(self, prior: TracePrior | str) -> TracePrior | str:
        if isinstance(prior, str):
            return check_prior_name(prior)
        if prior.cell != self.cell:
            raise ValueError(f"a trace prior of cell {prior.cell} does not fit an operator of cell {self.cell}")
        return prior

    @property
    def prior(self) -> str:
        """The name of the trace prior: one of :data:`~mnist_diffusion.cold.trace_prior.TRACE_PRIORS`."""
        return self._prior if isinstance(self._prior, str) else self._prior.name

    @property
    def trace_prior(self) -> TracePrior:
        """The prior that :meth:`sample_state` draws traces from (a name is resolved by :func:`load_trace_prior`)."""
        if isinstance(self._prior, str):
            self._prior = load_trace_prior(self._prior, self.cell)
        return self._prior

    def trace_cells(self, ink: Tensor) -> Tensor:
        """Block means of ink [n, 1, 28, 28] in [0, 1]: [n, 1, 28 / cell, 28 / cell]."""
        return trace_cells(ink, self.cell)

    @staticmethod
    def upsample(cells: Tensor) -> Tensor:
        """Bilinear upsampling of trace cells [n, 1, k, k] to [n, 1, 28, 28] (values stay in the cells' range)."""
        return F.interpolate(cells, size=(SIZE, SIZE), mode="bilinear", align_corners=False)

    def sample_state(self, n: int, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu") -> State:
        """The palimpsest's scribble state plus ``trace``: n draws from the trace prior, float32 [n, 1, k, k] in [0, 1],
        and, when the prior hands out training digits' traces, ``source``: the index of each trace's training digit
        (int64 [n]; only to check samples against it, generation never reads it)."""
        state = super().sample_state(n, generator, device)
        state["trace"], source = self.trace_prior.draw(n, generator, device)
        if source is not None:
            state["source"] = source.to(device)
        return state

    def dried_ink(self, digit: Tensor, w: Tensor) -> Tensor:
        """The plain palimpsest's dried ink plus w times the digit's trace: the trace alone at t = T."""
        return super().dried_ink(digit, w) + w * self.upsample(self.trace_cells(digit))

    def endpoint(self, state: State) -> Tensor:
        return 2 * torch.maximum(self.upsample(state["trace"]), state["ink"]) - 1

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cell": self.cell, "prior": self.prior}
