"""Gaussian noise as a cold-diffusion degradation: the DDPM forward process, written as D(x, t).

D(x, t) = sqrt(alpha_t) x + sqrt(1 - alpha_t) eps with the noise image eps ~ N(0, I) as the state, held fixed
across t. It shows that the framework contains the DDPM: with this operator the restoration network is a
DDPM trained to predict x instead of eps. Endpoint: sqrt(1 - alpha_T) eps, which differs from D(x, T) by
sqrt(alpha_T) x (alpha_T is about 1e-5 for the default cosine schedule).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mnist_diffusion.diffusion.schedules import make_schedule
from mnist_diffusion.cold.degradations.base import Degradation, State


class GaussianNoise(Degradation):
    name = "noise"

    def __init__(self, T: int = 50, schedule: str = "cosine") -> None:
        super().__init__(T)
        self.schedule_name = schedule
        alpha = make_schedule(schedule, T).alpha
        self.sqrt_alpha = alpha.sqrt().float()
        self.sqrt_one_minus_alpha = (1 - alpha).sqrt().float()

    def sample_state(self, n: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> State:
        return {"eps": torch.randn((n, 1, 28, 28), generator=generator, device=device)}

    def degrade(self, x0: Tensor, t: Tensor, state: State) -> Tensor:
        a = self.sqrt_alpha.to(x0.device)[t].view(-1, 1, 1, 1)
        b = self.sqrt_one_minus_alpha.to(x0.device)[t].view(-1, 1, 1, 1)
        return self.keep_clean_at_zero(x0, t, a * x0 + b * state["eps"])

    def endpoint(self, state: State) -> Tensor:
        return self.sqrt_one_minus_alpha[self.T].item() * state["eps"]

    def describe(self):
        return {**super().describe(), "schedule": self.schedule_name}
