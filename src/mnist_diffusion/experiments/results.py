"""Read-only access to the runs' results, for the notebooks and the report: weights, logs, metrics, curves, summary.

Each accessor loads what the scale's results folder holds (at the full scale: what is committed in
``results/``). When a file is missing it stops with a one-line :class:`UserError` naming the make target that
produces it, instead of starting hours of training or evaluation; only ``compute_if_missing=True``, or a scale
that says so (the smoke scale: seconds-sized runs, for tests and ``make test-notebooks``), trains and evaluates
what is missing. Drawing the samples a figure shows is always allowed (minutes at most, cached in ``runs/``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mnist_diffusion.errors import UserError
from mnist_diffusion.experiments.draws import draw_samples, weights_digest
from mnist_diffusion.experiments.registry import (
    CURVE_METRICS, CURVE_N, CURVE_SEED, SampleOptions, evaluation_key, experiment_config, get_experiment,
    parse_evaluation_key, published_weights, read_json, relative, results_dir, run_dir,
)
from mnist_diffusion.scale import Scale, resolve_scale
from mnist_diffusion.training.checkpoint import list_checkpoints

if TYPE_CHECKING:
    import numpy as np

    from mnist_diffusion.training.sampling import TrainedModel

#: Samples per model that the notebooks draw for their figures (grids, good and bad samples); the numbers in
#: the tables come from the evaluations' 10,000 per seed instead.
SHOWN_SAMPLES = 1_000


def _computes(scale: Scale, compute_if_missing: bool | None) -> bool:
    """Whether a missing result may be produced now: the caller's explicit choice, else the scale's."""
    return scale.may_compute if compute_if_missing is None else compute_if_missing


def trained(name: str, scale: Scale | str | None = None, *, compute_if_missing: bool | None = None,
            progress: bool = True) -> TrainedModel:
    """The experiment's final network as a :class:`~mnist_diffusion.training.sampling.TrainedModel`, from
    ``results/<name>/ema.pt``. Missing weights are trained now only when ``compute_if_missing`` (default: the
    scale's ``may_compute``) allows it; else a :class:`UserError` names the make target that trains them."""
    from mnist_diffusion.training.sampling import load_trained

    scale = resolve_scale(scale)
    e = get_experiment(name)
    path = published_weights(name, scale)
    if not path.is_file():
        if not _computes(scale, compute_if_missing):
            raise UserError(f"{relative(path)} is missing: run `make {e.train_target()}`")
        if progress:
            print(f"{name}: no weights in {path.parent}; training it now ({scale.name} scale)")
        from mnist_diffusion.experiments.running import train_experiment  # only on the opt-in compute path

        train_experiment(name, scale, progress)
    return load_trained(path, device="auto")


def samples(name: str, n: int, seed: int = 0, options: SampleOptions | None = None, scale: Scale | str | None = None,
            *, compute_if_missing: bool | None = None, progress: bool = True) -> np.ndarray:
    """``n`` samples (uint8 [n, 28, 28]) of the experiment's final weights, drawn once and cached in its run folder.
    Default ``options``: the experiment's headline sampler; the same arguments always give the same images. At
    most the scale's ``max_samples`` are drawn, whatever ``n`` asks for. Missing weights: as :func:`trained`."""
    scale = resolve_scale(scale)
    e = get_experiment(name)
    n = min(n, scale.max_samples) if scale.max_samples else n
    options = options or e.evaluations[0].options
    weights = published_weights(name, scale)
    if not weights.is_file():
        trained(name, scale, compute_if_missing=compute_if_missing, progress=progress)
    return draw_samples(weights, options, n, seed, run_dir(name, scale) / "samples", progress)[0]


def training_log(name: str, scale: Scale | str | None = None) -> list[dict[str, Any]]:
    """The run's ``log.jsonl`` records (step, loss, lr, train_seconds, images_seen, img_per_s)."""
    path = results_dir(scale) / name / "log.jsonl"
    if not path.is_file():
        raise UserError(f"{relative(path)} is missing: run `make {get_experiment(name).train_target()}`")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metrics(name: str, scale: Scale | str | None = None, *, compute_if_missing: bool | None = None) -> dict[str, Any]:
    """``results/<name>/metrics.json``. When it is missing or was made from other weights than ``ema.pt``, the run
    is evaluated now only if ``compute_if_missing`` (default: the scale's ``may_compute``) allows it; else a
    :class:`UserError` names the make target that evaluates it. A pilot's or a cold training variant's weights are
    scratch (not committed): its ``metrics.json``, once there, is its record."""
    scale = resolve_scale(scale)
    compute = _computes(scale, compute_if_missing)
    path = results_dir(scale) / name / "metrics.json"
    if get_experiment(name).scratch and path.is_file():
        return json.loads(path.read_text())
    weights = published_weights(name, scale)
    if not weights.is_file():
        trained(name, scale, compute_if_missing=compute, progress=False)
    recorded = read_json(path).get("weights_sha256_16")
    if recorded != weights_digest(weights):
        if not compute:
            problem = "is missing" if recorded is None else f"is of other weights than {weights.name}"
            raise UserError(f"{relative(path)} {problem}: run `make {get_experiment(name).evaluate_target()}`")
        print(f"{name}: evaluating {weights} (no metrics of these weights in {path.parent} yet)")
        from mnist_diffusion.experiments.running import evaluate_experiment  # only on the opt-in compute path

        evaluate_experiment(name, scale, progress=False)
    return json.loads(path.read_text())


def curve_options(drawn: dict[str, Any]) -> SampleOptions | None:
    """The sampler a ``curve.json`` (or a summary.json model entry's ``curve_options``) was drawn with: its
    ``options``, or, in files written before those were recorded, its ``sampler`` and ``steps``. None for none."""
    if drawn.get("options"):
        return SampleOptions(**drawn["options"])
    return SampleOptions(drawn["sampler"], steps=drawn.get("steps")) if drawn.get("sampler") else None


def final_curve_point(record: dict[str, Any], n: int = CURVE_N) -> dict[str, Any] | None:
    """A run's last quality-per-compute point without its curve: the final weights' evaluation under the curve's
    protocol (the curve's sampler, else the headline's; N = ``n``, the single seed CURVE_SEED; the number the
    curve's last point gives) at the run's training seconds and images seen. ``record``: a ``metrics.json`` or a
    summary.json model entry. None when that evaluation does not exist or used other seeds.

    Returns {"step", "train_seconds", "images_seen", "evaluation" (its key), and the curve's metrics}."""
    options = curve_options({"options": record.get("curve_options")}) or parse_evaluation_key(record["headline"])[0]
    key = evaluation_key(options, n)
    final = record["evaluations"].get(key)
    if not final or final.get("seeds") != [CURVE_SEED]:
        return None
    training = record["training"]
    return {"step": training["steps"], "train_seconds": training["train_seconds"], "images_seen": training["images_seen"],
            "evaluation": key, **{m: final["metrics"][m]["value"] for m in CURVE_METRICS if m in final["metrics"]}}


def curve(name: str, scale: Scale | str | None = None, *, compute_if_missing: bool | None = None) -> list[dict[str, Any]]:
    """The points of ``results/<name>/curve.json`` (quality per compute).

    When it is missing: drawn now from the run's training snapshots if ``compute_if_missing`` (default: the
    scale's ``may_compute``) allows it and there are snapshots; else the run's final point alone
    (:func:`final_curve_point`), said so, when its evaluation under the curve's protocol exists; else a
    :class:`UserError` naming ``make curves``. A curve that a stopped call left unfinished is returned as it stands,
    said so."""
    scale = resolve_scale(scale)
    compute = _computes(scale, compute_if_missing)
    path = results_dir(scale) / name / "curve.json"
    if not path.is_file():
        snapshots = run_dir(name, scale) / "snapshots"
        if compute and not published_weights(name, scale).is_file():
            trained(name, scale, compute_if_missing=True, progress=False)
        if compute and list_checkpoints(snapshots):
            from mnist_diffusion.experiments.running import curve_experiment  # only on the opt-in compute path

            curve_experiment(name, scale, progress=False)
        else:
            point = final_curve_point(metrics(name, scale, compute_if_missing=compute), scale.curve_n or CURVE_N)
            if point is None:
                raise UserError(f"{relative(path)} is missing: run `make curves` (it needs the training snapshots "
                                f"in {relative(snapshots)})")
            print(f"{name}: no {relative(path)}; its curve is its final point only (`make curves` measures the "
                  f"rest from the training snapshots in {relative(snapshots)})")
            return [point]
    drawn = json.loads(path.read_text())
    if drawn.get("complete") is False:
        print(f"{name}: {relative(path)} is from a stopped `experiment curve {name}`: run it again to finish it")
    return drawn["points"]


def curve_label(name: str, label: str, points: list[dict[str, Any]], scale: Scale | str | None = None) -> str:
    """A figure legend's ``label`` for ``points`` (from :func:`curve`), marked " (final point)" when only the
    final point is known, "second run" when ``curve.json`` was drawn from another run than ``ema.pt``, and with its
    sampler when that is not the run's headline sampler (curves drawn before the headline sampler was chosen)."""
    if len(points) == 1:
        return f"{label} (final point)"
    drawn = read_json(results_dir(scale) / name / "curve.json")
    notes = ["second run"] if drawn.get("ends_at_published_weights") is False else []
    options = curve_options(drawn)
    if options and options != get_experiment(name).evaluations[0].options:  # not the run's headline sampler
        notes.append(f"{sampler_label(options)}, {options.steps} steps" if options.steps else sampler_label(options))
    return f"{label} ({'; '.join(notes)})" if notes else label


def summary(scale: Scale | str | None = None, *, compute_if_missing: bool | None = None) -> dict[str, Any]:
    """``results/summary.json``; a scratch scale's is gathered again first (its metrics may be new), and a missing
    one is gathered (seconds) only if ``compute_if_missing`` (default: the scale's ``may_compute``) allows it."""
    scale = resolve_scale(scale)
    path = results_dir(scale) / "summary.json"
    if _computes(scale, compute_if_missing) and (scale.scratch or not path.is_file()):
        from mnist_diffusion.experiments.running import summarise  # only on the opt-in compute path

        summarise(scale)
    elif not path.is_file():
        raise UserError(f"{relative(path)} is missing: run `python -m mnist_diffusion experiment summary`")
    return json.loads(path.read_text())


def sampler_label(options: SampleOptions) -> str:
    """How figures name an evaluation's sampler: ``DDIM``, ``DDIM, eta = 1``, ``ancestral``, ``Algorithm 2, mixture
    prior``, ... (its steps are the figures' x axis)."""
    names = {"ddim": "DDIM", "ancestral": "ancestral", "dpmpp2m": "DPM-Solver++(2M)", "dpmpp2msde": "SDE-DPM-Solver++(2M)",
             "alg2": "Algorithm 2", "alg1": "Algorithm 1", "direct": "direct"}
    extras = ([f"eta = {options.eta:g}"] if options.eta else []) + ([f"{options.prior} prior"] if options.prior else []) \
        + ([] if options.clip else ["no clipping"])
    return ", ".join([names[options.sampler], *extras])


def fid_by_steps(record: dict[str, Any], scale: Scale | str | None = None, seed: int = 0
                 ) -> tuple[dict[str, list[tuple[int, float]]], float | None]:
    """From a DDPM run's metrics: the one-seed (N = 2,000) classifier-FID of each sampler against its network
    evaluations per sample, ``{"DDIM": [(10, fid), ...], "ancestral": [(T, fid)]}`` (keys: :func:`sampler_label`)
    sorted by steps, and the real-data FID floor at that N (T: the run's at ``scale``). Only the evaluations drawn
    on ``seed`` (0, or the sampler study's :data:`~mnist_diffusion.experiments.registry.SELECTION_SEED`)."""
    one_seed = [e for e in record["evaluations"].values() if e["sets"] == 1 and e["seeds"] == [seed]]
    T = experiment_config(record["name"], resolve_scale(scale)).diffusion.T
    series: dict[str, list[tuple[int, float]]] = {}
    for e in one_seed:
        options = SampleOptions(**e["options"])
        series.setdefault(sampler_label(options), []).append((options.steps or T, e["metrics"]["fid"]["value"]))
    floor = one_seed[0]["metrics"]["fid"]["floor"] if one_seed else None
    return {sampler: sorted(points) for sampler, points in series.items()}, floor
