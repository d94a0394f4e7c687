"""Verifier throughput: kk_boxed on realistic K&K responses (~1-2 KB, box at the end) and on
adversarial 1 MB responses; then the worst case of every built-in over the adversarial set; then boxed_math
on realistic MATH responses (built from the shipped sample) and its time bound on adversarial LaTeX.

    .venv/bin/python bench/bench_verifiers.py
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.verifiers import get_verifier  # noqa: E402

NAMES = ["Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi"]
MB = 1_000_000


def realistic(rng: random.Random) -> tuple[str, str]:
    people = NAMES[: rng.randint(4, 8)]
    roles = {p: rng.choice(["knight", "knave"]) for p in people}
    answer = ", ".join(f"{p} is a {roles[p]}" for p in people)
    steps = []
    for p in people:
        other = rng.choice(people)
        steps.append(
            f"Assume {p} is a knight. Then {p}'s claim that {other} is a {rng.choice(['knight', 'knave'])} "
            f"holds, so {other} cannot be a knave, because this would contradict the claim of {p}. "
        )
    cot = "Let's think step by step, by considering whether each person is lying and if that leads to contradiction. "
    cot += "".join(steps) + "This leads to a feasible solution. "
    parts = answer.split(", ")
    rng.shuffle(parts)
    guess = ", ".join(parts) if rng.random() < 0.7 else answer.replace("knave", "knight", 1)
    return cot + f"The final answer is: \\boxed{{{guess}}}.", answer


def adversarial() -> dict[str, str]:
    def fill(unit: str) -> str:
        return (unit * (MB // len(unit) + 1))[:MB]

    return {
        "prose, no box": fill("All work and no play makes Jack a dull boy. "),
        "unclosed \\boxed{": fill("\\boxed{"),
        "tiny boxes": fill("\\boxed{} "),
        "open braces": "\\boxed{" + "{" * (MB - 8),
        "brace-free box": "\\boxed{" + fill("A is a knight, ")[8:],
        "digits+commas": fill("1,"),
        "letters": fill("A "),
        "answer words": fill("answer is "),
    }


def rate(fn, items: list[tuple[str, str]], min_s: float = 0.5) -> tuple[float, float]:
    """(verdicts per second, worst seconds for one call) over repeated passes of `items`."""
    n, worst, start = 0, 0.0, time.perf_counter()
    while n == 0 or time.perf_counter() - start < min_s:
        for response, answer in items:
            t = time.perf_counter()
            fn(response, answer)
            worst = max(worst, time.perf_counter() - t)
            n += 1
    return n / (time.perf_counter() - start), worst


def main() -> None:
    kk = get_verifier("kk_boxed")
    rng = random.Random(0)
    items = [realistic(rng) for _ in range(2000)]
    avg = sum(len(r) for r, _ in items) / len(items)
    per_s, worst = rate(kk, items, 1.0)
    acc = sum(kk(r, a).score for r, a in items) / len(items)
    print(f"kk_boxed, realistic (avg {avg:.0f} chars, accuracy {acc:.2f}): {per_s:,.0f} verdicts/s")

    adv = adversarial()
    answer = "A is a knight, B is a knave"
    print("kk_boxed, adversarial 1 MB responses:")
    for name, text in adv.items():
        per_s, worst = rate(kk, [(text, answer)], 0.3)
        print(f"  {name:18} {per_s:8,.0f} verdicts/s   worst {worst * 1000:6.1f} ms")

    print("every built-in, worst single call over the adversarial set (5 MB, capped to max_chars):")
    big = {k: v * 5 for k, v in adv.items()}
    cases = [
        ("kk_boxed", {}, answer),
        ("exact", {}, "x"),
        ("numeric", {}, "1"),
        ("choice", {}, "B"),
        ("regex", {"pattern": r"answer is (\w+)"}, "B"),
        ("countdown", {}, "(3+5)*3 = 24"),
    ]
    for vname, params, ans in cases:
        v = get_verifier(vname, params)
        worst = max((rate(v, [(t, ans)], 0.0)[1], k) for k, t in big.items())
        print(f"  {vname:9} {worst[0] * 1000:6.1f} ms  ({worst[1]})")
    huge, numeric = "7" * MB, get_verifier("numeric")
    for ans in ("3/7", huge):  # exact: no float, no int() (past Python's 4,300-digit limit); tests/test_hardening.py
        ms = rate(numeric, [(huge, ans)], 0.0)[1] * 1000
        print(f"numeric, a {MB:,}-digit integer against {ans[:10]}: {ms:.1f} ms")


# ---------------------------------------------------------------------------------------------- boxed_math
MATH_SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "data" / "math"
MATH_ADVERSARIAL = {
    "tower 10^{10^{10}}": "\\boxed{10^{10^{10}}}",
    "exponent 2^{123456789}": "\\boxed{2^{123456789}}",
    "10k-deep braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "unclosed \\boxed{ x 1 MB": "\\boxed{" * (MB // 7),
    "1 MB sum, no box": "x^2 + " * (MB // 6),
    "1 MB box content": "\\boxed{" + "1+" * (MB // 2 - 8) + "1}",
    "unbalanced fractions": "\\boxed{\\frac{1}{2" * 1000,
    "unicode": "\\boxed{√２ ÷ ½ 𝜋 \u202e}",
    "slow sympy (x+2)^{999}-x": "\\boxed{(x+2)^{999}-x}",
}


def math_items(rng: random.Random) -> list[tuple[str, str, str]]:
    """(kind, response, answer): a CoT of ~1 KB ending in a box, in the proportions a policy produces."""
    import json

    rows = [json.loads(line) for f in ("train.jsonl", "test.jsonl") for line in (MATH_SAMPLE / f).open()]
    forms = {
        "\\frac{1}{2}": "0.5",
        "\\frac{1}{3}": "\\dfrac{1}{3}",
        "5\\sqrt{2}": "\\sqrt{50}",
        "(4,\\infty)": "(4, \\infty)",
        "14\\pi": "14 \\pi",
        "\\frac{11}{12}": "\\frac{22}{24}",
    }
    items = []
    for _ in range(400):
        r = rng.choice(rows)
        cot = r["solution"].replace("\\boxed", "") + " Let me double-check the computation once more. " * 8
        kind = rng.choices(["same", "equivalent", "wrong", "no box"], [0.45, 0.1, 0.35, 0.1])[0]
        if kind == "same":
            box = r["answer"]
        elif kind == "equivalent":
            box = forms.get(r["answer"], r["answer"] + " ")
        elif kind == "wrong":
            box = rng.choice([x["answer"] for x in rows if x["answer"] != r["answer"]])
        items.append(
            (
                kind,
                cot + ("So the answer is 7." if kind == "no box" else f"The answer is $\\boxed{{{box}}}$."),
                r["answer"],
            )
        )
    return items


def bench_boxed_math() -> None:
    from harness.verifiers.boxed_math import warm

    t = time.perf_counter()
    warm()
    print(f"boxed_math: worker (and spare) start-up {time.perf_counter() - t:.2f} s")
    v = get_verifier("boxed_math")
    items = math_items(random.Random(0))
    for kind in ("same", "equivalent", "wrong", "no box", None):
        sel = [(r, a) for k, r, a in items if kind in (None, k)]
        per_s, worst = rate(v, sel, 1.0)
        label = kind or "mix (45/10/35/10)"
        print(f"  realistic {label:18} {per_s:8,.0f} verdicts/s   worst {worst * 1000:7.1f} ms   (n={len(sel)})")
    for timeout in (1.0, 3.0):
        v = get_verifier("boxed_math", {"timeout_s": timeout})
        print(f"  adversarial, timeout_s={timeout} (warm worker before each; then once more right after a timeout):")
        for name, text in MATH_ADVERSARIAL.items():
            warm()
            t = time.perf_counter()
            out = v(text, "(x+1)^{999}")
            first = time.perf_counter() - t
            t = time.perf_counter()
            v(text, "(x+1)^{999}")
            again = time.perf_counter() - t
            print(f"    {name:26} {out.reason:12} {first:6.2f} s   right after: {again:6.2f} s")


if __name__ == "__main__":
    main()
    bench_boxed_math()
