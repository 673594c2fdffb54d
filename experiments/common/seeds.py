"""Paired comparisons over training seeds: one effect per seed (arm minus its control, same seed), the mean over
seeds with a Student-t interval, and a verdict that calls a difference only when that interval excludes zero."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from scipy import stats


@dataclass
class SeedEffect:
    effects: list[float]  # one per seed
    ses: list[float]  # each seed's own standard error (sampling noise of that seed's evaluation)
    mean: float
    lo: float  # 95% Student-t interval of the mean over seeds (df = seeds - 1)
    hi: float
    same_sign: bool  # every seed's effect has the mean's sign

    def verdict(self, lower_is: str = "better", higher_is: str = "worse") -> str:
        if len(self.effects) < 2:
            return "one seed: no verdict"
        if self.hi < 0:
            return lower_is
        if self.lo > 0:
            return higher_is
        return "within noise" + (" (same sign on every seed)" if self.same_sign and self.mean != 0 else "")

    def as_dict(self) -> dict:
        return asdict(self)


def seed_effect(effects: list[float], ses: list[float] | None = None) -> SeedEffect:
    """effects: one paired difference per seed -> SeedEffect with the t interval of their mean."""
    n = len(effects)
    if n == 0:
        raise ValueError("seed_effect: no seeds")
    mean = sum(effects) / n
    if n > 1:
        sd = math.sqrt(sum((e - mean) ** 2 for e in effects) / (n - 1))
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    else:
        half = float("inf")
    same = all((e > 0) == (mean > 0) and e != 0 for e in effects)
    return SeedEffect(list(effects), list(ses or [float("nan")] * n), mean, mean - half, mean + half, same)
