"""Gaussian diffusion (Ho et al. 2020): the variance schedule, the forward process and objective, and the samplers.

* :mod:`.schedules` -- beta_t, alpha_t and their products (linear and cosine schedules);
* :mod:`.ddpm` -- q(z_t | x), the posterior q(z_{t-1} | z_t, x) and the epsilon objective;
* :mod:`.ancestral`, :mod:`.ddim` -- the reverse-process samplers, one file each;
* :mod:`.common` -- what every sampler shares: the result type, the starting noise, the progress bar.
"""

from mnist_diffusion.diffusion.ancestral import ancestral_sample
from mnist_diffusion.diffusion.common import SampleResult
from mnist_diffusion.diffusion.ddim import ddim_sample, ddim_timesteps

#: The samplers a DDPM checkpoint accepts (``sample --sampler``).
SAMPLERS = ("ancestral", "ddim")

__all__ = ["SAMPLERS", "SampleResult", "ancestral_sample", "ddim_sample", "ddim_timesteps"]
