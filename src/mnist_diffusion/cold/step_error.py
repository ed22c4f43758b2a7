"""How far Algorithms 1 and 2 land from the exact degradation trajectory, measured on test digits.

For a digit x with its own (seeded) state, the exact trajectory is x_s = D(x, s), s = T..0. Two measurements:

* **one step** (local): hand a sampler the exact x_s and the restorer's estimate x0_hat = R(x_s, s); its step
  lands at D(x0_hat, s - 1) (Algorithm 1) or x_s - D(x0_hat, s) + D(x0_hat, s - 1) (Algorithm 2), where the exact
  step is D(x, s - 1). For Bansal et al.'s form D(x, t) = x + sigma_t e, Algorithm 2's step is exact whatever
  x0_hat is (the x0_hat terms cancel); for an operator linear in x (blur) its error is
  (D_s - D_{s-1})(x - x0_hat), the step's change of the operator applied to the restorer's error, small when
  consecutive steps differ little; for the palimpsest's max-compositing the change from s to s - 1 depends on
  which ink is brighter, so a wrong x0_hat moves it wherever x0_hat and x disagree about ink.
* **trajectory** (global): run each sampler from the exact x_{t_start} with the digit's state and compare its
  x_s with D(x, s) at every s, so that errors that compound along the run show.
* **generation residual**: in unconditional generation Algorithm 2 ends at x_0 = x_1 - D(x0_hat_1, 1) + x0_hat_1, so
  its sample differs from its own last estimate x0_hat_1 = R(x_1, 1) by the residual r = x_1 - D(x0_hat_1, 1): the
  sum of what every earlier estimate wrote and later ones did not take back (Algorithm 1's r is 0 by definition).
  How large r is, and how much of it is one image shared by all samples, says what Algorithm 2 adds.

Errors are mean absolute pixel differences in [-1, 1] units, averaged over images, one value per step s.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mnist_diffusion.cold.degradations.base import State
from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.cold.samplers import cold_reverse, cold_sample


def _steps(t: int, n: int, device: torch.device) -> Tensor:
    return torch.full((n,), t, device=device, dtype=torch.long)


def _mean_abs(a: Tensor, b: Tensor) -> float:
    return (a - b).abs().mean().item()


@torch.inference_mode()
def one_step_errors(restorer: nn.Module, cold: ColdDiffusion, x: Tensor, state: State) -> dict[str, list[float]]:
    """The one-step errors of Algorithms 1 and 2 from the exact x_s, and the restorer's own error |x0_hat - x|,
    for s = T, T - 1, ..., 1 (lists of T floats, in that order). x: float [n, 1, 28, 28] in [-1, 1]; ``state``:
    the images' degradation state (held fixed along the trajectory, as the samplers hold it)."""
    degrade, n = cold.degradation.degrade, x.shape[0]
    errors: dict[str, list[float]] = {"s": [], "alg1": [], "alg2": [], "restorer": []}
    for s in range(cold.T, 0, -1):
        now, prev = _steps(s, n, x.device), _steps(s - 1, n, x.device)
        x_s, exact = degrade(x, now, state), degrade(x, prev, state)
        x0_hat = cold.restore(restorer, x_s, now)
        alg1 = degrade(x0_hat, prev, state)
        alg2 = x_s - degrade(x0_hat, now, state) + alg1
        errors["s"].append(s)
        errors["alg1"].append(_mean_abs(alg1, exact))
        errors["alg2"].append(_mean_abs(alg2, exact))
        errors["restorer"].append(_mean_abs(x0_hat, x))
    return errors


@torch.inference_mode()
def trajectory_errors(restorer: nn.Module, cold: ColdDiffusion, x: Tensor, state: State,
                      t_start: int | None = None) -> dict[str, list[float]]:
    """Each sampler run from the exact x_{t_start} (default T) with the images' state: |x_s - D(x, s)| for
    s = t_start - 1, ..., 0 (lists in that order; the last entry is the restoration error of the run)."""
    t_start = t_start or cold.T
    n = x.shape[0]
    steps = list(range(t_start - 1, -1, -1))
    exact = {s: cold.degradation.degrade(x, _steps(s, n, x.device), state) for s in steps}
    x_start = cold.degradation.degrade(x, _steps(t_start, n, x.device), state)
    errors: dict[str, list[float]] = {"s": steps}
    for algorithm in ("alg1", "alg2"):
        run = cold_reverse(restorer, cold, x_start, state, t_start, algorithm=algorithm, return_steps=steps)
        errors[algorithm] = [_mean_abs(run.trajectory[s].clamp(-1, 1) if s == 0 else run.trajectory[s], exact[s])
                             for s in steps]
    return errors


@torch.inference_mode()
def generation_residual(restorer: nn.Module, cold: ColdDiffusion, n: int, seed: int = 0,
                        prior: str | None = None) -> dict[str, float]:
    """Algorithm 2's residual r = x_0 - x0_hat_1 over ``n`` unconditional samples (seeded; ``prior`` as in
    :func:`cold_sample`): its mean absolute value per pixel, the same for the mean residual image (the part every
    sample shares), and for comparison the mean absolute pixel value of the last estimates' ink change
    |x0_hat_1 - x_1|. Pixels in [-1, 1] units; x_0 before the final clamp."""
    from mnist_diffusion.evaluation.features import mean_pairwise_l1

    run = cold_sample(restorer, cold, n, algorithm="alg2", seed=seed, prior=prior, return_steps=(1, 0))
    x_1, x_0 = run.trajectory[1], run.trajectory[0]
    x0_hat = cold.restore(restorer, x_1, _steps(1, n, x_1.device))
    residual = x_0 - x0_hat
    return {"n": n, "residual_l1": residual.abs().mean().item(),
            "shared_residual_l1": residual.mean(dim=0).abs().mean().item(),
            "residual_pairwise_l1": mean_pairwise_l1(residual.cpu()),
            "last_step_l1": (x0_hat - x_1).abs().mean().item()}
