"""Run configuration: plain dataclasses, loaded from YAML and overridden with ``--set section.key=value``.

Every value is type-checked and range-checked when a config is built, so a typo or a nonsense value is a
one-line error before any work starts. ``Config.to_dict()`` is what checkpoints store.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_diffusion.errors import UserError
from mnist_diffusion.scale import Scale, resolve_scale


#: Learning-rate shapes after the warm-up (see training.loop.learning_rate).
LR_DECAYS = ("constant", "cosine")


@dataclass
class DataConfig:
    root: str | None = None  # folder holding MNIST/raw; None = $MNIST_DIFFUSION_DATA or <repo>/data
    subset: int = 0  # train on the first `subset` training images only (0 = all 60,000)


@dataclass
class DiffusionConfig:
    schedule: str = "linear"  # linear | cosine
    T: int = 1000
    beta_1: float = 1e-4  # linear schedule only
    beta_T: float = 0.02  # linear schedule only
    cosine_s: float = 0.008  # cosine schedule only
    prediction: str = "eps"  # what the network outputs: eps (Ho et al.) | v = sqrt(alpha_t) eps - sqrt(1 - alpha_t) x
    min_snr_gamma: float = 0.0  # > 0: weight each image's loss by min(SNR_t, gamma) (Hang et al. 2023); 0 = off


@dataclass
class ColdConfig:
    """Cold diffusion only (method: cold)."""

    degradation: str = "palimpsest"  # one of cold.degradations.DEGRADATIONS
    T: int = 50
    noise: float = 0.0  # > 0: a fixed Gaussian noise image of this std added to D(x, t) for t >= 1 (WithNoise)
    trace_cell: int = 7  # palimpsest_trace only: the trace's block size, dividing 28 (7: 4x4 numbers; 14: 2x2; 4: 7x7)


@dataclass
class ModelConfig:
    arch: str = "unet"  # unet | coursework_cnn
    channels: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks_per_level: int = 1  # unet only
    dropout: float = 0.0  # unet only
    attention: bool = False  # unet only: a self-attention block at the lowest resolution (7x7)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 0  # linear LR warm-up from 0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    decay: str = "constant"  # learning rate after warm-up: constant | cosine (to zero at train.steps)


@dataclass
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 128
    ema_decay: float = 0.0  # 0 = no EMA (the EMA copy then equals the weights)
    seed: int = 0
    device: str = "auto"  # auto (cuda > mps > cpu) | cpu | cuda | cuda:N | mps
    channels_last: bool = False
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 adds a gradient scaler and needs CUDA)
    compile: bool = False  # torch.compile the network
    log_every: int = 100
    sample_every: int = 2_000  # 0 = only at the end
    checkpoint_every: int = 1_000
    keep_checkpoints: int = 3
    # Steps at which small weights-only snapshots (model, EMA, training seconds, images seen) are kept in
    # snapshots/ for quality-per-compute curves; never pruned. Steps past `steps` are ignored.
    snapshot_steps: list[int] = field(default_factory=list)


@dataclass
class SampleConfig:
    """How the sample grids written during training are drawn (the `sample` command has its own flags)."""

    sampler: str = "ddim"  # ddpm: one of diffusion.SAMPLERS; cold: one of cold.COLD_SAMPLERS
    steps: int = 50  # ddim only
    eta: float = 0.0
    variance: str = "beta"  # ancestral only: one of diffusion.VARIANCES
    clip_x0: bool = True  # clip x_hat to [-1, 1] (see samplers.ddim)
    n_grid: int = 64


@dataclass
class Config:
    name: str = "run"
    method: str = "ddpm"  # ddpm | cold
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    cold: ColdConfig = field(default_factory=ColdConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict of builtins (safe for weights-only checkpoint loading and JSON)."""
        return dataclasses.asdict(self)


def _sections(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (int, float, str, bool, list[X], X | None); ints pass as floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        return _coerce(value, next(o for o in options if o is not type(None)), key)
    if origin is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise UserError(f"{key} must be a list of {_type_name(item_type)}, got {value!r}")
        return [_coerce(v, item_type, key) for v in value]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "1e-3" as a string
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise UserError(f"{key} must be of type {_type_name(tp)}, got {value!r} ({type(value).__name__})")
    return value


def _apply(config: Config, key: str, value: Any) -> None:
    """Set ``section.field`` (or a top-level field) on ``config`` after checking key and type."""
    parts = key.split(".")
    target: Any = config
    for depth, part in enumerate(parts):
        valid = _sections(target)
        if part not in valid:
            prefix = ".".join(parts[:depth])
            names = ", ".join(f"{prefix}.{n}" if prefix else n for n in valid)
            raise UserError(f"unknown config key {key!r}; valid keys here: {names}")
        if depth < len(parts) - 1:
            target = getattr(target, part)
            if not dataclasses.is_dataclass(target):
                raise UserError(f"config key {key!r}: {'.'.join(parts[: depth + 1])} is a value, not a section")
    hints = typing.get_type_hints(type(target))
    if dataclasses.is_dataclass(getattr(target, parts[-1])):
        if not isinstance(value, dict):
            raise UserError(f"config section {key!r} must be a mapping of keys to values, got {value!r}")
        for sub_key, sub_value in value.items():
            _apply(config, f"{key}.{sub_key}", sub_value)
        return
    setattr(target, parts[-1], _coerce(value, hints[parts[-1]], key))


def _parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr=1e-3"`` -> ("optim.lr", 0.001); the value is read as YAML (numbers, lists, true/false, null)."""
    if "=" not in text:
        raise UserError(f"--set expects section.key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def validate(config: Config) -> Config:
    """Range checks that types alone cannot express; raises a one-line UserError."""
    checks = [
        (config.method in ("ddpm", "cold"), f"method must be ddpm or cold, got {config.method!r}"),
        (config.optim.lr > 0, f"optim.lr must be > 0, got {config.optim.lr}"),
        (config.optim.name in ("adam", "adamw"), f"optim.name must be adam or adamw, got {config.optim.name!r}"),
        (config.optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {config.optim.weight_decay}"),
        (config.optim.warmup_steps >= 0, f"optim.warmup_steps must be >= 0, got {config.optim.warmup_steps}"),
        (config.optim.grad_clip >= 0, f"optim.grad_clip must be >= 0 (0 = off), got {config.optim.grad_clip}"),
        (config.optim.decay in LR_DECAYS, f"optim.decay must be one of {', '.join(LR_DECAYS)}, got {config.optim.decay!r}"),
        (config.cold.noise >= 0, f"cold.noise must be >= 0 (0 = none), got {config.cold.noise}"),
        (config.cold.trace_cell >= 1 and 28 % config.cold.trace_cell == 0,
         f"cold.trace_cell must divide 28, got {config.cold.trace_cell}"),
        (config.cold.trace_cell == 7 or config.cold.degradation == "palimpsest_trace",
         f"cold.trace_cell is for the palimpsest_trace degradation, not {config.cold.degradation!r}"),
        (config.diffusion.min_snr_gamma >= 0,
         f"diffusion.min_snr_gamma must be >= 0 (0 = off), got {config.diffusion.min_snr_gamma}"),
        (not config.model.attention or config.model.arch == "unet",
         f"model.attention needs model.arch unet, got {config.model.arch!r}"),
        (len(config.optim.betas) == 2 and all(0 <= b < 1 for b in config.optim.betas),
         f"optim.betas must be two numbers in [0, 1), got {config.optim.betas}"),
        (config.train.steps >= 1, f"train.steps must be >= 1, got {config.train.steps}"),
        (config.train.batch_size >= 1, f"train.batch_size must be >= 1, got {config.train.batch_size}"),
        (config.train.precision in ("fp32", "bf16", "fp16"),
         f"train.precision must be fp32, bf16 or fp16, got {config.train.precision!r}"),
        (0 <= config.train.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {config.train.ema_decay}"),
        (config.train.log_every >= 1, f"train.log_every must be >= 1, got {config.train.log_every}"),
        (config.train.checkpoint_every >= 1, f"train.checkpoint_every must be >= 1, got {config.train.checkpoint_every}"),
        (all(s >= 1 for s in config.train.snapshot_steps),
         f"train.snapshot_steps must be steps >= 1, got {config.train.snapshot_steps}"),
        (config.train.sample_every >= 0, f"train.sample_every must be >= 0, got {config.train.sample_every}"),
        (config.train.keep_checkpoints >= 1, f"train.keep_checkpoints must be >= 1, got {config.train.keep_checkpoints}"),
        (config.data.subset >= 0, f"data.subset must be >= 0 (0 = all), got {config.data.subset}"),
        (config.sample.n_grid >= 1, f"sample.n_grid must be >= 1, got {config.sample.n_grid}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    # Step counts and names (schedules, degradations, architectures, samplers, variances) are checked against the
    # helper and the lists of choices that sit beside the code they name.
    from mnist_diffusion.cold import COLD_SAMPLERS
    from mnist_diffusion.cold.degradations import DEGRADATIONS
    from mnist_diffusion.diffusion import PREDICTIONS, SAMPLERS, VARIANCES
    from mnist_diffusion.diffusion.schedules import SCHEDULES, check_steps
    from mnist_diffusion.models import ARCHITECTURES
    from mnist_diffusion.models.unet import ATTENTION_HEADS

    if config.model.attention and config.model.channels[-1] % ATTENTION_HEADS:
        raise UserError(f"model.attention needs the last of model.channels divisible by {ATTENTION_HEADS} (its "
                        f"heads), got {config.model.channels}")

    check_steps(config.diffusion.T, "diffusion.T")
    check_steps(config.cold.T, "cold.T")
    for value, choices, key in [
        (config.diffusion.schedule, SCHEDULES, "diffusion.schedule"),
        (config.diffusion.prediction, PREDICTIONS, "diffusion.prediction"),
        (config.cold.degradation, DEGRADATIONS, "cold.degradation"),
        (config.model.arch, ARCHITECTURES, "model.arch"),
        (config.sample.sampler, COLD_SAMPLERS if config.method == "cold" else SAMPLERS, "sample.sampler"),
        (config.sample.variance, VARIANCES, "sample.variance"),
    ]:
        if value not in choices:
            raise UserError(f"unknown {key} {value!r}; choose one of {', '.join(choices)}")
    return config


def from_dict(values: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build a validated Config from nested ``values`` plus ``section.key=value`` override strings."""
    config = Config()
    if not isinstance(values, dict):
        raise UserError(f"a config must be a mapping of sections, got {type(values).__name__}")
    for key, value in values.items():
        _apply(config, key, value)
    for text in overrides:
        _apply(config, *_parse_override(text))
    return validate(config)


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                scale: Scale | str = "full") -> Config:
    """Read a YAML config (or start from defaults when ``path`` is None), apply the scale's overrides (e.g. the
    smoke scale's tiny sizes; ``scale`` may be given by name), then ``overrides``."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file {path} not found; the project's configs are in configs/")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        values.setdefault("name", path.stem)
    return from_dict(values, [*resolve_scale(scale).config_overrides, *overrides])
