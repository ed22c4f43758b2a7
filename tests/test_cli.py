"""End to end through the command line: smoke training, then sampling into the project's npz format."""

import json
import resource
import subprocess
import sys
import time

import numpy as np
import pytest

from mnist_diffusion.training.sampling import load_trained


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "mnist_diffusion", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_smoke_train_then_sample_makes_a_valid_npz_quickly(mnist_root, tmp_path):
    started, cpu_started = time.perf_counter(), children_cpu_seconds()
    trained = run_cli("train", "--config", "configs/ddpm_unet.yaml", "--profile", "smoke", "--out", str(tmp_path / "run"),
                      "--no-progress")
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "samples.npz"
    sampled = run_cli("sample", "--checkpoint", str(tmp_path / "run"), "--n", "20", "--sampler", "ddim", "--steps", "5",
                      "--seed", "3", "--batch-size", "8", "--out", str(out), "--grid", str(tmp_path / "grid.png"))
    assert sampled.returncode == 0, sampled.stderr
    # The smoke profile promises a pipeline that "runs in seconds". Measured on a shared 2-core machine: train +
    # sample take about 9 s (wall and CPU) with one thread, but 45 s wall and 31 s of CPU with torch's two threads
    # under a load of 4-5. Wall time grows with other jobs on the cores, CPU time with threads contending for them,
    # so the smaller of the two is bounded, by 120 s: 4x the worst seen and over 10x the usual time, and still far
    # below a run the smoke profile failed to shrink (a full run takes hours).
    elapsed, cpu = time.perf_counter() - started, children_cpu_seconds() - cpu_started
    assert min(elapsed, cpu) < 120, f"smoke train + sample took {elapsed:.0f} s ({cpu:.0f} s of CPU)"
    with np.load(out) as npz:
        images, meta = npz["images"], json.loads(str(npz["meta"]))
    assert images.dtype == np.uint8 and images.shape == (20, 28, 28)
    assert images.std() > 0
    assert meta["sampler"] == "ddim" and meta["steps"] == 5 and meta["seed"] == 3 and meta["weights"] == "ema"
    assert (tmp_path / "grid.png").is_file()

    again = tmp_path / "again.npz"
    assert run_cli("sample", "--checkpoint", str(tmp_path / "run" / "ema.pt"), "--n", "20", "--steps", "5",
                   "--seed", "3", "--batch-size", "8", "--out", str(again), "--no-progress").returncode == 0
    with np.load(again) as npz:
        assert np.array_equal(npz["images"], images), "same checkpoint and seed must give the same images"
    default = tmp_path / "default.npz"  # no --batch-size on a CPU: batches of 64, recorded in the meta
    assert run_cli("sample", "--checkpoint", str(tmp_path / "run"), "--n", "70", "--steps", "5", "--seed", "3",
                   "--out", str(default), "--no-progress").returncode == 0
    explicit = tmp_path / "explicit.npz"
    assert run_cli("sample", "--checkpoint", str(tmp_path / "run"), "--n", "70", "--steps", "5", "--seed", "3",
                   "--batch-size", "64", "--out", str(explicit), "--no-progress").returncode == 0
    with np.load(default) as a, np.load(explicit) as b:
        assert json.loads(str(a["meta"]))["batch_size"] == 64 and np.array_equal(a["images"], b["images"])
    trained_model = load_trained(tmp_path / "run" / "ema.pt", device="cpu")
    assert trained_model.step == 20 and trained_model.config.name == "ddpm_unet"


@pytest.mark.slow
def test_ancestral_sampling_from_the_command_line(mnist_root, tmp_path):
    run = tmp_path / "run"
    assert run_cli("train", "--config", "configs/ddpm_baseline.yaml", "--profile", "smoke", "--out", str(run),
                   "--set", "diffusion.T=50", "--no-progress").returncode == 0
    out = tmp_path / "s.npz"
    result = run_cli("sample", "--checkpoint", str(run), "--n", "4", "--sampler", "ancestral", "--variance", "posterior",
                     "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    with np.load(out) as npz:
        assert npz["images"].shape == (4, 28, 28)


@pytest.mark.parametrize("args, expected", [
    (("sample", "--checkpoint", "does/not/exist.pt"), "error: checkpoint does/not/exist.pt not found"),
    (("train", "--config", "configs/missing.yaml"), "error: config file configs/missing.yaml not found"),
])
def test_user_errors_are_one_line(args, expected):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.strip() == expected or result.stderr.strip().startswith(expected)
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_a_checkpoint_is_rejected(tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint at all")
    result = run_cli("sample", "--checkpoint", str(bogus), "--out", str(tmp_path / "x.npz"))
    assert result.returncode == 2 and result.stderr.startswith("error: cannot read checkpoint")
