"""Symmetric eigendecompositions that behave on a busy 2-core CPU.

torch's (and numpy's) multi-threaded ``eigh`` has been measured here taking 7 to 12 s for a 784 x 784
matrix that a single thread decomposes in 0.2 s (threads spin-waiting on a machine whose cores are
busy). The evaluation's matrices are small (128 to 2048 wide), so one thread is never the bottleneck.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(1)``, restoring the previous count afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def symmetric_eigh(matrix: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix [D, D], single-threaded."""
    with single_thread():
        return torch.linalg.eigh((matrix + matrix.T) / 2)


def symmetric_eigvalsh(matrix: Tensor) -> Tensor:
    """Eigenvalues (ascending) of a symmetric matrix [D, D], single-threaded."""
    with single_thread():
        return torch.linalg.eigvalsh((matrix + matrix.T) / 2)
