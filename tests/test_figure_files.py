"""Figure files are rewritten only when the figure changed: the same picture drawn again (its samples a grey level
or two apart, as sampling on another machine gives them) leaves the committed PNG and PDF untouched, and any
real change (other samples, text, size) is written."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mnist_diffusion.reporting import figure_files, plots
from mnist_diffusion.reporting.figure_files import GREY_LEVELS, PIXEL_SHARE, same_figure, write_figure_file
from mnist_diffusion.reporting.grids import save_grid

RNG = np.random.default_rng(0)
DIGITS = RNG.integers(0, 256, (16, 28, 28), dtype=np.uint8)


def nudged(images: np.ndarray, count: int, by: int, seed: int = 1) -> np.ndarray:
    """``images`` with ``count`` pixels moved ``by`` grey levels (towards the middle, so nothing clips)."""
    out = images.copy()
    flat = out.reshape(-1)
    at = np.random.default_rng(seed).choice(flat.size, count, replace=False)
    flat[at] = np.where(flat[at] < 128, flat[at].astype(int) + by, flat[at].astype(int) - by).astype(np.uint8)
    return out


def render(images: np.ndarray, fmt: str, title: str = "samples") -> bytes:
    """What save_figure writes for a grid of ``images``."""
    fig = plots.image_grids({title: images}, ncol=4, width=3.0)
    buffer = io.BytesIO()
    metadata = {"CreationDate": None} if fmt == "pdf" else {"Software": None}
    fig.savefig(buffer, format=fmt, bbox_inches="tight", pad_inches=0.02, metadata=metadata)
    plots._pyplot().close(fig)
    return buffer.getvalue()


def test_pixels_match_states_its_tolerance():
    a = np.full((100, 100), 100, dtype=np.uint8)
    assert figure_files.pixels_match(a, a.copy())
    b = a.copy()
    b.reshape(-1)[: int(PIXEL_SHARE * a.size)] += GREY_LEVELS  # the most pixels, by the most levels, allowed
    assert figure_files.pixels_match(a, b)
    c = a.copy()
    c[0, 0] += GREY_LEVELS + 1  # one pixel too far apart
    assert not figure_files.pixels_match(a, c)
    d = a.copy()
    d.reshape(-1)[: int(PIXEL_SHARE * a.size) + 1] += 1  # one pixel too many, by a single level
    assert not figure_files.pixels_match(a, d)
    assert not figure_files.pixels_match(a, a[:, :99])  # another size
    assert not figure_files.pixels_match(a, np.stack([a] * 3, axis=-1))  # grey against RGB


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_rendering_a_figure_twice_gives_the_same_bytes(fmt):
    # the helper's tolerance is for samples drawn elsewhere, not for the renderer: the same pixels give the same file
    assert render(DIGITS, fmt) == render(DIGITS, fmt)


@pytest.mark.parametrize("fmt", ["png", "pdf"])
def test_samples_a_grey_level_or_two_apart_are_the_same_figure(fmt):
    old = render(DIGITS, fmt)
    new = render(nudged(DIGITS, count=20, by=2), fmt)
    assert old != new  # the files differ ...
    assert same_figure(old, new, f".{fmt}")  # ... but not the picture


@pytest.mark.parametrize("fmt", ["png", "pdf"])
@pytest.mark.parametrize("change", ["one pixel far off", "many pixels off by one", "other samples", "title", "size"])
def test_real_changes_are_not_the_same_figure(fmt, change):
    old = render(DIGITS, fmt)
    if change == "one pixel far off":
        new = render(nudged(DIGITS, count=1, by=GREY_LEVELS + 8), fmt)
    elif change == "many pixels off by one":
        new = render(nudged(DIGITS, count=DIGITS.size // 5, by=1), fmt)
    elif change == "other samples":
        new = render(DIGITS[::-1].copy(), fmt)
    elif change == "title":
        new = render(DIGITS, fmt, title="sample5")
    else:
        new = render(DIGITS[:12], fmt)
    assert not same_figure(old, new, f".{fmt}")


def test_pdf_comparison_covers_lines_and_text_and_ignores_the_software_version():
    def line_plot(ys, label="loss", producer=None):
        plt = plots._pyplot()
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot(ys, label=label)
        ax.legend()
        buffer = io.BytesIO()
        metadata = {"CreationDate": None} | ({"Producer": producer} if producer else {})
        fig.savefig(buffer, format="pdf", metadata=metadata)
        plt.close(fig)
        return buffer.getvalue()

    old = line_plot([1, 2, 3])
    assert same_figure(old, line_plot([1, 2, 3], producer="Matplotlib pdf backend v9.9"), ".pdf")
    assert not same_figure(old, line_plot([1, 2, 3.01]), ".pdf")
    assert not same_figure(old, line_plot([1, 2, 3], label="Loss"), ".pdf")


def test_unreadable_files_are_not_the_same_figure():
    good_pdf, good_png = render(DIGITS, "pdf"), render(DIGITS, "png")
    assert not same_figure(b"%PDF-1.4 truncated", good_pdf, ".pdf")
    assert not same_figure(good_pdf[: len(good_pdf) // 2], good_pdf, ".pdf")
    assert not same_figure(b"not a png", good_png, ".png")
    assert not same_figure(b"a", b"b", ".txt")
    assert same_figure(b"a", b"a", ".txt")


def test_write_figure_file_keeps_the_same_picture_and_writes_a_changed_one(tmp_path):
    path = tmp_path / "sub" / "demo.png"
    first = render(DIGITS, "png")
    assert write_figure_file(path, first) and path.read_bytes() == first  # new file (and folder)
    assert not write_figure_file(path, render(nudged(DIGITS, count=20, by=1), "png"))
    assert path.read_bytes() == first, "a render within the tolerance must leave the file as it was"
    changed = render(DIGITS[::-1].copy(), "png")
    assert write_figure_file(path, changed) and path.read_bytes() == changed
    path.write_bytes(b"garbage")
    assert write_figure_file(path, first) and path.read_bytes() == first


def test_save_figure_leaves_committed_files_alone_when_only_sample_noise_differs(tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "figures_dir", lambda *args, **kwargs: tmp_path)
    pdf, png = plots.save_figure(plots.image_grids({"samples": DIGITS}, ncol=4), "demo")
    before = pdf.read_bytes(), png.read_bytes()
    plots.save_figure(plots.image_grids({"samples": nudged(DIGITS, count=10, by=2)}, ncol=4), "demo")
    assert (pdf.read_bytes(), png.read_bytes()) == before
    plots.save_figure(plots.image_grids({"samples": DIGITS[::-1].copy()}, ncol=4), "demo")
    assert pdf.read_bytes() != before[0] and png.read_bytes() != before[1]


def test_save_figure_renders_the_same_bytes_into_two_folders(tmp_path, monkeypatch):
    written = []
    for folder in ("a", "b"):
        monkeypatch.setattr(plots, "figures_dir", lambda *args, folder=folder, **kwargs: tmp_path / folder)
        written.append([p.read_bytes() for p in plots.save_figure(plots.image_grids({"s": DIGITS}, ncol=4), "demo")])
    assert written[0] == written[1]


def test_save_grid_goes_through_the_same_helper(tmp_path):
    path = save_grid(DIGITS, tmp_path / "grid.png", ncol=4)
    first = path.read_bytes()
    assert Image.open(path).size == (2 * (4 * 30 + 2), 2 * (4 * 30 + 2))
    save_grid(nudged(DIGITS, count=5, by=1), path, ncol=4)
    assert path.read_bytes() == first
    save_grid(DIGITS[::-1].copy(), path, ncol=4)
    assert path.read_bytes() != first
