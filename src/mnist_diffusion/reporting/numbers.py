"""The report's numbers: every value of ``results/summary.json`` the report prints, and the numbers derived from
them, each under a key and with the JSON path (or formula) it came from (:func:`collect`), formatted for print.

Keys read ``<run>/<evaluation>/<metric>`` (e.g. ``ddpm_unet/ddim-50_n10000/fid``), with ``/std``, ``/floor`` and
``/floorstd`` variants, ``<run>/headline/<metric>`` for the run's headline evaluation, ``floor/<N>/<metric>``,
``<run>/train/<quantity>`` (threads included), ``<run>/params`` (final models: trainable parameters),
``<run>/restore/t<t>/<quantity>`` and ``derived/<name>``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from mnist_diffusion.experiments.registry import (
    ANCESTRAL, EXPERIMENTS, SELECTION_SEED, SUMMARY_SECTIONS, ddim, dpm_solver, evaluation_key, experiment_config,
    parse_evaluation_key, results_dir,
)
from mnist_diffusion.experiments.results import final_curve_point
from mnist_diffusion.models import count_parameters
from mnist_diffusion.paths import memo
from mnist_diffusion.training.build import build_diffusion, build_network
from mnist_diffusion.training.config import load_config

#: Metrics shown in the tables, in order, with their labels.
TABLE_METRICS = {
    "fid": "classifier-FID", "kid": "KID", "precision": "precision", "recall": "recall", "density": "density",
    "coverage": "coverage", "mnist_score": "MNIST score", "label_kl": "label KL (nats)",
    "label_max_gap": "largest class gap", "confident_share": "confident share", "memorisation": "memorised share",
    "inception_fid": "Inception-FID",
}
MODEL_LABELS = {"ddpm_baseline": "DDPM baseline", "ddpm_unet": "DDPM, our recipe", "ddpm_long": "DDPM, long run",
                "cold_palimpsest": "cold, palimpsest", "cold_blur": "cold, blur",
                "cold_palimpsest_trace": "cold, palimpsest from training traces"}  # not data-free: says so


def format_value(value: float | int | None) -> str:
    """How every number is printed: integers, and anything of magnitude 1,000 or more rounded to an integer, with
    thin-space thousands; other floats to 3 significant digits."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "--"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}".replace(",", "\\,")
    if value == 0:
        return "0"
    digits = max(3 - 1 - math.floor(math.log10(abs(value))), 0)
    return f"{value:.{digits}f}"


def format_with_std(value: float | None, std: float | None) -> tuple[str, str]:
    """A mean and its standard deviation, printed together: the std to 2 significant digits and the mean rounded
    to the same decimal place (85.52 and 0.57, 0.5890 and 0.0087), so neither claims more precision than the
    other. Without a usable std, or for a mean of magnitude 1,000 or more, the mean prints as
    :func:`format_value` prints it."""
    bad = value is None or not math.isfinite(value) or std is None or not math.isfinite(std) or std <= 0
    if bad:
        return format_value(value), format_value(std)
    decimals = max(2 - 1 - math.floor(math.log10(std)), 0)
    if round(std, decimals) >= 10 ** (2 - decimals):  # 0.0996 rounds up to 0.10: one digit fewer
        decimals = max(decimals - 1, 0)
    std_text = f"{std:.{decimals}f}" if std < 1000 else format_value(std)
    return (f"{value:.{decimals}f}" if abs(value) < 1000 else format_value(value)), std_text


def parse_value(text: str) -> float:
    """Inverse of :func:`format_value` (for tests)."""
    return float(text.replace("\\,", ""))


@memo(maxsize=None)
def parameter_count(run: str) -> tuple[int, str] | None:
    """Trainable parameters of ``run``'s network and where they were counted: the network built from the config
    the run was trained with (``results/<run>/config.yaml``; the registry's config for a run without results), or
    None for a run that is neither. The network is built under a forked RNG, so counting leaves torch's untouched."""
    path = results_dir() / run / "config.yaml"
    if path.is_file():
        config, where = load_config(path), f"results/{run}/config.yaml"
    elif run in EXPERIMENTS:
        config, where = experiment_config(run), f"the registry's config of {run}"
    else:
        return None
    with torch.random.fork_rng(devices=[]):
        count = count_parameters(build_network(config))
    return count, f"count_parameters(build_network({where}))"


class Results:
    """Collects ``key -> (printed value, source)``."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, str]] = {}
        self.values: dict[str, float | int | None] = {}

    def add(self, key: str, value: float | int | None, source: str, text: str | None = None) -> None:
        """``source``: the value's JSON path in summary.json, or a formula (marked ``formula:``) for derived numbers.
        ``text``: the printed form, when it is not :func:`format_value`'s."""
        is_path = re.fullmatch(r"[\w.\-]+", source) is not None
        self.entries[key] = (format_value(value) if text is None else text, source if is_path else f"formula: {source}")
        self.values[key] = value

    def add_with_std(self, key: str, value: float | None, std: float | None, source: str, std_source: str) -> None:
        """``key`` and ``key/std`` (or ``<key>std`` when ``key`` ends in ``/floor``), printed by
        :func:`format_with_std`; sources are JSON paths as in :meth:`add`."""
        value_text, std_text = format_with_std(value, std)
        self.add(key, value, source, value_text)
        self.add(f"{key}std" if key.endswith("/floor") else f"{key}/std", std, std_source, std_text)

    def tex(self) -> str:
        lines = ["% Generated by `python -m mnist_diffusion report-tables` from results/summary.json; do not edit.",
                 "% Each line: \\defresult{key}{value}% source (a JSON path in summary.json, or a formula)."]
        lines += [f"\\defresult{{{key}}}{{{value}}}% {source}" for key, (value, source) in self.entries.items()]
        return "\n".join(lines) + "\n"


def _evaluation_entries(results: Results, run: str, where: str, key: str, evaluation: dict[str, Any],
                        alias: str | None = None) -> None:
    """Keys ``<run>/<alias or key>/...`` for one evaluation; sources name the JSON path under its real ``key``."""
    name = alias or key
    for metric, m in evaluation["metrics"].items():
        base = f"{run}/{name}/{metric}"
        path = f"{where}.evaluations.{key}.metrics.{metric}"
        results.add_with_std(base, m["value"], m["std"], f"{path}.value", f"{path}.std")
        results.add_with_std(f"{base}/floor", m["floor"], m["floor_std"], f"{path}.floor", f"{path}.floor_std")
    seconds = evaluation["sampling_seconds"]
    results.add(f"{run}/{name}/msperimage", 1000 * sum(seconds) / (evaluation["n"] * evaluation["sets"]),
                f"1000 * sum({where}.evaluations.{key}.sampling_seconds) / (n * sets)")
    results.add(f"{run}/{name}/n", evaluation["n"], f"{where}.evaluations.{key}.n")
    perturb = parse_evaluation_key(key)[0].perturb
    if perturb:
        results.add(f"{run}/{name}/perturb", perturb, f"{where}.evaluations.{key}.options.perturb", f"{perturb:g}")
    results.add(f"{run}/{name}/sets", evaluation["sets"], f"{where}.evaluations.{key}.sets")


def _run_entries(results: Results, run: str, where: str, record: dict[str, Any]) -> None:
    for key, evaluation in record["evaluations"].items():
        _evaluation_entries(results, run, where, key, evaluation)
    head = record["evaluations"].get(record["headline"])
    if head:
        _evaluation_entries(results, run, where, record["headline"], head, alias="headline")
    training = record["training"]
    results.add(f"{run}/train/steps", training["steps"], f"{where}.training.steps")
    results.add(f"{run}/train/images", training.get("images_seen"), f"{where}.training.images_seen")
    results.add(f"{run}/train/epochs", training.get("images_seen", 0) / 60_000, f"{where}.training.images_seen / 60000")
    results.add(f"{run}/train/minutes", training.get("train_seconds", 0) / 60, f"{where}.training.train_seconds / 60")
    results.add(f"{run}/train/hours", training.get("train_seconds", 0) / 3600, f"{where}.training.train_seconds / 3600")
    threads = (training.get("hardware") or {}).get("torch_threads")
    if threads is not None:
        results.add(f"{run}/train/threads", threads, f"{where}.training.hardware.torch_threads")
    if where.startswith("models.") and (counted := parameter_count(run)):
        results.add(f"{run}/params", counted[0], counted[1])
    for name, r in (record.get("restoration") or {}).items():
        for quantity in ("l1_degraded", "l1_restored"):
            results.add(f"{run}/restore/{name}/{quantity.replace('_', '')}", r[quantity],
                        f"{where}.restoration.{name}.{quantity}")
    endpoint = record.get("endpoint")
    if endpoint:
        for quantity in ("n", "estimates", "test_images"):
            results.add(f"{run}/endpoint/{quantity.replace('_', '')}", endpoint[quantity], f"{where}.endpoint.{quantity}")
    _cold_checks(results, run, where, record)


def _cold_checks(results: Results, run: str, where: str, record: dict[str, Any]) -> None:
    """The step errors of Algorithms 1 and 2, the copying checks and the trace prior's capacity selection."""
    steps = record.get("step_error")
    if steps:
        one, path = steps["one_step"], steps["trajectory"]
        results.add(f"{run}/steperror/n", steps["n"], f"{where}.step_error.n")
        for quantity in ("alg1", "alg2", "restorer"):
            results.add(f"{run}/steperror/onestep/{quantity}", sum(one[quantity]) / len(one[quantity]),
                        f"mean over s of {where}.step_error.one_step.{quantity}")
        for quantity in ("alg1", "alg2"):
            results.add(f"{run}/steperror/final/{quantity}", path[quantity][-1],
                        f"{where}.step_error.trajectory.{quantity}[-1] (s = 0)")
        for quantity, value in (steps.get("generation") or {}).items():
            results.add(f"{run}/steperror/generation/{quantity.replace('_', '')}", value,
                        f"{where}.step_error.generation.{quantity}")
    for label, check in (record.get("copying") or {}).items():
        at = f"{where}.copying.{label}"
        results.add(f"{run}/copying/{label}/nearestmedian", check["nearest"]["quantiles"]["q50"],
                    f"{at}.nearest.quantiles.q50")
        results.add(f"{run}/copying/{label}/testmedian", check["test_nearest"]["quantiles"]["q50"],
                    f"{at}.test_nearest.quantiles.q50")
        results.add(f"{run}/copying/{label}/memorisedpct", 100 * check["memorised_share"], f"100 * {at}.memorised_share")
        if "source" in check:
            results.add(f"{run}/copying/{label}/sourcemedian", check["source"]["quantiles"]["q50"],
                        f"{at}.source.quantiles.q50")
            results.add(f"{run}/copying/{label}/nearestissourcepct", 100 * check["nearest_is_source"],
                        f"100 * {at}.nearest_is_source")
    selection = record.get("prior_selection")
    if selection:
        results.add(f"{run}/prior/selected", selection["selected"], f"{where}.prior_selection.selected")
        best = selection["scores"][str(selection["selected"])]["validation"]
        results.add(f"{run}/prior/selected/validation", best,
                    f"{where}.prior_selection.scores.<selected>.validation")
        for k, score in selection["scores"].items():
            results.add(f"{run}/prior/k{k}/validation", score["validation"],
                        f"{where}.prior_selection.scores.{k}.validation")
    information = record.get("trace_information")
    for cell, entry in (information or {}).get("cells", {}).items():
        at = f"{where}.trace_information.cells.{cell}"
        results.add(f"{run}/trace/cell{cell}/numbers", entry["numbers"], f"{at}.numbers")
        results.add(f"{run}/trace/cell{cell}/nnaccuracypct", 100 * entry["nn_class_accuracy"],
                    f"100 * {at}.nn_class_accuracy")


def _shares_and_gaps(results: Results, prefix: str, evaluation: dict[str, Any], where: str) -> None:
    """One evaluation's precision, recall and coverage gaps to the floor, largest class gap and class shares in
    percent."""
    m = evaluation["metrics"]
    for metric in ("precision", "recall", "coverage"):
        if m.get(metric) and m[metric]["floor"] is not None:
            results.add(f"{prefix}/{metric}gap", m[metric]["value"] - m[metric]["floor"],
                        f"{where} {metric}.value - {metric}.floor")
    if m.get("label_max_gap"):
        results.add(f"{prefix}/maxgappct", 100 * m["label_max_gap"]["value"], f"100 * {where} label_max_gap.value")
    shares = evaluation.get("label_shares")
    if shares:
        results.add(f"{prefix}/minsharepct", 100 * min(shares), f"100 * min({where} label_shares)")
        top = max(range(len(shares)), key=shares.__getitem__)
        results.add(f"{prefix}/topdigit", top, f"argmax({where} label_shares)")
        results.add(f"{prefix}/topsharepct", 100 * shares[top], f"100 * max({where} label_shares)")


#: The DDPM issue's Inception-FID target (the headline's, and the budget snapshot's: ``curve --inception``).
INCEPTION_TARGET = 5.0


def _budget_point(results: Results, run: str, budget: dict[str, Any]) -> None:
    """The quality-per-compute target's measurement: the last training snapshot within the budget of
    :data:`~mnist_diffusion.experiments.registry.INCEPTION_BUDGET_HOURS`, scored at the headline's N on seed 0
    (``curve.json``'s ``budget``): its step, training hours, Inception- and classifier-FID with their floors."""
    where = f"models.{run}.curve_budget"
    results.add(f"{run}/curve/budget/step", budget["step"], f"{where}.step")
    results.add(f"{run}/curve/budget/hours", budget["train_seconds"] / 3600, f"{where}.train_seconds / 3600")
    results.add(f"{run}/curve/budget/n", budget["n"], f"{where}.n")
    for key, floor in (("inception_fid", "inception_floor"), ("fid", "fid_floor")):
        results.add(f"{run}/curve/budget/{key}", budget[key], f"{where}.{key}")
        results.add(f"{run}/curve/budget/{key}/floor", budget[floor], f"{where}.{floor}")


def _derived(results: Results, summary: dict[str, Any]) -> None:
    """Numbers the text states that are computed from several JSON values (each source names its formula)."""
    models = summary["models"]
    for run, record in models.items():
        head = record["evaluations"].get(record["headline"])
        if head and head["metrics"]["fid"]["floor"]:
            results.add(f"derived/{run}/fidratio", head["metrics"]["fid"]["value"] / head["metrics"]["fid"]["floor"],
                        f"models.{run}: headline fid.value / fid.floor")
    # what x_hat = (z_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t) multiplies the network's error by at t = T
    alpha_T = build_diffusion(experiment_config("ddpm_unet")).schedule.alpha[-1].item()
    results.add("derived/ddpm_unet/invsqrtalphaT", 1 / math.sqrt(alpha_T),
                "1 / sqrt(alpha_T) of configs/ddpm_unet.yaml's schedule (mnist_diffusion.diffusion.schedules)")
    unet, base = models.get("ddpm_unet"), models.get("ddpm_baseline")
    # the baseline's final point: its curve's last, or (snapshots not evaluated) its final weights' evaluation
    point, where = None, ""
    if base and base.get("curve"):
        point, where = base["curve"][-1], "models.ddpm_baseline.curve[-1]"
    elif base and (point := final_curve_point(base)):
        where = f"models.ddpm_baseline {point['evaluation']} (the curve's protocol) at its training.train_seconds"
    if base and base.get("curve_ends_at_published_weights") is False and (published := final_curve_point(base)):
        # the curve is a second run of the recipe: the published run's number under the same protocol, beside it
        results.add("derived/baselinepublishedfid", published["fid"],
                    f"models.ddpm_baseline {published['evaluation']} (the published weights, the curve's protocol): fid")
    if unet and unet.get("curve") and point:
        reached = [p for p in unet["curve"] if p["fid"] <= point["fid"]]
        results.add("derived/baselinefinalfid", point["fid"], f"{where}: fid")
        results.add("derived/baselinehours", point["train_seconds"] / 3600, f"{where}: train_seconds / 3600")
        if reached:
            fraction = reached[0]["train_seconds"] / point["train_seconds"]
            results.add("derived/unetreachesbaselineminutes", reached[0]["train_seconds"] / 60,
                        "first models.ddpm_unet.curve point with fid <= baseline's final: train_seconds / 60")
            results.add("derived/unetreachesbaselinefraction", fraction,
                        f"that point's train_seconds / ({where}: train_seconds)")
    for run, record in models.items():
        curve = record.get("curve")
        if curve:  # is training still paying off? the FID at half the run's steps (or the first snapshot past it) and at the end
            half = next(p for p in curve if p["step"] >= curve[-1]["step"] / 2)
            where = f"models.{run}.curve"
            results.add(f"derived/{run}/curve/halfstep", half["step"], f"first {where} point with step >= last step / 2: step")
            results.add(f"derived/{run}/curve/halffid", half["fid"], f"first {where} point with step >= last step / 2: fid")
            results.add(f"derived/{run}/curve/finalstep", curve[-1]["step"], f"{where}[-1].step")
            results.add(f"derived/{run}/curve/finalfid", curve[-1]["fid"], f"{where}[-1].fid")
        if budget := record.get("curve_budget"):
            _budget_point(results, run, budget)
    for run in ("ddpm_baseline", "ddpm_unet"):
        evaluations = (models.get(run) or {}).get("evaluations", {})
        slow = evaluation_key(ANCESTRAL, 2_000)
        ancestral = evaluations.get(slow)
        # derived/<run>/ddimvsancestralpct, .../ddim-eta1vsancestralpct, and the sampler study's 20-call samplers
        # as derived/<run>/study/<label>vsancestralpct (against the same reference, drawn on seed 0)
        compared = [*((options, 0, options.label(with_steps=False)) for options in (ddim(50), ddim(50, eta=1.0))),
                    *((options, SELECTION_SEED, f"study/{options.label()}")
                      for options in (ddim(20, eta=1.0), dpm_solver(20, sde=True)))]
        for options, seed, name in compared:
            fast = evaluations.get(key := evaluation_key(options, 2_000, seed))
            if fast and ancestral:
                a = ancestral["metrics"]["fid"]["value"]
                results.add(f"derived/{run}/{name}vsancestralpct", 100 * (fast["metrics"]["fid"]["value"] - a) / a,
                            f"100 * (models.{run} {key} fid - {slow} fid) / {slow} fid")
    for run, record in models.items():
        # the headline's gaps and class shares as derived/<run>/..., other N = 10,000 evaluations' as
        # derived/<run>/<sampler label>/... (e.g. alg2-mixtureprior: the traced palimpsest's mixture prior)
        for key, evaluation in record["evaluations"].items():
            if key == record["headline"]:
                _shares_and_gaps(results, f"derived/{run}", evaluation, f"models.{run} headline")
            elif evaluation["n"] >= 10_000:
                _shares_and_gaps(results, f"derived/{run}/{parse_evaluation_key(key)[0].label()}", evaluation,
                                 f"models.{run} {key}")
    from mnist_diffusion.experiments.registry import PILOT_BUDGET_TFLOP, PILOT_EVALUATIONS, PILOTS

    results.add("pilot/tflop", PILOT_BUDGET_TFLOP, "experiments.registry.PILOT_BUDGET_TFLOP (recounted by a test)")
    results.add("pilot/done", len(summary.get("pilots", {})), "len(pilots)")
    results.add("pilot/total", len(PILOTS), "len(experiments.registry.PILOTS)")
    key = PILOT_EVALUATIONS[0].key
    control = models.get(summary.get("pilot_control", ""), {}).get("evaluations", {}).get(key)
    for run, record in summary.get("pilots", {}).items() if control else ():
        if key in record["evaluations"]:
            fid, fid0 = record["evaluations"][key]["metrics"]["fid"]["value"], control["metrics"]["fid"]["value"]
            results.add(f"derived/{run}/fidchange", fid - fid0, f"pilots.{run} {key} fid - models.{summary['pilot_control']}'s")
    study = summary["study"]
    recipe = study.get("study_recipe")
    if recipe:
        fid0 = recipe["evaluations"][recipe["headline"]]["metrics"]["fid"]["value"]
        for run, record in study.items():
            fid = record["evaluations"][record["headline"]]["metrics"]["fid"]["value"]
            results.add(f"derived/{run}/fidchange", fid - fid0, f"study.{run} headline fid - study.study_recipe's")


def collect(summary: dict[str, Any]) -> Results:
    """Every number the report may print, from a summary dict."""
    results = Results()
    for n, floor in summary.get("floors", {}).items():
        for metric, m in floor.items():
            results.add_with_std(f"floor/{n}/{metric}", m["value"], m["std"], f"floors.{n}.{metric}.value",
                                 f"floors.{n}.{metric}.std")
    for group in SUMMARY_SECTIONS.values():
        for run, record in summary.get(group, {}).items():
            _run_entries(results, run, f"{group}.{run}", record)
    results.add("study/steps", summary.get("study_steps"), "study_steps")
    accuracy = (summary.get("classifier") or {}).get("test_accuracy")
    results.add("classifier/accuracy", accuracy, "classifier.test_accuracy")
    results.add("classifier/accuracypct", None if accuracy is None else 100 * accuracy, "100 * classifier.test_accuracy")
    _derived(results, summary)
    return results
