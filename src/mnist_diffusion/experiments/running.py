"""The code that writes results: train a run and publish its weights, evaluate it, draw its quality-per-compute
curve, and gather the summary (what ``python -m mnist_diffusion experiment ...`` and the make targets run).

Each function works at a :class:`~mnist_diffusion.scale.Scale` (or its name): the full scale trains into
``runs/<name>/`` (resumably) and writes ``results/<name>/``; the smoke scale does the same in seconds, in its
scratch folder.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from mnist_diffusion.errors import UserError
from mnist_diffusion.experiments.draws import draw_samples, sample_file, weights_digest
from mnist_diffusion.experiments.registry import (
    COPYING_N, CURVE_METRICS, CURVE_N, CURVE_SEED, ENDPOINT_N, EXPERIMENTS, HEADLINES, INCEPTION_BUDGET_HOURS,
    PILOT_CONTROL, RESTORATION_N, SELECTION_SEED, STEP_ERROR_N, STUDY_FACTORS, STUDY_STEPS, SUMMARY_SECTIONS,
    Evaluation, data_free,
    experiment_config, get_experiment, published_weights, read_json, relative, results_dir, run_dir,
)
from mnist_diffusion.experiments.results import curve_options
from mnist_diffusion.paths import repo_root, write_json
from mnist_diffusion.scale import Scale, resolve_scale
from mnist_diffusion.training.checkpoint import list_checkpoints, load_checkpoint

if TYPE_CHECKING:
    from mnist_diffusion.training.sampling import TrainedModel


def hardware() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, torch threads, GPU if any, versions."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}


def train_experiment(name: str, scale: Scale | str | None = None, progress: bool = True) -> Path:
    """Train (or continue training) a run and publish its weights, log and config into the results folder.
    A run of a scratch scale starts afresh; a full run resumes from its newest good checkpoint (or starts)."""
    from mnist_diffusion.training.loop import train

    scale = resolve_scale(scale)
    config = experiment_config(name, scale)
    folder = run_dir(name, scale)
    if not take_snapshot(name, scale):
        train(config, folder, resume=not scale.scratch, scale=scale, progress=progress)
        write_json(folder / "hardware.json", hardware())
    return publish_weights(name, scale)


def take_snapshot(name: str, scale: Scale | str | None = None) -> bool:
    """For a study run with ``snapshot_of``: write its ``ema.pt``, ``log.jsonl``, ``config.yaml`` and
    ``hardware.json`` into ``runs/<name>/`` from the final run's snapshot at the study's step. Returns False
    (nothing written) when there is no such snapshot yet, and the run must be trained on its own."""
    from mnist_diffusion.training import checkpoint as ckpt

    scale = resolve_scale(scale)
    e = get_experiment(name)
    if e.snapshot_of is None:
        return False
    config = experiment_config(name, scale)
    source = run_dir(e.snapshot_of, scale)
    snapshot = source / "snapshots" / ckpt.checkpoint_name(config.train.steps)
    if not snapshot.is_file():
        return False
    state = load_checkpoint(snapshot)
    folder = run_dir(name, scale)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.save_atomic({"format": state["format"], "config": config.to_dict(), "step": state["step"],
                      "ema": state["ema"], "stats": state["stats"], "snapshot_of": relative(snapshot)},
                     folder / "ema.pt")
    lines = (source / "log.jsonl").read_text().splitlines() if (source / "log.jsonl").is_file() else []
    (folder / "log.jsonl").write_text("".join(f"{line}\n" for line in lines if json.loads(line)["step"] <= state["step"]))
    (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    write_json(folder / "hardware.json", read_json(source / "hardware.json") or hardware())  # the same machine
    return True


def publish_weights(name: str, scale: Scale | str | None = None) -> Path:
    """Copy ``ema.pt`` (+ its digest), ``log.jsonl``, ``config.yaml`` and ``hardware.json`` into ``results/<name>/``
    (a pilot's or a cold training variant's weights stay in its run folder: ``Experiment.scratch``)."""
    source, target = run_dir(name, scale), results_dir(scale) / name
    if not (source / "ema.pt").is_file():
        raise UserError(f"{source / 'ema.pt'} does not exist: train first (python -m mnist_diffusion experiment train {name})")
    target.mkdir(parents=True, exist_ok=True)
    weights = ("ema.pt", "ema.pt.sha256") if not get_experiment(name).scratch else ()
    for file in (*weights, "log.jsonl", "config.yaml", "hardware.json"):
        if (source / file).is_file():
            shutil.copy2(source / file, target / file)
    return target


def weights_path(name: str, scale: Scale | str | None = None) -> Path:
    """The run's published weights; a one-line :class:`UserError` naming the make target when they are missing."""
    path = published_weights(name, scale)
    if not path.is_file():
        raise UserError(f"{relative(path)} is missing: run `make {get_experiment(name).train_target()}`")
    return path


INCEPTION_KEY = "inception_fid"


def evaluate_experiment(name: str, scale: Scale | str | None = None, progress: bool = True,
                        only: tuple[str, ...] | None = None, inception: bool = False) -> Path:
    """Run every evaluation of an experiment (or the keys in ``only``) and (re)write ``results/<name>/metrics.json``.

    Each evaluation records its sampler ``options`` and the ``sample_args`` that draw its samples with
    ``python -m mnist_diffusion sample``. ``inception``: also add Inception-FID to the headline evaluation (see
    :func:`inception_fid_row`); with ``only=("inception",)`` that is all it does (the headline must have been
    evaluated). An Inception-FID already in the file is kept when the headline is re-evaluated from the same
    weights. Each result is merged into the file as it is when the result is ready, so two processes evaluating
    different keys of one run keep each other's results; results of other weights than the current ones are dropped."""
    from mnist_diffusion.cold.trace_prior import prior_components
    from mnist_diffusion.evaluation import evaluate

    scale = resolve_scale(scale)
    e = get_experiment(name)
    weights = weights_path(name, scale)
    state = load_checkpoint(weights)
    out = results_dir(scale) / name / "metrics.json"
    if inception:
        require_inception()
    plan = e.evaluations_at(scale)
    if not plan:
        raise UserError(f"{name} has no evaluation at the {scale.name} scale: its evaluations use the selection "
                        f"seed {SELECTION_SEED}, which this scale skips")
    cold = experiment_config(name, scale).cold
    degradation = cold.degradation if e.is_cold else None
    header = {"name": name, "description": e.description, "config": e.config, "overrides": list(e.overrides),
              "training": {"steps": int(state["step"]), **state.get("stats", {}),
                           "hardware": read_json(weights.parent / "hardware.json")},
              "weights_sha256_16": weights_digest(weights), "headline": plan[0].key}
    extras = ["restoration", "endpoint", "step_error"] if e.is_cold else []
    extras += ["copying"] if e.copying_options(scale) else []
    extras += ["prior_selection", "trace_information"] if degradation == "palimpsest_trace" else []
    # ``only=("inception",)`` adds Inception-FID to the existing headline without re-evaluating anything else
    known = [ev.key for ev in plan] + extras + (["inception"] if inception else [])
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise UserError(f"--only {' '.join(unknown)}: {name} has no such evaluation; it has {', '.join(known)}")

    def current_record() -> dict[str, Any]:
        record = read_json(out)
        if record.get("weights_sha256_16") != header["weights_sha256_16"]:
            record = {}
        record.update(header)
        record.setdefault("evaluations", {})
        return record

    def require_headline(record: dict[str, Any]) -> None:
        if header["headline"] not in record["evaluations"]:
            raise UserError(f"no headline evaluation {header['headline']} in {out} yet: evaluate it first")

    if inception and only is not None and header["headline"] not in only:
        require_headline(current_record())  # checked before hours of Inception work, not after
    samples = run_dir(name, scale) / "samples"
    for ev in plan:
        if only is not None and ev.key not in only:
            continue
        drawn = [draw_samples(weights, ev.options, ev.n, seed, samples, progress) for seed in ev.seeds]
        result = evaluate([images for images, _ in drawn], n=ev.n, seeds=ev.seeds, progress=progress)
        result.update({"options": ev.options.to_dict(), "sample_args": ev.options.sample_args(),
                       "data_free": data_free(degradation, ev.options),
                       "sampling_seconds": [round(s, 2) for _, s in drawn], "evaluation_hardware": hardware()})
        if (components := prior_components(ev.options.prior, cold.trace_cell)) is not None:
            result["prior_components"] = components  # the fitted prior the draw used (its selection may change)
        record = current_record()
        previous = record["evaluations"].get(ev.key, {})
        kept = previous.get("metrics", {}).get(INCEPTION_KEY)
        if kept and previous.get("prior_components") == result.get("prior_components"):
            result["metrics"][INCEPTION_KEY] = kept
        record["evaluations"][ev.key] = result
        write_json(out, record)
    if inception:
        row = inception_fid_row(weights, plan[0], samples, progress)
        record = current_record()
        require_headline(record)
        record["evaluations"][header["headline"]]["metrics"][INCEPTION_KEY] = row
        write_json(out, record)
    def copying_checks() -> dict[str, Any]:
        from mnist_diffusion.experiments.copying import copying

        n = min(COPYING_N, scale.evaluation_n or COPYING_N)
        return {options.label(): copying(weights, options, n, samples, progress=progress)
                for options in e.copying_options(scale)}

    def spread() -> dict[str, Any]:
        from mnist_diffusion.training.sampling import load_trained

        return endpoint_spread(load_trained(weights, device="auto"), n=scale.endpoint_n or ENDPOINT_N)

    def information() -> dict[str, Any]:
        from mnist_diffusion.cold.trace_prior import TRACE_CELLS, trace_information

        return {"cell": cold.trace_cell, "cells": {str(c): trace_information(c) for c in TRACE_CELLS}}

    checks = {  # each check of the run, computed when asked for and merged into the file as it is ready
        "restoration": lambda: restoration(weights, n=scale.restoration_n or RESTORATION_N),
        "endpoint": spread,
        "prior_selection": lambda: prior_selection(cold.trace_cell, progress=progress, smoke=not scale.large_priors),
        "trace_information": information,
        "copying": copying_checks,
        "step_error": lambda: step_errors(weights, n=min(STEP_ERROR_N, scale.restoration_n or STEP_ERROR_N)),
    }
    for check, compute in checks.items():
        if check in extras and (only is None or check in only):
            result = compute()
            record = current_record()
            record[check] = result
            write_json(out, record)
    return out


def require_inception() -> None:
    """Raise a one-line :class:`UserError` (with the fix) unless the Inception network can be loaded."""
    from mnist_diffusion.evaluation.inception import unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise UserError(reason.replace("Inception-FID skipped", "cannot compute Inception-FID"))


def seed0_with_inception(weights: Path, headline: Evaluation, cache: Path, progress: bool = True) -> dict[str, Any]:
    """Every metric, Inception-FID included, of the headline's seed-0 sample set (drawn or taken from ``cache``) at
    the headline's N, each row with its floor at that N. One seed because the network runs at a few images per second
    on a CPU (the seed-0 set, its test reference and the floor's training images: 3 N images)."""
    from mnist_diffusion.evaluation import evaluate

    require_inception()
    images, _ = draw_samples(weights, headline.options, headline.n, 0, cache, progress)
    return evaluate([images], n=headline.n, seeds=[0], inception=True, progress=progress)["metrics"]


def inception_fid_row(weights: Path, headline: Evaluation, cache: Path, progress: bool = True) -> dict[str, Any]:
    """Inception-FID of the headline's seed-0 sample set at the headline's N, as a metrics row with its floor
    (:func:`seed0_with_inception`)."""
    return {**seed0_with_inception(weights, headline, cache, progress)[INCEPTION_KEY], "seeds": [0]}


def restoration(weights: Path, n: int = RESTORATION_N) -> dict[str, Any]:
    """Conditional restoration by a cold model (labelled separately from generation): the first ``n`` test
    images degraded to t = T/2 and t = T (seeded state), restored with Algorithm 2; mean absolute pixel error in
    [-1, 1] units of the degraded and of the restored images, per starting step."""
    from mnist_diffusion.training.sampling import load_trained, restore_test_images

    model = load_trained(weights, device="auto")
    out = {}
    for t_start in (model.process.T // 2, model.process.T):
        result = restore_test_images(model, n, t_start=t_start, algorithm="alg2", seed=0)
        out[f"t{t_start}"] = {"t_start": t_start, "n": n, "l1_degraded": result["l1_degraded"],
                              "l1_restored": result["l1_restored"]}
    return out


def prior_selection(cell: int = 7, progress: bool = False, smoke: bool = False) -> dict[str, Any]:
    """The ``heldout`` trace prior's capacity: each candidate component count's mean log-likelihood of the
    training traces it was fitted to (five sixths) and of the held-out sixth, and the count with the best held-out
    value (:func:`mnist_diffusion.cold.mixture.held_out_log_likelihood`; training data only). The fits are kept in
    the disk cache, where the ``heldout`` prior finds the winner's. ``smoke``: only the two smallest candidates on
    the first 1,200 traces (the mechanics, in seconds; fits of up to 200 components on 50,000 traces take minutes)."""
    from mnist_diffusion.cold.mixture import HELD_OUT_SEED, HELD_OUT_SHARE, held_out_log_likelihood
    from mnist_diffusion.cold.trace_prior import MixtureTraces, fitted_mixture, training_traces

    traces, candidates = training_traces(cell), list(MixtureTraces.CANDIDATES)
    if smoke:
        traces, candidates = traces[:1_200], candidates[:2]
    scores = held_out_log_likelihood(traces, candidates, fit=fitted_mixture, progress=progress)
    best = max(scores, key=lambda k: scores[k]["validation"])
    return {"cell": cell, "validation_share": HELD_OUT_SHARE, "seed": HELD_OUT_SEED, "traces": len(traces),
            "scores": {str(k): v for k, v in scores.items()}, "selected": best}


def step_errors(weights: Path, n: int = STEP_ERROR_N) -> dict[str, Any]:
    """Algorithms 1 and 2 against the exact trajectory on the first ``n`` test digits (seed-0 states): their
    one-step errors from the exact x_s, the restorer's error, and each sampler's run from the exact x_T
    (:mod:`mnist_diffusion.cold.step_error`); per step s, mean absolute pixel error in [-1, 1] units. Also
    Algorithm 2's generation residual over min(n, :data:`ENDPOINT_N`) unconditional samples (the default prior)."""
    from mnist_diffusion.cold.step_error import generation_residual, one_step_errors, trajectory_errors
    from mnist_diffusion.data import mnist_tensors, to_model_range
    from mnist_diffusion.diffusion.common import make_generator
    from mnist_diffusion.training.sampling import load_trained

    model = load_trained(weights, device="auto")
    cold = model.process
    x = to_model_range(mnist_tensors("test")[0][:n]).to(cold.device)
    state = cold.degradation.sample_state(n, make_generator(0, cold.device), cold.device)
    return {"n": n, "one_step": one_step_errors(model.network, cold, x, state),
            "trajectory": trajectory_errors(model.network, cold, x, state),
            "generation": generation_residual(model.network, cold, min(n, ENDPOINT_N), seed=0)}


def endpoint_spread(model: TrainedModel, n: int = ENDPOINT_N) -> dict[str, Any]:
    """How much a cold model's endpoint tells its restorer: the mean pairwise l1 distance (pixels in [-1, 1]) of the
    first estimates R(x_T, T) of ``n`` unconditional samples (fresh seeded states, i.e. the direct sampler), beside
    the same distance between the first ``n`` test images. An endpoint that carries no information about x gives
    nearly one estimate for every sample, and the sampler's first step then adds the same faint image to all."""
    from mnist_diffusion.cold import cold_sample
    from mnist_diffusion.data import mnist_tensors, to_model_range
    from mnist_diffusion.evaluation.features import mean_pairwise_l1

    estimates = cold_sample(model.network, model.process, n, algorithm="direct", seed=0).images
    test_images = to_model_range(mnist_tensors("test")[0][:n])
    return {"n": n, "estimates": mean_pairwise_l1(estimates.cpu()), "test_images": mean_pairwise_l1(test_images)}


def curve_experiment(name: str, scale: Scale | str | None = None, seed: int = CURVE_SEED, progress: bool = True,
                     inception: bool = False) -> Path:
    """Quality per compute: classifier-FID (N = the scale's curve N, one seed, the headline sampler) of every
    snapshot kept during training, with its training seconds and images seen, into ``results/<name>/curve.json``.
    ``inception``: also the Inception-FID target's measurement, the last snapshot within its training budget scored
    at the headline's N (:func:`budget_point`, the file's ``budget``; kept by later calls while its samples are the
    same). The file is rewritten after every point (``complete`` false until the end; an earlier curve's points
    under the same protocol stand in for those not yet redrawn), so a stopped call leaves a whole curve."""
    from mnist_diffusion.evaluation import evaluate

    scale = resolve_scale(scale)
    if inception:
        require_inception()
    options = get_experiment(name).evaluations[0].options
    n = scale.curve_n or CURVE_N
    folder = run_dir(name, scale)
    snapshots = list_checkpoints(folder / "snapshots")
    if not snapshots:
        raise UserError(f"no snapshots in {folder / 'snapshots'}: train the run first "
                        f"(its config keeps them at train.snapshot_steps)")
    out = results_dir(scale) / name / "curve.json"
    before = read_json(out)
    earlier = before.get("points", []) if (before.get("options"), before.get("n"), before.get("seed")) == (
        options.to_dict(), n, seed) else []
    published = published_weights(name, scale)
    own_run = published.is_file() and same_ema_weights(snapshots[-1][1], published)
    run_log, kept_log = out.with_name("curve_run_log.jsonl"), folder / "log.jsonl"
    if own_run:
        run_log.unlink(missing_ok=True)  # the published log.jsonl is this curve's run's
    elif kept_log.is_file():
        # the curve's times come from another training run than the published one: keep that run's log beside it
        shutil.copy2(kept_log, run_log)
    budget = budget_point(name, scale, snapshots, before.get("budget"), compute=False)
    points: list[dict[str, Any]] = []
    for step, path in snapshots:
        images, seconds = draw_samples(path, options, n, seed, folder / "samples", progress)
        result = evaluate(images, n=n, seeds=[seed], progress=progress)
        stats = load_checkpoint(path)["stats"]
        points.append({"step": step, "train_seconds": round(stats["train_seconds"], 2),
                       "images_seen": stats["images_seen"], "sampling_seconds": round(seconds, 2),
                       "samples": sample_file(path, options, n, seed, folder / "samples").name,
                       **{key: result["metrics"][key]["value"] for key in CURVE_METRICS}})
        if progress:
            print(f"{name} step {step}: classifier-FID {points[-1]['fid']:.3f}")
        record = {"name": name, "n": n, "seed": seed, "sampler": options.sampler, "steps": options.steps,
                  "options": options.to_dict(), "sample_args": options.sample_args(),
                  "fid_floor": result["metrics"]["fid"]["floor"],
                  "points": points + [p for p in earlier if p["step"] > step],
                  "ends_at_published_weights": own_run, "hardware": hardware(), "complete": False}
        write_json(out, {**record, **({"budget": budget} if budget else {})})
    if inception:
        budget = budget_point(name, scale, snapshots, budget, progress)
    write_json(out, {**record, **({"budget": budget} if budget else {}), "complete": True})
    return out


def budget_point(name: str, scale: Scale, snapshots: list[tuple[int, Path]], before: dict[str, Any] | None,
                 progress: bool = True, compute: bool = True) -> dict[str, Any] | None:
    """The last snapshot trained for at most :data:`INCEPTION_BUDGET_HOURS`, scored like the headline's Inception
    row: the headline sampler at the headline's N, seed 0, classifier- and Inception-FID with their floors at that
    N. ``before`` (the file's earlier budget point) is kept while its snapshot and samples are the same; else, or
    when no snapshot is within the budget, None unless ``compute``."""
    within = [(step, path, stats) for step, path in snapshots
              if (stats := load_checkpoint(path)["stats"])["train_seconds"] <= INCEPTION_BUDGET_HOURS * 3600]
    if not within:
        return None
    step, path, stats = within[-1]
    headline = get_experiment(name).evaluations_at(scale)[0]
    cache = run_dir(name, scale) / "samples"
    samples = sample_file(path, headline.options, headline.n, 0, cache).name
    if before and (before.get("step"), before.get("samples")) == (step, samples):
        return before
    if not compute:
        return None
    metrics = seed0_with_inception(path, headline, cache, progress)
    return {"step": step, "train_seconds": round(stats["train_seconds"], 2), "images_seen": stats["images_seen"],
            "n": headline.n, "seed": 0, "samples": samples, "budget_hours": INCEPTION_BUDGET_HOURS,
            **{key: metrics[key]["value"] for key in (*CURVE_METRICS, INCEPTION_KEY)},
            "fid_floor": metrics["fid"]["floor"], "inception_floor": metrics[INCEPTION_KEY]["floor"]}


def same_ema_weights(a: Path, b: Path) -> bool:
    """Whether two checkpoints (a snapshot, a published ``ema.pt``) hold bit-identical EMA weights. False tells a
    curve drawn from a second training run of a recipe apart from the run whose weights are published."""
    first, second = load_checkpoint(a)["ema"], load_checkpoint(b)["ema"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def committed_floors() -> dict[int, dict[str, Any]]:
    """The committed real-data floors of the current classifier, by N."""
    from mnist_diffusion.evaluation.classifier import load_classifier

    prefix = load_classifier().sha256[:16]
    found = {}
    for path in sorted((repo_root() / "results" / "floors").glob(f"{prefix}_n*.json")):
        data = json.loads(path.read_text())
        found[int(data["n"])] = data
    return found


#: The fields of an evaluation that ``summary.json`` keeps (besides its metrics' values, stds and floors).
SUMMARY_FIELDS = ("options", "sample_args", "data_free", "n", "sets", "seeds")


def summarise(scale: Scale | str | None = None) -> Path:
    """Gather every experiment's evaluations (final runs, the hyperparameter study, the pilots, the cold training
    variants) and the curves into
    ``results/summary.json``."""
    from mnist_diffusion.evaluation.classifier import training_record

    root = results_dir(scale)
    sections: dict[str, dict[str, Any]] = {section: {} for section in SUMMARY_SECTIONS.values()}
    for name, e in EXPERIMENTS.items():
        record = read_json(root / name / "metrics.json")
        if not record:
            continue
        entry = {"description": e.description, "training": record["training"], "headline": record["headline"],
                 "evaluations": {key: {**{f: ev[f] for f in SUMMARY_FIELDS},
                                       "threads": (ev.get("evaluation_hardware") or {}).get("torch_threads"),
                                       "sampling_seconds": ev["sampling_seconds"],
                                       "label_shares": (ev.get("label_shares") or {}).get("mean"),
                                       "metrics": {k: {f: m[f] for f in ("value", "std", "floor", "floor_std")}
                                                   for k, m in ev["metrics"].items()}}
                                 for key, ev in record["evaluations"].items()},
                 **{extra: record.get(extra) for extra in ("restoration", "endpoint", "step_error", "copying",
                                                          "prior_selection", "trace_information")},
                 "curve": (curve := read_json(root / name / "curve.json")).get("points"),
                 "curve_ends_at_published_weights": curve.get("ends_at_published_weights"),
                 "curve_options": (options := curve_options(curve)) and options.to_dict(),
                 "curve_budget": curve.get("budget")}
        sections[SUMMARY_SECTIONS[e.group]][name] = entry
    floors = {str(n): {k: {"value": m["value"], "std": m["std"]} for k, m in data["metrics"].items()}
              for n, data in committed_floors().items()}
    record = training_record() or {}
    classifier = {"sha256": record.get("sha256"), "test_accuracy": record.get("test_accuracy")}
    headline = {kind: {"run": run, "evaluation": key,
                       "data_free": sections["models"].get(run, {}).get("evaluations", {}).get(key, {}).get("data_free")}
                for kind, (run, key) in HEADLINES.items()}
    summary = {"format": "mnist-diffusion-summary/1", "headline": headline, **sections, "floors": floors,
               "classifier": classifier,
               "study_steps": STUDY_STEPS, "study_factors": STUDY_FACTORS, "pilot_control": PILOT_CONTROL}
    out = root / "summary.json"
    write_json(out, summary)
    return out
