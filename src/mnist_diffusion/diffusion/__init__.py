"""Gaussian diffusion (Ho et al. 2020): the variance schedule, the forward process and objective, and the samplers.

* :mod:`.schedules` -- beta_t, alpha_t and their products (linear and cosine schedules), the posterior variance;
* :mod:`.ddpm` -- q(z_t | x), the epsilon objective, and eps_hat and x_hat at a step as the samplers use them;
* :mod:`.ancestral`, :mod:`.ddim`, :mod:`.dpm_solver` -- the reverse-process samplers, one file each;
* :mod:`.common` -- what every sampler shares: the result type, the starting noise, the progress bar.
"""

from mnist_diffusion.diffusion.ancestral import VARIANCES, ancestral_sample
from mnist_diffusion.diffusion.ddpm import PREDICTIONS
from mnist_diffusion.diffusion.common import SampleResult
from mnist_diffusion.diffusion.ddim import ddim_sample, ddim_timesteps
from mnist_diffusion.diffusion.dpm_solver import dpm_solver_sample

#: DPM-Solver++ under its sampler names: ``dpmpp2m`` (deterministic 2M), ``dpmpp2msde`` (SDE-DPM-Solver++(2M)).
DPM_SOLVERS = {"dpmpp2m": "2m", "dpmpp2msde": "sde-2m"}
#: The samplers a DDPM checkpoint accepts (``sample --sampler``).
SAMPLERS = ("ancestral", "ddim", *DPM_SOLVERS)
#: The samplers that visit a sub-sequence of ``steps`` steps (one network call each); ancestral visits all T.
STEPPED_SAMPLERS = ("ddim", *DPM_SOLVERS)

__all__ = ["DPM_SOLVERS", "PREDICTIONS", "SAMPLERS", "STEPPED_SAMPLERS", "VARIANCES", "SampleResult", "ancestral_sample", "ddim_sample", "ddim_timesteps",
           "dpm_solver_sample"]
