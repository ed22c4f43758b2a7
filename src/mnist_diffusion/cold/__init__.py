"""Cold diffusion (Bansal et al. 2022): degradations D(x, t), the restoration objective and Algorithms 1 and 2.

* :mod:`.degradations` -- the operators, one file each (the palimpsest, this project's own, in its own file);
* :mod:`.restoration` -- the l1 restoration objective for a network R(D(x, t), t) ~ x;
* :mod:`.samplers` -- Algorithm 1 (naive), Algorithm 2 (improved) and one-shot restoration;
* :mod:`.mixture` -- the Gaussian mixture fitted to training traces (the traced palimpsest's data-free prior).
"""

from mnist_diffusion.cold.samplers import COLD_SAMPLERS, cold_restore, cold_reverse, cold_sample

__all__ = ["COLD_SAMPLERS", "cold_restore", "cold_reverse", "cold_sample"]
