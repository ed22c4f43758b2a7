"""Shuffled mini-batches drawn straight from a uint8 tensor held in memory.

MNIST is 47 MB as uint8, so the whole split lives in one tensor; a batch is an index into it and a
conversion to [-1, 1]. This costs microseconds per batch, next to milliseconds for the network, and its
state (permutation, position, generator) is tiny, which makes bitwise-exact resumption easy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mnist_diffusion.data import to_model_range


class InMemoryBatches:
    """Endless epochs of shuffled batches of ``batch_size`` images; every image once per epoch.

    images: uint8 [N, 28, 28]. ``next()`` returns float32 [batch_size, 1, 28, 28] in [-1, 1] on ``device``.
    A batch that would cross an epoch boundary starts a new epoch instead (the tail of the permutation,
    fewer than batch_size images, is skipped that epoch and lands in another thanks to reshuffling).
    """

    def __init__(self, images: Tensor, batch_size: int, seed: int, device: torch.device | str = "cpu") -> None:
        if images.dtype != torch.uint8 or images.ndim != 3:
            raise ValueError(f"expected uint8 images [N, H, W], got {images.dtype} {tuple(images.shape)}")
        if batch_size > images.shape[0]:
            raise ValueError(f"batch size {batch_size} exceeds the {images.shape[0]} images available")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.position = 0
        self.order = torch.randperm(images.shape[0], generator=self.generator)

    def next(self) -> Tensor:
        if self.position + self.batch_size > self.order.numel():
            self.epoch += 1
            self.position = 0
            self.order = torch.randperm(self.order.numel(), generator=self.generator)
        index = self.order[self.position : self.position + self.batch_size].to(self.device)
        self.position += self.batch_size
        return to_model_range(self.images[index])

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "epoch": self.epoch, "position": self.position, "order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
        self.order = state["order"].clone()
