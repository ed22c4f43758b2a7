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


def pilot_inputs() -> tuple[dict, dict]:
    """A summary with the control and four pilots scored (one of them missing from the benchmark), and a pilot
    benchmark document: the equal-step pilots cost the control's minutes, so their points crowd together."""
    from mnist_diffusion.experiments import PILOT_CONTROL, PILOT_EVALUATIONS

    key = PILOT_EVALUATIONS[0].key

    def scored(fid: float, description: str = "") -> dict:
        return {"description": description, "evaluations": {key: {"metrics": {"fid": {"value": fid}}}}}

    summary = {"pilot_control": PILOT_CONTROL, "models": {PILOT_CONTROL: scored(28.6)},
               "pilots": {"pilot_width32": scored(44.1, "width 32/64/128"),
                          "pilot_minsnr": scored(23.9, "min-SNR-5 loss weighting"),
                          "pilot_vpred": scored(27.9, "v-prediction"),
                          "pilot_ema9995": scored(29.4, "EMA decay 0.9995"),
                          "pilot_batch64": scored(31.0, "batch size 64")}}
    minutes = {PILOT_CONTROL: 70.3, "pilot_width32": 43.1, "pilot_minsnr": 70.9, "pilot_vpred": 70.1,
               "pilot_ema9995": 70.4, "pilot_width64": 51.0}  # batch64 not timed, width64 not scored
    bench = {"quick": False, "settings": {"threads": 1},
             "results": [{"run": run, "estimated_minutes": m} for run, m in minutes.items()]}
    return summary, bench


def test_pilot_cpu_figure_plots_each_scored_and_timed_run_once(tmp_path, monkeypatch):
    import json

    from matplotlib.text import Text

    from mnist_diffusion.experiments import PILOT_CONTROL

    summary, bench = pilot_inputs()
    (tmp_path / "pilots.json").write_text(json.dumps(bench))
    points = plots.pilot_cpu_points(summary, bench)
    assert [p["run"] for p in points] == [PILOT_CONTROL, "pilot_width32", "pilot_minsnr", "pilot_vpred",
                                          "pilot_ema9995"]
    assert points[0]["control"] and not any(p["control"] for p in points[1:])
    assert points[1] == {"run": "pilot_width32", "label": "width 32/64/128", "minutes": 43.1, "fid": 44.1,
                         "control": False}

    fig = plots.pilot_cpu_figure(summary, tmp_path / "pilots.json")
    ax = fig.axes[0]
    drawn = sorted(tuple(xy) for c in ax.collections for xy in c.get_offsets())
    assert drawn == sorted((p["minutes"], p["fid"]) for p in points)
    control = [c for c in ax.collections if len(c.get_offsets()) == 1]  # the control: a point of its own, black
    assert len(control) == 1 and tuple(control[0].get_offsets()[0]) == (70.3, 28.6)
    assert tuple(control[0].get_facecolor()[0][:3]) == (0.0, 0.0, 0.0)
    labels = {t.get_text(): t for t in ax.texts}
    assert set(labels) == {p["label"] for p in points}
    assert labels[plots.PILOT_CONTROL_LABEL].get_fontweight() == "bold"
    assert "same training FLOPs" in ax.get_title() and "CPU-minutes" in ax.get_xlabel()

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    assert min(t.get_fontsize() for t in texts) >= 7  # the report's smallest text, at the printed size
    assert fig.get_tightbbox(renderer).width <= plots.TEXT_WIDTH  # printed at its own width: text stays >= 7 pt
    frame = ax.get_window_extent(renderer)
    boxes = [Text.get_window_extent(t, renderer).shrunk(0.98, 0.9) for t in ax.texts]  # the text, not its leader
    for i, box in enumerate(boxes):
        assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
        assert not any(box.overlaps(other) for other in boxes[i + 1:]), "labels overlap"

    monkeypatch.setattr(plots, "figures_dir", lambda profile=None: tmp_path)
    pdf, png = plots.save_figure(fig, "hparams_pilots")
    assert pdf.read_bytes()[:4] == b"%PDF" and png.read_bytes()[:4] == b"\x89PNG"


def test_pilot_cpu_figure_needs_a_measured_benchmark(tmp_path, monkeypatch):
    import json

    from mnist_diffusion.errors import UserError

    summary, bench = pilot_inputs()
    monkeypatch.setattr(plots, "repo_root", lambda: tmp_path)  # default: <repo>/benchmarks/results/pilots.json
    for where in (None, tmp_path / "elsewhere.json"):
        with pytest.raises(UserError) as missing:
            plots.pilot_cpu_figure(summary, where)
        assert "\n" not in str(missing.value) and "python benchmarks/bench_pilots.py" in str(missing.value)
    assert "pilots.json" in str(pytest.raises(UserError, plots.pilot_benchmark).value)
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps({**bench, "quick": True}))
    with pytest.raises(UserError, match="--quick"):
        plots.pilot_cpu_figure(summary, quick)
    with pytest.raises(UserError, match="make pilot"):  # nothing both scored and timed
        plots.pilot_cpu_figure({"pilot_control": "ddpm_unet", "models": {}, "pilots": {}}, bench)
