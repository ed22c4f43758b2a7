"""Exponential moving average of network weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the averaged weights."""
    return copy.deepcopy(model).requires_grad_(False)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """ema <- d * ema + (1 - d) * weights, with d = min(decay, (1 + step) / (10 + step)).

    The warm-up of d keeps the average from being dominated by the random initial weights in short runs.
    With decay = 0 the EMA is an exact copy of the weights. Buffers are copied.
    """
    d = min(decay, (1 + step) / (10 + step))
    ema_params = list(ema.parameters())
    params = [p.detach() for p in model.parameters()]
    if d == 0:
        torch._foreach_copy_(ema_params, params)
    else:
        torch._foreach_lerp_(ema_params, params, 1 - d)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)
