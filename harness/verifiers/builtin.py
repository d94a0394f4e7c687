"""The built-in text verifiers: kk_boxed, exact, regex, numeric, choice (see harness/verifiers/__init__.py)."""

from __future__ import annotations

import decimal
import re
from typing import Any

import regex as _regex

from harness.errors import HarnessError
from harness.verifiers.base import BaseVerifier, Param, Verdict, _builtin, _last, _verdict

_KK_BOX = re.compile(r"\\boxed\{([^{}]*)\}")


@_builtin
class KKBoxed(BaseVerifier):
    """The paper's K&K score: the last `\\boxed{...}` whose content has no braces (a box with
    braces inside is skipped, so an earlier brace-free one can still count), split on ", ",
    compared with the answer split on ", " as sorted lists. Nothing is normalised: case, spacing,
    "and", a trailing period, "knight" without "a", a duplicated, missing or extra person fail."""

    name = "kk_boxed"

    def _judge(self, response: str, answer: str) -> Verdict:
        m = _last(_KK_BOX.finditer(response))
        if m is None:
            return Verdict(0.0, None, "no_box")
        content = m.group(1)
        return _verdict(sorted(content.split(", ")) == sorted(answer.split(", ")), content)


# --------------------------------------------------------------------------------------- exact
@_builtin
class Exact(BaseVerifier):
    """The whole response (stripped of surrounding whitespace if `strip`) equals the answer."""

    name = "exact"
    PARAMS = {"strip": Param(bool, True), "case_sensitive": Param(bool, True)}

    def _norm(self, s: str) -> str:
        s = s.strip() if self._params["strip"] else s
        return s if self._params["case_sensitive"] else s.casefold()

    def _judge(self, response: str, answer: str) -> Verdict:
        got = self._norm(response)
        return _verdict(got == self._norm(answer), got)


# --------------------------------------------------------------------------------------- regex
_FLAGS = {
    "i": _regex.IGNORECASE,
    "m": _regex.MULTILINE,
    "s": _regex.DOTALL,
    "x": _regex.VERBOSE,
    "a": _regex.ASCII,
}


@_builtin
class RegexVerifier(BaseVerifier):
    """The LAST match of a user pattern; `group` of it, stripped, equals answer.strip().

    The pattern is compiled with the `regex` package and every search runs under `timeout_s`
    (total over the whole scan), so a catastrophic pattern yields Verdict(0, None, "timeout").
    flags: any of i (ignore case), m (multiline), s (dot matches newline), x (verbose), a (ASCII).
    """

    name = "regex"
    PARAMS = {
        "pattern": Param(str, None),
        "group": Param(int, 1, lambda v: v >= 0, "0 (whole match) or a group number"),
        "flags": Param(str, "", lambda v: set(v) <= set(_FLAGS), "letters from 'imsxa'"),
        "timeout_s": Param(float, 0.1, lambda v: 0 < v <= 60, "in (0, 60]"),
    }

    def __init__(self, **params: Any) -> None:
        if "pattern" not in params:
            raise HarnessError("verifier 'regex': parameter 'pattern' is required, e.g. 'Answer: (\\w+)'")
        super().__init__(**params)

    def _setup(self, p: dict) -> None:
        flags = 0
        for letter in p["flags"]:
            flags |= _FLAGS[letter]
        try:
            self._rx = _regex.compile(p["pattern"], flags)
        except (_regex.error, RecursionError, OverflowError, ValueError) as e:
            raise HarnessError(f"verifier 'regex': pattern {p['pattern']!r} does not compile: {e}") from None
        if p["group"] > self._rx.groups:
            raise HarnessError(
                f"verifier 'regex': pattern has {self._rx.groups} group(s), so 'group' cannot be "
                f"{p['group']}; use 0 for the whole match"
            )
        self._group = p["group"]
        self._timeout = p["timeout_s"]

    def _judge(self, response: str, answer: str) -> Verdict:
        try:
            m = _last(self._rx.finditer(response, timeout=self._timeout))
        except TimeoutError:
            return Verdict(0.0, None, "timeout")
        got = None if m is None else m.group(self._group)
        if got is None:
            return Verdict(0.0, None, "no_match")
        got = got.strip()
        return _verdict(got == answer.strip(), got)


# ------------------------------------------------------------------------------------- numeric
# "The last match" via finditer costs one Python object per match: 500k of them for "1,1,1,...".
# So the last number and the last choice letter are read right to left instead: reverse the text
# once (about 1 ms per MB), then search or match a reversed pattern from the start. Quantifiers
# are bounded or delimited by literals, so an anchored match is linear in the token's length.
# Digits are ASCII 0-9 only.
_INT_REV = r"(?:\d{3},)+\d{1,3}(?!\d)|\d+"  # 1,234 | 42, reversed
_NUM_REV = re.compile(
    rf"""(?:(?:\d+\.)?\d+/)?                    # /4 or /2.5 (a plain fraction's denominator)
        (?:\d+[-+]?[eE])?                       # e-3
        (?:\d+\.(?:{_INT_REV})?|{_INT_REV})     # 1,234.5 | .5 | 42
        \$?(?:-(?![\w)\]}}]))?\$?               # sign (not the minus of 5-3) and currency
    """,
    re.VERBOSE | re.ASCII,
)
_FRAC_REV = re.compile(r"\}(\d+-?)\{\}(\d+-?)\{carf[dt]?\\", re.ASCII)  # \frac{-3}{4}, reversed
_DIGIT = re.compile(r"\d", re.ASCII)
_NUM_FWD = r"\$?-?\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+(?:\.\d+)?)?"
_GSM = re.compile(r"####[ \t]{0,8}(" + _NUM_FWD + r")[ \t]{0,8}\.?[ \t]{0,8}(?:\r?\n|\Z)", re.ASCII)


def _exact_value(token: str) -> tuple[decimal.Decimal, decimal.Decimal] | None:
    """A number token as an exact fraction (numerator, denominator) of Decimals, which keep every digit and any
    exponent (no float rounding, no overflow to inf); None for a zero denominator or an exponent beyond
    Decimal's range (|exponent| > 10^18)."""
    if token.startswith("\\"):
        m = _FRAC_REV.match(token[::-1])
        assert m is not None
        top, bottom = m.group(2)[::-1], m.group(1)[::-1]
    else:
        top, _, bottom = token.replace("$", "").replace(",", "").partition("/")
    try:
        num, den = decimal.Decimal(top), decimal.Decimal(bottom or 1)
    except decimal.InvalidOperation:
        return None
    return (num, den) if den else None


def _is_integer_token(token: str) -> bool:
    """Written as an integer: digits with an optional sign, currency sign and thousands separators."""
    return not any(c in token for c in "./eE\\")


def _exact_mul(a: decimal.Decimal, b: decimal.Decimal) -> decimal.Decimal:
    """a*b with every digit (decimal.Inexact, raised only past Decimal's exponent range, 10^±10^18)."""
    digits = len(a.as_tuple().digits) + len(b.as_tuple().digits) + 1
    ctx = decimal.Context(
        prec=digits,
        Emax=decimal.MAX_EMAX,
        Emin=decimal.MIN_EMIN,
        traps=[decimal.Overflow, decimal.Underflow, decimal.Inexact],
    )
    return ctx.multiply(a, b)


_ROUNDED = decimal.Context(prec=60, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])


def numbers_match(got: str, ref: str, rel_tol: float, abs_tol: float) -> bool:
    """Whether number token `got` equals reference token `ref` under the numeric verifier's rule (see Numeric).
    Compared as exact fractions by cross-multiplying, so no value overflows, underflows or rounds."""
    a, b = _exact_value(got), _exact_value(ref)
    if a is None or b is None:
        return False
    (p, q), (r, s) = a, b  # got = p/q, ref = r/s, q and s non-zero
    try:
        x, y = _exact_mul(p, s), _exact_mul(r, q)  # got == ref  <=>  p*s == r*q
    except decimal.Inexact:
        return got == ref
    if x == y:
        return True
    if _is_integer_token(ref):
        return False
    # |p/q - r/s| <= max(rel_tol*|r/s|, abs_tol), both sides times |q*s| > 0; 60 significant digits are plenty
    # for a comparison against a tolerance (the exact equality is decided above).
    diff = _ROUNDED.abs(_ROUNDED.subtract(x, y))
    bound = max(
        _ROUNDED.multiply(decimal.Decimal(rel_tol), _ROUNDED.abs(y)),
        _ROUNDED.multiply(decimal.Decimal(abs_tol), _ROUNDED.abs(_ROUNDED.multiply(q, s))),
    )
    return diff <= bound


def _find_number(text: str) -> str | None:
    """The number after the LAST "####" if that line holds only a number (GSM8K), else the last
    number in the text: the longest number that ends at the text's last digit."""
    i = text.rfind("####")
    if i >= 0:
        m = _GSM.match(text, i)
        if m is not None:
            return m.group(1)
    rev = text[::-1]
    d = _DIGIT.search(rev)
    if d is None:
        return None
    k = d.start()
    if k and rev[k - 1] == "}":
        m = _FRAC_REV.match(rev, k - 1)
        if m is not None:
            return m.group(0)[::-1]
    m = _NUM_REV.match(rev, k)
    assert m is not None  # the pattern matches any digit
    return m.group(0)[::-1]


@_builtin
class Numeric(BaseVerifier):
    """The number on the LAST "####" line if that line holds just a number (GSM8K), else the last
    number in the response (-3, 1,234.5, .5, 3/4, 1e-3, $12, \\frac{3}{4}): the longest number
    that ends at the last digit, read right to left (so "1.2.3" reads 2.3, and a markdown heading
    "#### 3. Step" is not an answer). The answer is read the same way. A minus right after a word
    character or a closing bracket is a binary minus ("5-3" ends with 3), not a sign.

    Both numbers are compared as exact fractions (every digit and exponent kept: no float rounding,
    1e400 is not 2e400). A reference written as an integer (42000000, -7, 1,234, $12) must be matched
    exactly: 42000001 and 42000000.5 are wrong whatever the tolerances. A reference written as a
    decimal, with an exponent or as a fraction (0.75, 2.5e-3, 1/3, \\frac{1}{3}) matches a response
    within max(rel_tol × |reference|, abs_tol): rel_tol 1e-9 by default (float noise and long
    roundings pass: 0.3333333333 for 1/3; 0.50000001 for 1/2 does not), abs_tol 1e-15 (so 1e-12 is
    not 0; a task with answers that small sets abs_tol 0). Set rel_tol (e.g. 1e-3) for answers that
    may be rounded. A zero denominator never matches."""

    name = "numeric"
    PARAMS = {
        "rel_tol": Param(float, 1e-9, lambda v: v >= 0, "at least 0"),
        "abs_tol": Param(float, 1e-15, lambda v: v >= 0, "at least 0"),
    }

    def _judge(self, response: str, answer: str) -> Verdict:
        ref = _find_number(answer)
        if ref is None:
            raise HarnessError(f"verifier 'numeric': the reference answer {answer[:200]!r} has no number")
        got = _find_number(response)
        if got is None:
            return Verdict(0.0, None, "no_number")
        if _exact_value(ref) is None:
            raise HarnessError(
                f"verifier 'numeric': the reference answer's number {ref[:200]!r} has a zero "
                "denominator or an exponent beyond 10^18; fix the answer"
            )
        p = self._params
        return _verdict(numbers_match(got, ref, p["rel_tol"], p["abs_tol"]), got)


# -------------------------------------------------------------------------------------- choice
@_builtin
class ChoiceVerifier(BaseVerifier):
    """The last choice letter, taken from the first tier that has one:
    1. \\boxed{B}, \\boxed{(B)}, \\boxed{\\text{B}}
    2. "answer is B", "Answer: (B)", "answer is **B**" ("answer" and "is" in any case)
    3. "(B)"
    4. a standalone letter followed by punctuation or the end ("B.", "B,", "B" at the end)
    5. any standalone letter, not part of a word (so "B. A note" reads B, not the article A).
    Letters are case-sensitive; the answer must be one of `choices` (surrounding "()" allowed)."""

    name = "choice"
    PARAMS = {
        "choices": Param(
            str, "ABCD", lambda v: 0 < len(v) == len(set(v)) and v.isalnum(), "distinct letters or digits"
        ),
    }

    def _setup(self, p: dict) -> None:
        x = "([" + re.escape(p["choices"]) + "])"
        self._choices = p["choices"]
        # Each tier is (how, pattern). "rev" patterns are written reversed and searched in the
        # reversed response, so the first hit is the last one; a letter's lookbehind comes after
        # it ("X(?<!\w.)" = "X not preceded by \w") so that the pattern starts with a literal or
        # a character set, which re scans for in C. Tier 2 runs forward: reversed, it would start
        # at every candidate letter; forward it starts at "answer", and matches (>= 8 chars) are
        # at most 125k per MB.
        self._tiers = [
            ("rev", re.compile(r"\}\s{0,4}\)?" + x + r"\(?(?:\s{0,4}\{(?:fb)?txet\\)?\s{0,4}\{dexob\\")),
            ("fwd", re.compile(r"(?i:answer)(?:\s{1,4}(?i:is))?(?:\s{0,4}:)?\s{0,4}(?:\*\*|\()?" + x + r"(?!\w)")),
            ("rev", re.compile(r"\)" + x + r"\(")),
            ("end", re.compile(r"\s*" + x + r"(?![\w\\])")),
            ("rev", re.compile(x + r"(?<=[.,;:!?)].)(?![\w\\])")),
            ("rev", re.compile(x + r"(?<!\w.)(?![\w\\])")),
        ]

    def _judge(self, response: str, answer: str) -> Verdict:
        want = answer.strip().strip("()").strip()
        if len(want) != 1 or want not in self._choices:
            raise HarnessError(
                f"verifier 'choice': the reference answer {answer[:200]!r} is not one of {self._choices!r}"
            )
        rev = response[::-1]
        for how, rx in self._tiers[:3]:
            m = _last(rx.finditer(response)) if how == "fwd" else rx.search(rev)
            if m is not None:
                return _verdict(m.group(1) == want, m.group(1))
        # Tiers 4 and 5 in one go: no standalone letter at all means neither has a hit, and then
        # the (as costly) tier-4 scan is skipped.
        (_, end), (_, punct), (_, alone) = self._tiers[3:]
        m = alone.search(rev)
        if m is not None:
            m = end.match(rev) or punct.search(rev) or m
            return _verdict(m.group(1) == want, m.group(1))
        return Verdict(0.0, None, "no_choice")


# ------------------------------------------------------------------------------------ lookup
