"""Figure helpers and per-sample inspection: checked against direct computations."""

import numpy as np
import pytest
import torch

from mnist_diffusion.reporting import figures
from mnist_diffusion.reporting import plots
from mnist_diffusion.data import mnist_tensors, to_model_range, to_uint8
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.evaluation import classify, nearest_training
from mnist_diffusion.diffusion.schedules import make_schedule


def test_forward_rows_follow_the_closed_form_with_one_noise_per_row(mnist_root):
    diffusion = GaussianDiffusion(make_schedule("linear", 1000))
    x0 = to_model_range(mnist_tensors("test")[0][:2])
    steps = [0, 10, 500, 1000]
    rows = figures.forward_rows(diffusion, x0, steps, seed=4)
    assert rows.shape == (2, 4, 28, 28) and rows.dtype == np.uint8
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(4))
    for j, t in enumerate(steps):
        a = diffusion.schedule.alpha[t].item()
        expected = (a**0.5 * x0 + (1 - a) ** 0.5 * eps).clamp(-1, 1)
        assert np.abs(rows[:, j].astype(int) - to_uint8(expected).numpy().astype(int)).max() <= 1
    assert np.array_equal(rows[:, 0], to_uint8(x0).numpy())  # t = 0 is the digit itself


def test_classify_ranks_real_digits_above_ambiguous_blends(mnist_root):
    """Real test digits against blends of two digits (the kind of ambiguity a weak model draws). Uniform noise would
    be a bad 'bad' set: this classifier, like most, calls it an 8 with probability ~1 (see the README)."""
    images, labels = mnist_tensors("test")
    blends = ((images[20:40].int() + images[40:60].int()) // 2).to(torch.uint8)
    verdicts = classify(torch.cat([images[:20], blends]))
    best, worst = verdicts.ranked(10)
    assert (best < 20).sum() >= 9, "the most confident images should be the real digits"
    assert (worst >= 20).sum() >= 9, "the least confident should be the blends"
    assert (verdicts.labels[:20] == labels[:20]).float().mean() >= 0.95
    assert verdicts.histogram.sum().item() == pytest.approx(1.0)
    assert torch.all(verdicts.confidence[best[:-1]] >= verdicts.confidence[best[1:]])


def test_nearest_training_matches_brute_force(mnist_root):
    train = mnist_tensors("train")[0]
    queries = torch.cat([train[[5, 999]], mnist_tensors("test")[0][:3]])
    index, distance = nearest_training(queries)
    assert index[0] == 5 and index[1] == 999 and distance[:2].max() < 0.02  # training images find themselves (float32 rounding)
    pixels = train.reshape(len(train), -1).float() / 255
    for q, i, d in zip(queries[2:], index[2:], distance[2:]):
        brute = ((pixels - q.reshape(-1).float() / 255) ** 2).sum(dim=1)
        assert i == int(brute.argmin())
        assert d == pytest.approx(brute.min().sqrt().item(), abs=0.02)


def test_save_figure_writes_pdf_and_png_into_the_profile_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "figures_dir", lambda profile=None: tmp_path)
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    fig = plots.image_grids({"a": images, "b": images}, ncol=4)
    pdf, png = plots.save_figure(fig, "demo")
    assert pdf.read_bytes()[:4] == b"%PDF" and png.read_bytes()[:4] == b"\x89PNG"
    first = pdf.read_bytes()
    plots.save_figure(fig, "demo")
    assert pdf.read_bytes() == first, "regenerating the same figure must give the same PDF bytes"


def test_figures_dir_is_scratch_under_smoke(monkeypatch):
    monkeypatch.setenv("MNIST_DIFFUSION_PROFILE", "smoke")
    assert "smoke" in plots.figures_dir().parts
    monkeypatch.setenv("MNIST_DIFFUSION_PROFILE", "full")
    assert plots.figures_dir().name == "figures" and "smoke" not in plots.figures_dir().parts


def test_image_grids_lays_panels_out_in_rows_of_per_row():
    images = np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    fig = plots.image_grids({k: images for k in "abcde"}, ncol=4, per_row=3)
    shown = [ax for ax in fig.axes if ax.images]
    assert [ax.get_title() for ax in shown] == list("abcde")
    rows = sorted({round(ax.get_position().y0, 3) for ax in shown})
    assert len(rows) == 2 and len(fig.axes) == 6  # two rows of three; the sixth axis is blank
    assert not fig.axes[5].images and not fig.axes[5].axison
    assert [ax.get_title() for ax in plots.image_grids({"a": images, "b": images}, ncol=4).axes] == ["a", "b"]
