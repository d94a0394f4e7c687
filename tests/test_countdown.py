"""Countdown: the generator (solvable, deterministic, disjoint splits, honest traces), the verifier's tricky cases,
the task file and its recipes, and a few-step SFT run on the tiny model."""

from __future__ import annotations

import ast
import itertools
import json
import operator
import re
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from harness.data import load_split
from harness.errors import HarnessError
from harness.generators import GENERATORS, countdown
from harness.tasks import get_task
from harness.verifiers import get_verifier

V = get_verifier("countdown")
OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def value_and_numbers(expr: str) -> tuple[Fraction, list[int]]:
    # Independent of the verifier's parser on purpose: Python's own grammar, walked with exact fractions.
    nums: list[int] = []

    def walk(node):
        if isinstance(node, ast.BinOp):
            return OPS[type(node.op)](walk(node.left), walk(node.right))
        assert isinstance(node, ast.Constant) and isinstance(node.value, int), ast.dump(node)
        nums.append(node.value)
        return Fraction(node.value)

    return walk(ast.parse(expr, mode="eval").body), nums


def brute_solvable(nums, target):
    """Positive-integer Countdown by brute force over orderings and pairings (independent of countdown.solvable)."""
    if len(nums) == 1:
        return nums[0] == target
    for i, j in itertools.permutations(range(len(nums)), 2):
        a, b = nums[i], nums[j]
        rest = [n for k, n in enumerate(nums) if k not in (i, j)]
        outs = [a + b, a * b] + ([a - b] if a > b else []) + ([a // b] if a % b == 0 else [])
        if any(brute_solvable(rest + [v], target) for v in outs):
            return True
    return False


# ------------------------------------------------------------------------------------------------ generator
@pytest.fixture(scope="module")
def samples():
    out = [countdown.generate(seed=5, split="test", index=i, count=(2, 5)) for i in range(160)]
    out += [
        countdown.generate(seed=1, split="sft", index=i, count=3, max_value=20, targets=(1, 60), ops="+-*")
        for i in range(60)
    ]
    return out


def test_every_reference_and_trace_scores_one_and_really_solves(samples):
    for s in samples:
        md = s["metadata"]
        verifier = get_verifier("countdown", {"ops": md["ops"]})
        expr, target = s["answer"].rsplit(" = ", 1)
        value, nums = value_and_numbers(expr)
        assert value == md["target"] == int(target) and Counter(nums) == Counter(md["numbers"])
        assert len(md["numbers"]) == s["level"] and 1 <= min(md["numbers"]) <= max(md["numbers"]) <= 100
        assert set(re.findall(r"[-+*/]", expr)) <= set(md["ops"])
        for text in (f"\\boxed{{{s['answer']}}}", f"\\boxed{{{expr}}}", *s["traces"].values()):
            assert verifier(text, s["answer"]).reason == "correct", (text, s["answer"])
        assert f"{md['target']}" in s["question"] and ", ".join(map(str, md["numbers"])) in s["question"]


def test_trace_arithmetic_is_right_and_dead_ends_are_real(samples):
    for s in samples[:80]:
        md = s["metadata"]
        short = s["traces"]["short"]
        for x, op, y, v in re.findall(r"Try (\d+)([-+*/])(\d+)=(\d+)", short):
            assert value_and_numbers(f"{x}{op}{y}")[0] == int(v)
        for left in re.findall(r": ([\d, ]+) cannot make", short):
            assert not brute_solvable([int(n) for n in left.split(", ")], md["target"]), (left, s["answer"])
        assert short.endswith(f"The final answer is: \\boxed{{{md['solution']}}}.")
        assert s["traces"]["compact"].endswith(f"\\boxed{{{md['solution']}}}.")


def test_solver_agrees_with_brute_force():
    for nums in itertools.combinations_with_replacement([1, 2, 3, 5, 7, 12], 3):
        for target in (1, 10, 24, 36, 50, 97):
            assert countdown.solvable(list(nums), target) == brute_solvable(list(nums), target), (nums, target)


def test_deterministic_balanced_and_index_sensitive():
    a = countdown.generate(seed=1, split="rl", index=3)
    assert a == countdown.generate(seed=1, split="rl", index=3, count=[3, 4])
    assert a != countdown.generate(seed=1, split="rl", index=5) != countdown.generate(seed=2, split="rl", index=3)
    levels = Counter(countdown.generate(seed=0, split="x", index=i, count=(2, 5))["level"] for i in range(40))
    assert levels == {2: 10, 3: 10, 4: 10, 5: 10}
    assert GENERATORS.get("countdown") is countdown.generate


def test_task_splits_share_no_puzzle_and_sample_is_pure():
    spec = get_task("countdown")
    keys = {split: {s["metadata"]["key"] for s in load_split(spec, split, limit=300)} for split in spec.splits}
    for a, b in itertools.combinations(sorted(keys), 2):
        assert not keys[a] & keys[b], (a, b)
    assert load_split(spec, "rl", limit=8, offset=3) == load_split(spec, "rl", limit=8)[3:]


def test_single_target_is_the_24_game():
    for i in range(20):
        s = countdown.generate(seed=0, split="test", index=i, count=4, max_value=13, targets=24)
        assert s["metadata"]["target"] == 24 and max(s["metadata"]["numbers"]) <= 13
        assert V(s["traces"]["short"], s["answer"]).reason == "correct"


@pytest.mark.parametrize(
    "params,word",
    [
        ({"count": 1}, "count"),
        ({"count": [4, 3]}, "count"),
        ({"count": 9}, "count"),
        ({"max_value": 0}, "max_value"),
        ({"max_value": [1, 9]}, "max_value"),
        ({"targets": "many"}, "targets"),
        ({"ops": "+^"}, "ops"),
        ({"ops": ""}, "ops"),
    ],
)
def test_bad_params_are_one_clear_error(params, word):
    with pytest.raises(HarnessError, match=f"'{word}'"):
        countdown.generate(seed=0, split="test", index=0, **params)


# ------------------------------------------------------------------------------------------------- verifier
ANS = "(3+5)*3 = 24"  # numbers 3, 3, 5; target 24


@pytest.mark.parametrize(
    "response,reason",
    [
        ("\\boxed{(3+5)*3}", "correct"),
        ("so \\boxed{3 * (5 + 3)}.", "correct"),
        ("\\boxed{(3+5)*3 = 24}", "correct"),  # stated value
        ("\\boxed{24 = (3 + 5) × 3}", "correct"),  # value first, unicode times
        ("\\boxed{\\left(3+5\\right) \\times 3}", "correct"),  # LaTeX
        ("\\boxed{((((3+5))))*3}", "correct"),  # redundant parentheses
        ("\\boxed{1} ... \\boxed{(3+5)*3}", "correct"),  # the last box counts
        ("\\boxed{(3+5)*3} ... \\boxed{1}", "wrong_numbers"),
        ("\\boxed{(3+5)*3 = 25}", "not_target"),  # right value, wrong claim
        ("\\boxed{3+5*3}", "not_target"),  # precedence: 18
        ("\\boxed{(5-3)*3}", "not_target"),
        ("\\boxed{(3+5)*5}", "wrong_numbers"),  # 5 reused, a 3 missing
        ("\\boxed{(3+5)}", "wrong_numbers"),  # a number missing
        ("\\boxed{(3+5)*3*1}", "wrong_numbers"),  # an extra number
        ("\\boxed{24}", "wrong_numbers"),
        ("\\boxed{5/(3-3)}", "div_by_zero"),
        ("\\boxed{-(3-5)*3}", "bad_expression"),  # no unary minus
        ("\\boxed{(3+5)3}", "bad_expression"),  # no implicit product
        ("\\boxed{3**2+5}", "bad_expression"),  # no powers
        ("\\boxed{3^3-5+2}", "bad_expression"),
        ("\\boxed{(3.0+5)*3}", "bad_expression"),  # integers only
        ("\\boxed{(3+5)*3 = 24 = 24}", "bad_expression"),
        ("\\boxed{(3+5)*(3}", "bad_expression"),
        ("\\boxed{}", "bad_expression"),
        ("\\boxed{\\frac{3}{4}}", "bad_expression"),
        ("\\boxed{import os}", "bad_expression"),
        ("The answer is (3+5)*3", "no_answer"),
        ("\\boxed{(3+5)*3", "no_answer"),  # unclosed (a truncated response)
        ("\\boxed{(3+5)*3} retry: \\boxed{(3+5", "correct"),  # the last *closed* box counts, as in boxed_math
    ],
)
def test_verifier_cases(response, reason):
    v = V(response, ANS)
    assert v.reason == reason, v
    assert v.score == (1.0 if reason == "correct" else 0.0)


def test_non_integer_intermediates_and_the_numbers_form():
    assert V("\\boxed{8/(3-8/3)}", "numbers=3,3,8,8; target=24").reason == "correct"
    assert V("\\boxed{8/(3-8/3)}", "numbers: 8, 3, 8, 3; target: 24").reason == "correct"
    loose = get_verifier("countdown", {"use_all": False})
    assert V("\\boxed{3+5}", "numbers=3,5,3; target=8").reason == "wrong_numbers"
    assert loose("\\boxed{3+5}", "numbers=3,5,3; target=8").reason == "correct"
    assert loose("\\boxed{5+5-2}", "numbers=3,5,3; target=8").reason == "wrong_numbers"
    no_div = get_verifier("countdown", {"ops": "+-*"})
    assert no_div("\\boxed{8/(3-8/3)}", "numbers=3,3,8,8; target=24").reason == "bad_expression"


def test_caps_and_huge_inputs_stay_fast():
    deep = "\\boxed{" + "(" * 101 + "3+5" + ")" * 101 + "*3}"
    assert V(deep, ANS).reason == "bad_expression"
    assert V("\\boxed{" + "(" * 100 + "3+5" + ")" * 100 + "*3}", ANS).reason == "correct"
    cases = [
        "x" * 1_000_000 + "\\boxed{(3+5)*3}",
        "\\boxed{" + "1+" * 500_000 + "1}",
        "{" * 1_000_000,
        "\\boxed{" * 200_000,
        "\\boxed{" + "9" * 1_000_000 + "}",
        ("\\boxed{(3+5)*3}" + " " * 100) * 10_000,
    ]
    for text in cases:
        t0 = time.perf_counter()
        v = V(text, ANS)
        assert time.perf_counter() - t0 < 1.0, text[:30]  # the bound the other verifiers are held to
        assert v.score == (1.0 if text.startswith(("x", "\\boxed{(3")) else 0.0), (text[:30], v)


def test_require_eos_and_bad_references():
    assert (
        get_verifier("countdown", {"require_eos": True})("\\boxed{(3+5)*3}", ANS, truncated=True).reason == "truncated"
    )
    for bad in ("24", "(3+5)*3 = 25", "(3+5)*3", "numbers=3,5; target=", ""):
        with pytest.raises(HarnessError, match="reference answer"):
            V("\\boxed{(3+5)*3}", bad)
    with pytest.raises(HarnessError, match="'ops'"):
        get_verifier("countdown", {"ops": "+^"})


def test_score_command_rescores_countdown(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    rows = [
        {"id": "a", "response": "\\boxed{(3+5)*3}", "answer": ANS},
        {"id": "b", "response": "\\boxed{(3+3)*5}", "answer": ANS},
    ]
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = CliRunner().invoke(app, ["score", "--task", "countdown", "--input", str(inp), "--output", str(outp)])
    assert r.exit_code == 0, r.output
    assert [json.loads(x)["reason"] for x in outp.read_text().splitlines()] == ["correct", "not_target"]


# ------------------------------------------------------------------------------------------ recipes and a run
def test_recipes_resolve_for_tiny_and_paper():
    from harness import recipes

    spec = get_task("countdown")
    name, tiny = recipes.resolve("countdown", "tiny")
    small = recipes.apply_task_overrides(spec, tiny["task"])
    assert name == "countdown-tiny" and tiny["cold_start"]["teacher"] == "traces:compact"
    sft = load_split(small, "sft", limit=500)
    assert len(sft) == 500 and all(s["level"] == 3 and max(s["metadata"]["numbers"]) <= 20 for s in sft)
    name, paper = recipes.resolve("countdown", "paper")
    assert name == "default-paper" and paper["cold_start"]["teacher"].split(":")[1] in spec.traces


def test_sft_run_on_the_tiny_model(tmp_path):
    from harness.run import run

    fast = ["sft.max_steps=2", "sft.batch_size=4", "eval.limit=2", "eval.max_new_tokens=8", "eval.dtype=float32"]
    path, rec = run(task="countdown", method="sft", budget="16", sets=fast, runs_dir=tmp_path)
    assert rec["counts"]["training_examples"] == 16 and rec["counts"]["optimizer_steps"] == 2
    assert rec["provenance"]["splits"]["test"]["params"]["max_value"] == 20
    rows = [json.loads(x) for x in (path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2


def test_no_fitting_puzzle_is_one_clear_error_exit_2(tmp_path):
    from typer.testing import CliRunner

    from harness.cli import app

    yaml = (Path(__file__).parents[1] / "tasks" / "countdown.yaml").read_text()
    task = tmp_path / "cd_none.yaml"
    task.write_text(yaml.replace("params: {max_value: 100, targets: [1, 100],", "params: {max_value: 1, targets: 7,"))
    r = CliRunner().invoke(
        app, ["data", "export", "--task", str(task), "--out", str(tmp_path / "o.jsonl"), "--limit", "1"]
    )
    assert r.exit_code == 2, r.output
    assert "cannot make sample 0" in r.output and "'targets': 7" in r.output and "splits.test.params" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "o.jsonl").exists()
