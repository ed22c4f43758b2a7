"""Configs: the shipped YAML files load, overrides are typed, and mistakes are one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest

from mnist_diffusion.scale import SMOKE_OVERRIDES
from mnist_diffusion.training.config import from_dict, load_config
from mnist_diffusion.errors import UserError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.name == path.stem


def test_baseline_is_the_coursework_recipe():
    c = load_config(CONFIGS / "ddpm_baseline.yaml")
    assert (c.model.arch, c.model.channels) == ("coursework_cnn", [16, 32, 32, 16])
    assert (c.diffusion.schedule, c.diffusion.T, c.diffusion.beta_1, c.diffusion.beta_T) == ("linear", 1000, 1e-4, 0.02)
    assert (c.optim.name, c.optim.lr, c.train.batch_size) == ("adam", 2e-4, 128)
    assert c.train.steps * c.train.batch_size >= 30 * 60_000


def test_overrides_are_parsed_as_typed_values():
    c = load_config(CONFIGS / "ddpm_unet.yaml", ["optim.lr=1e-3", "model.channels=[8, 16]", "train.channels_last=true"])
    assert c.optim.lr == 1e-3 and c.model.channels == [8, 16] and c.train.channels_last is True
    c = from_dict({"train": {"steps": 7}}, ["data.root=null"])
    assert c.train.steps == 7 and c.data.root is None


def test_smoke_profile_shrinks_the_run():
    c = load_config(CONFIGS / "ddpm_unet.yaml", scale="smoke")
    for key, value in SMOKE_OVERRIDES.items():
        section, name = key.split(".")
        assert getattr(getattr(c, section), name) == value


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'; valid keys here: optim.name, optim.lr"),
        ("trian.steps=5", "unknown config key 'trian.steps'; valid keys here: name, method, data, diffusion"),
        ("train.steps=1.5", "train.steps must be of type int"),
        ("train.steps=true", "train.steps must be of type int"),
        ("optim.lr=fast", "optim.lr must be of type float"),
        ("optim.lr=-1", "optim.lr must be > 0"),
        ("diffusion.T=0", "diffusion.T must be >= 1"),
        ("diffusion.schedule=quadratic", "unknown diffusion.schedule 'quadratic'"),
        ("model.arch=resnet", "unknown model.arch 'resnet'"),
        ("model.channels=16", "model.channels must be a list of int"),
        ("train.ema_decay=1.5", "train.ema_decay must be in [0, 1)"),
        ("optim.decay=linear", "optim.decay must be one of constant, cosine"),
        ("diffusion.prediction=x0", "unknown diffusion.prediction 'x0'; choose one of eps, v"),
        ("diffusion.min_snr_gamma=-1", "diffusion.min_snr_gamma must be >= 0"),
        ("cold.noise=-0.5", "cold.noise must be >= 0"),
        ("cold.trace_cell=5", "cold.trace_cell must divide 28, got 5"),
        ("cold.trace_cell=14", "cold.trace_cell is for the palimpsest_trace degradation, not 'palimpsest'"),
        ("optim.lr", "--set expects section.key=value"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(override, message):
    with pytest.raises(UserError) as info:
        load_config(CONFIGS / "ddpm_unet.yaml", [override])
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_key_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mnist_diffusion", "train", "--config", str(CONFIGS / "ddpm_unet.yaml"),
         "--set", "optim.learning_rate=1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown config key 'optim.learning_rate'")
    assert not (tmp_path / "run").exists()


def test_missing_and_invalid_yaml_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)


def test_attention_is_for_the_unet_only_and_its_heads_must_divide_the_channels():
    with pytest.raises(UserError, match="model.attention needs model.arch unet"):
        load_config(CONFIGS / "ddpm_baseline.yaml", ["model.attention=true"])
    with pytest.raises(UserError, match=r"divisible by 4 \(its heads\), got \[16, 32, 66\]"):
        load_config(CONFIGS / "ddpm_unet.yaml", ["model.attention=true", "model.channels=[16, 32, 66]"])
