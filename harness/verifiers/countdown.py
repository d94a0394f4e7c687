"""The `countdown` verifier: the last \\boxed{...} holds an arithmetic expression that uses each given number
exactly once and equals the target (TinyZero-style Countdown). The box is read by verifiers.base.last_boxed, the
one shared extractor: the last *closed* box counts (a later unclosed one, e.g. a truncated retry, is skipped).

The given numbers and the target come from the reference answer, in one of two forms:

    "(3+5)*3 = 24"               a solution (what the built-in generator writes): its numbers are the given ones
    "numbers=3,5,3; target=24"   for data without solutions (e.g. a Countdown-Tasks file with the columns joined)

A reference in neither form, or a solution that does not equal its target, is bad task data: HarnessError.

The response's expression is read by a hand-written tokenizer and shunting-yard parser (no eval, no recursion):
non-negative integer literals, the binary operators in `ops`, parentheses and spaces; also × · \\times \\cdot
(multiplication), ÷ \\div (division), the Unicode minus and \\left( \\right). No unary signs, decimals, implicit
multiplication or powers. It may end in "= N" (or start with "N ="); N must then be the target too. The
numbers are checked as a multiset BEFORE evaluating, so only the given numbers are ever multiplied, and the value
is exact (fractions.Fraction): non-integer intermediate results are allowed, (8/(3-8/3) = 24 counts).
use_all: false accepts expressions that use a sub-multiset of the numbers (the TV-show rule).

Reasons: correct; no_answer (no closed \\boxed{}); bad_expression (not such an expression, over
MAX_EXPR_CHARS characters or MAX_DEPTH nested parentheses, or an operator outside `ops`); wrong_numbers (not
each given number exactly once); div_by_zero; not_target (its value, or the stated "= N", is not the target).
"""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction
from functools import lru_cache

from harness.errors import HarnessError
from harness.verifiers.base import BaseVerifier, Param, Verdict, _builtin, last_boxed

MAX_EXPR_CHARS = 1000
MAX_DEPTH = 100  # nested parentheses
MAX_DIGITS = 18
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_ALIASES = (
    ("\\left(", "("),
    ("\\right)", ")"),
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("×", "*"),
    ("·", "*"),
    ("∗", "*"),
    ("÷", "/"),
    ("−", "-"),
    ("\\,", " "),
    ("\\ ", " "),
)
_TOKEN = re.compile(r"[0-9]+|[-+*/()]|\s+|.", re.ASCII | re.DOTALL)
_INT = re.compile(r"\s*([0-9]{1,18})\s*", re.ASCII)
_SPEC = re.compile(
    r"\s*numbers\s*[=:]\s*([0-9]{1,18}(?:\s*,\s*[0-9]{1,18})*)\s*;\s*target\s*[=:]\s*([0-9]{1,18})\s*",
    re.ASCII | re.IGNORECASE,
)


class _Bad(Exception):
    """The expression is not well formed (carries the verdict reason)."""


def _split_claim(content: str) -> tuple[str, int | None]:
    """(expression, stated value or None) from "EXPR", "EXPR = N" or "N = EXPR"."""
    parts = content.split("=")
    if len(parts) == 1:
        return content, None
    if len(parts) != 2:
        raise _Bad("bad_expression")
    left, right = (_INT.fullmatch(p) for p in parts)
    if right is not None:
        return parts[0], int(right.group(1))
    if left is not None:
        return parts[1], int(left.group(1))
    raise _Bad("bad_expression")


def parse(expr: str, ops: str = "+-*/") -> tuple[list, list[int]]:
    """(RPN token list, the integer literals in order); raises _Bad("bad_expression")."""
    if len(expr) > MAX_EXPR_CHARS:
        raise _Bad("bad_expression")
    for old, new in _ALIASES:
        expr = expr.replace(old, new)
    out: list = []
    stack: list[str] = []
    numbers: list[int] = []
    want_operand, depth = True, 0
    for tok in _TOKEN.findall(expr):
        if tok.isspace():
            continue
        if tok[0] in "0123456789":
            if not want_operand or len(tok) > MAX_DIGITS:
                raise _Bad("bad_expression")  # "2 3" (implicit product) or an absurd literal
            numbers.append(int(tok))
            out.append(numbers[-1])
            want_operand = False
        elif tok == "(":
            depth += 1
            if not want_operand or depth > MAX_DEPTH:
                raise _Bad("bad_expression")
            stack.append(tok)
        elif tok == ")":
            if want_operand or depth == 0:
                raise _Bad("bad_expression")
            while stack[-1] != "(":
                out.append(stack.pop())
            stack.pop()
            depth -= 1
        elif tok in ops:
            if want_operand:
                raise _Bad("bad_expression")  # unary sign or two operators in a row
            while stack and stack[-1] != "(" and _PREC[stack[-1]] >= _PREC[tok]:
                out.append(stack.pop())
            stack.append(tok)
            want_operand = True
        else:
            raise _Bad("bad_expression")
    if want_operand or depth:
        raise _Bad("bad_expression")
    out.extend(reversed(stack))
    return out, numbers


def evaluate(rpn: list) -> Fraction:
    vals: list[Fraction] = []
    for tok in rpn:
        if isinstance(tok, int):
            vals.append(Fraction(tok))
            continue
        b, a = vals.pop(), vals.pop()
        if tok == "/" and b == 0:
            raise _Bad("div_by_zero")
        vals.append(a + b if tok == "+" else a - b if tok == "-" else a * b if tok == "*" else a / b)
    return vals[0]


@lru_cache(maxsize=4096)
def reference(answer: str) -> tuple[tuple[int, ...], int]:
    """(sorted given numbers, target) from a reference answer; HarnessError if it is in neither form."""
    m = _SPEC.fullmatch(answer)
    if m is not None:
        return tuple(sorted(int(x) for x in m.group(1).split(","))), int(m.group(2))
    try:
        expr, target = _split_claim(answer)
        rpn, numbers = parse(expr)
        ok = target is not None and evaluate(rpn) == target
    except _Bad:
        ok = False
    if not ok:
        raise HarnessError(
            f"verifier 'countdown': the reference answer {answer[:200]!r} must be a solution "
            "'EXPR = TARGET' that holds (e.g. '(3+5)*3 = 24') or 'numbers=3,5,3; target=24'"
        )
    return tuple(sorted(numbers)), int(target)


@_builtin
class Countdown(BaseVerifier):
    """See the module docstring: last \\boxed{EXPR}; each given number exactly once; exact value == target."""

    name = "countdown"
    PARAMS = {
        "ops": Param(str, "+-*/", lambda v: bool(v) and set(v) <= set("+-*/"), "characters from '+-*/'"),
        "use_all": Param(bool, True),
    }

    def _judge(self, response: str, answer: str) -> Verdict:
        given, target = reference(answer)
        content = last_boxed(response)
        if content is None:
            return Verdict(0.0, None, "no_answer")
        extracted = content.strip()
        try:
            expr, claim = _split_claim(content)
            rpn, numbers = parse(expr, self._params["ops"])
            used, have = Counter(numbers), Counter(given)
            if (used != have) if self._params["use_all"] else bool(used - have):
                return Verdict(0.0, extracted, "wrong_numbers")
            ok = evaluate(rpn) == target and claim in (None, target)
        except _Bad as e:
            return Verdict(0.0, extracted, str(e))
        return Verdict(1.0 if ok else 0.0, extracted, "correct" if ok else "not_target")
