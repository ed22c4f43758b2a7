"""Reverse-process samplers, one file each: ancestral (DDPM) and DDIM.

Both return a :class:`SampleResult`: final images in [-1, 1] and, if asked, the intermediate z_t.
"""

from .ancestral import ancestral_sample
from .common import SampleResult
from .ddim import ddim_sample, ddim_timesteps

SAMPLERS = ("ancestral", "ddim")

__all__ = ["SAMPLERS", "SampleResult", "ancestral_sample", "ddim_sample", "ddim_timesteps"]
