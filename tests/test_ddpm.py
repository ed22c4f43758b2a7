"""The epsilon-prediction objective and the reverse-process samplers."""

import math

import pytest
import torch
from oracles import GaussianDataOracle

from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.models import UNet
from mnist_diffusion.diffusion import ancestral_sample, ddim_sample, ddim_timesteps
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


def test_predict_x0_inverts_q_sample(diffusion, digit):
    eps = torch.randn(8, 1, 28, 28)
    t = torch.tensor([1, 5, 50, 200, 400, 600, 800, 999])
    z = diffusion.q_sample(digit.expand(8, -1, -1, -1), t, eps)
    torch.testing.assert_close(diffusion.predict_x0(z, t, eps), digit.expand(8, -1, -1, -1), atol=2e-3, rtol=0)
    torch.testing.assert_close(diffusion.predict_eps(z, t, digit.expand(8, -1, -1, -1)), eps, atol=1e-4, rtol=0)


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


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_sampler_shapes_range_seeding_and_trajectory(sampler, small_net):
    diffusion = GaussianDiffusion(make_schedule("cosine", 40))

    def run(seed):
        if sampler == "ancestral":
            return ancestral_sample(small_net, diffusion, 5, seed=seed, return_steps=[40, 20, 0])
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


def test_clip_x0_keeps_the_estimate_in_range(diffusion):
    """With clipping, the x0 estimate the sampler uses never leaves [-1, 1], even for a wild network."""
    wild = lambda z, t: 5 * torch.ones_like(z)  # noqa: E731
    z = torch.randn(3, 1, 28, 28)
    t = torch.full((3,), 10)
    _, x0 = diffusion.denoise(wild, z, t, clip_x0=True)
    assert x0.abs().max() <= 1
    eps, x0_raw = diffusion.denoise(wild, z, t, clip_x0=False)
    assert x0_raw.abs().max() > 1
    assert math.isclose(eps.mean().item(), 5.0)
