"""boxed_math: extraction, tricky equivalences, strict vs lenient, and the time bound under fuzzing, from the main
thread, another thread and a multiprocessing worker. The slow-but-innocent-looking `(x+2)^{999}-x` against
`(x+1)^{999}` keeps sympy busy for well over 20 s, so it exercises the worker's deadline rather than a pre-check."""

import multiprocessing as mp
import pickle
import threading
import time

import pytest

from harness.evaluate import summarize
from harness.verifiers import Verdict, get_verifier
from harness.verifiers.boxed_math import last_boxed, normalize, too_complex, warm

SLOW = ("The answer is \\boxed{(x+2)^{999}-x}.", "(x+1)^{999}")
SLACK = 2.0  # killing and reaping the worker, on a loaded 2-core machine


@pytest.fixture(scope="module")
def strict():
    warm()  # this thread's worker and its spare, once for the module
    return get_verifier("boxed_math")


@pytest.mark.parametrize(
    "text, want",
    [
        ("so \\boxed{\\frac{1}{2}} and finally \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
        ("\\boxed{\\left\\{ 1, \\{2\\} \\right\\}}", "\\left\\{ 1, \\{2\\} \\right\\}"),
        ("\\boxed 5$ dollars", "5"),
        ("\\fbox{7}", "7"),
        ("\\boxed {12}", "12"),
        ("\\boxed{3} then an unclosed \\boxed{4", "3"),
        ("\\boxed{a{b}c", None),
        ("no box here", None),
        ("\\boxed{x}}}}", "x"),
    ],
)
def test_last_boxed(text, want):
    assert last_boxed(text) == want


def test_last_boxed_is_linear_on_pathological_input():
    for text in ["\\boxed{" * 150_000, "\\boxed{" + "{" * 1_000_000, "\\boxed{" + "{}" * 500_000, "{}" * 500_000]:
        t = time.process_time()
        assert last_boxed(text) is None
        assert time.process_time() - t < 1.0  # about 0.1 s of CPU; quadratic would be hours


def test_normalize_is_light():
    assert normalize("$\\dfrac{1}{2}$") == normalize("\\frac{1}{2}") == "\\frac{1}{2}"
    assert normalize("\\left( 2, \\frac{\\pi}{3} \\right)") == "(2,\\frac{\\pi}{3})"
    assert normalize("10,\\!000.") == "10,000"


@pytest.mark.parametrize(
    "box, gold, score",
    [
        ("\\frac{1}{2}", "0.5", 1.0),
        ("0.5", "\\frac{1}{2}", 1.0),
        ("\\dfrac{1}{2}", "\\frac12", 1.0),
        ("2\\sqrt{2}", "\\sqrt{8}", 1.0),
        ("x=3", "3", 1.0),
        ("\\{1,2\\}", "\\{2,1\\}", 1.0),
        ("[2,5)", "[2, 5)", 1.0),
        ("(4,\\infty)", "(4, \\infty)", 1.0),
        ("50\\%", "50", 1.0),
        ("5\\text{ cm}", "5", 1.0),
        ("\\left( 2, \\frac{\\pi}{3} \\right)", "(2,\\pi/3)", 1.0),
        ("14\\pi", "14 \\pi", 1.0),
        ("\\text{(A)}", "\\text{(A)}", 1.0),
        ("1.50", "1.5", 1.0),
        ("x^2+y^2", "y^2 + x^2", 1.0),
        ("3", "4", 0.0),
        ("\\frac{1}{3}", "0.33", 0.0),
        ("[2,5]", "[2,5)", 0.0),
        ("2\\sqrt{3}", "\\sqrt{8}", 0.0),
        ("-6", "6", 0.0),
        ("\\text{(B)}", "\\text{(A)}", 0.0),
    ],
)
def test_tricky_equivalences(strict, box, gold, score):
    v = strict(f"Reasoning... so the answer is \\boxed{{{box}}}.", gold)
    assert v.score == score, v
    assert v.extracted == box and v.reason == ("correct" if score else "wrong")


def test_gold_given_as_a_solution_uses_its_last_box(strict):
    solution = "We have $x = \\frac{1}{2}$, so the answer is $\\boxed{\\frac{1}{2}}$."
    assert strict("\\boxed{0.5}", solution).score == 1.0
    assert strict("\\boxed{0.25}", solution).score == 0.0


def test_strict_vs_lenient(strict):
    lenient = get_verifier("boxed_math", {"mode": "lenient"})
    no_box = "After all that, the final answer is $42$."
    assert strict(no_box, "42") == Verdict(0.0, None, "no_box", lenient=1.0)
    v = lenient(no_box, "42")
    assert v.score == 1.0 and v.reason == "correct" and v.lenient == 1.0
    assert lenient("I give up.", "42").score == 0.0
    assert strict("\\boxed{3}", "3").lenient == 1.0
    with pytest.raises(Exception, match="'strict' or 'lenient'"):
        get_verifier("boxed_math", {"mode": "loose"})


def test_summarize_reports_lenient_accuracy_where_it_differs(strict):
    def row(verdict):
        d = verdict.to_dict()
        return {"scores": [d["score"]], "verdicts": [d], "level": None, "n_tokens": [1], "truncated": [False]}

    same = [row(strict("\\boxed{3}", "3")), row(strict("\\boxed{4}", "3"))]
    assert "lenient_accuracy" not in summarize(same, 1)
    m = summarize(same + [row(strict("the answer is 3", "3"))], 1)
    assert m["accuracy"] == pytest.approx(1 / 3) and m["lenient_accuracy"] == pytest.approx(2 / 3)
    assert Verdict.from_dict(same[0]["verdicts"][0]).lenient == 1.0


def test_require_eos_and_pickle(strict):
    v = get_verifier("boxed_math", {"require_eos": True})
    assert v("\\boxed{3}", "3", truncated=True) == Verdict(0.0, None, "truncated")
    assert pickle.loads(pickle.dumps(strict)) == strict


ADVERSARIAL = {
    "tower": "\\boxed{10^{10^{10}}}",
    "plain tower": "\\boxed{9^9^9^9}",
    "huge exponent": "\\boxed{2^{123456789}}",
    "huge factorial": "\\boxed{100000!}",
    "deep braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "deep parens": "\\boxed{" + "(" * 10_000 + "1" + ")" * 10_000 + "}",
    "megabytes, no box": "x^2 + " * 400_000,
    "megabyte box": "\\boxed{" + "1+" * 500_000 + "1}",
    "unbalanced": "\\boxed{\\frac{1}{2" * 1000,
    "unicode": "\\boxed{√２ ÷ ½ 𝜋 \u202e\u0000}",
    "slow sympy": SLOW[0],
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_fuzz_returns_a_verdict_within_the_bound(strict, name):
    v = get_verifier("boxed_math", {"timeout_s": 1.0})
    warm()  # after an earlier timeout, a fresh spare may still be importing; that wait is not the bound under test
    t = time.perf_counter()
    out = v(ADVERSARIAL[name], SLOW[1])
    assert time.perf_counter() - t < 1.0 + SLACK, name
    assert out.score == 0.0 and out.reason in ("wrong", "no_box", "too_complex", "timeout"), out


def test_pre_checks():
    assert too_complex("10^{10^{10}}") and too_complex("2^{100000}") and too_complex("(" * 50)
    assert not too_complex("2^{2023}") and not too_complex("\\frac{\\sqrt{3}}{2}") and not too_complex("x^2+y^2")
    assert not too_complex("So the total is **12345** dollars.")


def test_timeout_then_the_next_call_is_judged(strict):
    v = get_verifier("boxed_math", {"timeout_s": 0.5})
    warm()
    t = time.perf_counter()
    assert v(*SLOW).reason == "timeout"
    assert time.perf_counter() - t < 0.5 + SLACK
    assert v("\\boxed{2\\sqrt{2}}", "\\sqrt{8}").score == 1.0  # a fresh worker took over


def _judge_pair(args):
    response, answer = args
    v = get_verifier("boxed_math", {"timeout_s": 0.5})
    return v(response, answer).reason


def test_bound_works_from_a_thread():
    out = {}

    def work():
        out["slow"] = _judge_pair(SLOW)  # math-verify's own signal timeout would raise ValueError here
        out["fine"] = _judge_pair(("\\boxed{\\dfrac{2}{4}}", "\\sqrt{2}^{-2}"))

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert out == {"slow": "timeout", "fine": "correct"}


def test_bound_works_in_a_multiprocessing_worker():
    # Pool workers are daemonic (they may not start multiprocessing children); the worker is a plain subprocess.
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.map(_judge_pair, [SLOW, ("\\boxed{x=3}", "3")]) == ["timeout", "correct"]
