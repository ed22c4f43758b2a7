"""Cold-diffusion sampling (Bansal et al. 2022): Algorithm 1, Algorithm 2, and direct restoration.

Starting from x_s at step s, with x0_hat = R(x_s, s) and the degradation's state held fixed:

* Algorithm 1 (naive):    x_{s-1} = D(x0_hat, s - 1)
* Algorithm 2 (improved): x_{s-1} = x_s - D(x0_hat, s) + D(x0_hat, s - 1)
* direct:                 x_0 = R(x_T, T), one network call

Algorithm 2 is exact for any x0_hat that is right about D's first-order change, and recovers x exactly from
an exact restorer; Algorithm 1 only does so if the restorer is exact at every step. Unconditional
generation starts from the degradation's data-free endpoint x_T ~ ``endpoint(state)`` with a fresh state;
conditional restoration starts from D(x, s_start) of given images.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.cold.degradations.base import State
from mnist_diffusion.errors import UserError
from mnist_diffusion.diffusion.common import SampleResult, make_generator, record, steps_bar

#: The samplers a cold-diffusion checkpoint accepts (``sample --sampler``, ``restore --sampler``).
COLD_SAMPLERS = ("alg2", "alg1", "direct")


@torch.inference_mode()
def cold_reverse(
    restorer: nn.Module,
    cold: ColdDiffusion,
    x_start: Tensor,
    state: State,
    t_start: int,
    *,
    algorithm: str = "alg2",
    clip_x0: bool = True,
    return_steps: Iterable[int] = (),
    progress: bool = False,
) -> SampleResult:
    """Run a cold sampler from x_{t_start} (float [n, 1, 28, 28]) with the given state down to x_0."""
    if algorithm not in COLD_SAMPLERS:
        raise UserError(f"unknown cold-diffusion sampler {algorithm!r}; choose one of {', '.join(COLD_SAMPLERS)}")
    if not 1 <= t_start <= cold.T:
        raise UserError(f"the starting step must be between 1 and T={cold.T}, got {t_start}")
    degrade = cold.degradation.degrade
    n, device = x_start.shape[0], x_start.device
    wanted = set(return_steps)
    trajectory: dict[int, Tensor] = {}
    x = x_start
    record(trajectory, wanted, t_start, x)
    for s in steps_bar(range(t_start, 0, -1), t_start, progress and algorithm != "direct", algorithm):
        s_now = torch.full((n,), s, device=device, dtype=torch.long)
        x0_hat = cold.restore(restorer, x, s_now, clip_x0)
        if algorithm == "direct":
            x = x0_hat
            record(trajectory, wanted, 0, x)
            break
        s_prev = s_now - 1
        if algorithm == "alg1":
            x = degrade(x0_hat, s_prev, state)
        else:
            x = x - degrade(x0_hat, s_now, state) + degrade(x0_hat, s_prev, state)
        record(trajectory, wanted, s - 1, x)
    return SampleResult(images=x.clamp(-1, 1), trajectory=trajectory)


def cold_sample(
    restorer: nn.Module,
    cold: ColdDiffusion,
    n: int,
    *,
    algorithm: str = "alg2",
    seed: int = 0,
    clip_x0: bool = True,
    return_steps: Iterable[int] = (),
    progress: bool = False,
    prior: str | None = None,
    perturb: float = 0.0,
) -> SampleResult:
    """Unconditional generation: a fresh state per image, x_T from the data-free endpoint, then the sampler.

    ``perturb`` > 0 adds Gaussian noise of that standard deviation to x_T (Bansal et al.'s symmetry breaking for
    endpoints that carry little information). The state is unchanged, so Algorithm 2, whose updates only add
    differences D(x0_hat, s - 1) - D(x0_hat, s), carries the added noise into x_0 unchanged.

    ``prior``: for degradations with a choice of endpoint prior (``with_prior``, e.g. the traced palimpsest's
    :data:`~mnist_diffusion.cold.trace_prior.TRACE_PRIORS`), the one to draw states from; None keeps the
    degradation's own. Returns images float [n, 1, 28, 28] clamped to [-1, 1]. The only randomness is the state
    (x_T is a function of it) and the perturbation, drawn in that order from one generator seeded with ``seed`` on
    the process's device."""
    generator = make_generator(seed, cold.device)
    degradation = cold.degradation
    if prior is not None:
        if not hasattr(degradation, "with_prior"):
            raise UserError(f"the {degradation.name} degradation has no choice of endpoint prior (got prior={prior!r})")
        try:
            degradation = degradation.with_prior(prior)
        except ValueError as error:
            raise UserError(str(error)) from None
    state = degradation.sample_state(n, generator, cold.device)
    x_T = degradation.endpoint(state)
    if perturb:
        x_T = x_T + perturb * torch.randn(x_T.shape, generator=generator, device=x_T.device)
    return cold_reverse(restorer, cold, x_T, state, cold.T, algorithm=algorithm, clip_x0=clip_x0,
                        return_steps=return_steps, progress=progress)


def cold_restore(
    restorer: nn.Module,
    cold: ColdDiffusion,
    images: Tensor,
    t_start: int,
    *,
    algorithm: str = "alg2",
    seed: int = 0,
    clip_x0: bool = True,
    return_steps: Iterable[int] = (),
) -> tuple[Tensor, SampleResult]:
    """Conditional restoration: degrade real images to step t_start, then restore them. Returns (degraded, result)."""
    generator = make_generator(seed, cold.device)
    images = images.to(cold.device)
    state = cold.degradation.sample_state(images.shape[0], generator, cold.device)
    t = torch.full((images.shape[0],), t_start, device=cold.device, dtype=torch.long)
    degraded = cold.degradation.degrade(images, t, state)
    result = cold_reverse(restorer, cold, degraded, state, t_start, algorithm=algorithm, clip_x0=clip_x0,
                          return_steps=return_steps)
    return degraded, result
