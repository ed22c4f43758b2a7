"""The Gaussian mixture (EM fit, density, sampling) against known mixtures and torch.distributions, and the traced
palimpsest's trace priors: the parametric one built on it, and how the operator uses a prior it is given."""

import pytest
import torch
from torch.distributions import MultivariateNormal

from mnist_diffusion.cold import cold_sample
from mnist_diffusion.cold.degradations import TracedPalimpsest, make_degradation, random_scribbles
from mnist_diffusion.cold.mixture import GaussianMixture, fit_gaussian_mixture
from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.cold.trace_prior import MixtureTraces, TracePrior, TrainingTraces, load_trace_prior, training_traces
from mnist_diffusion.errors import UserError
from mnist_diffusion.models import UNet

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


@pytest.fixture(scope="module")
def small_traces(mnist_root):
    """The first 3,000 training traces, standing in for all 60,000 (a fast fit)."""
    return training_traces()[:3_000]


@pytest.fixture(scope="module")
def small_priors(small_traces):
    """(training prior, mixture prior) over the 3,000 traces."""
    return TrainingTraces(small_traces), MixtureTraces.fit(small_traces)


@pytest.fixture()
def traced(small_priors):
    """The traced palimpsest given the small training prior."""
    return TracedPalimpsest(T=50, prior=small_priors[0])


def test_mixture_prior_draws_new_traces_like_the_training_ones(traced, small_priors):
    training, mixture = small_priors
    mixed = traced.with_prior(mixture)
    assert (traced.prior, mixed.prior) == ("training", "mixture") and mixed.trace_prior is mixture
    state = mixed.sample_state(4_000, torch.Generator().manual_seed(0))
    drawn, train = state["trace"].flatten(1), training.traces.flatten(1)
    assert state["trace"].shape == (4_000, 1, 4, 4) and drawn.min() >= 0 and drawn.max() <= 1
    exact = "donot_use_mm_for_euclid_dist"
    assert torch.cdist(drawn[:200], train, compute_mode=exact).min() > 1e-4, "not copies of training traces"
    torch.testing.assert_close(drawn.mean(dim=0), train.mean(dim=0), atol=0.02, rtol=0)
    torch.testing.assert_close(drawn.std(dim=0), train.std(dim=0), atol=0.03, rtol=0)
    assert torch.equal(mixed.sample_state(8, torch.Generator().manual_seed(5))["trace"],
                       mixed.sample_state(8, torch.Generator().manual_seed(5))["trace"])


@pytest.mark.parametrize("which", ["training", "mixture"])
def test_states_draw_the_scribble_then_the_trace_from_one_stream(small_priors, which):
    """The order of draws fixes the images a seed gives (and so the committed results): the scribble first, then
    the prior's trace, i ~ U{0..N-1} for the training prior and (component, noise) for the mixture, clipped."""
    prior = dict(zip(("training", "mixture"), small_priors))[which]
    state = TracedPalimpsest(T=50, prior=prior).sample_state(6, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    ink, pen_time = random_scribbles(6, generator)
    if which == "training":
        expected = prior.traces[torch.randint(0, len(prior.traces), (6,), generator=generator)]
    else:
        expected = prior.mixture.sample(6, generator).clamp(0, 1).float().view(6, 1, 4, 4)
    assert torch.equal(state["ink"], ink) and torch.equal(state["pen_time"], pen_time)
    assert torch.equal(state["trace"], expected)


class CountingPrior(TracePrior):
    """A stand-in prior: fixed traces, and a record of each draw."""

    name = "counting"

    def __init__(self) -> None:
        super().__init__(cell=7)
        self.calls: list[int] = []

    def sample(self, n, generator=None, device="cpu"):
        self.calls.append(n)
        return torch.full((n, 1, 4, 4), 0.25, device=device)


def test_the_operator_draws_from_the_prior_it_is_given_and_fits_nothing(monkeypatch, small_priors):
    """Loading training images and fitting EM belong to the prior: an operator given a prior object never does
    either, however it is used (states, endpoints, degradation, a copy with another prior)."""
    from mnist_diffusion import data
    from mnist_diffusion.cold import mixture as mixture_module, trace_prior

    def forbidden(*args, **kwargs):
        raise AssertionError("the operator loaded training images or fitted a mixture")

    for module, name in [(trace_prior, "fit_gaussian_mixture"), (mixture_module, "fit_gaussian_mixture"),
                         (trace_prior, "training_traces"), (data, "mnist_tensors")]:
        monkeypatch.setattr(module, name, forbidden)
    counting = CountingPrior()
    op = TracedPalimpsest(T=50, prior=counting)
    state = op.sample_state(5, torch.Generator().manual_seed(0))
    assert counting.calls == [5] and torch.equal(state["trace"], torch.full((5, 1, 4, 4), 0.25))
    op.endpoint(state)
    op.degrade(torch.zeros(5, 1, 28, 28), torch.full((5,), 25), state)
    for prior in small_priors:
        assert op.with_prior(prior).sample_state(3, torch.Generator().manual_seed(1))["trace"].shape == (3, 1, 4, 4)
    assert op.trace_prior is counting and counting.calls == [5]


def test_named_priors_are_built_once_per_process(monkeypatch, small_traces):
    """A prior given by name (``with_prior("mixture")``, ``sample --prior mixture``) is built by load_trace_prior,
    once per process: every operator and copy shares the one fit."""
    from mnist_diffusion.cold import trace_prior

    loads = []
    monkeypatch.setattr(trace_prior, "training_traces", lambda cell=7: loads.append(cell) or small_traces)
    trace_prior._training_prior.cache_clear()
    trace_prior._mixture_prior.cache_clear()
    try:
        first = make_degradation("palimpsest_trace", 50)
        assert loads == [], "building the operator loads nothing"
        mixed = first.with_prior("mixture")
        assert isinstance(mixed.trace_prior, MixtureTraces) and loads == [7]
        again = make_degradation("palimpsest_trace", 20).with_prior("mixture")
        assert again.trace_prior is mixed.trace_prior is load_trace_prior("mixture")
        assert first.trace_prior is load_trace_prior("training") and loads == [7]
        assert first.prior == "training" and mixed.describe()["prior"] == "mixture"
    finally:
        trace_prior._training_prior.cache_clear()
        trace_prior._mixture_prior.cache_clear()


def test_unknown_prior_and_prior_without_a_choice_are_errors(traced):
    with pytest.raises(ValueError, match="unknown trace prior 'gmm'"):
        traced.with_prior("gmm")
    with pytest.raises(ValueError, match="cell 14 does not fit an operator of cell 7"):
        traced.with_prior(TrainingTraces(torch.zeros(3, 1, 2, 2)))
    with pytest.raises(UserError, match="unknown trace prior 'gmm'"):
        cold_sample(UNet(channels=(8, 16), groups=4), ColdDiffusion(traced), 2, prior="gmm")
    with pytest.raises(UserError, match="blur degradation has no choice of endpoint prior"):
        cold_sample(UNet(channels=(8, 16), groups=4), ColdDiffusion(make_degradation("blur", 40)), 2, prior="mixture")


def test_held_out_split_is_seeded_disjoint_and_complete():
    from mnist_diffusion.cold.mixture import held_out_split

    z = torch.arange(60.0).reshape(30, 2)
    fit, held = held_out_split(z, validation_share=1 / 6, seed=3)
    again, _ = held_out_split(z, validation_share=1 / 6, seed=3)
    assert fit.shape == (25, 2) and held.shape == (5, 2) and torch.equal(fit, again)
    rows = {tuple(r) for r in torch.cat([fit, held]).tolist()}
    assert rows == {tuple(r) for r in z.double().tolist()}


def test_held_out_likelihood_prefers_the_true_number_of_components():
    """Points from the two-component TRUE mixture: held-out log-likelihood rises from one component to two and
    gains nothing real beyond; each score is the fitted mixture's mean log_prob on its part of the split."""
    from mnist_diffusion.cold.mixture import held_out_log_likelihood, held_out_split

    z = TRUE.sample(3_000, torch.Generator().manual_seed(4))
    scores = held_out_log_likelihood(z, [1, 2, 6])
    assert scores[2]["validation"] > scores[1]["validation"] + 0.3
    assert scores[6]["validation"] < scores[2]["validation"] + 0.02  # more components only fit the noise
    assert scores[6]["fit"] >= scores[2]["fit"] - 1e-9
    fit_points, held = held_out_split(z)
    mixture, _ = fit_gaussian_mixture(fit_points, 2)
    assert scores[2]["validation"] == pytest.approx(mixture.log_prob(held).mean().item())


def test_fitted_mixtures_are_cached_on_disk_by_data_and_size(tmp_path, monkeypatch):
    from mnist_diffusion.cold import trace_prior
    from mnist_diffusion.paths import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    traces = TRUE.sample(500, torch.Generator().manual_seed(5)).float()
    first = trace_prior.fitted_mixture(traces, 2)
    assert len(list((tmp_path / "trace_prior").glob("mixture_*_k2_*.pt"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("refitted although cached")

    monkeypatch.setattr(trace_prior, "fit_gaussian_mixture", refuse)
    second = trace_prior.fitted_mixture(traces.double(), 2)  # the same points in another dtype: the same file
    assert torch.equal(first.means, second.means) and torch.equal(first.covariances, second.covariances)
    with pytest.raises(AssertionError, match="refitted"):
        trace_prior.fitted_mixture(traces[:400], 2)  # other data: another file
