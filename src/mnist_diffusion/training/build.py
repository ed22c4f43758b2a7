"""Turning a Config into objects: the device, the network and the process (DDPM or cold diffusion)."""

from __future__ import annotations

import torch
from torch import nn

from mnist_diffusion.cold.restoration import ColdDiffusion
from mnist_diffusion.training.config import Config
from mnist_diffusion.diffusion.ddpm import GaussianDiffusion
from mnist_diffusion.cold.degradations import make_degradation
from mnist_diffusion.errors import UserError
from mnist_diffusion.models import build_model
from mnist_diffusion.diffusion.schedules import make_schedule


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device that is not available is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available here; use --set train.device=auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"device {name!r} requested but MPS is not available here; use --set train.device=auto")
    return device


def build_network(config: Config) -> nn.Module:
    """The network named by ``config.model`` (freshly initialised from the current torch RNG)."""
    m = config.model
    return build_model(m.arch, m.channels, blocks_per_level=m.blocks_per_level, dropout=m.dropout,
                       attention=m.attention)


def build_diffusion(config: Config, device: torch.device | str = "cpu") -> GaussianDiffusion:
    """The DDPM forward process described by ``config.diffusion``, with its tensors on ``device``."""
    d = config.diffusion
    schedule = make_schedule(d.schedule, d.T, beta_1=d.beta_1, beta_T=d.beta_T, cosine_s=d.cosine_s)
    return GaussianDiffusion(schedule, device, prediction=d.prediction, min_snr_gamma=d.min_snr_gamma)


Process = GaussianDiffusion | ColdDiffusion


def build_process(config: Config, device: torch.device | str = "cpu") -> Process:
    """The training/sampling process of ``config.method``: the DDPM, or cold diffusion with its degradation."""
    if config.method == "cold":
        cold = config.cold
        return ColdDiffusion(make_degradation(cold.degradation, cold.T, cold.noise, cold.trace_cell), device)
    return build_diffusion(config, device)
