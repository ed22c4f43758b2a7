"""The report's experiments as named, resumable runs: what each trains, how it is evaluated, where results go.

Every number in the report comes from one of these runs. A run is a config file plus ``--set`` style overrides;
training writes to ``runs/<name>/`` (scratch, resumable), evaluation to ``results/<name>/`` (committed):

- ``ema.pt``: the final weights the evaluations used (EMA weights; the baseline keeps none, so its raw weights),
  with ``log.jsonl`` (the training log) and ``config.yaml``;
- ``metrics.json``: ``{"name", "config", "training": {steps, train_seconds, images_seen, hardware}, "headline",
  "evaluations": {key: evaluate()'s result + sampler, steps, sampling seconds}}``;
- ``curve.json`` (final DDPM runs): classifier-FID at N = 2,000 of the snapshots kept during training, against
  training seconds and images seen (quality per compute). ``ends_at_published_weights`` says whether the last
  snapshot is ``ema.pt``; where it is not (a second run of the recipe drew the curve), ``curve_run_log.jsonl`` is
  that run's training log.

``results/summary.json`` gathers the headline numbers, the hyperparameter study and the curves for the notebooks
and the report. Under the smoke profile everything shrinks to seconds and goes to ``runs/smoke/`` instead.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from mnist_diffusion.training.checkpoint import digest_path, list_checkpoints, load_checkpoint
from mnist_diffusion.training.config import SMOKE_OVERRIDES, Config, load_config
from mnist_diffusion.errors import UserError
from mnist_diffusion.evaluation.cache import save_json
from mnist_diffusion.paths import repo_root, runs_root

if TYPE_CHECKING:
    from mnist_diffusion.training.sampling import TrainedModel

#: The hyperparameter study's equal, short training budget (steps of 128 images: 6.4 epochs). At 1,000 steps
#: every run still drew noise-like blobs (classifier-FID 1,800-10,800 against a floor of 6.6): too early to rank.
STUDY_STEPS = 3_000


@dataclass(frozen=True)
class Experiment:
    """A named run: ``configs/<config>`` with ``overrides`` (``section.key=value``)."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    group: str = "final"  # final | study
    description: str = ""
    #: Evaluations as (sampler, steps or None, N, number of seeds); the first is the headline.
    evaluations: tuple[tuple[str, int | None, int, int], ...] = field(default=())
    #: A study run whose config equals this final run's but for its length: its weights are that run's snapshot
    #: at the study's step (same config, seed and data order give the same weights), so it is not trained twice.
    snapshot_of: str | None = None


FINAL_DDPM_EVALUATIONS = (("ddim", 50, 10_000, 3), ("ddim", 10, 2_000, 1), ("ddim", 20, 2_000, 1),
                          ("ddim", 50, 2_000, 1), ("ddim", 100, 2_000, 1), ("ancestral", None, 2_000, 1))
#: Added after the N = 2,000 comparison found DDIM-50 97% above ancestral sampling, to tell its two differences
#: apart: DDIM with eta = 1 keeps DDIM's 50 or 100 steps but draws fresh noise at each, as ancestral sampling does.
STOCHASTIC_DDIM_EVALUATIONS = (("ddimeta1", 50, 2_000, 1), ("ddimeta1", 100, 2_000, 1))
#: Evaluation sampler names that stand for sampler options other than the sampler's defaults.
SAMPLER_OPTIONS: dict[str, dict[str, Any]] = {"ddimeta1": {"sampler": "ddim", "eta": 1.0},
                                              "alg2mix": {"sampler": "alg2", "prior": "mixture"}}
COLD_EVALUATIONS = (("alg2", None, 10_000, 3), ("alg1", None, 2_000, 1), ("direct", None, 2_000, 1))
#: Added after the traced palimpsest's headline (whose endpoints carry training digits' traces) to test the
#: report's caveat: the same model and sampler with traces drawn from a Gaussian mixture fitted to them.
TRACE_PRIOR_EVALUATIONS = (("alg2mix", None, 10_000, 3),)
STUDY_EVALUATIONS = (("ddim", 50, 2_000, 3),)
#: Snapshot steps of the final DDPM runs (roughly log-spaced, ending at each run's last step), for the
#: quality-per-compute curves.
CURVE_STEPS = (250, 500, 1_000, 1_500, 2_000, 3_000, 4_000, 6_000, 8_000, 10_000, 12_000, 14_063)
UNET_CURVE_STEPS = (*(s for s in CURVE_STEPS if s < 9_375), 9_375)
#: Every curve point is the headline sampler's classifier-FID at this N and seed (with these metrics).
CURVE_N, CURVE_SEED = 2_000, 0
CURVE_METRICS = ("fid", "precision", "recall", "confident_share")


def curve_n(profile: str = "full") -> int:
    """The curve's N: CURVE_N, or 100 under the smoke profile."""
    return 100 if profile == "smoke" else CURVE_N


#: The study started from our first recipe, which used Nichol & Dhariwal's cosine schedule; the study found the
#: linear schedule better, so the final recipe (configs/ddpm_unet.yaml) uses it and the study states the cosine.
STUDY_START = ("diffusion.schedule=cosine",)


def _study(name: str, description: str, *overrides: str, config: str = "ddpm_unet.yaml",
           snapshot_of: str | None = None) -> Experiment:
    start = () if config != "ddpm_unet.yaml" or any(o.startswith("diffusion.schedule=") for o in overrides) \
        else STUDY_START
    return Experiment(name, config, (f"train.steps={STUDY_STEPS}", "train.sample_every=0", *start, *overrides),
                      "study", description, STUDY_EVALUATIONS, snapshot_of)


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in [
    Experiment("ddpm_baseline", "ddpm_baseline.yaml", (f"train.snapshot_steps={list(CURVE_STEPS)}",),
               description="the coursework starter's recipe, 30 epochs", evaluations=FINAL_DDPM_EVALUATIONS),
    Experiment("ddpm_unet", "ddpm_unet.yaml", (f"train.snapshot_steps={list(UNET_CURVE_STEPS)}",),
               description="the project's recipe", evaluations=FINAL_DDPM_EVALUATIONS + STOCHASTIC_DDIM_EVALUATIONS),
    Experiment("ddpm_unet_cosine", "ddpm_unet.yaml", (*STUDY_START, f"train.snapshot_steps={list(UNET_CURVE_STEPS)}"),
               description="our first recipe (cosine schedule) at the final budget: the study's prediction checked",
               evaluations=FINAL_DDPM_EVALUATIONS[:4]),
    Experiment("cold_palimpsest", "cold_palimpsest.yaml", description="cold diffusion, our degradation",
               evaluations=COLD_EVALUATIONS),
    Experiment("cold_blur", "cold_blur.yaml", description="cold diffusion, blur (reference)",
               evaluations=COLD_EVALUATIONS),
    Experiment("cold_palimpsest_trace", "cold_palimpsest_trace.yaml",
               description="cold diffusion, our degradation leaving a trace of the digit",
               evaluations=COLD_EVALUATIONS + TRACE_PRIOR_EVALUATIONS),
    _study("study_baseline", "baseline recipe", config="ddpm_baseline.yaml", snapshot_of="ddpm_baseline"),
    _study("study_recipe", "our first recipe (cosine schedule)", snapshot_of="ddpm_unet_cosine"),
    _study("study_network", "first recipe, coursework CNN", "model.arch=coursework_cnn",
           "model.channels=[16, 32, 32, 16]"),
    _study("study_schedule", "first recipe, linear schedule (= final recipe)",
           "diffusion.schedule=linear", snapshot_of="ddpm_unet"),
    _study("study_lr", "first recipe, learning rate 2e-4", "optim.lr=2.0e-4"),
    _study("study_ema", "first recipe, no EMA", "train.ema_decay=0.0"),
]}
#: The study's factors: the run that changes one factor of our first recipe to the baseline's choice.
STUDY_FACTORS = {"network": "study_network", "noise schedule": "study_schedule", "learning rate": "study_lr",
                 "EMA": "study_ema"}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise UserError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


def experiment_names(group: str | None = None) -> list[str]:
    return [name for name, e in EXPERIMENTS.items() if group in (None, e.group)]


def run_dir(name: str, profile: str = "full") -> Path:
    """Scratch training folder (``runs/<name>``, or ``runs/smoke/<name>``)."""
    return runs_root(profile) / name


def results_dir(profile: str = "full") -> Path:
    """Committed results (``results/``); the smoke profile writes to ``runs/smoke/results`` instead."""
    return runs_root("smoke") / "results" if profile == "smoke" else repo_root() / "results"


def experiment_config(name: str, profile: str = "full") -> Config:
    """The run's config; under the smoke profile the smoke sizes win over the experiment's own steps."""
    e = get_experiment(name)
    overrides = list(e.overrides)
    if profile == "smoke":
        overrides += [f"{key}={value}" for key, value in SMOKE_OVERRIDES.items()]
        overrides += ["train.snapshot_steps=[10, 20]", "train.sample_every=0"]  # one sample grid, at the end
    return load_config(repo_root() / "configs" / e.config, overrides)


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


def train_experiment(name: str, profile: str = "full", progress: bool = True) -> Path:
    """Train (or continue training) a run and publish its weights, log and config into the results folder."""
    from mnist_diffusion.training.loop import train

    config = experiment_config(name, profile)
    folder = run_dir(name, profile)
    if not take_snapshot(name, profile):
        # A full run resumes from its newest good checkpoint (or starts); a smoke run always starts afresh.
        train(config, folder, resume=profile != "smoke", profile=profile, progress=progress)
        save_json(folder / "hardware.json", hardware())
    return publish_weights(name, profile)


def take_snapshot(name: str, profile: str = "full") -> bool:
    """For a study run with ``snapshot_of``: write its ``ema.pt``, ``log.jsonl``, ``config.yaml`` and
    ``hardware.json`` into ``runs/<name>/`` from the final run's snapshot at the study's step. Returns False
    (nothing written) when there is no such snapshot yet, and the run must be trained on its own."""
    from mnist_diffusion.training import checkpoint as ckpt

    e = get_experiment(name)
    if e.snapshot_of is None:
        return False
    config = experiment_config(name, profile)
    source = run_dir(e.snapshot_of, profile)
    snapshot = source / "snapshots" / ckpt.checkpoint_name(config.train.steps)
    if not snapshot.is_file():
        return False
    state = load_checkpoint(snapshot)
    folder = run_dir(name, profile)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt.save_atomic({"format": state["format"], "config": config.to_dict(), "step": state["step"],
                      "ema": state["ema"], "stats": state["stats"],
                      "snapshot_of": str(snapshot.relative_to(repo_root()) if snapshot.is_relative_to(repo_root()) else snapshot)},
                     folder / "ema.pt")
    lines = (source / "log.jsonl").read_text().splitlines() if (source / "log.jsonl").is_file() else []
    (folder / "log.jsonl").write_text("".join(f"{line}\n" for line in lines if json.loads(line)["step"] <= state["step"]))
    (folder / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    save_json(folder / "hardware.json", _read_json(source / "hardware.json") or hardware())  # the same machine
    return True


def publish_weights(name: str, profile: str = "full") -> Path:
    """Copy ``ema.pt`` (+ its digest), ``log.jsonl``, ``config.yaml`` and ``hardware.json`` into ``results/<name>/``."""
    source, target = run_dir(name, profile), results_dir(profile) / name
    if not (source / "ema.pt").is_file():
        raise UserError(f"{source / 'ema.pt'} does not exist: train first (python -m mnist_diffusion experiment train {name})")
    target.mkdir(parents=True, exist_ok=True)
    for file in ("ema.pt", "ema.pt.sha256", "log.jsonl", "config.yaml", "hardware.json"):
        if (source / file).is_file():
            shutil.copy2(source / file, target / file)
    return target


def published_weights(name: str, profile: str = "full") -> Path:
    """``results/<name>/ema.pt`` (it may not exist yet)."""
    return results_dir(profile) / name / "ema.pt"


def weights_path(name: str, profile: str = "full") -> Path:
    path = published_weights(name, profile)
    if not path.is_file():
        raise UserError(f"{path} does not exist: train the run (python -m mnist_diffusion experiment train {name})")
    return path


def evaluation_key(sampler: str, steps: int | None, n: int) -> str:
    """e.g. ``ddim-50_n10000``, ``ancestral_n2000``, ``alg2_n10000``."""
    return f"{sampler}{'' if steps is None else f'-{steps}'}_n{n}"


def _weights_digest(path: Path) -> str:
    sidecar = digest_path(path)
    return sidecar.read_text().split()[0][:16] if sidecar.is_file() else "nodigest"


#: A draw of samples that takes longer saves its finished batches this often (seconds), so that a stopped draw
#: (a session's end, ^C) resumes where it was instead of starting again.
PARTIAL_SAVE_SECONDS = 300.0


def draw_samples(weights: Path, sampler: str, steps: int | None, n: int, seed: int, cache: Path,
                 progress: bool = True) -> tuple[Any, float]:
    """``n`` samples (uint8 [n, 28, 28]) from a checkpoint, cached in ``cache`` by weights digest, sampler and seed.

    DDPM samplers clip x_hat to [-1, 1] (the default; the file name says ``clip`` so that samples drawn otherwise
    are never mistaken for these). Returns (images, the seconds their sampling took, also when cached). A long draw
    keeps its finished batches in ``<name>.partial.npz`` every :data:`PARTIAL_SAVE_SECONDS` and resumes from
    them; their images are the ones an uninterrupted draw gives, and the seconds count only the batches kept."""
    import numpy as np

    from mnist_diffusion.training.sampling import default_batch_size, generate, load_trained, save_samples

    file = cache / f"{_weights_digest(weights)}_{evaluation_key(sampler, steps, n)}_seed{seed}_clip.npz"
    if file.is_file():
        with np.load(file) as data:
            return data["images"], float(json.loads(str(data["meta"]))["sampling_seconds"])
    trained = load_trained(weights, device="auto")
    options = SAMPLER_OPTIONS.get(sampler, {"sampler": sampler}) | ({"steps": steps} if steps is not None else {})
    meta = {"checkpoint": str(weights), "n": n, "seed": seed, "batch_size": default_batch_size(trained), **options}
    partial = file.with_name(file.name.replace(".npz", ".partial.npz"))
    done, seconds_before = None, 0.0
    if partial.is_file():
        with np.load(partial) as data:
            kept = json.loads(str(data["meta"]))
            if {k: kept.get(k) for k in meta} == meta:  # else it was drawn otherwise (e.g. another batch size): redraw
                done, seconds_before = data["images"], float(kept["sampling_seconds"])
                if progress:
                    print(f"resuming {file.name} after {len(done)} of {n} samples")
    started = last_save = time.perf_counter()

    def save_partial(out: Any, filled: int) -> None:
        nonlocal last_save
        if filled < n and time.perf_counter() - last_save >= PARTIAL_SAVE_SECONDS:
            save_samples(partial, out[:filled], meta | {"sampling_seconds": seconds_before + time.perf_counter() - started})
            last_save = time.perf_counter()

    images = generate(trained, n, seed=seed, batch_size=meta["batch_size"], progress=progress, done=done,
                      after_batch=save_partial, **options)
    seconds = seconds_before + time.perf_counter() - started
    save_samples(file, images, meta | {"sampling_seconds": seconds})
    partial.unlink(missing_ok=True)
    return images, seconds


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def evaluate_experiment(name: str, profile: str = "full", progress: bool = True,
                        only: tuple[str, ...] | None = None, inception: bool = False) -> Path:
    """Run every evaluation of an experiment (or the keys in ``only``) and (re)write ``results/<name>/metrics.json``.

    ``inception``: also add Inception-FID to the headline evaluation (see :func:`inception_fid_row`); with
    ``only=("inception",)`` that is all it does (the headline must have been evaluated). An
    Inception-FID already in the file is kept when the headline is re-evaluated from the same weights. Each
    result is merged into the file as it is when the result is ready, so two processes evaluating different
    keys of one run keep each other's results; results of other weights than the current ones are dropped."""
    from mnist_diffusion.evaluation import evaluate

    e = get_experiment(name)
    weights = weights_path(name, profile)
    state = load_checkpoint(weights)
    out = results_dir(profile) / name / "metrics.json"
    if inception:
        require_inception()
    specs = _scaled(list(e.evaluations), profile)
    header = {"name": name, "description": e.description, "config": e.config, "overrides": list(e.overrides),
              "training": {"steps": int(state["step"]), **state.get("stats", {}),
                           "hardware": _read_json(weights.parent / "hardware.json")},
              "weights_sha256_16": _weights_digest(weights), "headline": evaluation_key(*specs[0][:3])}
    cold_extras = ["restoration", "endpoint"] if e.config.startswith("cold") else []
    # ``only=("inception",)`` adds Inception-FID to the existing headline without re-evaluating anything else
    known = [evaluation_key(*spec[:3]) for spec in specs] + cold_extras + (["inception"] if inception else [])
    unknown = sorted(set(only or ()) - set(known))
    if unknown:
        raise UserError(f"--only {' '.join(unknown)}: {name} has no such evaluation; it has {', '.join(known)}")

    def current_record() -> dict[str, Any]:
        record = _read_json(out)
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
    for sampler, steps, n, n_seeds in specs:
        key = evaluation_key(sampler, steps, n)
        if only is not None and key not in only:
            continue
        drawn = [draw_samples(weights, sampler, steps, n, seed, run_dir(name, profile) / "samples", progress)
                 for seed in range(n_seeds)]
        result = evaluate([images for images, _ in drawn], n=n, seeds=list(range(n_seeds)), progress=progress)
        result.update({"sampler": sampler, "steps": steps, "sampling_seconds": [round(s, 2) for _, s in drawn],
                       "evaluation_hardware": hardware()})
        record = current_record()
        kept = record["evaluations"].get(key, {}).get("metrics", {}).get(INCEPTION_KEY)
        if kept:
            result["metrics"][INCEPTION_KEY] = kept
        record["evaluations"][key] = result
        save_json(out, record)
    if inception:
        row = inception_fid_row(weights, specs[0], run_dir(name, profile) / "samples", progress)
        record = current_record()
        require_headline(record)
        record["evaluations"][header["headline"]]["metrics"][INCEPTION_KEY] = row
        save_json(out, record)
    if e.config.startswith("cold") and (only is None or "restoration" in only):
        result = restoration(weights, n=100 if profile == "smoke" else RESTORATION_N)
        record = current_record()
        record["restoration"] = result
        save_json(out, record)
    if "endpoint" in cold_extras and (only is None or "endpoint" in only):
        from mnist_diffusion.training.sampling import load_trained

        result = endpoint_spread(load_trained(weights, device="auto"), n=16 if profile == "smoke" else ENDPOINT_N)
        record = current_record()
        record["endpoint"] = result
        save_json(out, record)
    return out


INCEPTION_KEY = "inception_fid"


def require_inception() -> None:
    """Raise a one-line :class:`UserError` (with the fix) unless the Inception network can be loaded."""
    from mnist_diffusion.evaluation.inception import unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise UserError(reason.replace("Inception-FID skipped", "cannot compute Inception-FID"))


def inception_fid_row(weights: Path, headline: tuple[str, int | None, int, int], cache: Path,
                      progress: bool = True) -> dict[str, Any]:
    """Inception-FID of the headline's seed-0 sample set (drawn or taken from ``cache``) at the headline's N, as a
    metrics row with its floor at that N. One seed because the network runs at a few images per second on a CPU
    (the seed-0 set, its test reference and the floor's training images: 3 N images)."""
    from mnist_diffusion.evaluation import evaluate

    require_inception()
    sampler, steps, n, _ = headline
    images, _ = draw_samples(weights, sampler, steps, n, 0, cache, progress)
    row = evaluate([images], n=n, seeds=[0], inception=True, progress=progress)["metrics"][INCEPTION_KEY]
    return {**row, "seeds": [0]}


#: Test images restored per starting step in the cold models' restoration check.
RESTORATION_N = 2_000


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


#: Fresh endpoints whose first estimates R(x_T, T) are compared in :func:`endpoint_spread`.
ENDPOINT_N = 256


def endpoint_spread(model: TrainedModel, n: int = ENDPOINT_N) -> dict[str, Any]:
    """How much a cold model's endpoint tells its restorer: the mean pairwise l1 distance (pixels in [-1, 1]) of the
    first estimates R(x_T, T) of ``n`` unconditional samples (fresh seeded states, i.e. the direct sampler), beside
    the same distance between the first ``n`` test images. An endpoint that carries no information about x gives
    nearly one estimate for every sample, and the sampler's first step then adds the same faint image to all."""
    from mnist_diffusion.data import mnist_tensors, to_model_range
    from mnist_diffusion.evaluation.distances import mean_pairwise_l1
    from mnist_diffusion.cold import cold_sample

    estimates = cold_sample(model.network, model.process, n, algorithm="direct", seed=0).images
    test_images = to_model_range(mnist_tensors("test")[0][:n])
    return {"n": n, "estimates": mean_pairwise_l1(estimates.cpu()), "test_images": mean_pairwise_l1(test_images)}


def _scaled(specs: list[tuple[str, int | None, int, int]], profile: str) -> list[tuple[str, int | None, int, int]]:
    """Smoke profile: the same evaluations (duplicates dropped) at N = 100 and one seed."""
    if profile != "smoke":
        return specs
    return list(dict.fromkeys((s, st, 100, 1) for s, st, _, _ in specs))


def curve_experiment(name: str, profile: str = "full", seed: int = CURVE_SEED, progress: bool = True) -> Path:
    """Quality per compute: classifier-FID (N = :func:`curve_n`, one seed, the headline sampler) of every
    snapshot kept during training, with its training seconds and images seen, into ``results/<name>/curve.json``."""
    from mnist_diffusion.evaluation import evaluate

    e = get_experiment(name)
    sampler, steps = e.evaluations[0][:2]
    n = curve_n(profile)
    snapshots = list_checkpoints(run_dir(name, profile) / "snapshots")
    if not snapshots:
        raise UserError(f"no snapshots in {run_dir(name, profile) / 'snapshots'}: train the run first "
                        f"(its config keeps them at train.snapshot_steps)")
    points = []
    for step, path in snapshots:
        images, seconds = draw_samples(path, sampler, steps, n, seed, run_dir(name, profile) / "samples", progress)
        result = evaluate(images, n=n, seeds=[seed])
        stats = load_checkpoint(path)["stats"]
        points.append({"step": step, "train_seconds": round(stats["train_seconds"], 2),
                       "images_seen": stats["images_seen"], "sampling_seconds": round(seconds, 2),
                       **{key: result["metrics"][key]["value"] for key in CURVE_METRICS}})
        if progress:
            print(f"{name} step {step}: classifier-FID {points[-1]['fid']:.3f}")
    out = results_dir(profile) / name / "curve.json"
    published = published_weights(name, profile)
    own_run = published.is_file() and same_ema_weights(snapshots[-1][1], published)
    run_log, kept_log = out.with_name("curve_run_log.jsonl"), run_dir(name, profile) / "log.jsonl"
    if own_run:
        run_log.unlink(missing_ok=True)  # the published log.jsonl is this curve's run's
    elif kept_log.is_file():
        # the curve's times come from another training run than the published one: keep that run's log beside it
        shutil.copy2(kept_log, run_log)
    save_json(out, {"name": name, "n": n, "seed": seed, "sampler": sampler, "steps": steps,
                    "fid_floor": result["metrics"]["fid"]["floor"], "points": points,
                    "ends_at_published_weights": own_run, "hardware": hardware()})
    return out


def same_ema_weights(a: Path, b: Path) -> bool:
    """Whether two checkpoints (a snapshot, a published ``ema.pt``) hold bit-identical EMA weights. False tells a
    curve drawn from a second training run of a recipe apart from the run whose weights are published."""
    first, second = load_checkpoint(a)["ema"], load_checkpoint(b)["ema"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _committed_floors() -> dict[int, dict[str, Any]]:
    """The committed real-data floors of the current classifier, by N."""
    from mnist_diffusion.evaluation.classifier import load_classifier

    prefix = load_classifier().sha256[:16]
    found = {}
    for path in sorted((repo_root() / "results" / "floors").glob(f"{prefix}_n*.json")):
        data = json.loads(path.read_text())
        found[int(data["n"])] = data
    return found


#: How figures name the evaluations' samplers.
SAMPLER_LABELS = {"ddim": "DDIM", "ddimeta1": "DDIM, eta = 1", "ancestral": "ancestral"}


def fid_by_steps(record: dict[str, Any]) -> tuple[dict[str, list[tuple[int, float]]], float | None]:
    """From a DDPM run's metrics: the one-seed (N = 2,000) classifier-FID of each sampler against its network
    evaluations per sample, ``{"DDIM": [(10, fid), ...], "ancestral": [(T, fid)]}`` (keys: :data:`SAMPLER_LABELS`)
    sorted by steps, and the real-data FID floor at that N."""
    one_seed = [e for e in record["evaluations"].values() if e["sets"] == 1]
    from mnist_diffusion.paths import active_profile

    T = experiment_config(record["name"], active_profile()).diffusion.T
    series: dict[str, list[tuple[int, float]]] = {}
    for e in one_seed:
        series.setdefault(SAMPLER_LABELS.get(e["sampler"], e["sampler"]), []).append((e["steps"] or T, e["metrics"]["fid"]["value"]))
    floor = one_seed[0]["metrics"]["fid"]["floor"] if one_seed else None
    return {sampler: sorted(points) for sampler, points in series.items()}, floor


def summarise(profile: str = "full") -> Path:
    """Gather every experiment's headline evaluation, the study and the curves into ``results/summary.json``."""
    root = results_dir(profile)
    models, study = {}, {}
    for name, e in EXPERIMENTS.items():
        record = _read_json(root / name / "metrics.json")
        if not record:
            continue
        entry = {"description": e.description, "training": record["training"], "headline": record["headline"],
                 "evaluations": {key: {"sampler": ev["sampler"], "steps": ev["steps"], "n": ev["n"], "sets": ev["sets"],
                                       "seeds": ev["seeds"],
                                       "threads": (ev.get("evaluation_hardware") or {}).get("torch_threads"),
                                       "sampling_seconds": ev["sampling_seconds"],
                                       "label_shares": (ev.get("label_shares") or {}).get("mean"),
                                       "metrics": {k: {f: m[f] for f in ("value", "std", "floor", "floor_std")}
                                                   for k, m in ev["metrics"].items()}}
                                 for key, ev in record["evaluations"].items()},
                 "restoration": record.get("restoration"), "endpoint": record.get("endpoint"),
                 "curve": (curve := _read_json(root / name / "curve.json")).get("points"),
                 "curve_ends_at_published_weights": curve.get("ends_at_published_weights")}
        (study if e.group == "study" else models)[name] = entry
    floors = {str(n): {k: {"value": m["value"], "std": m["std"]} for k, m in data["metrics"].items()}
              for n, data in _committed_floors().items()}
    from mnist_diffusion.evaluation.classifier import training_record

    record = training_record() or {}
    classifier = {"sha256": record.get("sha256"), "test_accuracy": record.get("test_accuracy")}
    summary = {"format": "mnist-diffusion-summary/1", "models": models, "study": study, "floors": floors,
               "classifier": classifier,
               "study_steps": STUDY_STEPS, "study_factors": STUDY_FACTORS}
    out = root / "summary.json"
    save_json(out, summary)
    return out


#: The most samples one call of :func:`samples` draws under the smoke profile.
SMOKE_SAMPLES = 32
#: Samples per model that the notebooks draw for their figures (grids, good and bad samples); the numbers in
#: the tables come from the evaluations' 10,000 per seed instead.
SHOWN_SAMPLES = 1_000


# --- what the notebooks call: load what is committed, produce what is missing ---------------------------------

def trained(name: str, profile: str | None = None, progress: bool = True):
    """The experiment's final network as a :class:`~mnist_diffusion.training.sampling.TrainedModel`: the weights in
    ``results/<name>/ema.pt`` when present (committed, or under the smoke profile a scratch copy), else trained now."""
    from mnist_diffusion.paths import active_profile
    from mnist_diffusion.training.sampling import load_trained

    profile = active_profile(profile)
    path = published_weights(name, profile)
    if not path.is_file():
        get_experiment(name)
        if progress:
            print(f"{name}: no weights in {path.parent}; training it now (resumable)")
        train_experiment(name, profile, progress)
    return load_trained(path, device="auto")


def samples(name: str, n: int, seed: int = 0, sampler: str | None = None, steps: int | None = None,
            profile: str | None = None, progress: bool = True):
    """``n`` samples (uint8 [n, 28, 28]) of the experiment's final weights, drawn once and cached in ``runs/``.
    Default sampler: the experiment's headline one; the same arguments always give the same images. Under the
    smoke profile at most ``SMOKE_SAMPLES`` are drawn, whatever ``n`` asks for."""
    from mnist_diffusion.paths import active_profile

    profile = active_profile(profile)
    e = get_experiment(name)
    n = min(n, SMOKE_SAMPLES) if profile == "smoke" else n
    if sampler is None:
        sampler, steps = e.evaluations[0][:2]
    weights = published_weights(name, profile)
    if not weights.is_file():
        trained(name, profile, progress)
    return draw_samples(weights, sampler, steps, n, seed, run_dir(name, profile) / "samples", progress)[0]


def training_log(name: str, profile: str | None = None) -> list[dict[str, Any]]:
    """The run's ``log.jsonl`` records (step, loss, lr, train_seconds, images_seen, img_per_s)."""
    from mnist_diffusion.paths import active_profile

    path = results_dir(active_profile(profile)) / name / "log.jsonl"
    if not path.is_file():
        raise UserError(f"{path} does not exist: train the run (python -m mnist_diffusion experiment train {name})")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def metrics(name: str, profile: str | None = None) -> dict[str, Any]:
    """``results/<name>/metrics.json``, evaluated now if it is missing or was made from other weights."""
    from mnist_diffusion.paths import active_profile

    profile = active_profile(profile)
    path = results_dir(profile) / name / "metrics.json"
    weights = published_weights(name, profile)
    if not weights.is_file():
        trained(name, profile, progress=False)
    if _read_json(path).get("weights_sha256_16") != _weights_digest(weights):
        print(f"{name}: evaluating {weights} (no metrics of these weights in {path.parent} yet)")
        evaluate_experiment(name, profile, progress=False)
    return json.loads(path.read_text())


def final_curve_point(record: dict[str, Any], n: int = CURVE_N) -> dict[str, Any] | None:
    """A run's last quality-per-compute point without its curve: the final weights' evaluation under the curve's
    protocol (headline sampler, N = ``n``, the single seed CURVE_SEED; the number the curve's last point
    gives) at the run's training seconds and images seen. ``record``: a ``metrics.json`` or a summary.json model
    entry. None when that evaluation does not exist or used other seeds.

    Returns {"step", "train_seconds", "images_seen", "evaluation" (its key), and the curve's metrics}."""
    head = record["evaluations"].get(record["headline"])
    key = evaluation_key(head["sampler"], head["steps"], n) if head else None
    final = record["evaluations"].get(key) if key else None
    if not final or final.get("seeds") != [CURVE_SEED]:
        return None
    training = record["training"]
    return {"step": training["steps"], "train_seconds": training["train_seconds"], "images_seen": training["images_seen"],
            "evaluation": key, **{m: final["metrics"][m]["value"] for m in CURVE_METRICS if m in final["metrics"]}}


def curve(name: str, profile: str | None = None) -> list[dict[str, Any]]:
    """The points of ``results/<name>/curve.json`` (quality per compute), computed from the run's snapshots if missing.

    A run whose snapshots are gone (its weights committed, its ``runs/`` folder not) gets its final point alone
    (:func:`final_curve_point`), said so, instead of retraining it to measure the rest."""
    from mnist_diffusion.paths import active_profile

    profile = active_profile(profile)
    path = results_dir(profile) / name / "curve.json"
    if not path.is_file():
        if not published_weights(name, profile).is_file():
            trained(name, profile, progress=False)
        if not list_checkpoints(run_dir(name, profile) / "snapshots"):
            point = final_curve_point(metrics(name, profile), curve_n(profile))
            if point is not None:
                print(f"{name}: no training snapshots in {run_dir(name, profile)}; its curve is its final point only "
                      f"(retrain it to measure the rest: python -m mnist_diffusion experiment train {name})")
                return [point]
        curve_experiment(name, profile, progress=False)
    return json.loads(path.read_text())["points"]


def curve_label(name: str, label: str, points: list[dict[str, Any]], profile: str | None = None) -> str:
    """A figure legend's ``label`` for ``points`` (from :func:`curve`), marked " (final point)" when only the
    final point is known and " (second run)" when ``curve.json`` was drawn from another run than ``ema.pt``."""
    from mnist_diffusion.paths import active_profile

    if len(points) == 1:
        return f"{label} (final point)"
    drawn = _read_json(results_dir(active_profile(profile)) / name / "curve.json")
    return f"{label} (second run)" if drawn.get("ends_at_published_weights") is False else label


def summary(profile: str | None = None) -> dict[str, Any]:
    """``results/summary.json`` (rewritten from the metrics files first under the smoke profile)."""
    from mnist_diffusion.paths import active_profile

    profile = active_profile(profile)
    path = results_dir(profile) / "summary.json"
    if profile == "smoke" or not path.is_file():
        summarise(profile)
    return json.loads(path.read_text())
