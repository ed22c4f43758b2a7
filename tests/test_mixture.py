"""The Gaussian mixture (EM fit, density, sampling) against known mixtures and torch.distributions, and the traced
palimpsest's parametric trace prior built on it."""

import pytest
import torch
from torch.distributions import MultivariateNormal

from mnist_diffusion.cold.degradations import make_degradation
from mnist_diffusion.errors import UserError
from mnist_diffusion.cold.mixture import GaussianMixture, fit_gaussian_mixture
from mnist_diffusion.cold import cold_sample

TRUE = GaussianMixture(
    weights=torch.tensor([0.3, 0.7], dtype=torch.float64),
    means=torch.tensor([[-3.0, 0.0], [2.0, 1.0]], dtype=torch.float64),
    covariances=torch.tensor([[[1.0, 0.5], [0.5, 1.0]], [[0.5, -0.2], [-0.2, 0.3]]], dtype=torch.float64),
)


def test_log_prob_matches_torch_distributions():
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    components = torch.stack([MultivariateNormal(m, c).log_prob(z) for m, c in zip(TRUE.means, TRUE.covariances)])
    expected = torch.logsumexp(components + TRUE.weights.log()[:, None], dim=0)
    torch.testing.assert_close(TRUE.log_prob(z), expected)


def test_samples_have_the_mixtures_moments_and_are_seeded():
    z = TRUE.sample(200_000, torch.Generator().manual_seed(1))
    # moments by hand for two components: E z = sum pi mu; Cov = sum pi (Sigma + mu mu^T) - E z E z^T
    mean = 0.3 * TRUE.means[0] + 0.7 * TRUE.means[1]
    second = sum(w * (c + torch.outer(m, m)) for w, m, c in zip(TRUE.weights, TRUE.means, TRUE.covariances))
    torch.testing.assert_close(TRUE.moments()[0], mean)
    torch.testing.assert_close(TRUE.moments()[1], second - torch.outer(mean, mean))
    torch.testing.assert_close(z.mean(dim=0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), second - torch.outer(mean, mean), atol=0.03, rtol=0)
    assert torch.equal(TRUE.sample(5, torch.Generator().manual_seed(3)), TRUE.sample(5, torch.Generator().manual_seed(3)))


def test_em_recovers_a_known_mixture_and_never_lowers_the_likelihood():
    z = TRUE.sample(20_000, torch.Generator().manual_seed(2))
    fitted, history = fit_gaussian_mixture(z, 2, seed=0)
    order = fitted.means[:, 0].argsort()  # components come back in any order
    torch.testing.assert_close(fitted.weights[order], TRUE.weights, atol=0.01, rtol=0)
    torch.testing.assert_close(fitted.means[order], TRUE.means, atol=0.05, rtol=0)
    torch.testing.assert_close(fitted.covariances[order], TRUE.covariances, atol=0.05, rtol=0)
    assert all(b >= a - 1e-10 for a, b in zip(history, history[1:])), "EM's likelihood is monotone"
    assert history[-1] == pytest.approx(fitted.log_prob(z).mean().item(), abs=1e-6)
    assert history[-1] > TRUE.log_prob(z).mean().item() - 1e-3  # the ML fit is at least as likely as the truth


def test_em_rejects_more_components_than_points():
    with pytest.raises(ValueError, match="components"):
        fit_gaussian_mixture(torch.zeros(3, 2), 4)


@pytest.fixture()
def traced(mnist_root):
    """The traced palimpsest with the first 3,000 training traces standing in for all 60,000 (a fast fit)."""
    op = make_degradation("palimpsest_trace", 50)
    traces = op.training_traces()
    op._cache["traces"] = traces[:3_000]
    return op


def test_mixture_prior_draws_new_traces_like_the_training_ones(traced):
    mixed = traced.with_prior("mixture")
    assert (traced.prior, mixed.prior) == ("training", "mixture")
    state = mixed.sample_state(4_000, torch.Generator().manual_seed(0))
    drawn, train = state["trace"].flatten(1), traced.training_traces().flatten(1)
    assert state["trace"].shape == (4_000, 1, 4, 4) and drawn.min() >= 0 and drawn.max() <= 1
    exact = "donot_use_mm_for_euclid_dist"
    assert torch.cdist(drawn[:200], train, compute_mode=exact).min() > 1e-4, "not copies of training traces"
    torch.testing.assert_close(drawn.mean(dim=0), train.mean(dim=0), atol=0.02, rtol=0)
    torch.testing.assert_close(drawn.std(dim=0), train.std(dim=0), atol=0.03, rtol=0)
    assert mixed.trace_mixture() is traced.trace_mixture(), "the fit is shared, not repeated per copy"
    assert torch.equal(mixed.sample_state(8, torch.Generator().manual_seed(5))["trace"],
                       mixed.sample_state(8, torch.Generator().manual_seed(5))["trace"])


def test_unknown_prior_and_prior_without_a_choice_are_errors(traced):
    with pytest.raises(ValueError, match="unknown trace prior 'gmm'"):
        traced.with_prior("gmm")
    from mnist_diffusion.training.build import build_network
    from mnist_diffusion.cold.restoration import ColdDiffusion
    from mnist_diffusion.training.config import load_config
    from mnist_diffusion.paths import repo_root

    config = load_config(repo_root() / "configs" / "cold_blur.yaml", profile="smoke")
    with pytest.raises(UserError, match="blur degradation has no choice of endpoint prior"):
        cold_sample(build_network(config), ColdDiffusion(make_degradation("blur", 40)), 2, prior="mixture")
