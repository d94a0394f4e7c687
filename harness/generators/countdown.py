"""Countdown puzzles (the TinyZero / "Countdown-Tasks-3to4" game): given `count` numbers and a target, write an
arithmetic expression with + - * / and parentheses that uses EACH given number EXACTLY ONCE and equals the target.

Every puzzle is solvable by construction: the numbers are drawn, then combined two at a time with random
operations until one number is left, and that number is the target. Intermediate results are kept positive
integers (exact division, no zero or negative values), the classic Countdown rule; the `countdown` verifier is
more forgiving and accepts any expression whose exact rational value is the target.

The reference traces are one seeded depth-first search over "combine two numbers" steps, pruned by an exact
solver: each tried step that leaves an unsolvable set of numbers is reported as a dead end, and the search
descends into the first step that keeps the puzzle solvable. `short` narrates it in sentences, `compact` in a few
words per step (for the tiny CPU model). Both end with "The final answer is: \\boxed{EXPR}." The answer is
"EXPR = TARGET" (the search's solution): the `countdown` verifier reads the given numbers and the target from it.
Standard library only.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache

from harness.errors import HarnessError
from harness.generators.rng import seeded_rng

ALL_OPS = "+-*/"
MAX_COUNT = 6  # the exact solver explores every pairing; 6 numbers is still milliseconds with the memo
MAX_ATTEMPTS = 100_000  # bounds the rejection loop (target out of range, wrong split bucket)
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_WORDS = {"+": "addition (+)", "-": "subtraction (-)", "*": "multiplication (*)", "/": "division (/)"}


def _combine(a: int, b: int, ops: str) -> list[tuple[int, str, int, int]]:
    """Every allowed step on a pair, written larger-first: (x, op, y, x op y) with a positive integer result."""
    hi, lo = max(a, b), min(a, b)
    out = []
    if "+" in ops:
        out.append((hi, "+", lo, hi + lo))
    if "-" in ops and hi > lo:
        out.append((hi, "-", lo, hi - lo))
    if "*" in ops:
        out.append((hi, "*", lo, hi * lo))
    if "/" in ops and hi % lo == 0:
        out.append((hi, "/", lo, hi // lo))
    return out


def _moves(nums: tuple[int, ...], ops: str) -> list[tuple[int, int, tuple]]:
    """(i, j, step) for every pair i < j and every allowed step on it."""
    return [
        (i, j, step)
        for i in range(len(nums))
        for j in range(i + 1, len(nums))
        for step in _combine(nums[i], nums[j], ops)
    ]


def _rest(nums: tuple[int, ...], i: int, j: int, value: int) -> tuple[int, ...]:
    return tuple(n for k, n in enumerate(nums) if k not in (i, j)) + (value,)


@lru_cache(maxsize=200_000)
def _solvable_sorted(nums: tuple[int, ...], target: int, ops: str) -> bool:
    if len(nums) == 1:
        return nums[0] == target
    return any(
        _solvable_sorted(tuple(sorted(_rest(nums, i, j, step[3]))), target, ops) for i, j, step in _moves(nums, ops)
    )


def solvable(nums: list[int] | tuple[int, ...], target: int, ops: str = ALL_OPS) -> bool:
    """Whether the numbers reach the target with positive-integer intermediate results."""
    return _solvable_sorted(tuple(sorted(nums)), target, ops)


def _join(left: tuple[str, int], op: str, right: tuple[str, int]) -> tuple[str, int]:
    """Render `left op right` with the fewest parentheses; (text, precedence), 3 = a plain number."""
    p = _PREC[op]
    lt = left[0] if left[1] >= p else f"({left[0]})"
    # a - (b + c) and a / (b * c) need them; a + (b - c) and a * (b / c) do not (exact arithmetic).
    rt = right[0] if right[1] > p or (right[1] == p and op in "+*") else f"({right[0]})"
    return f"{lt}{op}{rt}", p


def _search(numbers: list[int], target: int, ops: str, rng: random.Random) -> tuple[list[tuple], str]:
    """The trace's search: per level, shuffled candidate steps; dead ends until the first solvable one."""
    nums, exprs = tuple(numbers), [(str(n), 3) for n in numbers]
    levels = []
    while len(nums) > 1:
        moves = _moves(nums, ops)
        rng.shuffle(moves)
        dead = []
        for i, j, (x, op, y, value) in moves:
            left = _rest(nums, i, j, value)
            if solvable(left, target, ops):
                break
            dead.append(((x, op, y, value), left))
        else:  # unreachable: the caller checked that the numbers are solvable
            raise RuntimeError(f"countdown search found no step for {nums} -> {target}")
        # x is the larger of the pair; keep its expression on the left
        a, b = (i, j) if nums[i] == x else (j, i)
        expr = _join(exprs[a], op, exprs[b])
        exprs = [e for k, e in enumerate(exprs) if k not in (i, j)] + [expr]
        levels.append((dead, (x, op, y, value), left))
        nums = left
    return levels, exprs[0][0]


def _nums(values: tuple[int, ...]) -> str:
    return ", ".join(map(str, values))


def _short_trace(numbers: list[int], target: int, levels: list, solution: str) -> str:
    steps = [
        (
            f"Numbers: {_nums(tuple(numbers))}. Target: {target}. "
            "I combine two numbers at a time, keeping every result a positive whole number, until one is left, "
            "and back off from dead ends."
        )
    ]
    for dead, (x, op, y, value), left in levels:
        for (dx, dop, dy, dv), dleft in dead:
            tail = f"{dv} is not {target}" if len(dleft) == 1 else f"{_nums(dleft)} cannot make {target}"
            steps.append(f"Try {dx}{dop}{dy}={dv}: {tail}.")
        steps.append(f"Try {x}{op}{y}={value}." + (f" Left: {_nums(left)}." if len(left) > 1 else ""))
    steps.append(f"That reaches {target}: {solution} = {target}.")
    steps.append(f"The final answer is: \\boxed{{{solution}}}.")
    return " ".join(steps)


def _compact_trace(levels: list, solution: str) -> str:
    steps = []
    for dead, (x, op, y, value), left in levels:
        steps += [f"{dx}{dop}{dy}={dv} no." for (dx, dop, dy, dv), _ in dead]
        steps.append(f"{x}{op}{y}={value}" + (f" [{' '.join(map(str, left))}]." if len(left) > 1 else " yes."))
    steps.append(f"The final answer is: \\boxed{{{solution}}}.")
    return " ".join(steps)


def puzzle_key(numbers: list[int], target: int) -> str:
    """Identity of a puzzle: the multiset of numbers and the target (order and solution do not matter)."""
    return hashlib.sha256(f"{sorted(numbers)}|{target}".encode()).hexdigest()


def _pair(name: str, value, lo_min: int, hi_max: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        lo, hi = (int(x) for x in pair)
    except (TypeError, ValueError):
        lo, hi = 0, -1
    if not lo_min <= lo <= hi <= hi_max:
        raise HarnessError(
            f"countdown generator: '{name}' must be an integer or [min, max] with "
            f"{lo_min} <= min <= max <= {hi_max}, got {value!r}; fix it in the task's params"
        )
    return lo, hi


def generate(
    *,
    seed: int,
    split: str,
    index: int,
    partition: tuple[int, int] = (0, 1),
    count: int | list[int] | tuple[int, int] = (3, 4),
    max_value: int = 100,
    targets: int | list[int] | tuple[int, int] = (1, 100),
    ops: str = ALL_OPS,
) -> dict:
    """count: how many numbers (level; balanced over consecutive indices); numbers are drawn from 1..max_value;
    the target lies in `targets` [min, max] (one integer: always that target, e.g. count=4, max_value=13,
    targets=24 is the 24 game); ops: the allowed operations, a subset of "+-*/"."""
    lo, hi = _pair("count", count, 2, MAX_COUNT)
    if not isinstance(max_value, int) or isinstance(max_value, bool):
        raise HarnessError(f"countdown generator: 'max_value' must be an integer, got {max_value!r}")
    _pair("max_value", max_value, 1, 10_000)
    t_lo, t_hi = _pair("targets", targets, 1, 10**9)
    if not isinstance(ops, str) or not ops or not set(ops) <= set(ALL_OPS) or len(set(ops)) != len(ops):
        raise HarnessError(f"countdown generator: 'ops' must be distinct characters from '+-*/', got {ops!r}")
    ops = "".join(o for o in ALL_OPS if o in ops)  # canonical order, so the solver memo is shared
    part, parts = (int(x) for x in partition)
    if not 0 <= part < parts:
        raise ValueError(f"partition must be (k, K) with 0 <= k < K, got {partition}")
    n = lo + index % (hi - lo + 1)
    for attempt in range(MAX_ATTEMPTS):
        rng = seeded_rng("countdown", seed, split, index, attempt)
        numbers = [rng.randint(1, max_value) for _ in range(n)]
        pool = list(numbers)
        while len(pool) > 1:  # a random solution: combine two random numbers with a random allowed step
            i, j = rng.sample(range(len(pool)), 2)
            steps = _combine(pool[i], pool[j], ops)
            if not steps:
                break
            value = rng.choice(steps)[3]
            pool = [v for k, v in enumerate(pool) if k not in (i, j)] + [value]
        if len(pool) > 1 or not t_lo <= pool[0] <= t_hi:
            continue
        target = pool[0]
        key = puzzle_key(numbers, target)
        if int(key, 16) % parts != part:  # disjoint splits by construction
            continue
        levels, solution = _search(numbers, target, ops, rng)
        words = ", ".join(_WORDS[o] for o in ops)
        question = (
            f"Using the numbers {_nums(tuple(numbers))}, write an arithmetic expression that equals "
            f"{target}. Use each number exactly once; you may use {words} and parentheses."
        )
        return {
            "question": question,
            "answer": f"{solution} = {target}",
            "level": n,
            "traces": {
                "short": _short_trace(numbers, target, levels, solution),
                "compact": _compact_trace(levels, solution),
            },
            "metadata": {
                "numbers": numbers,
                "target": target,
                "solution": solution,
                "count": n,
                "ops": ops,
                "key": key,
            },
        }
    raise RuntimeError(
        f"no countdown puzzle with {n} numbers in 1..{max_value} and a target in [{t_lo}, {t_hi}] "
        f"after {MAX_ATTEMPTS} attempts (partition={partition}); widen 'targets' or 'max_value'"
    )
