"""The fidelity suite on real MNIST: the classifier's accuracy, the sanity checks the metrics must pass
(FID(X, X) = 0, monotone in blur and noise, mode dropping, memorisation), floors, and the Python API.

Every test here uses the session's fresh cache folder (``evaluation_fixtures``), so nothing computed by an
earlier run is trusted; the memorisation threshold (10,000 x 60,000 pixel distances) is computed once.
"""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluation_fixtures import evaluation_cache  # noqa: F401 - a fixture

from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.evaluation import evaluate, floors, metrics_table
from mnist_diffusion.evaluation.classifier import (DEFAULT_WEIGHTS, FEATURE_DIM, accuracy, load_classifier,
                                                   random_shift, training_record)
from mnist_diffusion.evaluation.features import classifier_outputs
from mnist_diffusion.evaluation.metrics import METRICS, classifier_metrics, frechet_distance, gaussian_stats
from mnist_diffusion.evaluation.reference import (committed_floors_path, floor_training_indices,
                                                  get_memorisation_reference, get_reference, reference_images,
                                                  reference_indices)

N = 1000  # sanity checks run at N = 1,000 (labelled as such); final numbers use N = 10,000


@pytest.fixture(scope="module", autouse=True)
def real_data_and_fresh_cache(mnist_root, evaluation_cache):
    """Every test here needs the real MNIST files (skipped without) and the session's fresh cache folder."""
    return evaluation_cache


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def reference(classifier):
    return get_reference(classifier, N)


@pytest.fixture(scope="module")
def train_subset():
    """N training images (the first floor subset): real data that is not the reference."""
    return mnist_tensors("train")[0][floor_training_indices(N)[0]]


def metrics_of(images, classifier, reference):
    return classifier_metrics(classifier_outputs(classifier.network, images), reference)


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of uint8 [N, 28, 28] with std ``sigma`` pixels, back to uint8."""
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    out = images.float().unsqueeze(1)
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0)), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius)), kernel.view(1, 1, -1, 1))
    return out[:, 0].round().clamp(0, 255).to(torch.uint8)


def noise(images: torch.Tensor, std, seed: int = 0) -> torch.Tensor:
    """Add Gaussian noise of ``std`` grey levels (a float, or a tensor broadcast per image), clamp, round to uint8."""
    g = torch.Generator().manual_seed(seed)
    return (images.float() + std * torch.randn(images.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)


# ------------------------------------------------------------------------------------------------ classifier


def test_committed_classifier_meets_its_accuracy_on_the_test_set(classifier):
    images, labels = mnist_tensors("test")
    assert accuracy(classifier.network, images, labels) >= 0.993
    record = training_record()
    assert record is not None and record["sha256"] == classifier.sha256, "training record must name the committed weights"
    assert record["test_accuracy"] >= 0.993 and record["recipe"]["holdout"] > 0
    assert classifier.path == DEFAULT_WEIGHTS.resolve()


def test_features_and_probabilities_have_the_documented_shapes(classifier):
    out = classifier_outputs(classifier.network, mnist_tensors("test")[0][:7], batch_size=3)
    assert out.features.shape == (7, FEATURE_DIM) and out.probs.shape == (7, 10)
    assert (out.features >= 0).all() and torch.allclose(out.probs.sum(1), torch.ones(7))


def test_random_shift_moves_whole_images_within_bounds():
    images = mnist_tensors("train")[0][:64]
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape and shifted.dtype == torch.uint8
    ink = images.float().sum((1, 2))
    assert (shifted.float().sum((1, 2)) <= ink).all()  # pixels can leave the frame, never appear
    assert not torch.equal(shifted, images)


# ------------------------------------------------------------------------------------------------ sanity


def test_reference_is_a_fixed_subset_of_the_test_set():
    assert torch.equal(reference_indices(N), reference_indices(N))
    assert torch.equal(reference_indices(10_000).sort().values, torch.arange(10_000))
    assert torch.equal(reference_indices(N), reference_indices(2 * N)[:N])


def test_fid_of_a_set_with_itself_is_zero_and_train_vs_test_is_small(classifier, reference, train_subset):
    same = metrics_of(reference_images(N), classifier, reference)
    # Zero up to round-off: dead ReLU units give zero eigenvalues, whose square roots turn float64 round-off
    # (1e-13 relative) into about 1e-6 absolute, against a floor of order 10.
    assert abs(same["fid"]) < 1e-4
    assert same["precision"] == 1.0 and same["recall"] == 1.0 and same["coverage"] == 1.0 and same["label_kl"] == 0.0
    real = metrics_of(train_subset, classifier, reference)
    blurred = metrics_of(blur(train_subset, 2.0), classifier, reference)
    assert 0 < real["fid"] < 0.1 * blurred["fid"], (real["fid"], blurred["fid"])
    assert abs(real["kid"]) < 0.1 * blurred["kid"]
    assert real["label_kl"] < 0.01 and real["confident_share"] > 0.97 and real["mnist_score"] > 9.5


@pytest.mark.parametrize("kind, strengths", [("blur", (0.5, 1.0, 2.0)), ("noise", (16.0, 32.0, 64.0))])
def test_fid_and_kid_increase_monotonically_with_degradation(classifier, reference, train_subset, kind, strengths):
    degrade = blur if kind == "blur" else noise
    results = [metrics_of(train_subset, classifier, reference)]
    results += [metrics_of(degrade(train_subset, s), classifier, reference) for s in strengths]
    for key in ("fid", "kid"):
        values = [r[key] for r in results]
        assert all(a < b for a, b in zip(values, values[1:])), f"{kind}: {key} not increasing: {values}"


def test_mode_dropping_shows_in_labels_recall_and_coverage_not_precision(classifier, reference):
    images, labels = mnist_tensors("train")
    index = floor_training_indices(N * 2)[0]
    low_digits = index[labels[index] <= 4][:N]
    dropped = metrics_of(images[low_digits], classifier, reference)
    full = metrics_of(images[index[:N]], classifier, reference)
    assert dropped["label_kl"] > 0.5 and full["label_kl"] < 0.01  # about log 2 = 0.69 for half the digits
    assert dropped["label_max_gap"] > 0.08
    assert dropped["recall"] < 0.65 * full["recall"] and dropped["coverage"] < 0.65 * full["coverage"]
    assert dropped["precision"] > 0.9 * full["precision"]
    assert dropped["mnist_score"] < 5.5 < full["mnist_score"]


@pytest.mark.slow
def test_memorisation_flags_exact_training_images_and_not_held_out_ones():
    memorisation = get_memorisation_reference()
    assert memorisation.test_nearest.shape == (10_000,) and 0 < memorisation.threshold < 28
    held_out = float((memorisation.test_nearest < memorisation.threshold).double().mean())
    assert held_out == pytest.approx(0.01, abs=0.001)
    from mnist_diffusion.evaluation.memorisation import memorised_mask, memorised_share, nearest_training_distances

    copies = mnist_tensors("train")[0][floor_training_indices(200)[0]]
    distances = nearest_training_distances(copies)
    assert distances.max() < 0.02  # 0 up to float32 round-off in |a|^2 + |b|^2 - 2 a.b (pixel norms ~ 10)
    assert memorised_share(distances, memorisation.threshold) == 1.0
    assert memorised_mask(copies, memorisation.threshold).all()
    # Copies with noise of 5 to 25 grey levels straddle the threshold: the pruned search must agree with the
    # exact distances.
    noisy = noise(copies, torch.linspace(5.0, 25.0, 200).view(-1, 1, 1))
    exact = nearest_training_distances(noisy) < memorisation.threshold
    assert 0 < int(exact.sum()) < 200
    assert torch.equal(memorised_mask(noisy, memorisation.threshold), exact)
    held_out = mnist_tensors("test")[0][:500]
    expected = memorisation.test_nearest[:500] < memorisation.threshold
    assert torch.equal(memorised_mask(held_out, memorisation.threshold), expected)


# ------------------------------------------------------------------------------------------------ API and floors


@pytest.mark.slow
def test_evaluate_reports_every_metric_with_its_floor_and_seeds():
    train = mnist_tensors("train")[0]
    sets = [train[i] for i in floor_training_indices(200, sets=5)[3:5]]
    result = evaluate([sets[0].numpy(), sets[1]], seeds=[7, 8])
    assert result["n"] == 200 and result["sets"] == 2 and result["seeds"] == [7, 8]
    assert result["classifier_sha256"] == load_classifier().sha256
    assert list(result["metrics"]) == [spec.key for spec in METRICS]
    for key, row in result["metrics"].items():
        assert len(row["values"]) == 2 and row["value"] == pytest.approx(np.mean(row["values"]))
        assert row["std"] == pytest.approx(np.std(row["values"], ddof=1))
        assert row["floor"] is not None, key
    assert result["metrics"]["memorisation"]["value"] == 1.0  # they are training images
    assert result["metrics"]["memorisation"]["floor"] < 0.05
    json.dumps(result)  # JSON-ready
    table = metrics_table(result)
    assert "classifier-FID" in table and "±" in table and "floor" in table

    floor = floors(200)
    assert floor["n"] == 200 and floor["sets"] == 3 and floor["classifier_sha256"] == result["classifier_sha256"]
    assert floor["metrics"]["fid"]["value"] == pytest.approx(result["metrics"]["fid"]["floor"])
    assert len(floor["metrics"]["fid"]["values"]) == 3


def test_one_array_is_one_set_and_n_takes_the_first_images(classifier):
    images = mnist_tensors("train")[0][floor_training_indices(300)[1]]
    result = evaluate(images, n=150, with_floors=False)
    assert result["n"] == 150 and result["sets"] == 1 and result["metrics"]["fid"]["std"] is None
    expected = frechet_distance(gaussian_stats(classifier_outputs(classifier.network, images[:150]).features),
                                get_reference(classifier, 150).stats)
    assert result["metrics"]["fid"]["value"] == pytest.approx(expected)
    predicted = classifier_outputs(classifier.network, images[:150]).probs.argmax(1)
    shares = result["label_shares"]
    assert shares["mean"] == pytest.approx((torch.bincount(predicted, minlength=10) / 150).tolist())
    assert shares["values"] == [shares["mean"]] and sum(shares["reference"]) == pytest.approx(1.0)
    reference, mean = np.array(shares["reference"]), np.array(shares["mean"])
    assert result["metrics"]["label_max_gap"]["value"] == pytest.approx(np.abs(mean - reference).max())


def test_committed_floors_match_the_committed_classifier(classifier):
    path = committed_floors_path(classifier, 10_000)
    stored = json.loads(path.read_text())
    assert stored["classifier_sha256"] == classifier.sha256 and stored["n"] == 10_000 and stored["sets"] == 3
    assert set(stored["metrics"]) >= {spec.key for spec in METRICS}
    assert stored["metrics"]["memorisation"]["value"] == pytest.approx(0.01, abs=0.001)
    assert 0 < stored["metrics"]["fid"]["value"] < 10 and stored["metrics"]["precision"]["value"] > 0.8
