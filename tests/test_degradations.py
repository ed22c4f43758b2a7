"""Every degradation operator: identity at t = 0, growing severity, vectorisation, state-determinism."""

import pytest
import torch

from mnist_diffusion.data import mnist_tensors, to_model_range
from mnist_diffusion.cold.degradations import OPERATORS, make_degradation, random_scribbles, select_state
from mnist_diffusion.cold.degradations.linear import MNIST_MEAN_LEVEL, MNIST_STD_LEVEL, mean_level_statistics
from mnist_diffusion.errors import UserError

NAMES = sorted(OPERATORS)
T_OF = {"noise": 50, "blur": 40, "pixelate": 20, "mask": 20, "palimpsest": 50, "palimpsest_trace": 50}


@pytest.fixture(scope="module")
def digits(mnist_root):
    return to_model_range(mnist_tensors("test")[0][:32])


def state_for(op, n, seed=0):
    return op.sample_state(n, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", NAMES)
def test_t_zero_is_the_identity_exactly(name, digits):
    op = make_degradation(name, T_OF[name])
    out = op.degrade(digits, torch.zeros(len(digits), dtype=torch.long), state_for(op, len(digits)))
    assert torch.equal(out, digits)


@pytest.mark.parametrize("name", NAMES)
def test_severity_grows_with_t(name, digits):
    op = make_degradation(name, T_OF[name])
    state = state_for(op, len(digits))
    distances = []
    # Severity = root-mean-square distance from the clean digits. (The mean *absolute* distance is not
    # monotone for blur: smearing a bright stroke over the dark page lowers it near the flat end.)
    for t in range(op.T + 1):
        out = op.degrade(digits, torch.full((len(digits),), t), state)
        distances.append((out - digits).square().mean().sqrt().item())
    assert distances[0] == 0
    assert all(b >= a - 1e-6 for a, b in zip(distances, distances[1:])), distances
    assert distances[-1] > 0.2, "the last step must destroy the image"


@pytest.mark.parametrize("name", NAMES)
def test_batched_matches_one_image_at_a_time(name, digits):
    op = make_degradation(name, T_OF[name])
    n = 12
    state = state_for(op, n)
    t = torch.randint(0, op.T + 1, (n,), generator=torch.Generator().manual_seed(5))
    batched = op.degrade(digits[:n], t, state)
    for i in range(n):
        single = op.degrade(digits[i : i + 1], t[i : i + 1], select_state(state, slice(i, i + 1)))
        torch.testing.assert_close(batched[i : i + 1], single, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_the_state_makes_degradation_deterministic(name, digits):
    op = make_degradation(name, T_OF[name])
    t = torch.full((8,), op.T // 2)
    a = op.degrade(digits[:8], t, state_for(op, 8, seed=1))
    b = op.degrade(digits[:8], t, state_for(op, 8, seed=1))
    assert torch.equal(a, b)
    if name in ("noise", "mask", "palimpsest", "palimpsest_trace"):  # the stochastic operators
        c = op.degrade(digits[:8], t, state_for(op, 8, seed=2))
        assert not torch.equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_endpoint_needs_no_data_and_matches_the_last_step(name, digits):
    op = make_degradation(name, T_OF[name])
    state = state_for(op, len(digits))
    endpoint = op.endpoint(state)
    assert endpoint.shape == digits.shape
    if name != "noise":  # the noise endpoint is Gaussian, unbounded
        assert endpoint.min() >= -1 - 1e-6 and endpoint.max() <= 1 + 1e-6
    last = op.degrade(digits, torch.full((len(digits),), op.T), state)
    if name in ("mask", "palimpsest"):  # their D(x, T) does not depend on x at all
        assert torch.equal(endpoint, last)
    elif name == "palimpsest_trace":  # D(x, T) is x's own trace under the scribble; the endpoint draws a trace
        own = op.endpoint({**state, "trace": op.trace_cells((digits + 1) / 2)})
        torch.testing.assert_close(own, last, atol=1e-6, rtol=0)
        assert not torch.equal(endpoint, last)
    elif name == "noise":  # D(x, T) - endpoint = sqrt(alpha_T) x, tiny
        assert (endpoint - last).abs().max() < 0.02
    else:  # blur and pixelate end at the flat image of x's mean; the endpoint draws that level
        assert torch.allclose(last, last.mean(dim=(2, 3), keepdim=True).expand_as(last), atol=1e-5)


def test_flat_endpoint_level_matches_mnist(mnist_root):
    mean, std = mean_level_statistics(mnist_tensors("train")[0])
    assert abs(mean - MNIST_MEAN_LEVEL) < 1e-3 and abs(std - MNIST_STD_LEVEL) < 1e-3


def test_palimpsest_endpoints_are_diverse_scribbles():
    ink, pen_time = random_scribbles(64, torch.Generator().manual_seed(0))
    assert ink.shape == pen_time.shape == (64, 1, 28, 28)
    assert ink.min() >= 0 and ink.max() <= 1 and pen_time.min() >= 0 and pen_time.max() <= 1
    coverage = (ink > 0.5).float().mean(dim=(1, 2, 3))
    assert coverage.min() > 0.02 and coverage.max() < 0.45, "scribbles should cover a digit-like share of the page"
    flat = ink.flatten(1)
    distances = torch.cdist(flat, flat) + torch.eye(64) * 1e9
    # Two different strokes barely overlap: every pair is far apart (an identical pair would be 0).
    assert distances.min() > 3.0
    again, _ = random_scribbles(64, torch.Generator().manual_seed(0))
    assert torch.equal(ink, again)


def test_palimpsest_draws_in_pen_order():
    op = make_degradation("palimpsest", 50)
    state = state_for(op, 4)
    blank = torch.full((4, 1, 28, 28), -1.0)
    drawn = [((op.degrade(blank, torch.full((4,), t), state) + 1) / 2 > 0.5) for t in (10, 25, 50)]
    assert torch.all(drawn[0] <= drawn[1]) and torch.all(drawn[1] <= drawn[2]), "ink once drawn stays"
    assert drawn[0].sum() < drawn[2].sum()


def test_traced_palimpsest_draws_the_traces_of_training_digits(mnist_root):
    """Generation starts from the 4 x 4 block means of uniformly drawn training digits, each under its own scribble."""
    op = make_degradation("palimpsest_trace", 50)
    state = state_for(op, 64)
    train = mnist_tensors("train")[0].float() / 255
    blocks = train.view(-1, 4, 7, 4, 7).mean(dim=(2, 4))  # independent of avg_pool2d
    exact = "donot_use_mm_for_euclid_dist"
    nearest = torch.cdist(state["trace"].flatten(1), blocks.flatten(1), compute_mode=exact).min(dim=1)
    assert state["trace"].shape == (64, 1, 4, 4) and nearest.values.max() < 1e-5
    assert len(set(nearest.indices.tolist())) > 60, "draws are spread over the training set"
    assert torch.equal(state_for(op, 64)["trace"], state["trace"])


def test_the_trace_cell_sets_the_traces_resolution_and_what_it_gives_away(mnist_root):
    """cell 14: 2 x 2 block means, drawn from training digits; only the traced palimpsest takes a cell; the nearest
    training trace's class agrees with a test digit's less often for the coarser trace (1-NN, brute force here)."""
    from mnist_diffusion.cold.trace_prior import trace_information

    op = make_degradation("palimpsest_trace", 50, trace_cell=14)
    state = state_for(op, 16)
    train, train_labels = mnist_tensors("train")
    blocks = (train.float() / 255).view(-1, 2, 14, 2, 14).mean(dim=(2, 4)).flatten(1)
    nearest = torch.cdist(state["trace"].flatten(1), blocks, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    assert state["trace"].shape == (16, 1, 2, 2) and nearest.values.max() < 1e-5
    for name, cell in (("palimpsest", 14), ("blur", 7 * 2), ("palimpsest_trace", 5)):
        with pytest.raises(UserError, match=rf"cold.trace_cell {cell} does not fit the {name} degradation"):
            make_degradation(name, 50, trace_cell=cell)
    test, test_labels = mnist_tensors("test")
    queries = (test[:500].float() / 255).view(-1, 2, 14, 2, 14).mean(dim=(2, 4)).flatten(1)
    found = torch.cdist(queries, blocks, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    coarse, fine = trace_information(14, chunk=300), trace_information(7)
    assert coarse["numbers"] == 4 and fine["numbers"] == 16
    assert coarse["nn_class_accuracy"] < fine["nn_class_accuracy"] - 0.2  # 0.40 against 0.79 on the full test set
    # the first 500 test digits, brute force: the same share up to sampling error of the subset
    brute = (train_labels[found.indices] == test_labels[:500]).float().mean().item()
    assert abs(brute - coarse["nn_class_accuracy"]) < 0.07


def test_unknown_operator_is_a_user_error():
    with pytest.raises(UserError, match="unknown degradation 'swirl'"):
        make_degradation("swirl", 10)


@pytest.mark.parametrize("name", NAMES)
def test_a_degradation_needs_at_least_one_step(name):
    with pytest.raises(UserError, match=r"^degradation T must be >= 1, got 0$"):
        make_degradation(name, 0)
    if name not in ("blur", "pixelate"):  # those precompute their matrices from T before the base class sees it
        with pytest.raises(UserError, match=r"^degradation T must be >= 1, got -1$"):
            OPERATORS[name](T=-1)
