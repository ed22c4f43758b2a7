"""The metric formulas against independent references: scipy's sqrtm FID, brute-force loops straight from
the papers' definitions for KID and precision/recall/density/coverage, and closed forms. No MNIST needed."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from mnist_diffusion.evaluation import memorisation
from mnist_diffusion.evaluation.features import kth_neighbour_distances, mean_pairwise_l1, nearest_distances
from mnist_diffusion.evaluation.memorisation import memorised_share
from mnist_diffusion.evaluation.metrics import (frechet_distance, gaussian_stats, histogram_kl, kernel_inception_distance,
                                                kid_subset_indices, label_histogram, label_metrics, mmd2_unbiased,
                                                mnist_score, precision_recall_density_coverage, real_manifold)


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook FID: np.cov and scipy.linalg.sqrtm of the (non-symmetric) product."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root).real)


def correlated(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=torch.Generator().manual_seed(99)) / math.sqrt(d)
    return (torch.randn(n, d, generator=g) @ mixing) * scale + shift


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.3, 1.0), (0.0, 1.5), (1.0, 0.5)])
def test_fid_matches_scipy_sqrtm(shift, scale):
    a, b = correlated(600, 24, 0), correlated(500, 24, 1, shift, scale)
    ours = frechet_distance(gaussian_stats(a), gaussian_stats(b))
    assert ours == pytest.approx(scipy_fid(a.double().numpy(), b.double().numpy()), rel=1e-7, abs=1e-9)


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")
def test_fid_matches_scipy_on_rank_deficient_relu_features():
    """Post-ReLU features have dead units: singular covariances must not break the square root."""
    a = torch.relu(correlated(400, 32, 2) - 0.5)
    b = torch.relu(correlated(400, 32, 3) - 0.4)
    a[:, :5] = 0.0
    b[:, 3:7] = 0.0
    ours = frechet_distance(gaussian_stats(a), gaussian_stats(b))
    assert ours == pytest.approx(scipy_fid(a.double().numpy(), b.double().numpy()), rel=1e-5)


def test_fid_closed_form_for_diagonal_gaussians():
    """FID = |mu1 - mu2|^2 + sum (sqrt(v1) - sqrt(v2))^2 for diagonal covariances."""
    from mnist_diffusion.evaluation.metrics import GaussianStats

    v1, v2 = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), torch.tensor([2.0, 1.0, 0.25], dtype=torch.float64)
    m1, m2 = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    expected = float(((m1 - m2) ** 2).sum() + ((v1.sqrt() - v2.sqrt()) ** 2).sum())
    got = frechet_distance(GaussianStats(m1, torch.diag(v1), 10), GaussianStats(m2, torch.diag(v2), 10))
    assert got == pytest.approx(expected, rel=1e-12)


def test_fid_of_a_set_with_itself_is_zero():
    a = correlated(300, 16, 4)
    assert abs(frechet_distance(gaussian_stats(a), gaussian_stats(a))) < 1e-9


def brute_force_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, as explicit double sums."""
    m, d = x.shape
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_brute_force_double_sums():
    x, y = correlated(60, 6, 5).double(), correlated(50, 6, 6, shift=0.2).double()
    result = kernel_inception_distance(x, y, subsets=4, subset_size=15, seed=3, batch=3)
    idx_x, idx_y = kid_subset_indices(60, 50, 4, 15, seed=3)
    expected = [brute_force_mmd2(x[ix].numpy(), y[iy].numpy()) for ix, iy in zip(idx_x, idx_y)]
    assert result.values.tolist() == pytest.approx(expected, rel=1e-10)
    assert result.mean == pytest.approx(np.mean(expected), rel=1e-10)
    assert result.std == pytest.approx(np.std(expected, ddof=1), rel=1e-8)
    assert result.subset_size == 15


def test_kid_subsets_are_without_replacement_and_seeded():
    ix, iy = kid_subset_indices(30, 40, 5, 20, seed=1)
    assert ix.shape == (5, 20) and iy.shape == (5, 20)
    assert all(len(set(row.tolist())) == 20 for row in torch.cat([ix, iy]))
    again = kid_subset_indices(30, 40, 5, 20, seed=1)
    assert torch.equal(ix, again[0]) and torch.equal(iy, again[1])
    assert kid_subset_indices(10, 40, 2, 20)[0].shape == (2, 10), "subset size is capped by the smaller set"


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    same = kernel_inception_distance(correlated(2000, 8, 7), correlated(2000, 8, 8), subsets=20, subset_size=500)
    shifted = kernel_inception_distance(correlated(2000, 8, 7), correlated(2000, 8, 8, shift=0.5), subsets=20,
                                        subset_size=500)
    assert abs(same.mean) < 3 * same.std / math.sqrt(20) + 1e-3
    assert shifted.mean > 10 * abs(same.mean) and shifted.mean > 0
    ones = torch.ones(4, 3, dtype=torch.float64)
    assert float(mmd2_unbiased(ones, ones)) == pytest.approx(0)


def brute_force_prdc(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict:
    """Kynkaanniemi et al. and Naeem et al. written point by point (closed balls)."""
    def dist(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def kth_radius(points, i, k):
        return sorted(dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]

    r3 = [kth_radius(real, i, k_pr) for i in range(len(real))]
    r5 = [kth_radius(real, i, k_dc) for i in range(len(real))]
    f3 = [kth_radius(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(f, real[i]) <= r3[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= f3[j] for j in range(len(fake))) for r in real])
    density = np.mean([sum(dist(f, real[i]) <= r5[i] for i in range(len(real))) for f in fake]) / k_dc
    coverage = np.mean([min(dist(real[i], f) for f in fake) <= r5[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


@pytest.mark.parametrize("shift, chunk", [(0.0, 7), (0.8, 1000), (2.5, 16)])
def test_prdc_matches_brute_force_definitions(shift, chunk):
    real = correlated(45, 5, 10)
    fake = correlated(37, 5, 11, shift=shift, scale=0.8)
    ours = precision_recall_density_coverage(fake, real_manifold(real), chunk=chunk)
    expected = brute_force_prdc(real.double().numpy(), fake.double().numpy())
    for key in expected:
        assert ours[key] == pytest.approx(expected[key], abs=1e-12), key


def test_prdc_of_a_set_against_itself():
    points = correlated(200, 6, 12)
    ours = precision_recall_density_coverage(points, real_manifold(points))
    assert ours["precision"] == 1.0 and ours["recall"] == 1.0 and ours["coverage"] == 1.0
    assert ours["density"] > 1.0  # each point also lies in its own ball


def test_knn_helpers_match_torch_cdist():
    a, b = correlated(130, 9, 13), correlated(70, 9, 14)
    full = torch.cdist(a.double(), a.double())
    full.fill_diagonal_(float("inf"))
    expected = full.sort(dim=1).values[:, 3 - 1]
    assert torch.allclose(kth_neighbour_distances(a, 3, chunk=50).double(), expected, atol=1e-4)
    assert torch.allclose(nearest_distances(b, a, chunk=32).double(), torch.cdist(b.double(), a.double()).min(1).values,
                          atol=1e-4)
    with pytest.raises(ValueError):
        kth_neighbour_distances(a[:3], 3)


def test_label_metrics_on_hand_made_probabilities():
    eye = torch.eye(10)
    confident_all_digits = eye.repeat(5, 1)
    assert mnist_score(confident_all_digits) == pytest.approx(10.0)
    assert mnist_score(torch.full((20, 10), 0.1)) == pytest.approx(1.0)
    assert mnist_score(eye[[3] * 20]) == pytest.approx(1.0)
    uniform = torch.full((10,), 0.1, dtype=torch.float64)
    assert label_histogram(confident_all_digits).tolist() == pytest.approx(uniform.tolist())
    half = eye[[0, 1, 2, 3, 4] * 4]
    assert histogram_kl(label_histogram(half), uniform) == pytest.approx(math.log(2))
    out = label_metrics(torch.cat([half, torch.full((20, 10), 0.1)]), uniform)
    assert out["confident_share"] == pytest.approx(0.5)
    assert out["label_max_gap"] == pytest.approx(0.6 - 0.1)  # digit 0: 4 one-hot rows + the 20 uniform rows (argmax 0)
    assert 1.0 < out["mnist_score"] < 10.0


def test_memorised_share_is_strictly_below_the_threshold():
    assert memorised_share(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2.0) == pytest.approx(0.5)


@pytest.mark.parametrize("radius", [0.5, 1.5, 3.0])
def test_radius_search_is_exact_against_all_distances(radius, monkeypatch):
    """The lower-bound pruning may only save time: its answers equal those of the full distance matrix."""
    g = torch.Generator().manual_seed(20)
    keys = torch.rand(3000, 40, generator=g) * (torch.rand(1, 40, generator=g) + 0.2)
    queries = torch.cat([keys[:50] + 0.02 * torch.randn(50, 40, generator=g),  # near copies
                         keys[50:100] + 0.4 * torch.randn(50, 40, generator=g),  # further away
                         torch.rand(100, 40, generator=g)])  # unrelated points
    index = memorisation.build_index(keys, axes=8, fit_rows=1000)
    expected = torch.cdist(queries.double(), keys.double()).min(dim=1).values < radius
    assert torch.equal(memorisation.any_within(queries, index, radius), expected)
    monkeypatch.setattr(memorisation, "DENSE_FALLBACK", 10)  # every chunk takes the dense path
    monkeypatch.setattr(memorisation, "SEARCH_CHUNK", 64)
    assert torch.equal(memorisation.any_within(queries, index, radius), expected)


def test_radius_search_bound_never_exceeds_the_true_distance():
    g = torch.Generator().manual_seed(21)
    points = torch.randn(400, 30, generator=g) @ torch.randn(30, 30, generator=g)
    index = memorisation.build_index(points[:300], axes=5)
    bound = torch.cdist(index.embed(points[300:]).double(), index.embedded.double())
    true = torch.cdist(points[300:].double(), points[:300].double())
    assert (bound <= true + 1e-3).all() and (bound > 0.3 * true).float().mean() > 0.5


def test_mean_pairwise_l1_matches_a_double_loop():
    images = torch.rand(7, 1, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    pairs = [(images[i] - images[j]).abs().mean().item() for i in range(7) for j in range(7) if i != j]
    assert mean_pairwise_l1(images) == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)
    assert mean_pairwise_l1(images[:1].expand(5, -1, -1, -1)) == 0.0
    assert mean_pairwise_l1(torch.stack([torch.zeros(3, 3), torch.ones(3, 3)])) == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        mean_pairwise_l1(images[:1])
