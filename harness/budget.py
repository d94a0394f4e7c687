"""Sample budgets: the number of distinct training examples (demonstrations for sft/redistill, prompts for rl).

Written as a plain count or with a k / m suffix: 100, 500, 1k, 2.5k, 10k, 1m.
"""

from __future__ import annotations

import re

from harness.errors import HarnessError

_PATTERN = re.compile(r"(\d+(?:\.\d+)?)([km]?)")
_SCALE = {"": 1, "k": 1_000, "m": 1_000_000}


def parse_budget(text: str | int) -> int:
    s = str(text).strip().lower().replace("_", "")
    m = _PATTERN.fullmatch(s)
    hint = "write a count like 100, 500, 1k, 2.5k, 10k or 1m"
    if not m:
        raise HarnessError(f"invalid budget '{text}': {hint}")
    value = float(m.group(1)) * _SCALE[m.group(2)]
    if value != int(value) or "." in m.group(1) and not m.group(2):
        raise HarnessError(f"invalid budget '{text}': a budget counts whole examples; {hint}")
    if value < 1:
        raise HarnessError(f"invalid budget '{text}': it must be at least 1; {hint}")
    return int(value)


def format_budget(n: int) -> str:
    for suffix, scale in (("m", 1_000_000), ("k", 1_000)):
        if n >= scale and (n * 10) % scale == 0:
            v = n / scale
            return f"{v:g}{suffix}"
    return str(n)
