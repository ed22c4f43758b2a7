"""The experiments registry end to end under the smoke scale: train -> publish -> evaluate -> curve -> summary;
evaluations declared as sampler options; read accessors that never compute at the full scale."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_diffusion import experiments as ex
from mnist_diffusion.cli import build_parser, main
from mnist_diffusion.diffusion import STEPPED_SAMPLERS
from mnist_diffusion.errors import UserError
from mnist_diffusion.experiments import running as ex_running
from mnist_diffusion.paths import repo_root
from mnist_diffusion.scale import RUNS_ENV, resolve_scale
from mnist_diffusion.training.checkpoint import list_checkpoints, load_checkpoint


def _training_flops(config) -> float:
    """Forward + backward FLOPs of one training step of ``config``'s network (counted on meta tensors: no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mnist_diffusion.training.build import build_network

    with torch.device("meta"):
        net = build_network(config)
        x, t = torch.randn(config.train.batch_size, 1, 28, 28), torch.rand(config.train.batch_size)
    with FlopCounterMode(display=False) as counter:
        net(x, t).sum().backward()
    return counter.get_total_flops()


def test_pilots_change_one_factor_each_at_the_controls_training_flops():
    control = ex.experiment_config(ex.PILOT_CONTROL)
    budget = control.train.steps * _training_flops(control)
    assert budget == pytest.approx(ex.PILOT_BUDGET_TFLOP * 1e12, rel=1e-3)
    flat = lambda c: {(s, k): v for s, sec in c.to_dict().items() if isinstance(sec, dict) for k, v in sec.items()}  # noqa: E731
    ignored = {("train", "steps"), ("train", "sample_every"), ("train", "checkpoint_every"), ("train", "snapshot_steps")}
    factors = set()
    for pilot in ex.PILOTS:
        config = ex.experiment_config(pilot.name)
        # each pilot's steps round its share of the budget: within half a step of equal FLOPs
        assert abs(config.train.steps * _training_flops(config) - budget) <= 0.5 * _training_flops(config)
        changed = {key for key, value in flat(config).items() if flat(control)[key] != value} - ignored
        assert changed and changed <= {("model", "channels"), ("model", "attention")} or len(changed) == 1, pilot.name
        factors.add(frozenset(changed))
        assert pilot.evaluations == ex.PILOT_EVALUATIONS and pilot.group == "pilot"
    assert len(factors) == len(ex.PILOTS)  # no two pilots change the same keys
    assert ex.PILOT_EVALUATIONS[0].seed == ex.SELECTION_SEED  # chosen on seeds no headline uses


def test_cold_training_variants_retrain_their_run_with_one_change_to_the_degradation():
    from mnist_diffusion.cold.degradations import TracedPalimpsest, WithNoise
    from mnist_diffusion.training.build import build_process

    assert ex.VARIANTS and all(e.seed == ex.SELECTION_SEED for v in ex.VARIANTS for e in v.evaluations)
    changes = {"cold_palimpsest_noise": {"noise": ex.TRAINING_NOISE}, "cold_blur_noise": {"noise": ex.TRAINING_NOISE},
               "cold_palimpsest_trace_cell14": {"trace_cell": 14}}
    assert {v.name for v in ex.VARIANTS} == set(changes)
    for variant in ex.VARIANTS:
        base = ex.get_experiment(variant.variant_of)
        assert base.group == "final" and base.is_cold and variant.is_cold and variant.scratch and not base.scratch
        config, base_config = ex.experiment_config(variant.name).to_dict(), ex.experiment_config(base.name).to_dict()
        assert config["cold"] == {**base_config["cold"], **changes[variant.name]}
        assert {k: v for k, v in config.items() if k not in ("cold", "train")} == \
            {k: v for k, v in base_config.items() if k not in ("cold", "train")}
        assert {**config["train"], "sample_every": 0} == {**base_config["train"], "sample_every": 0}
        degradation = build_process(ex.experiment_config(variant.name)).degradation
        if "noise" in changes[variant.name]:
            assert isinstance(degradation, WithNoise) and degradation.sigma == ex.TRAINING_NOISE
        else:
            assert isinstance(degradation, TracedPalimpsest) and degradation.cell == 14
        assert ex.published_weights(variant.name) == ex.run_dir(variant.name) / "ema.pt"  # scratch, never published
        generative = [e.options for e in variant.evaluations]  # each unperturbed Algorithm 2 variant gets a copying check
        assert variant.copying_options() == generative


def test_held_out_trace_priors_use_the_component_counts_their_selection_chose():
    from mnist_diffusion.cold.trace_prior import MixtureTraces

    summary = json.loads((repo_root() / "results" / "summary.json").read_text())
    selections = {record["prior_selection"]["cell"]: record["prior_selection"]["selected"]
                  for section in ("models", "variants") for record in summary.get(section, {}).values()
                  if record.get("prior_selection")}
    assert selections[7] == 400 and MixtureTraces.HELD_OUT_COMPONENTS == selections
    runs = [run for section in ("models", "variants") for run in summary.get(section, {})]
    for run in runs:  # each held-out prior evaluation was drawn from the selected prior
        metrics = json.loads((repo_root() / "results" / run / "metrics.json").read_text())
        cell = ex.experiment_config(run).cold.trace_cell
        for key, evaluation in metrics["evaluations"].items():
            if evaluation["options"]["prior"] == "heldout":
                assert evaluation["prior_components"] == selections[cell], key


def test_registry_configs_build_and_study_changes_one_factor_each():
    recipe = ex.experiment_config("study_recipe").to_dict()
    baseline = ex.experiment_config("study_baseline").to_dict()
    assert recipe["train"]["steps"] == baseline["train"]["steps"] == ex.STUDY_STEPS
    factor_keys = {"network": {("model", "arch"), ("model", "channels")}, "noise schedule": {("diffusion", "schedule")},
                   "learning rate": {("optim", "lr")}, "EMA": {("train", "ema_decay")}}
    for factor, run in ex.STUDY_FACTORS.items():
        changed = ex.experiment_config(run).to_dict()
        diffs = {(section, key) for section, values in recipe.items() if isinstance(values, dict)
                 for key, value in values.items() if changed[section][key] != value}
        assert diffs == factor_keys[factor], f"{run} must revert exactly {factor}, changed {diffs}"
        for section, key in diffs:  # ...and revert it to the baseline's value
            assert changed[section][key] == baseline[section][key]
    final = ex.experiment_config("ddpm_unet")
    assert final.train.snapshot_steps[-1] == final.train.steps


def test_study_rows_taken_from_snapshots_share_their_final_runs_config_but_for_its_length():
    length_keys = {"steps", "sample_every", "snapshot_steps"}  # none of these changes the weights at a step
    taken = [e for e in ex.EXPERIMENTS.values() if e.snapshot_of]
    assert {e.snapshot_of for e in taken} == {"ddpm_baseline", "ddpm_unet_cosine", "ddpm_unet"}
    for e in taken:
        row, final = ex.experiment_config(e.name).to_dict(), ex.experiment_config(e.snapshot_of).to_dict()
        row["train"] = {k: v for k, v in row["train"].items() if k not in length_keys}
        final["train"] = {k: v for k, v in final["train"].items() if k not in length_keys}
        assert row == final, e.name
        assert ex.STUDY_STEPS in ex.experiment_config(e.snapshot_of).train.snapshot_steps


def test_smoke_config_keeps_smoke_sizes():
    config = ex.experiment_config("study_recipe", ex.SMOKE)
    assert config.train.steps == 20 and config.data.subset == 512
    assert ex.experiment_config("study_recipe", "smoke") == config  # the scale may be named


def test_unknown_experiment_is_a_user_error():
    with pytest.raises(UserError, match="unknown experiment 'nope'"):
        ex.get_experiment("nope")
    assert main(["experiment", "evaluate", "nope"]) == 2


def test_same_ema_weights_tells_a_second_run_apart(tmp_path):
    from mnist_diffusion.training.checkpoint import FORMAT, save_atomic

    def save(ema_state, file, **more):
        save_atomic({"format": FORMAT, "step": 20, "ema": ema_state, **more}, tmp_path / file)

    ema = {"w": torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), "b": torch.zeros(4)}
    save(ema, "snapshot.pt", model={"w": ema["w"] + 1})
    save({k: v.clone() for k, v in ema.items()}, "ema.pt")
    assert ex.same_ema_weights(tmp_path / "snapshot.pt", tmp_path / "ema.pt")
    # a second run that drifted in the last bit of one weight is another run
    drifted = {k: v.clone() for k, v in ema.items()}
    drifted["w"][2, 1] = torch.nextafter(drifted["w"][2, 1], torch.tensor(1.0))
    save(drifted, "rerun.pt")
    assert not ex.same_ema_weights(tmp_path / "snapshot.pt", tmp_path / "rerun.pt")
    save({"w": ema["w"]}, "fewer.pt")
    assert not ex.same_ema_weights(tmp_path / "snapshot.pt", tmp_path / "fewer.pt")


def committed_files(name: str) -> dict[str, bytes]:
    """The repository's results of ``name`` and summary, byte for byte (a smoke run must leave them alone)."""
    files = sorted((repo_root() / "results" / name).iterdir()) + [repo_root() / "results" / "summary.json"]
    return {str(path): path.read_bytes() for path in files}


@pytest.mark.slow
def test_smoke_pipeline_train_evaluate_curve_summary(capsys, monkeypatch):
    name = "study_ema"  # a study run trained on its own (not taken from a final run's snapshot)
    committed, repo_run = committed_files(name), repo_root() / "runs" / name
    run_existed = repo_run.exists()
    assert main(["experiment", "train", name, "--profile", "smoke", "--no-progress"]) == 0
    published = ex.results_dir(ex.SMOKE) / name
    # everything went to the session's scratch folder (conftest sets it), outside the repository
    assert published.is_relative_to(Path(os.environ[RUNS_ENV])) and not published.is_relative_to(repo_root())
    assert {"ema.pt", "log.jsonl", "config.yaml", "hardware.json"} <= {p.name for p in published.iterdir()}
    snapshots = list_checkpoints(ex.run_dir(name, ex.SMOKE) / "snapshots")
    assert [step for step, _ in snapshots] == [10, 20]
    # the last snapshot holds the final EMA weights
    final = load_checkpoint(published / "ema.pt")
    last = load_checkpoint(snapshots[-1][1])
    for key, value in final["ema"].items():
        assert (last["ema"][key] == value).all()
    assert last["stats"]["images_seen"] == 20 * 32

    assert main(["experiment", "evaluate", name, "--profile", "smoke", "--no-progress"]) == 0
    record = json.loads((published / "metrics.json").read_text())
    key = record["headline"]
    assert key == "ddim-50_n100"
    evaluation = record["evaluations"][key]
    assert evaluation["n"] == 100 and evaluation["options"] == ex.ddim(50).to_dict()
    assert evaluation["sample_args"] == ["--sampler", "ddim", "--steps", "50", "--eta", "0"]
    assert record["training"]["images_seen"] == 20 * 32 and record["training"]["train_seconds"] > 0
    # the samples are cached by weights digest and are what was evaluated: re-evaluating them gives the same FID
    from mnist_diffusion.evaluation import evaluate

    cached = sorted((ex.run_dir(name, ex.SMOKE) / "samples").glob(f"*_{key}_seed0_clip.npz"))
    assert len(cached) == 1
    with np.load(cached[0]) as data:
        again = evaluate(data["images"], n=100)
    assert again["metrics"]["fid"]["value"] == pytest.approx(evaluation["metrics"]["fid"]["value"], rel=1e-9)
    _check_inception_option(name, published, key, monkeypatch, capsys)
    _check_concurrent_and_stale_results(name, published, key, monkeypatch)

    assert main(["experiment", "curve", name, "--profile", "smoke", "--no-progress"]) == 0
    curve = json.loads((published / "curve.json").read_text())
    assert [p["step"] for p in curve["points"]] == [10, 20]
    assert curve["points"][0]["train_seconds"] < curve["points"][1]["train_seconds"]
    assert curve["ends_at_published_weights"] is True  # this run's own snapshots, not a second run's
    assert not (published / "curve_run_log.jsonl").exists()
    _check_curve_inception(name, published, monkeypatch)
    _check_curve_of_a_second_run(name, published)
    _check_curve_without_snapshots(name, published, curve["points"][-1], capsys)

    assert main(["experiment", "summary", "--profile", "smoke"]) == 0
    summary = json.loads((ex.results_dir(ex.SMOKE) / "summary.json").read_text())
    row = summary["study"][name]
    assert row["evaluations"][key]["metrics"]["fid"]["value"] == evaluation["metrics"]["fid"]["value"]
    assert row["evaluations"][key]["options"] == evaluation["options"]
    assert [p["step"] for p in row["curve"]] == [10, 20] and row["curve_options"] == ex.ddim(50).to_dict()
    # the committed results and the repository's runs/ were left alone
    assert committed_files(name) == committed and repo_run.exists() == run_existed


def _check_curve_inception(name, published, monkeypatch):
    """``curve --inception``: the Inception-FID target's budget point, the last snapshot within the training budget
    (here all of them: seconds), scored at the headline's N on seed 0 (a stand-in network here) with its floor;
    later calls, with or without the option, keep it instead of recomputing it."""
    from mnist_diffusion.evaluation import inception

    seen = []
    monkeypatch.setattr(inception, "unavailable_reason", lambda: None)
    monkeypatch.setattr(inception, "inception_fid", lambda images, n, *a: seen.append(images.shape) or 20.0 + len(seen))
    monkeypatch.setattr(inception, "inception_floor", lambda n, *a: {"value": 0.5, "std": None})
    assert main(["experiment", "curve", name, "--inception", "--profile", "smoke", "--no-progress"]) == 0
    curve = json.loads((published / "curve.json").read_text())
    headline = ex.get_experiment(name).evaluations_at(ex.SMOKE)[0]
    budget = curve["budget"]
    assert (budget["step"], budget["n"], budget["seed"]) == (20, headline.n, 0)
    assert (budget["inception_fid"], budget["inception_floor"]) == (21.0, 0.5)
    assert budget["samples"] == ex.sample_file(list_checkpoints(ex.run_dir(name, ex.SMOKE) / "snapshots")[-1][1],
                                               headline.options, headline.n, 0, Path("x")).name
    assert seen == [(headline.n, 28, 28)] and curve["complete"] is True
    assert all("inception_fid" not in p for p in curve["points"])
    assert main(["experiment", "curve", name, "--inception", "--profile", "smoke", "--no-progress"]) == 0
    assert len(seen) == 1 and json.loads((published / "curve.json").read_text()) == curve
    assert main(["experiment", "curve", name, "--profile", "smoke", "--no-progress"]) == 0
    assert json.loads((published / "curve.json").read_text())["budget"] == budget
    _check_stopped_curve(name, published, curve, monkeypatch)


def _check_stopped_curve(name, published, curve, monkeypatch):
    """A curve call stopped after its first point leaves a whole curve: that point redrawn, the earlier call's later
    points, the budget point, ``complete`` false (``ex.curve`` says so); the next call completes it."""
    from mnist_diffusion import evaluation

    evaluate, calls = evaluation.evaluate, []

    def stop_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        result = evaluate(*args, **kwargs)
        result["metrics"]["fid"]["value"] = 99.0
        return result

    monkeypatch.setattr(evaluation, "evaluate", stop_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        ex.curve_experiment(name, ex.SMOKE, progress=False)
    stopped = json.loads((published / "curve.json").read_text())
    assert stopped["complete"] is False and stopped["budget"] == curve["budget"]
    assert [p["fid"] for p in stopped["points"]] == [99.0, curve["points"][1]["fid"]]
    assert ex.curve(name, ex.SMOKE) == stopped["points"]
    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    ex.curve_experiment(name, ex.SMOKE, progress=False)
    assert json.loads((published / "curve.json").read_text()) == curve


def _check_curve_of_a_second_run(name, published):
    """Published weights that the last snapshot does not hold (the curve is a second run's): the curve says so and
    keeps that run's training log, whose times it plots, beside it."""
    from mnist_diffusion.training.checkpoint import save_atomic

    kept = {f: (published / f).read_bytes() for f in ("ema.pt", "ema.pt.sha256", "curve.json")}
    state = load_checkpoint(published / "ema.pt")
    first = next(iter(state["ema"]))
    state["ema"][first] = state["ema"][first] + 1e-6
    save_atomic(state, published / "ema.pt")
    try:
        ex.curve_experiment(name, ex.SMOKE, progress=False)
        curve = json.loads((published / "curve.json").read_text())
        log = published / "curve_run_log.jsonl"
        assert curve["ends_at_published_weights"] is False
        assert ex.curve_label(name, "run", curve["points"], ex.SMOKE) == "run (second run)"
        curve["options"] = ex.ddim(20, eta=1.0).to_dict()  # as if drawn before the run's headline sampler was chosen
        (published / "curve.json").write_text(json.dumps(curve))
        assert ex.curve_label(name, "run", curve["points"], ex.SMOKE) == "run (second run; DDIM, eta = 1, 20 steps)"
        assert log.read_bytes() == (ex.run_dir(name, ex.SMOKE) / "log.jsonl").read_bytes()
        for f in ("ema.pt", "ema.pt.sha256"):
            (published / f).write_bytes(kept[f])
        ex.curve_experiment(name, ex.SMOKE, progress=False)  # drawn again from the published run: no stale log
        assert json.loads((published / "curve.json").read_text())["ends_at_published_weights"] is True
        assert not log.exists()
    finally:
        for f, data in kept.items():
            (published / f).write_bytes(data)
        (published / "curve_run_log.jsonl").unlink(missing_ok=True)


def _check_curve_without_snapshots(name, published, last_point, capsys):
    """With the snapshots gone (a fresh clone has only the committed weights), ``ex.curve`` gives the final point
    alone, from the final evaluation under the curve's protocol, and says so, instead of failing or retraining."""
    curve_file = published / "curve.json"
    kept = curve_file.read_text()
    snapshots = ex.run_dir(name, ex.SMOKE) / "snapshots"
    moved = snapshots.with_name("snapshots.away")
    curve_file.unlink()
    snapshots.rename(moved)
    try:
        points = ex.curve(name, ex.SMOKE)
    finally:
        moved.rename(snapshots)
        curve_file.write_text(kept)
    assert "its curve is its final point only" in capsys.readouterr().out
    assert len(points) == 1
    point = points[0]
    assert (point["step"], point["images_seen"], point["evaluation"]) == (20, 20 * 32, "ddim-50_n100")
    # the same weights, sampler, N and seed as the curve's last point: the same numbers
    assert point["fid"] == pytest.approx(last_point["fid"], rel=1e-9)
    assert point["train_seconds"] == pytest.approx(last_point["train_seconds"], abs=0.01)


def test_a_curve_keeps_the_sampler_it_was_drawn_with():
    """A curve drawn before its run's headline sampler was chosen is read, and its final point looked up, with its
    own sampler: files written before the options were recorded name only the sampler and its steps."""
    assert ex.curve_options({"sampler": "ddim", "steps": 50}) == ex.ddim(50)
    assert ex.curve_options({"options": ex.ddim(100, eta=1.0).to_dict()}) == ex.ddim(100, eta=1.0)
    assert ex.curve_options({}) is None
    chosen, drawn = ex.ddim(100, eta=1.0), ex.ddim(50)
    record = {"headline": ex.evaluation_key(chosen, 10_000),
              "training": {"steps": 5, "train_seconds": 7.0, "images_seen": 640},
              "evaluations": {ex.evaluation_key(options, 2_000): {"seeds": [ex.CURVE_SEED], "metrics": {"fid": {"value": fid}}}
                              for options, fid in ((chosen, 2.0), (drawn, 3.0))}}
    assert ex.final_curve_point(record, 2_000)["fid"] == 2.0  # no curve: the headline's sampler
    record["curve_options"] = drawn.to_dict()
    point = ex.final_curve_point(record, 2_000)
    assert (point["fid"], point["evaluation"], point["images_seen"]) == (3.0, "ddim-50_n2000", 640)


def _check_inception_option(name, published, key, monkeypatch, capsys):
    """``evaluate --inception``: without the network, a one-line error and an unchanged file; with it (here a
    stand-in that records what it is given), the headline gains Inception-FID of seed 0 with its floor at the same
    N, and a later re-evaluation of the same weights keeps it."""
    from mnist_diffusion.evaluation import inception

    before = (published / "metrics.json").read_text()
    monkeypatch.setenv(inception.INCEPTION_ENV, "/nonexistent/inception.pt")
    assert main(["experiment", "evaluate", name, "--inception", "--profile", "smoke", "--no-progress"]) == 2
    assert "cannot compute Inception-FID" in capsys.readouterr().err
    assert (published / "metrics.json").read_text() == before

    seen = []
    monkeypatch.setattr(inception, "unavailable_reason", lambda: None)
    monkeypatch.setattr(inception, "inception_fid", lambda images, n, *a: seen.append((images.shape, n)) or 12.5)
    monkeypatch.setattr(inception, "inception_floor", lambda n, *a: {"value": 0.5, "std": None})
    assert main(["experiment", "evaluate", name, "--only", "ddim-5", "--profile", "smoke", "--no-progress"]) == 2
    assert "--only ddim-5: study_ema has no such evaluation; it has ddim-50_n100" in capsys.readouterr().err
    assert main(["experiment", "evaluate", name, "--inception", "--only", key, "--profile", "smoke",
                 "--no-progress"]) == 0
    assert seen == [((100, 28, 28), 100)]
    row = json.loads((published / "metrics.json").read_text())["evaluations"][key]["metrics"]["inception_fid"]
    assert (row["value"], row["floor"], row["seeds"]) == (12.5, 0.5, [0])
    # --only inception: the Inception row alone; the headline is not re-evaluated (a re-evaluation would replace
    # the whole entry, marker included)
    record = json.loads((published / "metrics.json").read_text())
    record["evaluations"][key]["marker"] = "kept"
    (published / "metrics.json").write_text(json.dumps(record))
    monkeypatch.setattr(inception, "inception_fid", lambda images, n, *a: seen.append((images.shape, n)) or 11.5)
    assert main(["experiment", "evaluate", name, "--inception", "--only", "inception", "--profile", "smoke",
                 "--no-progress"]) == 0
    entry = json.loads((published / "metrics.json").read_text())["evaluations"][key]
    assert entry["marker"] == "kept" and entry["metrics"]["inception_fid"]["value"] == 11.5 and len(seen) == 2
    row = entry["metrics"]["inception_fid"]
    assert main(["experiment", "evaluate", name, "--only", "inception", "--profile", "smoke", "--no-progress"]) == 2
    assert "--only inception: study_ema has no such evaluation" in capsys.readouterr().err  # only with --inception
    assert main(["experiment", "evaluate", name, "--profile", "smoke", "--no-progress"]) == 0
    again = json.loads((published / "metrics.json").read_text())["evaluations"][key]["metrics"]
    assert again["inception_fid"] == row and len(seen) == 2


def _check_concurrent_and_stale_results(name, published, key, monkeypatch):
    """A result is merged into metrics.json as the file is when the result is ready: a key that another process
    wrote meanwhile survives; results recorded for other weights are dropped."""
    import mnist_diffusion.evaluation as evaluation

    path = published / "metrics.json"
    record = json.loads(path.read_text())
    stale = {**record, "weights_sha256_16": "0" * 16, "evaluations": {"stale_n1": {}}, "restoration": {}}
    path.write_text(json.dumps(stale))
    real_evaluate = evaluation.evaluate

    def evaluate_while_another_process_writes(*args, **kwargs):
        result = real_evaluate(*args, **kwargs)
        other = json.loads(path.read_text())
        if other["weights_sha256_16"] == record["weights_sha256_16"]:
            other["evaluations"]["other_n100"] = {"written": "meanwhile"}
            path.write_text(json.dumps(other))
        return result

    monkeypatch.setattr(evaluation, "evaluate", evaluate_while_another_process_writes)
    assert main(["experiment", "evaluate", name, "--profile", "smoke", "--no-progress"]) == 0
    assert set(json.loads(path.read_text())["evaluations"]) == {key} and "restoration" not in json.loads(path.read_text())
    path.write_text(json.dumps(record))
    assert main(["experiment", "evaluate", name, "--profile", "smoke", "--no-progress"]) == 0
    after = json.loads(path.read_text())
    assert after["evaluations"]["other_n100"] == {"written": "meanwhile"} and set(after["evaluations"]) == {key, "other_n100"}
    path.write_text(json.dumps(record))
    monkeypatch.setattr(evaluation, "evaluate", real_evaluate)


@pytest.mark.slow
def test_study_rows_taken_from_a_final_runs_snapshot_are_the_weights_training_them_alone_gives(tmp_path):
    """study_baseline is ddpm_baseline's config cut at the study's step: the final run's snapshot at that step
    (even with sample grids drawn during training) must equal training the study config on its own, bitwise."""
    from mnist_diffusion.training.loop import train

    study = ex.experiment_config("study_baseline", ex.SMOKE)
    alone = load_checkpoint(train(study, tmp_path / "alone", progress=False) / "ema.pt")
    final = ex.experiment_config("ddpm_baseline", ex.SMOKE)
    final.train.sample_every = 5  # grids every 5 steps must not disturb training
    with_grids = load_checkpoint(train(final, tmp_path / "final", progress=False) / "snapshots" / "step_00000020.pt")
    assert all(torch.equal(alone["ema"][key], value) for key, value in with_grids["ema"].items())

    shutil.rmtree(ex.run_dir("study_baseline", ex.SMOKE), ignore_errors=True)  # left by other smoke runs
    ex.train_experiment("ddpm_baseline", ex.SMOKE, progress=False)
    ex.train_experiment("study_baseline", ex.SMOKE, progress=False)  # taken from the snapshot, not trained
    published = ex.results_dir(ex.SMOKE) / "study_baseline"
    taken = load_checkpoint(published / "ema.pt")
    assert taken["snapshot_of"].endswith("step_00000020.pt") and taken["step"] == 20
    assert all(torch.equal(alone["ema"][key], value) for key, value in taken["ema"].items())
    assert taken["config"]["train"]["steps"] == study.train.steps and taken["config"]["name"] == "ddpm_baseline"
    assert not (ex.run_dir("study_baseline", ex.SMOKE) / "checkpoints").exists()  # nothing was trained
    steps = [json.loads(line)["step"] for line in (published / "log.jsonl").read_text().splitlines()]
    assert steps and max(steps) == 20
    assert ex.take_snapshot("study_network", ex.SMOKE) is False  # a reverted factor has no final run to share


def test_fid_by_steps_groups_one_seed_evaluations_by_sampler_label():
    def evaluation(options, fid, sets=1, seed=0):
        return {"options": options.to_dict(), "sets": sets, "seeds": list(range(seed, seed + sets)),
                "metrics": {"fid": {"value": fid, "floor": 6.6}}}

    study = ex.SELECTION_SEED
    record = {"name": "ddpm_unet", "evaluations": {
        "ddim-50_n10000": evaluation(ex.ddim(50), 59.0, sets=3), "ddim-50_n2000": evaluation(ex.ddim(50), 67.0),
        "ddim-10_n2000": evaluation(ex.ddim(10), 87.0), "ddim-50-eta1_n2000": evaluation(ex.ddim(50, eta=1.0), 34.7),
        "ancestral_n2000": evaluation(ex.ANCESTRAL, 34.0),
        "ddim-50_n2000_seed1000": evaluation(ex.ddim(50), 61.0, seed=study),
        "dpmpp2msde-20_n2000_seed1000": evaluation(ex.dpm_solver(20, sde=True), 33.8, seed=study)}}
    series, floor = ex.fid_by_steps(record, ex.FULL)
    T = ex.experiment_config("ddpm_unet").diffusion.T
    assert series == {"DDIM": [(10, 87.0), (50, 67.0)], "DDIM, eta = 1": [(50, 34.7)], "ancestral": [(T, 34.0)]}
    study_series, _ = ex.fid_by_steps(record, ex.FULL, seed=study)  # the sampler study's seed, kept apart
    assert study_series == {"DDIM": [(50, 61.0)], "SDE-DPM-Solver++(2M)": [(20, 33.8)]}
    assert floor == 6.6


def test_evaluations_are_keyed_by_their_options_and_the_sample_command_accepts_their_arguments():
    parser = build_parser()
    keys = set()
    for e in ex.EXPERIMENTS.values():
        for evaluation in e.evaluations:
            options = evaluation.options
            assert ex.parse_evaluation_key(evaluation.key) == (options, evaluation.n)
            args = parser.parse_args(["sample", "--checkpoint", "ema.pt", *options.sample_args()])
            parsed = {"sampler": args.sampler, "steps": args.steps if args.sampler in STEPPED_SAMPLERS else None,
                      "eta": args.eta, "prior": args.prior, "clip": args.clip_x0, "perturb": args.perturb}
            assert parsed == options.to_dict(), evaluation.key
            keys.add(evaluation.key)
    assert {"ddim-50_n10000", "ancestral_n2000", "ddim-50-eta1_n2000", "alg2-mixtureprior_n10000",
            "dpmpp2msde-20_n2000_seed1000"} <= keys
    assert {ex.key_seed(key) for key in keys} == {0, ex.SELECTION_SEED}
    # every option shows in the label and reads back, also those no evaluation uses yet
    for options in (ex.ddim(20, eta=0.5), ex.SampleOptions("ancestral", clip=False), ex.SampleOptions("alg1", prior="training"),
                    ex.SampleOptions("alg2", perturb=0.05)):
        assert ex.SampleOptions.parse(options.label()) == options and "." not in options.label()
    assert ex.ddim(20, eta=0.5).label() == "ddim-20-eta0p5"
    for bad in ({"sampler": "ancestral", "steps": 50}, {"sampler": "ddim"}, {"sampler": "alg2", "eta": 1.0},
                {"sampler": "ddim", "steps": 5, "prior": "mixture"}, {"sampler": "alg2", "clip": False},
                {"sampler": "ancestral", "perturb": 0.1}, {"sampler": "alg2", "perturb": -0.1}):
        with pytest.raises(ValueError):
            ex.SampleOptions(**bad)


def test_committed_results_record_each_evaluations_options_under_its_derived_key():
    summary = json.loads((repo_root() / "results" / "summary.json").read_text())
    for name, e in ex.EXPERIMENTS.items():
        path = repo_root() / "results" / name / "metrics.json"
        if not path.is_file():
            continue
        record = json.loads(path.read_text())
        declared = {evaluation.key: evaluation.options for evaluation in e.evaluations}
        assert set(record["evaluations"]) == set(declared) and record["headline"] == e.evaluations[0].key, name
        entry = summary[ex_running.SUMMARY_SECTIONS[e.group]][name]
        for key, evaluation in record["evaluations"].items():
            assert evaluation["options"] == declared[key].to_dict() == entry["evaluations"][key]["options"]
            assert evaluation["sample_args"] == declared[key].sample_args(), (name, key)
            degradation = ex.experiment_config(name).cold.degradation if e.is_cold else None
            assert evaluation["data_free"] == ex.data_free(degradation, declared[key]) \
                == entry["evaluations"][key]["data_free"], (name, key)


def test_summary_names_data_free_headlines_that_the_runs_evaluate():
    summary = json.loads((repo_root() / "results" / "summary.json").read_text())
    assert set(summary["headline"]) == {"ddpm", "cold"}
    for kind, entry in summary["headline"].items():
        assert (entry["run"], entry["evaluation"]) == ex.HEADLINES[kind]
        assert entry["evaluation"] in summary["models"][entry["run"]]["evaluations"], kind
        assert entry["data_free"] is True, kind
    assert ex.get_experiment(summary["headline"]["cold"]["run"]).is_cold
    # the cold headline is what its stated rule picks from the committed N = 2,000 selection-seed evaluations
    run, options = ex.registry.cold_headline_choice({**summary["models"], **summary.get("variants", {})})
    assert (run, ex.evaluation_key(options, 10_000)) == ex.HEADLINES["cold"]


def test_only_the_traced_palimpsest_started_from_training_traces_is_not_data_free():
    assert not ex.data_free("palimpsest_trace", ex.ALG2)  # its default prior draws a training digit's trace
    assert not ex.data_free("palimpsest_trace", ex.SampleOptions("alg1", prior="training"))
    assert ex.data_free("palimpsest_trace", ex.SampleOptions("alg2", prior="mixture"))
    assert ex.data_free("palimpsest", ex.ALG2) and ex.data_free("blur", ex.DIRECT) and ex.data_free(None, ex.ddim(50))


class Computed(Exception):
    """Raised by the stand-ins of the functions that train, evaluate or gather results."""


def refuse_to_compute(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise Computed

    for function in ("train_experiment", "evaluate_experiment", "curve_experiment", "summarise"):
        monkeypatch.setattr(ex_running, function, refuse)


def test_full_scale_accessors_load_what_is_committed_and_never_compute(monkeypatch):
    refuse_to_compute(monkeypatch)
    assert not ex.FULL.may_compute
    for name, e in ex.EXPERIMENTS.items():  # the committed metrics are of the committed weights
        if e.scratch and not (ex.results_dir(ex.FULL) / name / "metrics.json").is_file():
            with pytest.raises(UserError, match=rf"(runs/{name}/ema\.pt|results/{name}/metrics\.json) is missing: run `make {e.group}`$"):
                ex.metrics(name, ex.FULL)  # a pilot or variant not yet run (its weights are scratch, never committed)
            continue
        assert ex.metrics(name, ex.FULL)["headline"] == e.evaluations[0].key
    points = ex.curve("ddpm_unet", ex.FULL)
    assert len(points) > 1 and points == ex.summary(ex.FULL)["models"]["ddpm_unet"]["curve"]


def test_missing_results_stop_with_the_make_target_unless_computing_is_asked_for(tmp_path, monkeypatch):
    import dataclasses

    refuse_to_compute(monkeypatch)
    scale = dataclasses.replace(ex.SMOKE, may_compute=False).with_scratch_root(tmp_path)
    with pytest.raises(UserError, match=r"results/ddpm_unet/ema\.pt is missing: run `make train-unet`$"):
        ex.trained("ddpm_unet", scale)
    with pytest.raises(UserError, match=r"results/ddpm_baseline/ema\.pt is missing: run `make train-baseline`$"):
        ex.samples("ddpm_baseline", 4, scale=scale)
    with pytest.raises(UserError, match=r"results/study_lr/log\.jsonl is missing: run `make study`$"):
        ex.training_log("study_lr", scale)
    with pytest.raises(UserError, match=r"results/cold_blur/ema\.pt is missing: run `make experiments`$"):
        ex.metrics("cold_blur", scale)
    folder = tmp_path / "results" / "cold_blur"
    folder.mkdir(parents=True)
    (folder / "ema.pt").write_bytes(b"weights")
    (folder / "ema.pt.sha256").write_text("ab" * 32 + "  ema.pt\n")
    with pytest.raises(UserError, match=r"results/cold_blur/metrics\.json is missing: run `make results`$"):
        ex.metrics("cold_blur", scale)
    (folder / "metrics.json").write_text(json.dumps({"weights_sha256_16": "0" * 16}))
    with pytest.raises(UserError, match=r"metrics\.json is of other weights than ema\.pt: run `make results`$"):
        ex.metrics("cold_blur", scale)
    record = {"weights_sha256_16": "ab" * 8, "headline": "alg2_n10000", "evaluations": {}}
    (folder / "metrics.json").write_text(json.dumps(record))
    assert ex.metrics("cold_blur", scale) == record
    with pytest.raises(UserError, match=r"results/cold_blur/curve\.json is missing: run `make curves`"):
        ex.curve("cold_blur", scale)
    with pytest.raises(UserError, match=r"results/summary\.json is missing: run `python -m mnist_diffusion"):
        ex.summary(scale)
    # the explicit opt-in (or a scale that may compute) does the work
    with pytest.raises(Computed):
        ex.trained("ddpm_unet", scale, compute_if_missing=True)
    with pytest.raises(Computed):
        ex.metrics("ddpm_unet", dataclasses.replace(scale, may_compute=True))
    (folder / "metrics.json").unlink()
    with pytest.raises(Computed):
        ex.metrics("cold_blur", scale, compute_if_missing=True)


def test_the_scale_comes_from_the_argument_or_the_environment_and_smoke_files_stay_outside_the_repo(
        tmp_path, monkeypatch):
    from mnist_diffusion.reporting import plots
    from mnist_diffusion.scale import PROFILE_ENV

    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert resolve_scale() is ex.FULL and resolve_scale("smoke") is ex.SMOKE and resolve_scale(ex.SMOKE) is ex.SMOKE
    monkeypatch.setenv(PROFILE_ENV, "smoke")
    assert resolve_scale() is ex.SMOKE and plots.figures_dir() == ex.SMOKE.figures_root()
    monkeypatch.setenv(PROFILE_ENV, "huge")
    with pytest.raises(UserError, match="unknown profile 'huge'; choose one of full, smoke"):
        resolve_scale()
    assert ex.FULL.results_root() == repo_root() / "results" and ex.FULL.figures_root() == repo_root() / "figures"
    monkeypatch.setenv(RUNS_ENV, str(tmp_path))
    assert (ex.SMOKE.runs_root(), ex.SMOKE.results_root(), ex.SMOKE.figures_root()) == \
        (tmp_path, tmp_path / "results", tmp_path / "figures")
    monkeypatch.delenv(RUNS_ENV)
    for root in (ex.SMOKE.runs_root(), ex.SMOKE.results_root(), ex.SMOKE.figures_root()):
        assert not root.resolve().is_relative_to(repo_root())
    assert ex.SMOKE.with_scratch_root(tmp_path / "x").results_root() == tmp_path / "x" / "results"
    with pytest.raises(ValueError):
        ex.FULL.with_scratch_root(tmp_path)


def test_the_cold_headline_rule_picks_the_best_data_free_algorithm_2_variant_on_the_selection_seed():
    def evaluation(fid, n=2_000, seed=ex.SELECTION_SEED, data_free=True):
        return {"metrics": {"fid": {"value": fid}}, "n": n, "data_free": data_free, "seeds": [seed]}

    key = lambda options, n=2_000, seed=ex.SELECTION_SEED: ex.evaluation_key(options, n, seed)  # noqa: E731
    models = {
        "cold_palimpsest": {"evaluations": {key(ex.SampleOptions("alg2", perturb=0.02)): evaluation(500.0),
                                            key(ex.ALG1): evaluation(10.0)}},  # not Algorithm 2
        "cold_palimpsest_trace": {"evaluations": {
            key(ex.ALG2): evaluation(5.0, data_free=False),  # training traces: not data-free
            key(ex.SampleOptions("alg2", prior="mixture")): evaluation(90.0),
            key(ex.SampleOptions("alg2", prior="heldout"), 10_000, 0): evaluation(1.0, n=10_000, seed=0)}},  # not N = 2,000
        "ddpm_unet": {"evaluations": {key(ex.ddim(50)): evaluation(3.0)}},  # not cold
    }
    assert ex.registry.cold_headline_choice(models) == ("cold_palimpsest_trace", ex.SampleOptions("alg2", prior="mixture"))
    assert ex.registry.cold_headline_choice({"ddpm_unet": models["ddpm_unet"]}) is None
