"""Cold diffusion: the l1 objective, Algorithms 1 and 2 against exact answers, training and the CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.errors import UserError
from mnist_diffusion.data import mnist_tensors, to_model_range
from mnist_diffusion.cold.degradations import OPERATORS, Degradation, make_degradation
from mnist_diffusion.cold.degradations.palimpsest import random_scribbles
from mnist_diffusion.models import UNet
from mnist_diffusion.cold import cold_restore, cold_reverse, cold_sample

T_OF = {"noise": 50, "blur": 40, "pixelate": 20, "mask": 20, "palimpsest": 50, "palimpsest_trace": 50}


@pytest.fixture(scope="module")
def digits(mnist_root):
    return to_model_range(mnist_tensors("test")[0][:16])


@pytest.mark.parametrize("algorithm", ["alg2", "alg1"])
@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_an_exact_restorer_recovers_x0_exactly(name, algorithm, digits):
    """With R(x_s, s) = x0, each step lands exactly on D(x0, s-1), so both algorithms return x0 bit for bit."""
    op = make_degradation(name, T_OF[name])
    cold = ColdDiffusion(op)
    state = op.sample_state(len(digits), torch.Generator().manual_seed(0))
    x_T = op.degrade(digits, torch.full((len(digits),), op.T), state)
    out = cold_reverse(lambda x, t: digits, cold, x_T, state, op.T, algorithm=algorithm).images
    assert torch.equal(out, digits)


class AddPattern(Degradation):
    """D(x, s) = x + (s / T) e: the additive form for which Bansal et al. derive that Algorithm 2 is exact."""

    name = "add"

    def sample_state(self, n, generator=None, device="cpu"):
        return {"e": 0.5 * torch.randn((n, 1, 28, 28), generator=generator, device=device)}

    def degrade(self, x0, t, state):
        return x0 + (t.float() / self.T).view(-1, 1, 1, 1) * state["e"]

    def endpoint(self, state):
        return state["e"]


def test_algorithm_2_is_robust_to_a_wrong_restorer_and_algorithm_1_is_not(digits):
    """x_{s-1} = x_s - D(x̂, s) + D(x̂, s-1) = x_s - e/T whatever x̂ is: Algorithm 2 lands on x0 even when the
    restorer is useless; Algorithm 1 returns the restorer's (wrong) answer."""
    op = AddPattern(T=10)
    cold = ColdDiffusion(op)
    state = op.sample_state(len(digits), torch.Generator().manual_seed(0))
    x_T = op.degrade(digits, torch.full((len(digits),), op.T), state)
    useless = lambda x, t: torch.zeros_like(x)  # noqa: E731
    alg2 = cold_reverse(useless, cold, x_T, state, op.T, algorithm="alg2").images
    alg1 = cold_reverse(useless, cold, x_T, state, op.T, algorithm="alg1").images
    torch.testing.assert_close(alg2, digits, atol=1e-5, rtol=0)
    assert (alg1 - digits).abs().mean() > 0.5


def test_direct_restoration_is_one_call(digits):
    op = make_degradation("blur", 40)
    calls = []

    def restorer(x, t):
        calls.append(t[0].item())
        return digits

    cold = ColdDiffusion(op)
    state = op.sample_state(len(digits))
    out = cold_reverse(restorer, cold, op.endpoint(state), state, op.T, algorithm="direct").images
    assert calls == [1.0] and torch.equal(out, digits)


def test_unconditional_sampling_is_seeded_and_diverse():
    torch.manual_seed(0)
    net = UNet(channels=(8, 16), groups=4).eval()
    cold = ColdDiffusion(make_degradation("palimpsest", 10))
    a = cold_sample(net, cold, 6, seed=1, return_steps=[10, 5, 0])
    b = cold_sample(net, cold, 6, seed=1)
    c = cold_sample(net, cold, 6, seed=2)
    assert a.images.shape == (6, 1, 28, 28) and a.images.min() >= -1 and a.images.max() <= 1
    assert torch.equal(a.images, b.images) and not torch.equal(a.images, c.images)
    assert sorted(a.trajectory) == [0, 5, 10]
    starts = a.trajectory[10].flatten(1)
    assert (torch.cdist(starts, starts) + 1e9 * torch.eye(6)).min() > 3.0, "each sample starts from its own scribble"


def test_conditional_restoration_degrades_then_restores(digits):
    op = make_degradation("mask", 20)
    degraded, result = cold_restore(lambda x, t: digits, ColdDiffusion(op), digits, 10, seed=0)
    assert (degraded - digits).abs().mean() > 0.05
    assert torch.equal(result.images, digits)


def test_restoration_network_overfits_a_small_batch(digits):
    torch.manual_seed(0)
    cold = ColdDiffusion(make_degradation("palimpsest", 20))
    net = UNet(channels=(16, 32))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)

    def fixed_loss():
        with torch.no_grad():
            return cold.loss(net, digits, torch.Generator().manual_seed(7)).item()

    before = fixed_loss()
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        loss = cold.loss(net, digits, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = fixed_loss()
    assert after < before / 2.5, f"l1 {before:.3f} -> {after:.3f}"


def test_endpoint_spread_measures_how_much_the_first_estimates_differ(digits):
    """A restorer that ignores its input gives one first estimate for every endpoint (spread 0); the identity
    gives the endpoints' own spread, here checked against the palimpsest's scribbles drawn independently."""
    from mnist_diffusion.experiments import endpoint_spread
    from mnist_diffusion.training.sampling import TrainedModel

    cold = ColdDiffusion(make_degradation("palimpsest", 10))

    def model(network):
        return TrainedModel(network, None, cold, 0, None, "ema")

    constant = endpoint_spread(model(lambda x, t: torch.zeros_like(x) + 0.3), n=8)
    assert constant["n"] == 8 and constant["estimates"] == 0.0
    pairs = [(digits[i] - digits[j]).abs().mean().item() for i in range(8) for j in range(8) if i != j]
    assert constant["test_images"] == pytest.approx(sum(pairs) / len(pairs), rel=1e-6)

    identity = endpoint_spread(model(lambda x, t: x), n=8)
    ink, _ = random_scribbles(8, torch.Generator().manual_seed(0))
    scribbles = 2 * ink - 1
    pairs = [(scribbles[i] - scribbles[j]).abs().mean().item() for i in range(8) for j in range(8) if i != j]
    assert identity["estimates"] == pytest.approx(sum(pairs) / len(pairs), rel=1e-6)
    assert identity["estimates"] > 0.1


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mnist_diffusion", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_custom_degradation_trains_end_to_end_in_the_smoke_profile(mnist_root, tmp_path):
    run = tmp_path / "run"
    trained = run_cli("train", "--config", "configs/cold_palimpsest.yaml", "--profile", "smoke", "--out", str(run),
                      "--no-progress")
    assert trained.returncode == 0, trained.stderr
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0], f"l1 should fall even in 20 smoke steps: {losses}"
    for sampler in ("alg2", "alg1", "direct"):
        out = tmp_path / f"{sampler}.npz"
        result = run_cli("sample", "--checkpoint", str(run), "--n", "6", "--sampler", sampler, "--out", str(out),
                         "--no-progress")
        assert result.returncode == 0, result.stderr
        with np.load(out) as npz:
            assert npz["images"].shape == (6, 28, 28) and json.loads(str(npz["meta"]))["sampler"] == sampler
    restored = tmp_path / "restored.npz"
    result = run_cli("restore", "--checkpoint", str(run), "--n", "5", "--t", "5", "--out", str(restored))
    assert result.returncode == 0, result.stderr
    with np.load(restored) as npz:
        assert {"images", "degraded", "targets", "meta"} <= set(npz.files)
        assert json.loads(str(npz["meta"]))["mode"] == "restore-test"
        assert np.array_equal(npz["targets"], mnist_tensors("test")[0][:5].numpy())
    wrong = run_cli("sample", "--checkpoint", str(run), "--sampler", "ddim", "--out", str(tmp_path / "x.npz"))
    assert wrong.returncode == 2 and "does not apply to a cold-diffusion checkpoint" in wrong.stderr


def test_one_step_errors_are_zero_for_algorithm_2_in_bansals_additive_form(digits):
    """D(x, s) = x + (s / T) e: Algorithm 2's step is exact for any estimate; Algorithm 1's step errs by exactly
    the restorer's error |x0_hat - x| (its step is x0_hat + ((s - 1) / T) e)."""
    from mnist_diffusion.cold.step_error import one_step_errors, trajectory_errors

    op = AddPattern(T=5)
    state = op.sample_state(len(digits), torch.Generator().manual_seed(0))
    half = lambda x, t: 0.5 * x  # noqa: E731  a restorer that is wrong, and differently so at each step
    errors = one_step_errors(half, ColdDiffusion(op), digits, state)
    assert errors["s"] == [5, 4, 3, 2, 1]
    assert max(errors["alg2"]) < 1e-6 and errors["alg1"] == pytest.approx(errors["restorer"], abs=1e-6)
    assert min(errors["alg1"]) > 0.1
    path = trajectory_errors(half, ColdDiffusion(op), digits, state)
    assert path["s"] == [4, 3, 2, 1, 0] and max(path["alg2"]) < 1e-5 and min(path["alg1"]) > 0.1


def test_one_step_error_of_algorithm_2_for_blur_is_the_operators_change_applied_to_the_restorers_error(digits):
    """Blur is linear in x: Algorithm 2's error is |(D_s - D_{s-1})(x - x0_hat)|, computed here independently."""
    from mnist_diffusion.cold.step_error import one_step_errors

    op = make_degradation("blur", 10)
    restorer = lambda x, t: torch.flip(x, dims=[-1])  # noqa: E731  deterministic and wrong
    errors = one_step_errors(restorer, ColdDiffusion(op), digits, {})
    for s, error in zip(errors["s"], errors["alg2"]):
        k_now, k_prev = op.matrices[s].double(), op.matrices[s - 1].double()
        x = digits.double()
        x_s = k_now @ x @ k_now.T
        residual = x - torch.flip(x_s, dims=[-1]).clamp(-1, 1)
        expected = (k_now @ residual @ k_now.T - k_prev @ residual @ k_prev.T).abs().mean().item()
        assert error == pytest.approx(expected, abs=1e-5), s


def test_algorithm_2_carries_the_endpoints_perturbation_into_x0_unchanged():
    """AddPattern telescopes: Algorithm 2 returns x_T - e = 0 from x_T = e, so with x_T + p z it returns p z
    exactly (z: the generator's next draw after the state), whatever the restorer."""
    op = AddPattern(T=5)
    restorer = lambda x, t: 0.3 * x  # noqa: E731
    plain = cold_sample(restorer, ColdDiffusion(op), 4, seed=3).images
    perturbed = cold_sample(restorer, ColdDiffusion(op), 4, seed=3, perturb=0.2).images
    generator = torch.Generator().manual_seed(3)
    op.sample_state(4, generator)
    z = torch.randn((4, 1, 28, 28), generator=generator)
    torch.testing.assert_close(plain, torch.zeros_like(plain), atol=1e-6, rtol=0)
    torch.testing.assert_close(perturbed, (0.2 * z).clamp(-1, 1), atol=1e-6, rtol=0)


def test_generation_residual_is_what_algorithm_2_leaves_beside_its_last_estimate():
    """AddPattern from x_T = e: Algorithm 2 ends at x_0 = x_T - e = 0 and x_1 = e / T, so with R(x, t) = 0.3 x the
    last estimate is 0.3 e / T and the residual x_0 - x0_hat_1 = -0.3 e / T, computed here from the state."""
    from mnist_diffusion.cold.step_error import generation_residual

    op = AddPattern(T=4)
    result = generation_residual(lambda x, t: 0.3 * x, ColdDiffusion(op), 6, seed=5)
    e = op.sample_state(6, torch.Generator().manual_seed(5))["e"]
    residual = -0.3 * e / 4
    assert result["n"] == 6
    assert result["residual_l1"] == pytest.approx(residual.abs().mean().item(), rel=1e-5)
    assert result["shared_residual_l1"] == pytest.approx(residual.mean(dim=0).abs().mean().item(), rel=1e-5)
    assert result["last_step_l1"] == pytest.approx((0.3 * e / 4 - e / 4).abs().mean().item(), rel=1e-5)


def test_with_noise_adds_a_fixed_noise_image_that_algorithm_2_removes(digits):
    """D'(x, t) = D(x, t) + sigma e for t >= 1 (e in the state), D'(x, 0) = x; the base's state is drawn first, so it
    is the one the noiseless operator draws; with an exact restorer Algorithm 2 still returns x exactly."""
    base = make_degradation("blur", 10)
    noisy = make_degradation("blur", 10, noise=0.05)
    state = noisy.sample_state(len(digits), torch.Generator().manual_seed(0))
    e = state["noise"]
    t = torch.arange(len(digits)) % 11
    expected = torch.where((t == 0).view(-1, 1, 1, 1), digits, base.degrade(digits, t, {}) + 0.05 * e)
    assert torch.equal(noisy.degrade(digits, t, state), expected)
    torch.testing.assert_close(noisy.endpoint(state), noisy.base.endpoint(state) + 0.05 * e, rtol=0, atol=0)
    x_T = noisy.degrade(digits, torch.full((len(digits),), 10), state)
    out = cold_reverse(lambda x, s: digits, ColdDiffusion(noisy), x_T, state, 10, algorithm="alg2").images
    torch.testing.assert_close(out, digits, atol=1e-5, rtol=0)
    traced = make_degradation("palimpsest_trace", 5, noise=0.1)
    assert traced.with_prior("training").sigma == 0.1 and traced.with_prior("training").prior == "training"
    with pytest.raises(UserError, match="cold.noise must be >= 0"):
        make_degradation("blur", 10, noise=-0.1)
