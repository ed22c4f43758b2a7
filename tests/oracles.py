"""Noise predictors known in closed form, for testing the samplers against exact answers.

For data x ~ N(mu, s^2 I), z_t = sqrt(alpha_t) x + sqrt(1 - alpha_t) eps is Gaussian and
E[eps | z_t] = sqrt(1 - alpha_t) (z_t - sqrt(alpha_t) mu) / (alpha_t s^2 + 1 - alpha_t):
the exact minimiser of the DDPM objective. s = 0 is a data set of one image.
"""

import torch
from torch import nn

from mnist_diffusion.diffusion.ddpm import GaussianDiffusion


class GaussianDataOracle(nn.Module):
    def __init__(self, diffusion: GaussianDiffusion, mu: torch.Tensor, s: float) -> None:
        super().__init__()
        self.diffusion, self.mu, self.s2 = diffusion, mu, s**2

    def forward(self, z: torch.Tensor, t_unit: torch.Tensor) -> torch.Tensor:
        t = torch.round(t_unit * self.diffusion.T).long()
        alpha = self.diffusion.alpha[t].view(-1, 1, 1, 1)
        return (1 - alpha).sqrt() * (z - alpha.sqrt() * self.mu) / (alpha * self.s2 + 1 - alpha)
