"""DDPM and cold diffusion on MNIST.

Pixel convention (the whole project): images enter networks as float tensors in [-1, 1]
with shape [B, 1, 28, 28]; images stored on disk (npz samples, figures) are uint8 in
[0, 255] with 0 = black background, exactly like MNIST. :mod:`mnist_diffusion.data` holds
the two conversions, :func:`~mnist_diffusion.data.to_model_range` and
:func:`~mnist_diffusion.data.to_uint8`.
"""

__version__ = "0.1.0"
