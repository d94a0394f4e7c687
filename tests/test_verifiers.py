"""Verifiers: the paper's K&K scoring edge cases, the other built-ins, param errors, time bounds."""

from __future__ import annotations

import pickle
import time

import pytest

from harness.errors import HarnessError
from harness.verifiers import VERIFIERS, Verdict, Verifier, get_verifier

ANS3 = "Alice is a knight, Bob is a knave, Carol is a knight"
ANS2 = "A is a knight, B is a knave"


@pytest.fixture(scope="module")
def kk():
    return get_verifier("kk_boxed")


def box(s: str) -> str:
    return "Let's think step by step. ... The final answer is: \\boxed{" + s + "}."


# ---------------------------------------------------------------------------------- kk_boxed
@pytest.mark.parametrize(
    "content, score",
    [
        (ANS3, 1.0),
        ("Carol is a knight, Alice is a knight, Bob is a knave", 1.0),  # order of people is free
        ("Alice is a knight, Bob is a knave", 0.0),  # missing person
        (ANS3 + ", Dave is a knave", 0.0),  # extra person
        ("Alice is a knight, Bob is a knave, and Carol is a knight", 0.0),  # "and"
        (ANS3 + ".", 0.0),  # trailing period inside the box
        ("Alice is knight, Bob is a knave, Carol is a knight", 0.0),  # "knight" without "a"
        ("alice is a knight, Bob is a knave, Carol is a knight", 0.0),  # case
        ("Alice is a knight,Bob is a knave, Carol is a knight", 0.0),  # separator is ", " exactly
        (" " + ANS3, 0.0),  # no stripping
        ("Alice is a knave, Bob is a knave, Carol is a knight", 0.0),  # wrong role
    ],
)
def test_kk_box_contents(kk, content, score):
    v = kk(box(content), ANS3)
    assert v.score == score
    assert v.extracted == content
    assert v.reason == ("correct" if score else "wrong")


def test_kk_duplicated_person_does_not_count_twice(kk):
    assert kk(box("A is a knight, A is a knight"), ANS2).score == 0.0
    assert kk(box("A is a knight, B is a knave, B is a knave"), ANS2).score == 0.0


def test_kk_last_box_counts(kk):
    wrong = "A is a knave, B is a knave"
    assert kk(f"first \\boxed{{{wrong}}} then \\boxed{{{ANS2}}}", ANS2).score == 1.0
    v = kk(f"first \\boxed{{{ANS2}}} then \\boxed{{{wrong}}}", ANS2)
    assert (v.score, v.extracted, v.reason) == (0.0, wrong, "wrong")
    # an unclosed last box is skipped, as boxed_math and countdown do (the last *closed* box counts)
    assert kk(f"\\boxed{{{ANS2}}} then \\boxed{{{wrong}", ANS2).score == 1.0


def test_kk_box_with_braces_is_skipped(kk):
    r = f"\\boxed{{{ANS2}}} and finally \\boxed{{\\text{{A is a knight}}, B is a knave}}"
    v = kk(r, ANS2)
    assert (v.score, v.extracted) == (1.0, ANS2)
    assert kk("\\boxed{{A is a knight, B is a knave}}", ANS2).reason == "no_box"


@pytest.mark.parametrize(
    "response",
    ["no box here", "\\boxed{A is a knight, B is a knave", "\\boxed A is a knight", "\\fbox{x}", ""],
)
def test_kk_no_box(kk, response):
    assert kk(response, ANS2) == Verdict(0.0, None, "no_box")


def test_kk_truncation():
    plain, strict = get_verifier("kk_boxed"), get_verifier("kk_boxed", {"require_eos": True})
    r = box(ANS2)
    assert plain(r, ANS2, truncated=True).score == 1.0
    assert strict(r, ANS2, truncated=True) == Verdict(0.0, None, "truncated")
    assert strict(r, ANS2, truncated=False).score == 1.0
    assert strict("no box", ANS2, truncated=True).reason == "truncated"


def test_kk_max_chars_judges_the_tail():
    v = get_verifier("kk_boxed", {"max_chars": 100})
    assert v(box(ANS2) + "x" * 100, ANS2).reason == "no_box"
    assert v("x" * 1000 + box(ANS2), ANS2).score == 1.0


def _timed(fn, *args, bound=1.0):
    t = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t
    assert isinstance(out, Verdict)
    assert dt < bound, f"took {dt:.3f}s"
    return out


HUGE = {
    "5mb_text": "All work and no play makes Jack a dull boy. " * 120_000,
    "100k_open_boxes": "\\boxed{" * 100_000,
    "10k_boxes": "\\boxed{A is a knave, B is a knave} " * 10_000 + box(ANS2),
    "deep_nesting": "\\boxed{" + "{" * 1_000_000 + "A" + "}" * 1_000_000 + "}",
    "5mb_brace_free_box": "\\boxed{" + "A is a knight, " * 350_000,
    "digits": "1," * 2_500_000,
    "letters": "A " * 2_500_000,
    "answer_words": "answer is " * 500_000,
    "hashes": "#### \n" * 800_000,
}


@pytest.mark.parametrize("name", list(HUGE))
@pytest.mark.parametrize(
    "verifier, params, answer",
    [
        ("kk_boxed", {}, ANS2),
        ("exact", {}, "x"),
        ("numeric", {}, "1"),
        ("choice", {}, "B"),
        ("regex", {"pattern": r"answer is (\w+)"}, "B"),
    ],
)
def test_huge_inputs_are_fast(name, verifier, params, answer):
    _timed(get_verifier(verifier, params), HUGE[name], answer)


def test_kk_huge_verdicts(kk):
    assert kk(HUGE["10k_boxes"], ANS2).score == 1.0
    assert kk(HUGE["100k_open_boxes"], ANS2).reason == "no_box"
    assert kk(HUGE["deep_nesting"], ANS2).reason == "no_box"


# --------------------------------------------------------------------------------------- exact
def test_exact():
    v = get_verifier("exact")
    assert v("  42\n", "42").score == 1.0
    assert v("42.", "42").reason == "wrong"
    assert v("Paris", "paris").score == 0.0
    assert get_verifier("exact", {"case_sensitive": False})("PARIS ", "paris").score == 1.0
    nostrip = get_verifier("exact", {"strip": False})
    assert nostrip(" 42", "42").score == 0.0
    assert nostrip("42", "42") == Verdict(1.0, "42", "correct")


# --------------------------------------------------------------------------------------- regex
def test_regex_last_match_and_group():
    v = get_verifier("regex", {"pattern": r"Answer:\s*(\w+)"})
    assert v("Answer: foo ... Answer: bar", "bar") == Verdict(1.0, "bar", "correct")
    assert v("Answer: foo ... Answer: bar", " foo ").reason == "wrong"
    assert v("nothing", "bar") == Verdict(0.0, None, "no_match")
    whole = get_verifier("regex", {"pattern": r"\d+", "group": 0})
    assert whole("1 then 22", "22").score == 1.0
    opt = get_verifier("regex", {"pattern": r"x(y)?"})
    assert opt("x", "y").reason == "no_match"  # the group did not take part
    ci = get_verifier("regex", {"pattern": r"answer: (\w+)", "flags": "i"})
    assert ci("ANSWER: Yes", "Yes").score == 1.0


def test_regex_catastrophic_pattern_times_out():
    v = get_verifier("regex", {"pattern": r"(a+)+$"})
    out = _timed(v, "a" * 5000 + "b", "a", bound=2.0)
    assert out == Verdict(0.0, None, "timeout")


@pytest.mark.parametrize(
    "params, words",
    [
        ({"pattern": "("}, ["pattern", "does not compile"]),
        ({"pattern": "a{99999999999}"}, ["does not compile"]),
        ({"pattern": "(" * 2000 + ")" * 2000}, ["does not compile"]),
        ({"pattern": "abc"}, ["group", "0"]),
        ({"pattern": "(a)", "flags": "q"}, ["flags"]),
        ({}, ["pattern", "required"]),
    ],
)
def test_regex_bad_params(params, words):
    with pytest.raises(HarnessError) as e:
        get_verifier("regex", params)
    for w in words:
        assert w in str(e.value)


# ------------------------------------------------------------------------------------- numeric
@pytest.mark.parametrize(
    "response, answer, extracted",
    [
        ("so x = -3", "-3", "-3"),
        ("The total is 1,234.5 dollars.", "1234.5", "1,234.5"),
        ("probability 3/4", "0.75", "3/4"),
        ("about 1e-3 of it", "0.001", "1e-3"),
        ("it costs $12.", "12", "$12"),
        ("answer: -$1,000,000", "-1e6", "-$1,000,000"),
        ("\\boxed{\\frac{3}{4}}", "0.75", "\\frac{3}{4}"),
        ("\\dfrac{-1}{8}", "-0.125", "\\dfrac{-1}{8}"),
        ("half is .5", "1/2", ".5"),
        ("5-3", "2", "3"),  # a minus after a digit is not a sign: the last number is 3
        ("x #### 42\n", "42", "42"),
        ("#### 42\nwe used 7 apples", "42", "42"),  # GSM8K "####" line is preferred
        ("#### 3. Step three\nso 42", "42", "42"),  # a markdown heading is not a GSM answer
        ("18 - 7 = 11 #### 11", "Janet has 18 - 7 = 11.\n#### 11", "11"),  # GSM8K gold answer
    ],
)
def test_numeric_extraction(response, answer, extracted):
    v = get_verifier("numeric")(response, answer)
    assert v.extracted == extracted
    assert v.score == (0.0 if response == "5-3" else 1.0)


def test_numeric_tolerance_and_failures():
    v = get_verifier("numeric")
    assert v("0.3333", "1/3").score == 0.0
    assert get_verifier("numeric", {"rel_tol": 1e-3})("0.3333", "1/3").score == 1.0
    assert v("no digits", "3") == Verdict(0.0, None, "no_number")
    assert v("1/0", "1").reason == "wrong"
    assert v("1" * 5000, "1").reason == "wrong"  # overflows to inf, no exception
    with pytest.raises(HarnessError, match="reference answer"):
        v("42", "forty-two")


# -------------------------------------------------------------------------------------- choice
@pytest.mark.parametrize(
    "response, extracted",
    [
        ("(B)", "B"),
        ("I think the answer is C", "C"),
        ("so \\boxed{D}", "D"),
        ("\\boxed{\\text{B}}", "B"),
        ("Answer: **A**", "A"),
        ("(A) looks tempting, but the answer is (C). A check agrees.", "C"),  # tier 2 beats tiers 3-5
        ("I think B. A note follows", "B"),  # punctuated letter beats the article
        ("Option A is wrong, so C", "C"),
        ("\\boxed{B} and later (C)", "B"),  # the box beats a later parenthesis
    ],
)
def test_choice_extraction(response, extracted):
    assert get_verifier("choice")(response, "B").extracted == extracted


def test_choice_failures_and_params():
    v = get_verifier("choice")
    assert v("answer is Bob", "B") == Verdict(0.0, None, "no_choice")
    assert v("answer is E", "B").reason == "no_choice"
    assert get_verifier("choice", {"choices": "ABCDE"})("answer is E", "(E)").score == 1.0
    with pytest.raises(HarnessError, match="reference answer"):
        v("B", "F")
    with pytest.raises(HarnessError, match="choices"):
        get_verifier("choice", {"choices": "AAB"})


# ------------------------------------------------------------------------------- get_verifier
def test_unknown_verifier_says_did_you_mean():
    with pytest.raises(HarnessError, match="did you mean 'kk_boxed'"):
        get_verifier("kk_boxd")


def test_unknown_param_is_named_with_the_valid_ones():
    with pytest.raises(HarnessError) as e:
        get_verifier("kk_boxed", {"requre_eos": True})
    msg = str(e.value)
    assert "'requre_eos'" in msg and "did you mean 'require_eos'" in msg
    assert "max_chars" in msg and "require_eos" in msg


@pytest.mark.parametrize(
    "name, params, words",
    [
        ("kk_boxed", {"require_eos": "yes"}, ["require_eos", "true or false"]),
        ("kk_boxed", {"max_chars": True}, ["max_chars", "integer"]),
        ("kk_boxed", {"max_chars": 0}, ["max_chars", "at least 1"]),
        ("numeric", {"rel_tol": "1e-6"}, ["rel_tol", "1.0e-6"]),  # YAML reads 1e-6 as a string
        ("numeric", {"abs_tol": -1}, ["abs_tol"]),
        ("exact", {"strip": 1}, ["strip"]),
        ("exact", ["strip"], ["mapping"]),
        ("exact", {1: True}, ["strings"]),
    ],
)
def test_ill_typed_params(name, params, words):
    with pytest.raises(HarnessError) as e:
        get_verifier(name, params)
    for w in words:
        assert w in str(e.value)


def test_ints_are_accepted_as_floats_and_params_are_resolved():
    v = get_verifier("numeric", {"abs_tol": 0})
    assert v.params == {"rel_tol": 1e-9, "abs_tol": 0.0, "max_chars": 1_000_000, "require_eos": False}
    assert v.name == "numeric"


def test_builtins_registered_and_satisfy_the_protocol():
    assert {"kk_boxed", "exact", "regex", "numeric", "choice"} <= set(VERIFIERS.names())
    assert isinstance(get_verifier("kk_boxed"), Verifier)


def test_user_factory_params_checked_by_signature():
    class Const:
        name = "const_test"

        def __init__(self, value: float = 1.0) -> None:
            self.params = {"value": value}

        def __call__(self, response, answer, *, truncated=False):
            return Verdict(self.params["value"], None, "correct")

    if "const_test" not in VERIFIERS:
        VERIFIERS.register("const_test")(Const)
    assert get_verifier("const_test", {"value": 0.5})("x", "y").score == 0.5
    with pytest.raises(HarnessError, match="'valu'.*valid parameters: value"):
        get_verifier("const_test", {"valu": 0.5})


@pytest.mark.parametrize(
    "name, params",
    [("kk_boxed", {"require_eos": True}), ("regex", {"pattern": r"(\d+)", "flags": "i"}), ("choice", {})],
)
def test_pickle_roundtrip_and_purity(name, params):
    v = get_verifier(name, params)
    w = pickle.loads(pickle.dumps(v))
    assert w == v and w.params == v.params and repr(w) == repr(v)
    r = box(ANS2) + " answer is (B) 12"
    assert w(r, ANS2 if name == "kk_boxed" else "B" if name == "choice" else "12") == v(
        r, ANS2 if name == "kk_boxed" else "B" if name == "choice" else "12"
    )


def test_verdict_dict_roundtrip():
    v = Verdict(1.0, "x", "correct")
    assert v.to_dict() == {"score": 1.0, "extracted": "x", "reason": "correct"}
    assert Verdict.from_dict(v.to_dict()) == v


def test_params_copy_cannot_mutate_the_verifier():
    v = get_verifier("kk_boxed")
    v.params["require_eos"] = True
    assert v(box(ANS2), ANS2, truncated=True).score == 1.0
