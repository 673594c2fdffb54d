"""Noise schedules as objects returning (alpha_t, alpha'_t).

alpha_t is the probability that a token is still clean at time t in [0, 1].
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError


class LogLinear:
    """alpha_t = 1 - (1 - eps) t, so the NELBO weight -alpha'/(1 - alpha) is exactly 1/t."""

    name = "loglinear"

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = 1.0 - (1.0 - self.eps) * t
        return alpha, torch.full_like(t, -(1.0 - self.eps))

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """NELBO weight -alpha'_t / (1 - alpha_t)."""
        alpha, dalpha = self(t)
        return -dalpha / (1.0 - alpha)


class Cosine:
    """alpha_t = (1 - eps) cos(pi t / 2) + eps ... a common alternative (not the default)."""

    name = "cosine"

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def __call__(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        alpha = (1.0 - self.eps) * torch.cos(0.5 * math.pi * t) + self.eps
        dalpha = -(1.0 - self.eps) * 0.5 * math.pi * torch.sin(0.5 * math.pi * t)
        return alpha, dalpha

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        alpha, dalpha = self(t)
        return -dalpha / (1.0 - alpha)


SCHEDULES = {"loglinear": LogLinear, "cosine": Cosine}


def build_schedule(name: str, eps: float = 1e-3):
    if name not in SCHEDULES:
        raise UserError(f"unknown noise schedule '{name}': choose one of {sorted(SCHEDULES)}")
    return SCHEDULES[name](eps)
