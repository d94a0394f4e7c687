"""Intervals and estimators used by evaluation and leaderboards."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Iterable, Mapping, Optional, Sequence

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


# --- per-problem outcomes and paired comparisons (leaderboards) ---------------------------------------------------
# Every seed of a row answers the same test problems, so seeds are not independent draws of problems: outcomes are
# averaged per problem (over samples, then seeds) and intervals and tests run over distinct problems.


def problem_outcomes(rows: Iterable[dict]) -> dict[str, float]:
    """Per problem id, the mean verifier score over its samples (rows of a run's samples.jsonl)."""
    out = {}
    for r in rows:
        scores = r.get("scores")
        if r.get("id") is not None and scores:
            out[str(r["id"])] = sum(scores) / len(scores)
    return out


def seed_average(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per problem id, the mean outcome over the seeds that answered it."""
    acc: dict[str, list[float]] = {}
    for outcomes in per_seed:
        for pid, v in outcomes.items():
            acc.setdefault(pid, []).append(v)
    return {pid: sum(v) / len(v) for pid, v in sorted(acc.items())}


def is_binary(values: Iterable[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def interval_name(values: Sequence[float]) -> str:
    """Which interval `mean_interval` gives for these per-problem outcomes."""
    return "Wilson" if is_binary(values) else "normal"


def two_proportion_z(p1: float, n1: int, p2: float, n2: int) -> float:
    """Two-sided p-value of H0: equal proportions (pooled standard error); unpaired."""
    if n1 == 0 or n2 == 0:
        return 1.0
    p = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    return math.erfc(abs(p1 - p2) / se / math.sqrt(2))


def _grid(values: Sequence[float], max_denominator: int) -> Optional[int]:
    """The smallest m with every value a multiple of 1/m (outcomes averaged over k samples and s seeds are
    multiples of 1/(k*s)), or None when there is none up to max_denominator."""
    m = 1
    for v in values:
        f = Fraction(v).limit_denominator(max_denominator)
        if abs(float(f) - v) > 1e-9:
            return None
        m = m * f.denominator // math.gcd(m, f.denominator)
        if m > max_denominator:
            return None
    return m


def sign_flip_test(
    diffs: Sequence[float], max_denominator: int = 720, max_work: int = 20_000_000
) -> tuple[float, bool]:
    """Two-sided p-value of the paired sign-flip (permutation) test: under H0 each per-problem difference is as
    likely to have either sign. Exact (the distribution of the signed sum, by dynamic programming over integer
    multiples of the outcomes' grid) when the differences lie on a grid; else a normal approximation of the same
    distribution (variance = sum of squared differences). Returns (p, exact). On 0/1 outcomes this is McNemar's
    exact test: the differences are +-1 on the discordant pairs and 0 elsewhere."""
    d = [x for x in diffs if abs(x) > 1e-12]
    if not d:
        return 1.0, True
    m = _grid(d, max_denominator)
    if m is not None:
        v = [round(abs(x) * m) for x in d]
        total = sum(v)
        if len(v) * total <= max_work:
            observed = abs(sum(vi if x > 0 else -vi for vi, x in zip(v, d)))
            dist = [1.0]  # dist[t]: probability that the positively signed terms sum to t
            for vi in v:
                pad = [0.0] * vi
                dist = [0.5 * (a + b) for a, b in zip(dist + pad, pad + dist)]
            return min(1.0, sum(pr for t, pr in enumerate(dist) if abs(2 * t - total) >= observed)), True
    z = abs(sum(d)) / math.sqrt(sum(x * x for x in d))
    return math.erfc(z / math.sqrt(2)), False


def paired_test(a: Sequence[float], b: Sequence[float], z: float = Z95) -> dict:
    """Compare two methods on the same problems (a[i], b[i]: outcomes on problem i): mean difference a - b with a
    normal 95% interval over problems, and the sign-flip test's two-sided p-value, named."""
    if len(a) != len(b) or not a:
        raise ValueError("paired_test needs two equally long, non-empty lists of per-problem outcomes")
    diffs = [x - y for x, y in zip(a, b)]
    p, exact = sign_flip_test(diffs)
    if is_binary(a) and is_binary(b):
        name = "McNemar exact"
    else:
        name = "paired sign-flip permutation" + ("" if exact else " (normal approx.)")
    lo, hi = normal_interval(diffs, z)
    return {"test": name, "n": len(diffs), "diff": sum(diffs) / len(diffs), "ci95": [lo, hi], "p": p}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down; monotone; family-wise error at alpha when adjusted p < alpha)."""
    m = len(pvalues)
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda j: pvalues[j])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
