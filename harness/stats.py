"""Intervals and estimators used by evaluation and leaderboards."""

from __future__ import annotations

import math
from typing import Sequence

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved at 0 and 1, unlike the normal one)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


def mean_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Normal interval of a mean of per-problem scores in [0, 1]; binary scores use Wilson instead."""
    n = len(values)
    if n == 0:
        return (0.0, 1.0)
    if all(v in (0.0, 1.0) for v in values):
        return wilson(sum(values), n, z)
    lo, hi = normal_interval(values, z)
    return (max(0.0, lo), min(1.0, hi))


def normal_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Unclamped normal interval of a mean (for quantities of any sign); a single value gives a zero-width one."""
    n = len(values)
    if n == 0:
        raise ValueError("normal_interval needs at least one value")
    m = sum(values) / n
    var = sum((v - m) ** 2 for v in values) / max(1, n - 1)
    half = z * math.sqrt(var / n)
    return (m - half, m + half)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. 2021: 1 - C(n-c, k) / C(n, k), from n samples with c correct."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples (got {n})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod
