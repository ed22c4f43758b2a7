"""The benchmark scripts run (in ``--quick`` mode: one repeat, tiny sizes), write valid JSON, and render tables.

The timings these runs produce mean nothing; what is checked is that every script works end to end, that the
JSON holds what the report needs, and that the report rewrites only the README's marked section.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mnist_diffusion.models.unet import upsample_conv

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str):
    """Import ``benchmarks/<name>.py`` as a module (the scripts put their own folder on sys.path)."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub_evaluate(n: int):
    """Stands in for ``evaluate``: its first call on a fresh cache builds the real-data references (~25 s), which
    the evaluation's own tests cover; here only the benchmark script's timing, JSON and table are under test."""
    return lambda: {"n": n}


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


def test_training_json(quick_results):
    doc = json.loads((quick_results / "training.json").read_text())
    assert doc["format"] == "mnist-diffusion-bench/1" and doc["quick"] is True
    assert doc["matmul_peak_gflops"]["median"] > 0
    rows = {r["case"]: r for r in doc["results"]}
    assert {"cnn/contiguous", "unet-s/channels_last", "diffusers-s/contiguous"} <= set(rows)
    for row in rows.values():
        assert row["images_per_s"]["median"] > 0 and row["flops_per_step"] > 0
    # The diffusers network is matched to ours within 10% of the parameters, and the ratio is recorded.
    ours, theirs = rows["unet-s/contiguous"], rows["diffusers-s/contiguous"]
    assert abs(theirs["parameters"] / ours["parameters"] - 1) < 0.1
    assert ours["speedup_vs_diffusers"]["median"] > 0
    assert {t["target"].split(" (")[1] for t in doc["targets"]} == {"contiguous)", "channels_last)"}


def test_sampling_json_and_samplers_agree_with_diffusers(quick_results):
    doc = json.loads((quick_results / "sampling.json").read_text())
    rows = {r["case"]: r for r in doc["results"]}
    assert set(rows) == {"ancestral/ours", "ancestral/diffusers", "ddim/ours", "ddim/diffusers", "alg2/palimpsest",
                         "alg2/blur"}
    assert all(r["seconds_per_image"] > 0 and r["overhead_us_per_step"] > 0 for r in rows.values())
    # The same network stepped by diffusers' schedulers from the same noise gives our samples.
    assert rows["ancestral/ours"]["max_abs_difference_vs_diffusers"] < 1e-3
    assert rows["ddim/ours"]["max_abs_difference_vs_diffusers"] < 1e-3
    assert len(doc["targets"]) == 2


def test_evaluation_json(quick_results):
    doc = json.loads((quick_results / "evaluation.json").read_text())
    assert doc["status"] == "ok" and doc["settings"]["n"] == 10
    assert doc["results"][0]["images_per_s"]["median"] > 0


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
    assert mem["setup_rss_mib"] < 100 < len(ballast) / 2**20
    assert 190 < mem["workload_rss_mib"] < 260


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "channels_last"])
def test_unet_fast_upsample_equals_nearest_upsample_then_conv(memory_format):
    """The UNet's speed-up (sub-pixel form of upsample + 3x3 conv) computes the same function and gradients."""
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 4, 3, padding=1).double().to(memory_format=memory_format)
    x = torch.randn(2, 6, 7, 7, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    fast = upsample_conv(x, conv)
    grads_fast = torch.autograd.grad(fast.square().sum(), [x, conv.weight, conv.bias])
    reference = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    grads_reference = torch.autograd.grad(reference.square().sum(), [x, conv.weight, conv.bias])
    assert fast.shape == (2, 4, 14, 14)
    torch.testing.assert_close(fast, reference)
    for got, want in zip(grads_fast, grads_reference):
        torch.testing.assert_close(got, want)


def test_latex_escape_sets_comparisons_in_math_outside_code():
    escape = load_script("report").latex_escape
    assert escape("img/s >= 40% of peak, <= 2 or < 3 > 1") == r"img/s $\geq$ 40\% of peak, $\leq$ 2 or $<$ 3 $>$ 1"
    assert escape("run `a>=b_c` & 5") == r"run \texttt{a>=b\_c} \& 5"
