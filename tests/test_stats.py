"""Statistics of leaderboards: per-problem outcomes, the paired sign-flip / McNemar test, Holm's correction."""

from math import comb

import pytest

from harness.stats import (
    holm,
    interval_name,
    mean_interval,
    paired_test,
    problem_outcomes,
    seed_average,
    sign_flip_test,
    two_proportion_z,
    wilson,
)


def test_problem_outcomes_average_samples_then_seeds():
    rows = [{"id": "a", "scores": [1.0, 0.0]}, {"id": "b", "scores": [1.0]}, {"id": "c", "scores": []}, {"scores": [1]}]
    assert problem_outcomes(rows) == {"a": 0.5, "b": 1.0}
    assert seed_average([{"a": 0.5, "b": 1.0}, {"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}]) == {
        "a": pytest.approx(0.5),
        "b": pytest.approx(2 / 3),
    }


def test_binary_outcomes_get_wilson_and_fractional_ones_a_normal_interval():
    assert interval_name([0.0, 1.0, 1.0]) == "Wilson" and mean_interval([0.0, 1.0, 1.0]) == wilson(2, 3)
    assert interval_name([0.5, 1.0]) == "normal"


def test_sign_flip_on_binary_outcomes_is_mcnemar_exact():
    # 10 discordant pairs for a, 2 for b, 88 ties: McNemar exact p = 2 * P(Binomial(12, 1/2) <= 2).
    a = [1.0] * 10 + [0.0] * 2 + [1.0] * 40 + [0.0] * 48
    b = [0.0] * 10 + [1.0] * 2 + [1.0] * 40 + [0.0] * 48
    t = paired_test(a, b)
    assert t["test"] == "McNemar exact" and t["n"] == 100 and t["diff"] == pytest.approx(0.08)
    assert t["p"] == pytest.approx(2 * sum(comb(12, k) for k in range(3)) / 2**12)
    assert sign_flip_test([0.0, 0.0]) == (1.0, True)


def test_sign_flip_on_averaged_outcomes_is_exact_on_their_grid():
    # Differences of thirds (3 seeds): the exact distribution enumerates all 2^4 sign patterns.
    diffs = [1 / 3, 2 / 3, 1.0, -1 / 3]
    sums = [
        sum(s * d for s, d in zip(signs, diffs))
        for signs in [[(m >> i & 1) * 2 - 1 for i in range(4)] for m in range(16)]
    ]
    expect = sum(abs(x) >= sum(diffs) - 1e-9 for x in sums) / 16
    assert sign_flip_test(diffs) == (pytest.approx(expect), True)
    t = paired_test([1 / 3, 2 / 3, 1.0, 0.0], [0.0, 0.0, 0.0, 1 / 3])
    assert t["test"] == "paired sign-flip permutation" and t["p"] == pytest.approx(expect)
    p, exact = sign_flip_test([0.1234567, -0.2345678, 0.3456789])  # no grid: the normal approximation
    assert not exact and 0 < p <= 1


def test_paired_test_finds_a_difference_the_unpaired_test_misses():
    # a solves every problem b solves, and 10 more: all 10 discordant pairs favour a.
    a = [1.0] * 60 + [0.0] * 40
    b = [1.0] * 50 + [0.0] * 50
    paired = paired_test(a, b)["p"]
    unpaired = two_proportion_z(0.6, 100, 0.5, 100)
    assert paired == pytest.approx(2 / 2**10) and paired < 0.05 < unpaired


def test_holm_is_step_down_and_monotone():
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([]) == [] and holm([0.9, 0.9]) == [1.0, 1.0]
