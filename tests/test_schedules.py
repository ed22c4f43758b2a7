"""The variance schedules and the closed-form forward process q(z_t | x), checked against the math."""

import math

import pytest
import torch

from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.diffusion.schedules import NoiseSchedule, check_steps, cosine_betas, linear_betas, make_schedule


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_is_the_iterative_product_of_one_minus_beta(name):
    schedule = make_schedule(name, 1000)
    running, expected = 1.0, [1.0]
    for beta in schedule.beta[1:].tolist():
        running *= 1.0 - beta
        expected.append(running)
    torch.testing.assert_close(schedule.alpha, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)


def test_linear_schedule_endpoints_and_spacing():
    beta = linear_betas(1000, 1e-4, 0.02)
    assert beta[0] == 0 and math.isclose(beta[1], 1e-4) and math.isclose(beta[1000], 0.02)
    steps = beta[2:] - beta[1:-1]
    torch.testing.assert_close(steps, torch.full_like(steps, (0.02 - 1e-4) / 999))


def test_cosine_schedule_matches_nichol_dhariwal_closed_form():
    T, s = 1000, 0.008
    schedule = NoiseSchedule(cosine_betas(T, s))
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 250, 500, 900):  # away from the clipped last steps
        assert math.isclose(schedule.alpha[t].item(), f(t) / f(0), rel_tol=1e-9)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_schedules_are_monotone_and_end_near_pure_noise(name):
    schedule = make_schedule(name, 1000)
    assert schedule.alpha[0] == 1
    assert torch.all(schedule.alpha[1:] < schedule.alpha[:-1]), "signal must strictly decay"
    assert torch.all(schedule.beta[1:] > 0) and torch.all(schedule.beta < 1)
    assert schedule.alpha[-1] < 1e-4, "z_T must be (almost) pure noise"
    if name == "linear":
        assert torch.all(schedule.beta[2:] > schedule.beta[1:-1])


def test_posterior_variance_equals_gaussian_conditioning():
    """Var(z_{t-1} | z_t, x) from the joint Gaussian of (z_{t-1}, z_t) given x, computed independently."""
    schedule = make_schedule("linear", 100, 1e-3, 0.05)
    alpha, beta = schedule.alpha, schedule.beta
    for t in (2, 10, 50, 100):
        var_prev = 1 - alpha[t - 1]  # Var(z_{t-1} | x)
        cov = math.sqrt(1 - beta[t]) * var_prev  # Cov(z_{t-1}, z_t | x)
        var_t = (1 - beta[t]) * var_prev + beta[t]  # Var(z_t | x)
        assert math.isclose(var_t, 1 - alpha[t], rel_tol=1e-12)
        assert math.isclose(schedule.posterior_variance[t].item(), var_prev - cov**2 / var_t, rel_tol=1e-9)


@pytest.mark.parametrize("t", [1, 100, 500, 1000])
def test_q_sample_has_the_closed_form_mean_and_variance(t):
    diffusion = GaussianDiffusion(make_schedule("linear", 1000))
    generator = torch.Generator().manual_seed(t)
    x = torch.linspace(-1, 1, 784).view(1, 1, 28, 28).expand(512, 1, 28, 28)
    eps = torch.randn(x.shape, generator=generator)
    z = diffusion.q_sample(x, torch.full((512,), t), eps)
    alpha = diffusion.alpha[t].item()
    mean, var = z.mean(0), z.var(0)
    # 512 draws per pixel: each pixel's mean error is N(0, se^2) with se = sqrt((1-alpha)/512), so the average
    # absolute error over 784 pixels concentrates at 0.80 se (spread ~0.02 se).
    se = math.sqrt((1 - alpha) / 512)
    assert (mean - math.sqrt(alpha) * x[0]).abs().mean() < 0.9 * se + 1e-7
    assert abs(var.mean().item() - (1 - alpha)) < 0.02 * (1 - alpha) + 1e-9


def test_markov_chain_of_single_steps_matches_the_closed_form():
    """Running q(z_t | z_{t-1}) step by step gives the distribution that q(z_t | x) states."""
    T = 200
    diffusion = GaussianDiffusion(make_schedule("linear", T, 1e-3, 0.05))
    generator = torch.Generator().manual_seed(0)
    x = torch.full((20_000,), 0.7, dtype=torch.float64)
    z = x.clone()
    for t in range(1, T // 2 + 1):
        beta = diffusion.schedule.beta[t].item()
        z = math.sqrt(1 - beta) * z + math.sqrt(beta) * torch.randn(z.shape, generator=generator, dtype=torch.float64)
    alpha = diffusion.schedule.alpha[T // 2].item()
    assert abs(z.mean().item() - math.sqrt(alpha) * 0.7) < 4 * math.sqrt((1 - alpha) / 20_000)
    assert abs(z.var().item() - (1 - alpha)) < 0.03 * (1 - alpha)


def test_bad_schedule_arguments_are_user_errors():
    with pytest.raises(UserError, match="unknown noise schedule"):
        make_schedule("quadratic", 10)
    with pytest.raises(UserError, match=r"^diffusion.T must be >= 1, got 0$"):
        make_schedule("linear", 0)
    with pytest.raises(UserError, match="beta_1"):
        make_schedule("linear", 10, beta_1=0.5, beta_T=0.1)


def test_the_step_count_check_names_the_setting():
    assert check_steps(1, "cold.T") == 1 and check_steps(1000) == 1000
    for bad in (0, -3):
        with pytest.raises(UserError, match=rf"^cold.T must be >= 1, got {bad}$"):
            check_steps(bad, "cold.T")
