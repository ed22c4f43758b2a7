"""The epsilon-prediction objective and the reverse-process samplers."""

import math

import pytest
import torch
from oracles import GaussianDataOracle

from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.models import UNet
from mnist_diffusion.diffusion import ancestral_sample, ddim_sample, ddim_timesteps
from mnist_diffusion.diffusion.dpm_solver import SOLVERS, dpm_solver_sample
from mnist_diffusion.diffusion.schedules import make_schedule


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(make_schedule("linear", 1000))


@pytest.fixture(scope="module")
def digit():
    torch.manual_seed(0)
    return torch.rand(1, 1, 28, 28) * 2 - 1


def test_t_is_uniform_on_one_to_T_including_T(diffusion):
    t = diffusion.sample_t(200_000, torch.Generator().manual_seed(0))
    assert t.min() == 1 and t.max() == diffusion.T
    counts = torch.bincount(t, minlength=diffusion.T + 1)[1:].double()
    assert counts.std() / counts.mean() < 0.15  # 200 per bin: relative spread ~ 1/sqrt(200) = 0.07


def test_objective_is_zero_for_the_exact_noise_predictor(diffusion, digit):
    """For a one-image data set the optimal g(z_t, t) is known; the loss must vanish, at every t."""
    oracle = GaussianDataOracle(diffusion, digit, s=0.0)
    loss = diffusion.loss(oracle, digit.expand(256, -1, -1, -1), torch.Generator().manual_seed(1))
    assert loss.item() < 1e-8
    # An off-by-one in time (the network told t-1 instead of t) must show up clearly against that zero.
    off_by_one = lambda z, t: oracle(z, (t - 1 / diffusion.T).clamp(min=1 / diffusion.T))  # noqa: E731
    assert diffusion.loss(off_by_one, digit.expand(256, -1, -1, -1), torch.Generator().manual_seed(1)) > 1e-5


@pytest.mark.parametrize("t", [1, 5, 50, 200, 400, 600, 800, 999])
def test_x0_at_inverts_q_sample(diffusion, digit, t):
    """x_hat = (z_t - sqrt(1 - alpha_t) eps) / sqrt(alpha_t) with the true eps gives back x (float32 rounding, which
    1 / sqrt(alpha_t) amplifies up to ~100x at t = 999)."""
    eps = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(t))
    x = digit.expand(8, -1, -1, -1)
    z = diffusion.q_sample(x, torch.full((8,), t), eps)
    torch.testing.assert_close(diffusion.x0_at(z, t, eps), x, atol=2e-3, rtol=0)


WILD = 20.0  # a network that answers eps_hat = 20 everywhere: x_hat far outside [-1, 1] from t = 100 on


def wild(z, t):
    return torch.full_like(z, WILD)


@pytest.mark.parametrize("t", [100, 500, 1000])
def test_eps_at_with_clipping_is_the_noise_of_the_clipped_estimate(diffusion, t):
    """eps_at is the network's output, or with clip_x0 the noise (z_t - sqrt(alpha_t) clip(x_hat)) / sqrt(1 - alpha_t)
    implied by x_hat clipped to [-1, 1]: checked against that formula in float64."""
    z = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(t))
    assert torch.equal(diffusion.eps_at(wild, z, t), torch.full_like(z, WILD))
    a = diffusion.schedule.alpha[t].item()
    x_hat = (z.double() - math.sqrt(1 - a) * WILD) / math.sqrt(a)
    assert x_hat.abs().min() > 1, "the clip must matter for this test to mean anything"
    expected = (z.double() - math.sqrt(a) * x_hat.clamp(-1, 1)) / math.sqrt(1 - a)
    torch.testing.assert_close(diffusion.eps_at(wild, z, t, clip_x0=True).double(), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_samplers_recover_a_single_image_data_set(diffusion, digit, sampler):
    oracle = GaussianDataOracle(diffusion, digit, s=0.0)
    if sampler == "ancestral":
        out = ancestral_sample(oracle, diffusion, 4, seed=0, clip_x0=False).images
    else:
        out = ddim_sample(oracle, diffusion, 4, steps=20, seed=0, clip_x0=False).images
    torch.testing.assert_close(out, digit.expand(4, -1, -1, -1), atol=1e-3, rtol=0)


@pytest.mark.parametrize("sampler, variance", [("ancestral", "beta"), ("ancestral", "posterior"), ("ddim", None)])
def test_samplers_reproduce_a_gaussian_data_distribution(diffusion, sampler, variance):
    """With the exact noise predictor for data N(mu, s^2), samples must have mean mu and std s."""
    mu, s = 0.3, 0.2
    oracle = GaussianDataOracle(diffusion, torch.tensor(mu), s)
    if sampler == "ancestral":
        out = ancestral_sample(oracle, diffusion, 64, seed=3, variance=variance, clip_x0=False).images
    else:
        out = ddim_sample(oracle, diffusion, 64, steps=1000, seed=3, clip_x0=False).images
    assert abs(out.mean().item() - mu) < 0.01  # 50k draws: standard error 0.001
    assert abs(out.std().item() - s) < 0.02 * s + 0.003


def test_ddim_with_eta_one_over_all_steps_is_ancestral_with_posterior_variance():
    diffusion = GaussianDiffusion(make_schedule("linear", 50, 1e-3, 0.2))
    torch.manual_seed(0)
    net = UNet(channels=(8, 16), groups=4).eval()
    a = ancestral_sample(net, diffusion, 6, seed=11, variance="posterior").images
    b = ddim_sample(net, diffusion, 6, steps=50, eta=1.0, seed=11).images
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return UNet(channels=(8, 16), groups=4).eval()


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "2m", "sde-2m"])
def test_sampler_shapes_range_seeding_and_trajectory(sampler, small_net):
    diffusion = GaussianDiffusion(make_schedule("cosine", 40))

    def run(seed):
        if sampler == "ancestral":
            return ancestral_sample(small_net, diffusion, 5, seed=seed, return_steps=[40, 20, 0])
        if sampler in SOLVERS:
            return dpm_solver_sample(small_net, diffusion, 5, steps=8, solver=sampler, seed=seed,
                                     return_steps=[40, 20, 0])
        return ddim_sample(small_net, diffusion, 5, steps=8, seed=seed, eta=0.5, return_steps=[40, 20, 0])

    first, again, other = run(1), run(1), run(2)
    assert first.images.shape == (5, 1, 28, 28) and first.images.dtype == torch.float32
    assert first.images.min() >= -1 and first.images.max() <= 1
    assert torch.equal(first.images, again.images)
    assert not torch.allclose(first.images, other.images)
    assert sorted(first.trajectory) == [0, 20, 40]
    assert first.trajectory[40].std() > 0.8  # z_T is standard normal noise
    torch.testing.assert_close(first.trajectory[0].clamp(-1, 1), first.images)


def test_ddim_timesteps():
    assert ddim_timesteps(1000, 4).tolist() == [1000, 750, 500, 250, 0]
    assert ddim_timesteps(10, 10).tolist() == list(range(10, -1, -1))
    with pytest.raises(UserError):
        ddim_timesteps(10, 11)


def test_clipping_x0_keeps_cosine_ddim_on_the_data_despite_a_small_noise_error(digit):
    """A network 0.02 off the exact noise, whose outputs stay in the range it saw in training (|eps_hat| <= 4).
    At the first step x_hat = (z - sqrt(1 - alpha_T) eps_hat) / sqrt(alpha_T) multiplies the error by
    1 / sqrt(alpha_T) ~ 20,000 under the cosine schedule; unclipped, z leaves the range the network can correct
    and the samples end saturated. With the default clip they land on the digit."""
    diffusion = GaussianDiffusion(make_schedule("cosine", 1000))
    exact = GaussianDataOracle(diffusion, digit, s=0.0)
    network = lambda z, t: (exact(z, t) + 0.02).clamp(-4, 4)  # noqa: E731
    clipped = ddim_sample(network, diffusion, 8, steps=50, seed=0).images
    unclipped = ddim_sample(network, diffusion, 8, steps=50, seed=0, clip_x0=False).images
    assert (clipped - digit).abs().mean() < 0.01
    assert (unclipped - digit).abs().mean() > 0.5


def test_ddim_clip_keeps_the_estimate_it_steps_with_in_range(diffusion):
    """With clipping, the x_hat that DDIM uses never leaves [-1, 1], even for a wild network. A single DDIM step
    from T to 0 (eta = 0) lands on z_0 = sqrt(alpha_0) x_hat + sqrt(1 - alpha_0) eps_hat = x_hat exactly, so the
    unclamped z_0 of the trajectory is the estimate itself."""
    clipped = ddim_sample(wild, diffusion, 3, steps=1, seed=0, return_steps=[0]).trajectory[0]
    unclipped = ddim_sample(wild, diffusion, 3, steps=1, seed=0, clip_x0=False, return_steps=[0]).trajectory[0]
    # x_hat(eps_at) round-trips through eps and back: float32 rounding of z (~3e-7) times 1 / sqrt(alpha_T) (~150).
    assert clipped.abs().max() <= 1 + 1e-3
    assert unclipped.abs().min() > 1_000  # (z - sqrt(1 - alpha_T) 20) / sqrt(alpha_T) ~ -3,100 +- 160 |z|


@pytest.mark.parametrize("clip_x0", [True, False])
def test_an_ancestral_step_is_the_posterior_mean_at_the_estimate_plus_noise(clip_x0):
    """z_{t-1} = mu + sigma_t eps, mu the mean of q(z_{t-1} | z_t, x) at x = x_hat (clipped to [-1, 1] with clip_x0):
    mu = sqrt(alpha_{t-1}) beta_t / (1 - alpha_t) x + sqrt(1 - beta_t) (1 - alpha_{t-1}) / (1 - alpha_t) z_t, computed
    here in float64 from the sampler's own random stream (z_T, then the step's eps), for a wild network."""
    T, seed = 10, 4
    diffusion = GaussianDiffusion(make_schedule("linear", T, 1e-3, 0.2))
    out = ancestral_sample(wild, diffusion, 3, seed=seed, clip_x0=clip_x0, return_steps=[T - 1]).trajectory[T - 1]
    generator = torch.Generator().manual_seed(seed)
    z_T = torch.randn(3, 1, 28, 28, generator=generator).double()
    eps = torch.randn(3, 1, 28, 28, generator=generator).double()
    alpha, beta = diffusion.schedule.alpha, diffusion.schedule.beta
    x_hat = (z_T - math.sqrt(1 - alpha[T]) * WILD) / math.sqrt(alpha[T])
    assert x_hat.abs().min() > 1, "the clip must matter for this test to mean anything"
    x = x_hat.clamp(-1, 1) if clip_x0 else x_hat
    mu = (math.sqrt(alpha[T - 1]) * beta[T] / (1 - alpha[T]) * x
          + math.sqrt(1 - beta[T]) * (1 - alpha[T - 1]) / (1 - alpha[T]) * z_T)
    torch.testing.assert_close(out.double(), mu + math.sqrt(beta[T]) * eps, atol=1e-5, rtol=1e-5)


class VFromEps(torch.nn.Module):
    """A v-predicting network built from an eps-predicting one: v = (eps - sqrt(1 - alpha_t) z_t) / sqrt(alpha_t)."""

    def __init__(self, eps_net, diffusion: GaussianDiffusion) -> None:
        super().__init__()
        self.eps_net, self.diffusion = eps_net, diffusion

    def forward(self, z, t_unit):
        alpha = self.diffusion.alpha[torch.round(t_unit * self.diffusion.T).long()].view(-1, 1, 1, 1)
        return (self.eps_net(z, t_unit) - (1 - alpha).sqrt() * z) / alpha.sqrt()


def _draws(diffusion, batch: int, seed: int):
    """The (t, eps) that ``diffusion.loss`` draws from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    t = diffusion.sample_t(batch, generator)
    return t, torch.randn(batch, 1, 28, 28, generator=generator)


def test_v_prediction_is_exact_for_the_exact_v_and_samples_the_gaussian_data():
    """The exact v-predictor (from the Gaussian oracle) has zero v-loss on a one-image data set, and sampling
    through eps_at's v -> eps conversion reproduces N(mu, s^2) data, as the eps oracle does."""
    linear = make_schedule("linear", 1000)
    v_diffusion = GaussianDiffusion(linear, prediction="v")
    torch.manual_seed(0)
    digit = torch.rand(1, 1, 28, 28) * 2 - 1
    exact_v = VFromEps(GaussianDataOracle(v_diffusion, digit, s=0.0), v_diffusion)
    assert v_diffusion.loss(exact_v, digit.expand(256, -1, -1, -1), torch.Generator().manual_seed(1)).item() < 1e-6
    mu, s = 0.3, 0.2
    v_oracle = VFromEps(GaussianDataOracle(v_diffusion, torch.tensor(mu), s), v_diffusion)
    out = ddim_sample(v_oracle, v_diffusion, 64, steps=1000, seed=3, clip_x0=False).images
    assert abs(out.mean().item() - mu) < 0.01 and abs(out.std().item() - s) < 0.02 * s + 0.003


@pytest.mark.parametrize("prediction, gamma", [("eps", 0.0), ("v", 0.0), ("eps", 5.0), ("v", 5.0)])
def test_loss_variants_are_the_x_loss_with_their_snr_weights(prediction, gamma):
    """Every variant is a weighted x-loss: per image, w(SNR_t) || x - x_hat ||^2 with w = SNR (eps), SNR + 1 (v),
    min(SNR, gamma) (min-SNR-gamma, either prediction); checked in float64 for a network that is not exact."""
    diffusion = GaussianDiffusion(make_schedule("linear", 1000), prediction=prediction, min_snr_gamma=gamma)
    net = UNet(channels=(8, 16), groups=4).eval()
    torch.manual_seed(2)
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        loss = diffusion.loss(net, x, torch.Generator().manual_seed(7)).item()
        t, eps = _draws(diffusion, 16, 7)
        alpha = diffusion.schedule.alpha[t].view(-1, 1, 1, 1)
        z = (alpha.sqrt() * x + (1 - alpha).sqrt() * eps).float()
        out = net(z, t.float() / 1000).double()
    eps_hat = out if prediction == "eps" else alpha.sqrt() * out + (1 - alpha).sqrt() * z
    x_hat = (z - (1 - alpha).sqrt() * eps_hat) / alpha.sqrt()
    snr = (alpha / (1 - alpha)).view(-1)
    weight = snr.clamp(max=gamma) if gamma else snr + (prediction == "v")
    expected = (weight * (x_hat - x).square().mean(dim=(1, 2, 3))).mean().item()
    assert loss == pytest.approx(expected, rel=1e-4)


def test_bad_prediction_and_gamma_are_refused():
    with pytest.raises(ValueError, match="prediction must be one of"):
        GaussianDiffusion(make_schedule("linear", 10), prediction="x0")
    with pytest.raises(ValueError, match="min_snr_gamma must be >= 0"):
        GaussianDiffusion(make_schedule("linear", 10), min_snr_gamma=-1.0)
