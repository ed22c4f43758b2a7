"""DPM-Solver++(2M) and SDE-DPM-Solver++(2M): exact answers for Gaussian data, agreement with diffusers, call count."""

import math

import pytest
import torch
from oracles import GaussianDataOracle

from mnist_diffusion.diffusion.common import make_generator, start_noise
from mnist_diffusion.diffusion.ddim import ddim_sample, ddim_timesteps
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.diffusion.dpm_solver import SOLVERS, dpm_solver_sample
from mnist_diffusion.diffusion.schedules import make_schedule
from mnist_diffusion.errors import UserError


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion(make_schedule("linear", 1000))


def fixed_net(z, t_unit):
    """A smooth, nonlinear, time-dependent stand-in for a trained network (no parameters to train)."""
    t = t_unit.view(-1, 1, 1, 1)
    ramp = torch.linspace(-0.5, 0.5, 28 * 28).view(1, 1, 28, 28)
    return torch.tanh(z * (1 + t)) + ramp * torch.cos(3 * t)


class CallCounter:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, z, t):
        self.calls += 1
        return self.model(z, t)


def exact_flow(diffusion, z_T, t, mu, s):
    """Where the probability-flow ODE takes z_T at step t, for data N(mu, s^2): z_t is N(m_t, v_t) with
    m_t = sqrt(alpha_t) mu, v_t = alpha_t s^2 + 1 - alpha_t, and the flow keeps (z_t - m_t) / sqrt(v_t) fixed."""
    a_T, a_t = diffusion.alpha_at[diffusion.T], diffusion.alpha_at[t]
    standard = (z_T - math.sqrt(a_T) * mu) / math.sqrt(a_T * s**2 + 1 - a_T)
    return math.sqrt(a_t) * mu + math.sqrt(a_t * s**2 + 1 - a_t) * standard


@pytest.mark.parametrize("solver, std_tol", [("2m", 0.02), ("sde-2m", 0.05)])
def test_solvers_reproduce_a_gaussian_data_distribution(diffusion, solver, std_tol):
    """With the exact noise predictor for data N(mu, s^2), 50 steps give samples of mean mu and std s.

    Read from the unclamped z_0 (``images`` clamp to [-1, 1], which would cut the tail above 1 of N(0.3, 0.5^2)).
    s = 0.5 rather than test_ddpm's 0.2: the last step returns x_hat at t_1 = T / steps = 20 (as DDIM does), which
    misses the data's spread still hidden by the noise 1 - alpha_20 = 0.006: it shrinks the std by a factor
    sqrt(alpha s^2 / (alpha s^2 + 1 - alpha)), 1.2% at s = 0.5 but 6.5% at s = 0.2. Measured (seed 3): 2M's std is
    within 0.1% of s, SDE-2M's 3.2% above it (2.6% to 3.4% over seeds 3-8; the excess halves with twice the
    steps: first order in distribution); DDIM with the same 50 steps is 5.9% below.
    """
    mu, s = 0.3, 0.5
    oracle = GaussianDataOracle(diffusion, torch.tensor(mu), s)
    z0 = dpm_solver_sample(oracle, diffusion, 64, steps=50, solver=solver, seed=3, clip_x0=False,
                           return_steps=[0]).trajectory[0]
    assert abs(z0.mean().item() - mu) < 0.01  # 50k draws: standard error 0.002
    assert abs(z0.std().item() / s - 1) < std_tol  # standard error 0.3%


def test_2m_is_second_order_along_the_exact_flow(diffusion):
    """Deterministic 2M follows the probability-flow ODE of Gaussian data with an error that falls ~4x when the
    steps double (DDIM's falls ~2x). Compared at steps visited for every step count (t = 300 and t = 100):
    measured 2M errors at t = 100 are 7.9e-3, 2.1e-3, 5.3e-4 for 20, 40, 80 steps; DDIM's 3.5e-2, 1.8e-2, 9.0e-3."""
    mu, s = 0.3, 0.2
    oracle = GaussianDataOracle(diffusion, torch.tensor(mu), s)
    z_T = start_noise(8, make_generator(0, "cpu"), "cpu")
    errors = {}
    for steps in (20, 40, 80):
        for name, sampler in (("2m", dpm_solver_sample), ("ddim", ddim_sample)):
            run = sampler(oracle, diffusion, 8, steps=steps, seed=0, clip_x0=False, return_steps=[1000, 300, 100])
            assert torch.equal(run.trajectory[1000], z_T)
            for t in (300, 100):
                errors[name, steps, t] = (run.trajectory[t] - exact_flow(diffusion, z_T, t, mu, s)).abs().max().item()
    for t in (300, 100):
        assert errors["2m", 20, t] / errors["2m", 40, t] > 3.3
        assert errors["2m", 40, t] / errors["2m", 80, t] > 3.3
        assert errors["2m", 20, t] < errors["ddim", 20, t] / 4


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize("steps", [1, 2, 7, 20])
def test_steps_are_network_calls(diffusion, solver, steps):
    counter = CallCounter(fixed_net)
    dpm_solver_sample(counter, diffusion, 2, steps=steps, solver=solver)
    assert counter.calls == steps


@pytest.mark.parametrize("clip_x0", [False, True])
def test_two_steps_are_ddim(diffusion, clip_x0):
    """Two steps are the first-order warm-up and the first-order final step: DPM-Solver++-1 is DDIM with eta = 0,
    SDE-DPM-Solver++-1 is DDIM with eta = 1 (same noise: the same generator is drawn from in the same order)."""
    for solver, eta in (("2m", 0.0), ("sde-2m", 1.0)):
        ours = dpm_solver_sample(fixed_net, diffusion, 3, steps=2, solver=solver, seed=4, clip_x0=clip_x0,
                                 return_steps=[500, 0])
        ddim = ddim_sample(fixed_net, diffusion, 3, steps=2, eta=eta, seed=4, clip_x0=clip_x0, return_steps=[500, 0])
        for t in (500, 0):
            torch.testing.assert_close(ours.trajectory[t], ddim.trajectory[t], rtol=1e-5, atol=1e-4)


def diffusers_sample(model, diffusion, n, steps, algorithm_type, seed, clip_x0):
    """The same sampling run stepped by diffusers' DPMSolverMultistepScheduler, built from a config (no download).

    Our step t in 1..T is diffusers' timestep t - 1 (its betas are our beta_1..beta_T). Settings that make its
    run ours: ``timestep_spacing="trailing"`` gives DDIM's visited steps (asserted below); ``final_sigmas_type=
    "zero"`` ends on alpha = 1 with a first-order step; midpoint form of the second-order update; ``thresholding``
    with ``sample_max_value=1`` is plain clipping of x_hat to [-1, 1] (its dynamic threshold is clamped to [1, 1]).
    The starting noise and the SDE's per-step noises are replayed from our generator, in our order.
    """
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler.from_config({
        "num_train_timesteps": diffusion.T,
        "trained_betas": diffusion.schedule.beta[1:].tolist(),
        "prediction_type": "epsilon",
        "algorithm_type": algorithm_type,
        "solver_order": 2,
        "solver_type": "midpoint",
        "lower_order_final": True,
        "euler_at_final": False,
        "final_sigmas_type": "zero",
        "timestep_spacing": "trailing",
        "use_karras_sigmas": False,
        "use_lu_lambdas": False,
        "thresholding": clip_x0,
        "sample_max_value": 1.0,
    })
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps.tolist() == (ddim_timesteps(diffusion.T, steps)[:-1] - 1).tolist()
    generator = make_generator(seed, "cpu")
    z = start_noise(n, generator, "cpu")
    for i, k in enumerate(scheduler.timesteps.tolist()):
        eps_hat = model(z, torch.full((n,), (k + 1) / diffusion.T))
        noise = None
        if algorithm_type == "sde-dpmsolver++":  # no noise on the last step: its coefficient is sqrt(1 - alpha_0) = 0
            last = i == steps - 1
            noise = torch.zeros_like(z) if last else torch.randn(z.shape, generator=generator)
        z = scheduler.step(eps_hat, k, z, variance_noise=noise).prev_sample
    return z


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
@pytest.mark.parametrize("solver, algorithm_type", [("2m", "dpmsolver++"), ("sde-2m", "sde-dpmsolver++")])
@pytest.mark.parametrize("clip_x0", [False, True])
def test_same_noise_gives_diffusers_samples(diffusion, solver, algorithm_type, clip_x0):
    """Agreement to float32 rounding. x_hat at t = T = (z - sqrt(1 - alpha_T) eps_hat) / sqrt(alpha_T) multiplies
    rounding (diffusers holds its coefficients in float32, we in float64) by 1 / sqrt(alpha_T) = 150: the exact
    predictor's one-step run differs by 4e-5, its longer runs by ~1e-6. Unclipped, fixed_net's x_hat reaches
    |x| ~ 400 and z_0 |z| ~ 600, and the differences grow with that scale (6e-4 at most, 1.3e-6 of it): the
    tolerance is 1e-4 of the run's scale (its largest |z_0|, at least 1).
    """
    pytest.importorskip("diffusers")
    oracle = GaussianDataOracle(diffusion, torch.tensor(0.3), 0.2)
    for model in (fixed_net, oracle):
        for steps in (1, 3, 10, 25):
            ours = dpm_solver_sample(model, diffusion, 4, steps=steps, solver=solver, seed=5, clip_x0=clip_x0,
                                     return_steps=[0]).trajectory[0]
            theirs = diffusers_sample(model, diffusion, 4, steps, algorithm_type, seed=5, clip_x0=clip_x0)
            assert (ours - theirs).abs().max() <= 1e-4 * max(1.0, theirs.abs().max().item())


def test_clip_x0_keeps_the_output_in_the_data_range(diffusion):
    """With a wild network the unclipped output leaves [-1, 1] far behind; clipped, the last step returns a
    clipped x_hat, so z_0 itself is in range."""
    wild = lambda z, t: 5 * torch.ones_like(z)  # noqa: E731
    for solver in SOLVERS:
        clipped = dpm_solver_sample(wild, diffusion, 2, steps=5, solver=solver, return_steps=[0]).trajectory[0]
        unclipped = dpm_solver_sample(wild, diffusion, 2, steps=5, solver=solver, clip_x0=False,
                                      return_steps=[0]).trajectory[0]
        assert clipped.abs().max() <= 1
        assert unclipped.abs().max() > 10


def test_bad_arguments(diffusion):
    with pytest.raises(UserError):
        dpm_solver_sample(fixed_net, diffusion, 1, solver="3m")
    with pytest.raises(UserError):
        dpm_solver_sample(fixed_net, diffusion, 1, steps=0)
