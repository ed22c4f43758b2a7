"""Cold diffusion (Bansal et al. 2022): degradations D(x, t), the restoration objective and Algorithms 1 and 2.

* :mod:`.degradations` -- the operators, one file each (the palimpsest, this project's own, in its own file);
* :mod:`.restoration` -- the l1 restoration objective for a network R(D(x, t), t) ~ x;
* :mod:`.samplers` -- Algorithm 1 (naive), Algorithm 2 (improved) and one-shot restoration;
* :mod:`.trace_prior` -- the traced palimpsest's data-free priors over traces (:data:`TRACE_PRIORS`);
* :mod:`.mixture` -- the Gaussian mixture and its EM fit, on which the ``"mixture"`` trace prior is built.
"""

from mnist_diffusion.cold.samplers import COLD_SAMPLERS, cold_restore, cold_reverse, cold_sample
from mnist_diffusion.cold.trace_prior import TRACE_PRIORS

__all__ = ["COLD_SAMPLERS", "TRACE_PRIORS", "cold_restore", "cold_reverse", "cold_sample"]
