"""Matplotlib figures for the notebooks and the report, and where they are saved.

Every function returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it as vector PDF (for the
report) and PNG (for the README) under the scale's figures folder: ``figures/``, or under the smoke scale the
scratch folder's ``figures/`` (outside the repository), so that tests never overwrite the committed figures. Images are uint8 [N, 28, 28] (0 = black, as in MNIST) and are
drawn white-on-black, as MNIST digits are.

Sizes are the printed sizes: a figure made ``k * TEXT_WIDTH`` wide (legends and labels included) is printed at
``k\\linewidth`` in the report, so its 7-8 pt text prints at 7-8 pt (``scripts/check_latex_log.py`` fails the
report's build on figure text below 7 pt). No function lets a legend or a label reach past the width it was given.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnist_diffusion.errors import UserError
from mnist_diffusion.paths import repo_root
from mnist_diffusion.reporting.figure_files import write_figure_file
from mnist_diffusion.reporting.grids import tile
from mnist_diffusion.scale import Scale, resolve_scale

#: Width of a figure spanning the report's text column, in inches (the column is 6.38 in: a little to spare).
TEXT_WIDTH = 6.3
#: Size of the labels drawn beside image rows and above image columns, in points (the report's smallest text).
LABEL_POINTS = 7


def _text_inches(texts: Sequence[str], points: float = LABEL_POINTS) -> float:
    """Width of the widest of ``texts`` set in matplotlib's default font at ``points``, in inches."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    font = FontProperties(size=points)
    return max((TextPath((0, 0), text, prop=font).get_extents().width for text in texts if text), default=0.0) / 72


def _legend_above(fig: Any, handles: Sequence[Any], labels: Sequence[str]) -> Any:
    """One legend centred above the figure, in as many columns as fit within the figure's width (at least one):
    ``save_figure``'s tight bounding box makes room for it above, but nothing may widen the figure."""
    width, height = fig.get_size_inches() * fig.dpi
    renderer = fig.canvas.get_renderer()
    top = max(ax.get_tightbbox(renderer).y1 for ax in fig.axes) / height  # just above the axes' titles and ticks
    legend = None
    for ncol in range(len(labels), 0, -1):
        if legend is not None:
            legend.remove()
        legend = fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, top), ncol=ncol,
                            frameon=False, borderaxespad=0.2)
        if legend.get_window_extent(renderer).width <= width:
            break
    return legend


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
        matplotlib.use("Agg")  # scripts and nbconvert: no display needed
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
                         "xtick.labelsize": 7, "ytick.labelsize": 7, "figure.dpi": 110, "savefig.dpi": 200,
                         "pdf.fonttype": 42})
    return plt


def figures_dir(scale: Scale | str | None = None) -> Path:
    """The scale's figures folder (default scale: ``$MNIST_DIFFUSION_PROFILE``): ``figures/`` (committed build
    outputs), or the smoke scale's scratch ``figures/``."""
    return resolve_scale(scale).figures_root()


def save_figure(fig: Any, name: str, scale: Scale | str | None = None) -> list[Path]:
    """Write ``<figures>/<name>.pdf`` and ``.png`` (stable names the report includes); returns both paths."""
    folder = figures_dir(scale)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.pdf", folder / f"{name}.png"]
    for path in paths:
        # Fixed metadata (no creation date, no software in the PNG) keeps the files byte-stable between regenerations.
        metadata = {"CreationDate": None} if path.suffix == ".pdf" else {"Software": None}
        rendered = io.BytesIO()
        # a thin margin (the default is 0.1 in a side): a TEXT_WIDTH-wide figure then fits the report's column
        fig.savefig(rendered, format=path.suffix[1:], bbox_inches="tight", pad_inches=0.02, metadata=metadata)
        # kept as it is when it shows the same picture (samples drawn on another machine differ by a grey level)
        write_figure_file(path, rendered.getvalue())
    return paths


def tiled(images: np.ndarray, ncol: int | None = None) -> np.ndarray:
    """uint8 [N, 28, 28] as one uint8 image with grey gutters, as :func:`show_images` draws it."""
    return tile(images, ncol=ncol, pad_value=96)


def show_images(ax: Any, images: np.ndarray, ncol: int | None = None, title: str | None = None) -> None:
    """Tile uint8 [N, 28, 28] into ``ax`` (white digits on black, grey gutters); a 2-d array is drawn as it is
    (already tiled)."""
    ax.imshow(images if images.ndim == 2 else tiled(images, ncol), cmap="gray", vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def image_grids(panels: Mapping[str, np.ndarray], ncol: int = 8, width: float = TEXT_WIDTH,
                per_row: int | None = None) -> Any:
    """One titled grid per entry of ``panels`` ({title: uint8 [N, 28, 28]}), ``per_row`` to a row (default: all
    side by side)."""
    plt = _pyplot()
    per_row = per_row or len(panels)
    rows = -(-len(panels) // per_row)
    pictures = {title: tiled(images, ncol) for title, images in panels.items()}  # tiled once, drawn below
    aspect = max(p.shape[0] / p.shape[1] for p in pictures.values())  # height / width of the tallest panel
    title_inches = 0.1 + 0.2 * max(title.count("\n") + 1 for title in panels)
    fig, axes = plt.subplots(rows, per_row, figsize=(width, rows * (width / per_row * aspect + title_inches)),
                             squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    for ax, (title, picture) in zip(axes.flat, pictures.items()):
        show_images(ax, picture, title=title)
    fig.tight_layout()
    return fig


def image_rows(rows: np.ndarray, column_labels: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
               width: float = TEXT_WIDTH) -> Any:
    """uint8 [R, C, 28, 28] as an R x C table of images with optional column and row labels (strips, trajectories)."""
    plt = _pyplot()
    r, c = rows.shape[:2]
    gap = 0.04  # between images, as a fraction of an image's side
    pad = 4 / 72  # between a row label and its row (matplotlib's labelpad)
    left = _text_inches(row_labels) + pad + 0.02 if row_labels is not None else 0.0  # the labels stay inside width
    top = (LABEL_POINTS + 6) / 72 if column_labels is not None else 0.0
    side = (width - left) / (c + gap * (c - 1))  # an image's side in inches
    height = side * (r + gap * (r - 1)) + top
    fig, axes = plt.subplots(r, c, figsize=(width, height), squeeze=False,
                             gridspec_kw={"wspace": gap, "hspace": gap, "left": left / width, "right": 1.0,
                                          "bottom": 0.0, "top": 1.0 - top / height})
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            ax.imshow(rows[i, j], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0 and column_labels is not None:
                ax.set_title(column_labels[j], fontsize=LABEL_POINTS, pad=3)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=LABEL_POINTS, rotation=0, ha="right", va="center",
                              labelpad=pad * 72)
    return fig


def schedules_figure(schedules: Mapping[str, Any]) -> Any:
    """beta_t (log scale) and alpha_t = prod(1 - beta_s) against t for each named NoiseSchedule."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(TEXT_WIDTH, 2.2))
    for name, schedule in schedules.items():
        t = np.arange(1, schedule.T + 1)
        left.plot(t, schedule.beta[1:].numpy(), label=name)
        right.plot(t, schedule.alpha[1:].numpy(), label=name)
    left.set(yscale="log", xlabel="t", ylabel=r"$\beta_t$", title="variance schedule")
    right.set(xlabel="t", ylabel=r"$\alpha_t$", title=r"signal fraction $\alpha_t$")
    right.legend()
    fig.tight_layout()
    return fig


def loss_curves(logs: Mapping[str, Sequence[Mapping[str, float]]], x: str = "images_seen") -> Any:
    """Training loss (one line per run, from ``log.jsonl`` records) against images seen or training seconds."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH / 2, 2.3))
    for name, records in logs.items():
        ax.plot([r[x] for r in records], [r["loss"] for r in records], label=name, lw=1)
    ax.set(yscale="log", xlabel={"images_seen": "images seen", "train_seconds": "training seconds"}.get(x, x),
           ylabel="training loss")
    ax.legend()
    fig.tight_layout()
    return fig


def label_histograms(histograms: Mapping[str, np.ndarray], reference: np.ndarray) -> Any:
    """Share of each predicted digit per model (bars) against the test set's share (black ticks)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH / 2, 2.2))
    width = 0.8 / max(len(histograms), 1)
    digits = np.arange(10)
    for i, (name, hist) in enumerate(histograms.items()):
        ax.bar(digits - 0.4 + width * (i + 0.5), hist, width, label=name)
    ax.scatter(digits, reference, marker="_", s=150, color="black", label="test set", zorder=3)
    ax.set(xticks=digits, xlabel="predicted digit", ylabel="share of samples")
    fig.tight_layout()
    _legend_above(fig, *ax.get_legend_handles_labels())  # above: bars may reach the top
    return fig


def metric_lines(series: Mapping[str, Sequence[tuple[float, float]]], xlabel: str, ylabel: str,
                 floor: float | None = None, xlog: bool = True, ylog: bool = True) -> Any:
    """Lines of (x, y) points per name, e.g. FID against sampling steps or training seconds, with the floor dashed."""
    return metric_panels({xlabel: series}, ylabel, floor, xlog, ylog)


def metric_panels(panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]], ylabel: str,
                  floor: float | None = None, xlog: bool = True, ylog: bool = True) -> Any:
    """One panel per x quantity ({xlabel: {name: [(x, y), ...]}}) sharing the y axis, e.g. FID against training
    minutes and against images seen."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(TEXT_WIDTH / 2 * len(panels), 2.3), squeeze=False, sharey=True)
    for ax, (xlabel, series) in zip(axes[0], panels.items()):
        for name, points in series.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", ms=3, lw=1, label=name)
        if floor is not None:
            ax.axhline(floor, ls="--", color="grey", lw=1, label="real-data floor")
        ax.set(xscale="log" if xlog else "linear", yscale="log" if ylog else "linear", xlabel=xlabel)
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    _legend_above(fig, *axes[0][0].get_legend_handles_labels())  # one legend above the panels (inside, it hid lines)
    return fig


def study_bars(names: Sequence[str], values: Sequence[float], errors: Sequence[float | None], ylabel: str,
               floor: float | None = None) -> Any:
    """Horizontal bars with error bars (the hyperparameter study: one bar per run), on a log axis: the values
    span orders of magnitude, from the real-data floor to an untuned baseline."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH * 0.9, 0.3 * len(names) + 0.8))
    y = np.arange(len(names))
    ax.barh(y, values, xerr=[e or 0 for e in errors], color="tab:blue", alpha=0.8, capsize=2)
    if floor is not None:
        ax.axvline(floor, ls="--", color="grey", lw=1, label="real-data floor")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set(yticks=y, yticklabels=names, xlabel=ylabel, xscale="log")
    ax.invert_yaxis()
    fig.tight_layout()
    return fig


def distance_histograms(panels: Mapping[str, Mapping[str, Sequence[int]]], bins: np.ndarray, xlabel: str,
                        threshold: float | None = None) -> Any:
    """Distributions of distances as step lines of the share of images per bin, one panel per title
    ({title: {name: counts over ``bins``}}), with a dashed vertical line at ``threshold`` (e.g. the memorisation
    threshold) in every panel; one legend above, a name keeping its colour across panels."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(TEXT_WIDTH / 2 * len(panels), 2.3), squeeze=False, sharey=True)
    handles: dict[str, Any] = {}
    colours = {name: f"C{i}" for i, name in enumerate(dict.fromkeys(n for series in panels.values() for n in series))}
    for ax, (title, series) in zip(axes[0], panels.items()):
        for name, counts in series.items():
            counts = np.asarray(counts, dtype=np.float64)
            (line,) = ax.step(bins[:-1], counts / counts.sum(), where="post", lw=1, color=colours[name], label=name)
            handles.setdefault(name, line)
        if threshold is not None:
            handles.setdefault("memorisation threshold", ax.axvline(threshold, ls="--", color="grey", lw=1))
        ax.set(title=title, xlabel=xlabel, xlim=(bins[0], bins[-1]))
    axes[0][0].set_ylabel("share of images")
    fig.tight_layout()
    _legend_above(fig, list(handles.values()), list(handles))
    return fig


# --- the pilot study against CPU time ---------------------------------------------------------------------------

#: The pilot benchmark's JSON (``benchmarks/bench_pilots.py``), relative to the repository: seconds per training
#: step of the control and of each pilot at one thread, and the estimated training minutes they give.
PILOT_BENCH = Path("benchmarks") / "results" / "pilots.json"
#: How the pilot figure names the control.
PILOT_CONTROL_LABEL = "our recipe (control)"


def pilot_benchmark(path: str | Path | None = None) -> dict[str, Any]:
    """The pilot benchmark's result document (default: :data:`PILOT_BENCH`); a one-line :class:`UserError` naming
    the script to run when it is missing or was written by its ``--quick`` mode (whose timings mean nothing)."""
    from mnist_diffusion.experiments.registry import relative

    path = Path(path) if path is not None else repo_root() / PILOT_BENCH
    if not path.is_file():
        raise UserError(f"{relative(path)} is missing: run `python benchmarks/bench_pilots.py` on an idle CPU "
                        f"(~4 min; it times one training step of each pilot)")
    document = json.loads(path.read_text())
    if document.get("quick"):
        raise UserError(f"{relative(path)} is from a --quick run (not a measurement): run "
                        f"`python benchmarks/bench_pilots.py` on an idle CPU")
    return document


def pilot_cpu_points(summary: Mapping[str, Any], bench: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The pilot figure's points: for the control (``summary["pilot_control"]``, from ``summary["models"]``) and each
    pilot (``summary["pilots"]``) that has both the pilot evaluation (the chosen sampler at N = 2,000 on the selection
    seed) and a row in the benchmark document ``bench``, {"run", "label", "minutes" (the benchmark's estimated
    training minutes), "fid", "control"}; the control first, then the pilots in the registry's order."""
    from mnist_diffusion.experiments.registry import PILOT_CONTROL, PILOT_EVALUATIONS, PILOTS

    key = PILOT_EVALUATIONS[0].key
    minutes = {row["run"]: row["estimated_minutes"] for row in bench.get("results", [])}
    control = summary.get("pilot_control", PILOT_CONTROL)
    runs = [(control, summary.get("models", {}).get(control, {}), PILOT_CONTROL_LABEL, True)]
    runs += [(p.name, summary.get("pilots", {}).get(p.name, {}), p.description, False) for p in PILOTS]
    points = []
    for run, record, label, is_control in runs:
        evaluation = record.get("evaluations", {}).get(key)
        if evaluation is None or run not in minutes:
            continue
        points.append({"run": run, "label": label if is_control else record.get("description", label),
                       "minutes": minutes[run], "fid": evaluation["metrics"]["fid"]["value"], "control": is_control})
    return points


def pilot_cpu_figure(summary: Mapping[str, Any], bench: Mapping[str, Any] | str | Path | None = None) -> Any:
    """Classifier-FID of the pilot study (the chosen sampler, N = 2,000, selection seed) against each run's estimated
    training CPU-minutes at one thread (``benchmarks/bench_pilots.py``: seconds per step x steps), one labelled point
    per run with both (:func:`pilot_cpu_points`), the control a black star with a dotted line at its FID. Every run
    has the same training FLOPs, as the title says. ``bench``: the benchmark's document, or its path (default
    :data:`PILOT_BENCH`; missing: a one-line :class:`UserError` naming the script, from :func:`pilot_benchmark`)."""
    from mnist_diffusion.experiments.registry import PILOT_BUDGET_TFLOP, PILOT_EVALUATIONS
    from mnist_diffusion.experiments.results import sampler_label

    if bench is None or isinstance(bench, (str, Path)):
        bench = pilot_benchmark(bench)
    points = pilot_cpu_points(summary, bench)
    if not points:
        raise UserError("no pilot run has both its evaluation in summary.json and a row in the pilot benchmark: "
                        "run `make pilot` and `python benchmarks/bench_pilots.py`")
    threads = bench.get("settings", {}).get("threads", 1)
    evaluation = PILOT_EVALUATIONS[0]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(TEXT_WIDTH, 2.8))
    pilots = [p for p in points if not p["control"]]
    if pilots:
        ax.scatter([p["minutes"] for p in pilots], [p["fid"] for p in pilots], s=18, color="tab:blue", zorder=4)
    for p in points:
        if p["control"]:
            ax.axhline(p["fid"], ls=":", lw=0.8, color="grey", zorder=1)
            ax.scatter([p["minutes"]], [p["fid"]], marker="*", s=90, color="black", zorder=3)  # under the pilots
    fids = [p["fid"] for p in points]
    ax.margins(x=0.15, y=0.15)
    if max(fids) > 4 * min(fids):  # a wide range: a log axis, ticks at 1, 2, 3, 5 x 10^k written out
        from matplotlib.ticker import NullFormatter, ScalarFormatter

        ax.set_yscale("log")
        low, high = ax.get_ylim()
        ax.set_yticks([t for k in range(-1, 6) for t in (10**k, 2 * 10**k, 3 * 10**k, 5 * 10**k) if low <= t <= high])
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("estimated training CPU-minutes at one thread (steps x measured seconds per step)" if threads == 1
                  else f"estimated training minutes at {threads} threads (steps x measured seconds per step)")
    ax.set_ylabel(f"classifier-FID (N = {evaluation.n:,})")
    options = evaluation.options
    ax.set_title(f"every run: the same training FLOPs ({PILOT_BUDGET_TFLOP:g} TFLOP); sampler "
                 f"{sampler_label(options)}, {options.steps} steps, seed {evaluation.seed:,}")
    fig.tight_layout()
    _label_points(ax, [(p["minutes"], p["fid"]) for p in points], [p["label"] for p in points],
                  [p["control"] for p in points])
    return fig


def _label_points(ax: Any, xy: Sequence[tuple[float, float]], labels: Sequence[str], bold: Sequence[bool],
                  points: float = LABEL_POINTS, offset: float = 7.0) -> None:
    """Label each point of ``xy`` (data coordinates) beside it, inside the axes and clear of the other labels and
    markers. A label starts as a group of its own, beside its point; groups whose labels would cover another group's
    labels or markers are merged, and a group's labels stand in one column beside its points (right of them, or left
    where the right lacks room), in the order of the points' heights, each as near its point's height as the others
    allow, with a thin leader line to its point when moved (neighbours whose lines would cross trade places). A
    linear x axis is first widened on the right to leave room for the longest label right of the rightmost point.
    Call it once the layout is final (the labels stay inside the axes, so they do not change it)."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72  # display pixels per point
    frame = ax.get_window_extent(renderer)
    styles = [{"fontsize": points, "fontweight": "bold" if b else "normal"} for b in bold]
    sizes = []  # (width, height) of each label in display pixels, with a point of room around it
    for label, style in zip(labels, styles):
        probe = ax.text(0, 0, label, **style)
        box = probe.get_window_extent(renderer)
        probe.remove()
        sizes.append((box.width + 2 * px, box.height + 2 * px))
    room = (offset * px + max(width for width, _ in sizes)) / frame.width  # share of the axes' width a label needs
    if ax.get_xscale() == "linear" and room < 0.8:
        low, high = ax.get_xlim()
        rightmost = max(x for x, _ in xy)
        ax.set_xlim(low, max(high, (rightmost - room * low) / (1 - room)))
    shown = ax.transData.transform(np.asarray(xy, dtype=float))
    markers = [Bbox.from_bounds(x - 4 * px, y - 4 * px, 8 * px, 8 * px) for x, y in shown]

    def column(members: list[int]) -> dict[int, tuple[float, float, int]]:
        """{label: (x of its anchor, y of its centre, side: 1 right / -1 left)} of one group, in display pixels."""
        xs = shown[members, 0]
        width = max(sizes[i][0] for i in members)
        right, left = xs.max() + offset * px, xs.min() - offset * px
        if right + width <= frame.x1 or left - width < frame.x0:  # right of the points, else left; else right, inside
            side, x = 1, min(right, frame.x1 - width)
        else:
            side, x = -1, left
        order = sorted(members, key=lambda i: -shown[i][1])  # top down
        wanted = np.array([shown[i][1] for i in order])
        heights = np.array([sizes[i][1] for i in order])
        ys = wanted.copy()
        for k in range(1, len(ys)):  # push each label below the one above it...
            ys[k] = min(ys[k], ys[k - 1] - (heights[k - 1] + heights[k]) / 2)
        ys += (wanted - ys).mean()  # ...then move the column back to where its points are, on average
        ys -= max(0.0, ys[0] + heights[0] / 2 - frame.y1)  # and inside the axes
        ys += max(0.0, frame.y0 - (ys[-1] - heights[-1] / 2))
        for _ in range(len(order) ** 2):  # neighbours whose leader lines would cross trade places
            swaps = [k for k in range(len(order) - 1)
                     if _segments_cross((x, ys[k]), shown[order[k]], (x, ys[k + 1]), shown[order[k + 1]])]
            for k in swaps[:1]:
                order[k], order[k + 1] = order[k + 1], order[k]
            if not swaps:
                break
        return {i: (x, y, side) for i, y in zip(order, ys)}

    def box(i: int, x: float, y: float, side: int) -> Bbox:
        width, height = sizes[i]
        return Bbox.from_bounds(x if side > 0 else x - width, y - height / 2, width, height)

    groups = [[i] for i in range(len(xy))]
    while True:
        placed = {i: spot for group in groups for i, spot in column(group).items()}
        boxes = {i: box(i, *spot) for i, spot in placed.items()}
        group_of = {i: g for g, group in enumerate(groups) for i in group}
        clash = next(((group_of[i], group_of[j]) for i in boxes for j in boxes if group_of[i] != group_of[j]
                      and (boxes[i].overlaps(boxes[j]) or boxes[i].overlaps(markers[j]))), None)
        if clash is None:
            break
        keep, merged = min(clash), max(clash)
        groups[keep] += groups.pop(merged)
    leader = {"arrowstyle": "-", "lw": 0.5, "color": "grey", "shrinkA": 0, "shrinkB": 3}
    for i, (x, y, side) in placed.items():
        dx, dy = (x - shown[i][0]) / px, (y - shown[i][1]) / px  # in points
        moved = abs(dy) > 0.5 or abs(abs(dx) - offset) > 0.5
        ax.annotate(labels[i], xy[i], xytext=(dx, dy), textcoords="offset points", ha="left" if side > 0 else "right",
                    va="center", arrowprops=leader if moved else None, zorder=5, **styles[i],
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})  # over the lines


def _segments_cross(a0: Sequence[float], a1: Sequence[float], b0: Sequence[float], b1: Sequence[float]) -> bool:
    """Whether the segments a0-a1 and b0-b1 (2-d points) cross at a point inside both."""
    def turn(p: Sequence[float], q: Sequence[float], r: Sequence[float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return (turn(a0, a1, b0) * turn(a0, a1, b1) < 0) and (turn(b0, b1, a0) * turn(b0, b1, a1) < 0)
