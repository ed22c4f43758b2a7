"""Bad input gets a one-line error and loses nothing: configs, foreign checkpoints, pickles with code, data."""

import subprocess
import sys

import pytest
import torch
from fault_helpers import run, train_command, write_config

from mnist_diffusion.training import checkpoint as ckpt
from mnist_diffusion.training.config import load_config
from mnist_diffusion.training.loop import train


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize("override, fragment", [
    ("optim.lr=-0.1", "optim.lr must be > 0"),
    ("diffusion.T=0", "diffusion.T must be >= 1"),
    ("diffusion.schedule=sigmoid", "unknown diffusion.schedule 'sigmoid'"),
    ("cold.degradation=swirl", "unknown cold.degradation 'swirl'"),
    ("train.batch_size=many", "train.batch_size must be of type int"),
    ("train.precision=fp8", "train.precision must be fp32, bf16 or fp16"),
])
def test_bad_config_values_from_the_command_line(tmp_path, override, fragment):
    one_line_error(run(train_command(write_config(tmp_path), tmp_path / "run", "--set", override)), fragment)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def tiny_run(mnist_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    return train(load_config(write_config(folder, steps=2)), folder / "run", progress=False)


def test_checkpoint_from_another_architecture_names_the_keys(tiny_run, tmp_path):
    state = ckpt.load_checkpoint(tiny_run / "ema.pt")
    state["config"]["model"] = {"arch": "coursework_cnn", "channels": [16, 32, 32, 16], "blocks_per_level": 1,
                                "dropout": 0.0}
    foreign = tmp_path / "foreign.pt"
    ckpt.save_atomic(state, foreign)
    result = run([sys.executable, "-m", "mnist_diffusion", "sample", "--checkpoint", str(foreign), "--n", "2",
                  "--out", str(tmp_path / "x.npz")])
    one_line_error(result, "does not fit the configured network", "missing: blocks.0.conv.bias",
                   "unexpected: down_blocks.0.0.conv1.bias")


class Payload:
    """Any class outside torch's allow-list stands in for a pickle that would run code when loaded."""

    def __reduce__(self):
        return (print, ("this would have run",))


def test_a_pickle_carrying_code_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": ckpt.FORMAT, "payload": Payload()}, evil)
    result = run([sys.executable, "-m", "mnist_diffusion", "sample", "--checkpoint", str(evil),
                  "--out", str(tmp_path / "x.npz")])
    one_line_error(result, "refusing to load", "weights-only")
    assert "this would have run" not in result.stdout


def test_missing_data_root_is_one_line(tmp_path):
    env = {**__import__("os").environ, "MNIST_DIFFUSION_DATA": str(tmp_path / "nowhere")}
    result = subprocess.run(train_command(write_config(tmp_path), tmp_path / "run"), capture_output=True, text=True,
                            timeout=300, env=env)
    one_line_error(result, "missing", "data fetch")
