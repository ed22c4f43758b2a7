"""``python -m mnist_diffusion evaluate``: bad input is one ``error:`` line (exit 2); good input gives the table
and a metrics JSON naming the classifier hash, N, seeds and versions."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from evaluation_fixtures import evaluation_cache  # noqa: F401 - a fixture

from mnist_diffusion.cli import main
from mnist_diffusion.data import mnist_tensors
from mnist_diffusion.paths import CACHE_ENV
from mnist_diffusion.evaluation.classifier import CLASSIFIER_ENV, load_classifier
from mnist_diffusion.evaluation.features import as_uint8_images, load_sample_file
from mnist_diffusion.errors import UserError


def write_npz(path, images, meta=None):
    arrays = {"images": images}
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)
    return path


def raw_file(folder, data: bytes):
    path = folder / "f.npz"
    path.write_bytes(data)
    return path


GOOD = np.zeros((12, 28, 28), dtype=np.uint8)


@pytest.mark.parametrize("make, expected", [
    (lambda p: write_npz(p / "f.npz", GOOD.astype(np.float32) / 255), "look like [0, 1] floats"),
    (lambda p: write_npz(p / "f.npz", GOOD.astype(np.float32) - 1.0), "look like the model range [-1, 1]"),
    (lambda p: write_npz(p / "f.npz", np.full((12, 28, 28), np.nan, dtype=np.float32)), "contains NaN values"),
    (lambda p: write_npz(p / "f.npz", np.full((12, 28, 28), 300, dtype=np.int64)), "outside [0, 255]"),
    (lambda p: write_npz(p / "f.npz", GOOD.astype(np.int64)), "convert with .astype(np.uint8)"),
    (lambda p: write_npz(p / "f.npz", np.zeros((12, 32, 32), dtype=np.uint8)), "expected shape [N, 28, 28]"),
    (lambda p: write_npz(p / "f.npz", np.zeros((0, 28, 28), dtype=np.uint8)), "holds no images"),
    (lambda p: write_npz(p / "f.npz", np.zeros((12, 28, 28), dtype=bool)), "got dtype bool"),
    (lambda p: np.savez(p / "f.npz", pixels=GOOD) or p / "f.npz", "has no 'images' array"),
    (lambda p: raw_file(p, b""), "is empty (0 bytes)"),
    (lambda p: raw_file(p, b"PK\x03\x04 not really a zip"), "not a readable .npz/.npy"),
    (lambda p: raw_file(p, b"plain text, not numpy"), "not a readable .npz/.npy"),
    (lambda p: p / "missing.npz", "not found"),
])
def test_bad_sample_files_are_one_line_errors(tmp_path, capsys, make, expected):
    path = make(tmp_path)
    assert main(["evaluate", "--samples", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_too_few_images_and_bad_n_are_one_line_errors(tmp_path, capsys):
    path = write_npz(tmp_path / "few.npz", GOOD[:5])
    assert main(["evaluate", "--samples", str(path)]) == 2
    assert "N must be an integer in [10, 10000]" in capsys.readouterr().err
    path = write_npz(tmp_path / "twelve.npz", GOOD)
    assert main(["evaluate", "--samples", str(path), "--n", "20"]) == 2
    assert "holds only 12 images" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_missing_classifier_weights_say_how_to_make_them(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(CLASSIFIER_ENV, str(tmp_path / "none.pt"))
    path = write_npz(tmp_path / "ok.npz", GOOD)
    assert main(["evaluate", "--samples", str(path)]) == 2
    assert "train-classifier" in capsys.readouterr().err


def test_image_checks_accept_the_storage_convention_only():
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    assert as_uint8_images(images).shape == (3, 28, 28)
    assert as_uint8_images(np.zeros((2, 28, 28), np.uint8)).dtype == torch.uint8
    with pytest.raises(UserError, match="infinite"):
        as_uint8_images(np.full((2, 28, 28), np.inf))
    with pytest.raises(UserError, match="expected a numpy array"):
        as_uint8_images([[0] * 28] * 28)


def test_sample_file_meta_gives_the_seed(tmp_path):
    path = write_npz(tmp_path / "s.npz", GOOD, {"seed": 4, "sampler": "ddim"})
    loaded = load_sample_file(path)
    assert loaded.seed == 4 and loaded.images.shape == (12, 28, 28)
    assert load_sample_file(write_npz(tmp_path / "bare.npz", GOOD)).seed is None
    np.save(tmp_path / "plain.npy", GOOD)
    assert load_sample_file(tmp_path / "plain.npy").images.shape == (12, 28, 28)


@pytest.mark.slow
def test_evaluate_command_end_to_end(mnist_root, evaluation_cache, tmp_path):
    """Two seeds' files through a real subprocess: table on stdout, JSON with hash, N, seeds, versions."""
    train = mnist_tensors("train")[0].numpy()
    files = [str(write_npz(tmp_path / f"seed{s}.npz", train[s * 100 : s * 100 + 120], {"seed": s})) for s in (0, 1)]
    out = tmp_path / "metrics.json"
    env = {**os.environ, CACHE_ENV: str(evaluation_cache)}
    result = subprocess.run([sys.executable, "-m", "mnist_diffusion", "evaluate", "--samples", *files, "--n", "100",
                             "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "classifier-FID" in result.stdout and "memorised share" in result.stdout and "seeds 0, 1" in result.stdout
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 100 and metrics["seeds"] == [0, 1] and metrics["samples"] == files
    assert metrics["classifier_sha256"] == load_classifier().sha256
    assert set(metrics["versions"]) >= {"torch", "numpy", "mnist_diffusion", "python"}
    assert metrics["metrics"]["fid"]["floor"] is not None and len(metrics["metrics"]["kid"]["values"]) == 2
    assert metrics["metrics"]["memorisation"]["value"] == 1.0


def test_inception_flag_without_the_network_is_one_note_not_an_error(mnist_root, evaluation_cache, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setenv("MNIST_DIFFUSION_INCEPTION", str(tmp_path / "no-inception.pt"))
    path = write_npz(tmp_path / "s.npz", mnist_tensors("test")[0][:30].numpy())
    assert main(["evaluate", "--samples", str(path), "--inception", "--no-progress", "--out", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "note: Inception-FID skipped" in out and "Inception-FID  " not in out
    assert "inception_fid" not in json.loads((tmp_path / "m.json").read_text())["metrics"]
