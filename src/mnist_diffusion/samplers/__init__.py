"""Reverse-process samplers, one file each: ancestral (DDPM), DDIM, and the cold-diffusion algorithms.

All return a :class:`SampleResult`: final images in [-1, 1] and, if asked, the intermediate steps.
"""

from .ancestral import ancestral_sample
from .cold import COLD_SAMPLERS, cold_restore, cold_reverse, cold_sample
from .common import SampleResult
from .ddim import ddim_sample, ddim_timesteps

SAMPLERS = ("ancestral", "ddim")
ALL_SAMPLERS = SAMPLERS + COLD_SAMPLERS

__all__ = ["ALL_SAMPLERS", "COLD_SAMPLERS", "SAMPLERS", "SampleResult", "ancestral_sample", "cold_restore",
           "cold_reverse", "cold_sample", "ddim_sample", "ddim_timesteps"]
