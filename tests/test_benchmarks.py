"""The benchmark scripts run (in ``--quick`` mode: one repeat, tiny sizes), write valid JSON, and render tables.

The timings these runs produce mean nothing, so no test bounds them: what is checked is that every script works
end to end, that the numbers each JSON derives from its timings agree with them (images/s is images / seconds,
ratios are ratios of the same rounds, targets are read off the rows), that the committed tables are the ones the
committed JSON gives, and that the report rewrites only the README's marked section.
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
#: Relative tolerance for numbers recomputed from the JSON's rounded raw values (``values``: 6 decimals).
REL = 1e-3


def load_script(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the scripts put their own folder on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Seconds each call of the stand-in for ``evaluate`` takes, and the n of each call it got.
STUB_SECONDS = 0.05
stub_calls: list[int] = []


def stub_evaluate(n: int):
    """Stands in for ``evaluate``: its first call on a fresh cache builds the real-data references (~25 s), which
    the evaluation's own tests cover; here only the benchmark script's timing, JSON and table are under test. Each
    call records its n and sleeps :data:`STUB_SECONDS`, so the timings the script reports can be checked."""
    def call() -> dict:
        stub_calls.append(n)
        time.sleep(STUB_SECONDS)
        return {"n": n}

    return call


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> Path:
    """Every benchmark script run once in quick mode, into one results folder."""
    pytest.importorskip("diffusers")
    out = tmp_path_factory.mktemp("bench-results")
    with pytest.MonkeyPatch.context() as mp:
        for script, name in [("bench_training", "training"), ("bench_sampling", "sampling"),
                             ("bench_evaluation", "evaluation"), ("profile_training", "profile")]:
            module = load_script(script)
            if name == "evaluation":
                mp.setattr(module, "build_workload", stub_evaluate)
            module.main(["--quick", "--out", str(out / f"{name}.json")])
    return out


def assert_summary(summary: dict, repeats: int) -> None:
    """A ``common.summarise`` record: one raw value per repeat, and its median, min and max are theirs."""
    values = summary["values"]
    assert len(values) == repeats
    assert summary["median"] == pytest.approx(statistics.median(values), rel=REL)
    assert (summary["min"], summary["max"]) == (pytest.approx(min(values), rel=REL), pytest.approx(max(values), rel=REL))


def test_training_json(quick_results):
    doc = json.loads((quick_results / "training.json").read_text())
    assert doc["format"] == "mnist-diffusion-bench/1" and doc["quick"] is True
    settings = doc["settings"]
    assert (settings["batch"], settings["steps_per_repeat"], settings["repeats"]) == (8, 1, 1)  # quick mode's sizes
    peak = doc["matmul_peak_gflops"]
    assert peak["matrix"] == 256
    assert_summary(peak, settings["repeats"])
    rows = {r["case"]: r for r in doc["results"]}
    assert set(rows) == {"cnn/contiguous", "unet-s/contiguous", "diffusers-s/contiguous", "unet-s/channels_last"}
    for row in rows.values():
        # images/s is the batch over the seconds of the same repeat; GFLOP/s the counted FLOPs over the median step
        assert_summary(row["seconds_per_step"], settings["repeats"])
        assert_summary(row["images_per_s"], settings["repeats"])
        for ips, seconds in zip(row["images_per_s"]["values"], row["seconds_per_step"]["values"]):
            assert ips == pytest.approx(settings["batch"] / seconds, rel=REL)
        assert row["gflops_per_s"] == pytest.approx(row["flops_per_step"] / row["seconds_per_step"]["median"] / 1e9,
                                                    rel=REL)
        assert row["fraction_of_peak"] == pytest.approx(row["gflops_per_s"] / peak["median"], rel=REL)
    # The diffusers network is matched to ours within 10% of the parameters, and the ratio is recorded.
    ours, theirs = rows["unet-s/contiguous"], rows["diffusers-s/contiguous"]
    assert abs(theirs["parameters"] / ours["parameters"] - 1) < 0.1
    # The speed-up is diffusers' seconds over ours in the same round: our images/s over theirs, repeat by repeat.
    assert_summary(ours["speedup_vs_diffusers"], settings["repeats"])
    for ratio, a, b in zip(ours["speedup_vs_diffusers"]["values"], ours["images_per_s"]["values"],
                           theirs["images_per_s"]["values"]):
        assert ratio == pytest.approx(a / b, rel=REL)
    assert "speedup_vs_diffusers" not in rows["unet-s/channels_last"]  # its partner was not timed in quick mode
    # Each target is read off its row and met exactly when the value reaches the threshold.
    training = load_script("bench_training")
    checks = {t["target"]: t for t in doc["targets"]}
    assert set(checks) == {
        f"unet-s training throughput >= {training.THROUGHPUT_TARGET}x diffusers (contiguous)",
        f"unet-s training GFLOP/s >= {training.UTILISATION_TARGET:.0%} of matmul peak (contiguous)",
        f"unet-s training GFLOP/s >= {training.UTILISATION_TARGET:.0%} of matmul peak (channels_last)"}
    for check in checks.values():
        fmt = check["target"].rsplit("(", 1)[1].rstrip(")")
        row = rows[f"unet-s/{fmt}"]
        if "throughput" in check["target"]:
            value, threshold = row["speedup_vs_diffusers"]["median"], training.THROUGHPUT_TARGET
        else:
            value, threshold = row["fraction_of_peak"], training.UTILISATION_TARGET
        assert check["value"] == round(value, 3) and check["met"] == (value >= threshold)


def test_sampling_json_and_samplers_agree_with_diffusers(quick_results):
    doc = json.loads((quick_results / "sampling.json").read_text())
    rows = {r["case"]: r for r in doc["results"]}
    assert set(rows) == {"ancestral/ours", "ancestral/diffusers", "ddim/ours", "ddim/diffusers", "alg2/palimpsest",
                         "alg2/blur"}
    s = doc["settings"]
    assert (s["batch"], s["T"], s["ddim_steps"], s["repeats"]) == (2, 20, 5, 1)  # quick mode's sizes
    for case, row in rows.items():
        sampler, implementation = case.split("/")
        assert (row["sampler"], row["implementation"]) == (sampler, implementation)
        assert_summary(row["seconds"], s["repeats"])
        # per image: the batch's median seconds over the batch; overhead share: the steps' overhead over the loop
        assert row["seconds_per_image"] == pytest.approx(row["seconds"]["median"] / s["batch"], rel=REL)
        assert row["overhead_fraction"] == pytest.approx(
            1e-6 * row["overhead_us_per_step"] * row["steps"] / row["seconds"]["median"], rel=REL)
    # ancestral sampling calls the network at every one of the T steps; DDIM at ddim_steps of them
    assert rows["ancestral/ours"]["steps"] == rows["ancestral/diffusers"]["steps"] == s["T"]
    assert rows["ddim/ours"]["steps"] == rows["ddim/diffusers"]["steps"] == s["ddim_steps"]
    # The wall-clock ratio is of the same round's seconds (one repeat in quick mode: the ratio of the two medians).
    for sampler in ("ancestral", "ddim"):
        ours, theirs = rows[f"{sampler}/ours"], rows[f"{sampler}/diffusers"]
        assert ours["wallclock_ratio_vs_diffusers"] == pytest.approx(
            ours["seconds"]["median"] / theirs["seconds"]["median"], rel=REL)
    # The same network stepped by diffusers' schedulers from the same noise gives our samples.
    assert rows["ancestral/ours"]["max_abs_difference_vs_diffusers"] < 1e-3
    assert rows["ddim/ours"]["max_abs_difference_vs_diffusers"] < 1e-3
    # Each target is read off its row, met exactly when our overhead is at most diffusers'.
    assert len(doc["targets"]) == 2
    for check, sampler in zip(doc["targets"], ("ancestral", "ddim")):
        ratio = rows[f"{sampler}/ours"]["overhead_ratio_vs_diffusers"]
        assert sampler in check["target"] and check["value"] == round(ratio, 3) and check["met"] == (ratio <= 1.0)


def test_evaluation_json(quick_results):
    doc = json.loads((quick_results / "evaluation.json").read_text())
    assert doc["status"] == "ok" and doc["settings"]["n"] == 10 and doc["settings"]["with_floors"] is False
    assert stub_calls == [10, 10]  # the first call, timed on its own, then quick mode's one timed repeat
    row = doc["results"][0]
    assert row["first_call_seconds"] >= STUB_SECONDS and row["seconds"]["min"] >= STUB_SECONDS  # the calls are timed
    assert row["images_per_s"]["median"] == pytest.approx(10 / row["seconds"]["median"])


def test_evaluation_without_its_prerequisites_writes_why(tmp_path, monkeypatch):
    module = load_script("bench_evaluation")

    def missing(n):
        raise FileNotFoundError("classifier weights not found")

    monkeypatch.setattr(module, "build_workload", missing)
    doc = module.main(["--quick", "--out", str(tmp_path / "evaluation.json")])
    assert doc["status"] == "skipped" and "classifier weights" in doc["reason"]
    assert json.loads((tmp_path / "evaluation.json").read_text())["reason"] == doc["reason"]
    assert "not measured" in module.markdown(doc)


def test_profile_shares_add_up(quick_results):
    doc = json.loads((quick_results / "profile.json").read_text())
    for result in doc["results"]:
        assert sum(result["kinds"].values()) == pytest.approx(1.0)
        assert result["top_ops"]


def test_report_rewrites_only_the_marked_section(quick_results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# title\n\nbefore\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\nafter\n")
    report = load_script("report")
    args = ["--results", str(quick_results), "--readme", str(readme), "--markdown", str(tmp_path / "results.md"),
            "--latex", str(tmp_path / "performance.tex")]
    assert report.main(args) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nbefore\n\n<!-- bench:start -->\n") and text.endswith("<!-- bench:end -->\n\nafter\n")
    assert "old" not in text and "| unet-s |" in text and "### Sampling" in text
    assert report.main([*args, "--check"]) == 0
    assert "\\begin{tabular}" in (tmp_path / "performance.tex").read_text()
    assert "Where the training step" in (tmp_path / "results.md").read_text()


def test_peak_memory_comes_from_a_fresh_process(tmp_path):
    """A child that allocates 200 MiB reports that much on top of its setup, not its big parent's peak."""
    ballast = b"\x01" * (500 * 2**20)  # a child inheriting the parent's peak RSS would report at least this
    script = tmp_path / "allocate.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nimport peak_memory\n"
                      "peak_memory.memory_case_report(sys.argv[2], lambda: lambda: b'\\x01' * (200 * 2**20), calls=1)\n")
    mem = load_script("peak_memory").measure_memory(script, ["allocate"])["allocate"]
    assert "error" not in mem, mem
    # The child's setup is a bare interpreter (~10-20 MiB), far below the 500 MiB a parent's peak would show.
    assert mem["setup_rss_mib"] < 100 < len(ballast) / 2**20
    assert mem["peak_rss_mib"] == pytest.approx(mem["setup_rss_mib"] + mem["workload_rss_mib"], abs=0.2)
    # The workload is the 200 MiB allocated, within a factor of 1.5 either way: wide enough for the allocator's and
    # the kernel's page accounting on any machine, narrow enough to fail if the setup's or the parent's memory
    # were counted in (>= 500 MiB) or the allocation missed (~0).
    assert 200 / 1.5 < mem["workload_rss_mib"] < 200 * 1.5


def test_committed_tables_are_the_ones_the_committed_json_gives(tmp_path):
    """benchmarks/results.md, benchmarks/results/performance.tex and the README's performance section are what
    report.py renders from benchmarks/results/*.json: no number in them was typed by hand or left by an older run."""
    results = BENCH / "results"
    if not any(results.glob("*.json")):
        pytest.skip("benchmarks/results/ has no JSON yet (make bench)")
    readme = BENCH.parent / "README.md"
    copy = tmp_path / "README.md"
    copy.write_text(readme.read_text())
    args = ["--results", str(results), "--readme", str(copy), "--markdown", str(tmp_path / "results.md"),
            "--latex", str(tmp_path / "performance.tex")]
    report = load_script("report")
    assert report.main(args) == 0
    assert (tmp_path / "results.md").read_text() == (BENCH / "results.md").read_text()
    assert (tmp_path / "performance.tex").read_text() == (results / "performance.tex").read_text()
    assert copy.read_text() == readme.read_text(), "README's performance section is stale: python benchmarks/report.py"
    # and the tables carry the JSON's numbers: every training row's median images/s is in results.md
    training = json.loads((results / "training.json").read_text())
    markdown = (BENCH / "results.md").read_text()
    for row in training["results"]:
        assert f"| {row['network']} | {row['implementation']} |" in markdown
        assert f" {report.common.fmt(row['images_per_s']['median'])} |" in markdown


def test_latex_escape_sets_comparisons_in_math_outside_code():
    escape = load_script("report").latex_escape
    assert escape("img/s >= 40% of peak, <= 2 or < 3 > 1") == r"img/s $\geq$ 40\% of peak, $\leq$ 2 or $<$ 3 $>$ 1"
    assert escape("run `a>=b_c` & 5") == r"run \texttt{a>=b\_c} \& 5"


def test_pilots_json_estimates_each_runs_training_minutes(tmp_path):
    """The pilot benchmark times one training step of the control and of every pilot, built from their configs: the
    estimated minutes are the run's steps times the median seconds per step, and every run's steps cost the pilot
    budget's FLOPs (counted at quick mode's batch, scaled to the config's)."""
    import torch

    from mnist_diffusion.experiments import PILOT_BUDGET_TFLOP, PILOT_CONTROL, PILOTS, experiment_config

    threads = torch.get_num_threads()
    module = load_script("bench_pilots")
    doc = module.main(["--quick", "--out", str(tmp_path / "pilots.json")])
    assert torch.get_num_threads() == threads  # the benchmark's one thread is not left behind
    saved = json.loads((tmp_path / "pilots.json").read_text())
    assert saved == json.loads(json.dumps(doc))
    assert saved["format"] == "mnist-diffusion-bench/1" and saved["benchmark"] == "pilots" and saved["quick"] is True
    assert saved["environment"]["cpu"] and saved["environment"]["torch_threads"] == 1
    settings = saved["settings"]
    assert (settings["batch"], settings["steps_per_repeat"], settings["repeats"], settings["threads"]) == (2, 1, 1, 1)
    rows = {r["run"]: r for r in saved["results"]}
    assert list(rows) == [PILOT_CONTROL, *(p.name for p in PILOTS)]
    assert [run for run, row in rows.items() if row["control"]] == [PILOT_CONTROL]
    for run, row in rows.items():
        config = experiment_config(run, "full")
        assert (row["steps"], row["config_batch"], row["batch"]) == (config.train.steps, config.train.batch_size, 2)
        assert (row["threads"], row["cpu"]) == (1, saved["environment"]["cpu"])
        assert_summary(row["seconds_per_step"], settings["repeats"])
        assert row["seconds_per_step"]["median"] > 0
        minutes = row["steps"] * row["seconds_per_step"]["median"] / 60
        assert row["estimated_minutes"] == pytest.approx(minutes, rel=REL)
        assert row["training_tflop"] == pytest.approx(row["steps"] * row["flops_per_step"] / 1e12, rel=REL)
        full_batch = row["training_tflop"] * row["config_batch"] / row["batch"]
        assert full_batch == pytest.approx(PILOT_BUDGET_TFLOP, rel=0.02), run
    table = module.markdown(saved)
    assert all(row["description"] in table for row in rows.values()) and "(control)" in table


def test_pilots_full_run_defaults():
    """Without --quick: one torch thread, each config's own batch, 7 repeats of 2 steps after a warm-up repeat (the
    sizes the docstring's duration estimate assumes)."""
    module = load_script("bench_pilots")
    args = module.parse_args([])
    settings = module.settings_for(args)
    assert (args.threads, settings["batch"], settings["repeats"], settings["steps_per_repeat"],
            settings["warmup_repeats"]) == (1, "config", 7, 2, 1)
