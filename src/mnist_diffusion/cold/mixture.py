"""A Gaussian mixture p(z) = sum_k pi_k N(z; mu_k, Sigma_k) with full covariances, fitted by expectation-maximisation.

Used as a parametric prior for a cold model's data-free endpoint: Bansal et al. (2022) draw the blur endpoint's
colour from a mixture fitted to the training images' mean colours; the traced palimpsest can draw its 16 trace
numbers from one fitted to the training digits' traces instead of picking a training digit's trace
(:class:`~mnist_diffusion.cold.trace_prior.MixtureTraces`). Everything is batched over points and components (no Python loop over data).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class GaussianMixture:
    """K components in d dimensions: ``weights`` [K] (sum 1), ``means`` [K, d], ``covariances`` [K, d, d]."""

    weights: Tensor
    means: Tensor
    covariances: Tensor

    def to(self, device: torch.device | str) -> GaussianMixture:
        return GaussianMixture(self.weights.to(device), self.means.to(device), self.covariances.to(device))

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(z) for points z [n, d]: [n]."""
        return torch.logsumexp(self._log_joint(z), dim=1)

    def _log_joint(self, z: Tensor) -> Tensor:
        """log pi_k + log N(z_i; mu_k, Sigma_k): [n, K]."""
        chol = torch.linalg.cholesky(self.covariances)  # [K, d, d]
        diff = (z[None, :, :] - self.means[:, None, :]).transpose(1, 2)  # [K, d, n]
        white = torch.linalg.solve_triangular(chol, diff, upper=False)  # L^{-1} (z - mu)
        half_log_det = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(dim=1)  # [K]
        d = z.shape[1]
        log_normal = -0.5 * (white**2).sum(dim=1) - half_log_det[:, None] - 0.5 * d * math.log(2 * math.pi)
        return (torch.log(self.weights)[:, None] + log_normal).T

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n draws z ~ p: pick component k ~ pi, then z = mu_k + L_k e with e ~ N(0, I). Returns [n, d]."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=self.means.dtype, device=self.means.device)
        chol = torch.linalg.cholesky(self.covariances)[component]  # [n, d, d]
        return self.means[component] + (chol @ noise.unsqueeze(-1)).squeeze(-1)

    def moments(self) -> tuple[Tensor, Tensor]:
        """The mixture's mean [d] and covariance [d, d]: sum_k pi_k mu_k and
        sum_k pi_k (Sigma_k + mu_k mu_k^T) - mean mean^T."""
        mean = self.weights @ self.means
        second = torch.einsum("k,kij->ij", self.weights, self.covariances + self.means[:, :, None] * self.means[:, None, :])
        return mean, second - torch.outer(mean, mean)


def fit_gaussian_mixture(z: Tensor, components: int, *, iterations: int = 100, seed: int = 0,
                         regularisation: float = 1e-6, tolerance: float = 1e-7) -> tuple[GaussianMixture, list[float]]:
    """Maximum-likelihood mixture of ``components`` Gaussians for points z [n, d], by EM (float64 throughout).

    Starts from ``components`` distinct data points as means (drawn with ``seed``), the data's covariance for
    every component and equal weights. ``regularisation`` is added to each covariance's diagonal, as a floor
    for components that collapse onto few points. Stops after ``iterations`` or when the mean log-likelihood
    gains less than ``tolerance``. Returns (the mixture, the mean log-likelihood before each M-step); EM never
    lowers it, which the tests check."""
    z = z.detach().to(torch.float64).reshape(len(z), -1)
    n, d = z.shape
    if not 1 <= components <= n:
        raise ValueError(f"need 1 <= components <= {n} points, got {components}")
    generator = torch.Generator().manual_seed(seed)
    eye = torch.eye(d, dtype=torch.float64)
    centred = z - z.mean(dim=0)
    mixture = GaussianMixture(
        weights=torch.full((components,), 1.0 / components, dtype=torch.float64),
        means=z[torch.randperm(n, generator=generator)[:components]].clone(),
        covariances=(centred.T @ centred / n + regularisation * eye).expand(components, d, d).clone(),
    )
    history: list[float] = []
    for _ in range(iterations):
        log_joint = mixture._log_joint(z)  # E-step: responsibilities r_ik = p(k | z_i)
        log_evidence = torch.logsumexp(log_joint, dim=1, keepdim=True)
        history.append(log_evidence.mean().item())
        if len(history) > 1 and history[-1] - history[-2] < tolerance:
            break
        resp = torch.exp(log_joint - log_evidence)  # [n, K]
        counts = resp.sum(dim=0)  # M-step: weighted counts, means and covariances
        means = (resp.T @ z) / counts[:, None]
        diff = z[None, :, :] - means[:, None, :]  # [K, n, d]
        weighted = diff * resp.T[:, :, None]  # r_ik (z_i - mu_k)
        covariances = weighted.transpose(1, 2) @ diff / counts[:, None, None] + regularisation * eye
        mixture = GaussianMixture(weights=counts / n, means=means, covariances=covariances)
    return mixture, history


#: The held-out split of capacity selection: this share of the points, drawn with this seed, is held out.
HELD_OUT_SHARE, HELD_OUT_SEED = 1 / 6, 0


def held_out_split(z: Tensor, validation_share: float = HELD_OUT_SHARE,
                   seed: int = HELD_OUT_SEED) -> tuple[Tensor, Tensor]:
    """A seeded random split of points z [n, ...] into (fit points, validation points), flattened to [m, d] float64:
    the validation part is ``validation_share`` of them."""
    z = z.detach().to(torch.float64).reshape(len(z), -1)
    order = torch.randperm(len(z), generator=torch.Generator().manual_seed(seed))
    kept = len(z) - int(round(validation_share * len(z)))
    return z[order[:kept]], z[order[kept:]]


def held_out_log_likelihood(z: Tensor, candidates: list[int], *,
                            fit: Callable[[Tensor, int], GaussianMixture] | None = None,
                            validation_share: float = HELD_OUT_SHARE, seed: int = HELD_OUT_SEED,
                            progress: bool = False) -> dict[int, dict[str, float]]:
    """Capacity selection on held-out data: for each component count K in ``candidates``, the mean log-likelihood
    of a mixture fitted to the fit part of :func:`held_out_split` (by ``fit(points, K)``, default
    :func:`fit_gaussian_mixture`), on those points ("fit") and on the validation part ("validation"). The K with
    the highest validation value is the capacity the data support; the fit value only ever grows with K.
    Returns {K: {"fit", "validation"}}."""
    fit = fit or (lambda points, k: fit_gaussian_mixture(points, k)[0])
    fit_points, validation = held_out_split(z, validation_share, seed)
    scores = {}
    for k in candidates:
        mixture = fit(fit_points, k)
        scores[k] = {"fit": mixture.log_prob(fit_points).mean().item(),
                     "validation": mixture.log_prob(validation).mean().item()}
        if progress:
            print(f"K = {k}: fit {scores[k]['fit']:.3f}, validation {scores[k]['validation']:.3f}", flush=True)
    return scores
