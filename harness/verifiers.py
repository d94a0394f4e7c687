"""Verifiers: pure, time-bounded functions `(response, answer) -> Verdict(score, extracted, reason)`.

The same verifier object is the RL reward, the re-distillation filter and the evaluation metric,
so it must never raise on a response and must return quickly on anything a model (or an attacker)
can emit. Built-ins use only linear-time patterns; the user-supplied `regex` verifier runs under
the `regex` package's timeout. Responses longer than `max_chars` (default 1,000,000) are judged
on their LAST `max_chars` characters: the answer is expected at the end, and this bounds the work.

YAML names a verifier by its registered name and passes params (`get_verifier(name, params)`);
unknown or ill-typed params are a HarnessError naming the parameter and listing the valid ones.
Users add their own with `VERIFIERS.register("name")(factory)`.

Built-ins (every one also takes `max_chars: int = 1_000_000` and `require_eos: bool = False`;
with require_eos a response the engine cut off at the length limit scores 0, as in the paper's RL):

    kk_boxed()                      last brace-free \\boxed{...}; its ", "-parts equal the answer's
                                    as a multiset (order of people free; nothing else is forgiven)
    exact(strip, case_sensitive)    the whole response equals the answer
    regex(pattern, group, flags, timeout_s)   LAST match of pattern; group.strip() == answer.strip()
    numeric(rel_tol, abs_tol)       a final "#### N" line if present, else the last number
                                    (the longest one ending at the last digit); exact values: an
                                    integer answer must match exactly, a decimal or fraction within
                                    rel_tol 1e-9 (+ abs_tol 1e-15) of it; see Numeric
    choice(choices)                 the last choice letter, by tiers (see ChoiceVerifier)
    countdown(ops, use_all)         last \\boxed{EXPR}: each given number once, exact value = target
                                    (harness/verifiers_countdown.py, with its own reasons)
    boxed_math(mode, timeout_s)     last \\boxed{...} (nested braces, \\fbox, "\\boxed 5"): exact after light
                                    normalization, else math-verify in a worker process killed at
                                    timeout_s (harness/verifiers_math.py); mode strict|lenient, the
                                    lenient outcome always in Verdict.lenient

Reasons (Verdict.reason):

    reason      score  who            meaning
    correct     1.0    all            extracted answer matches
    wrong       0.0    all            an answer was extracted and does not match
    truncated   0.0    all            require_eos and the response was truncated (not judged)
    no_box      0.0    kk_boxed       no \\boxed{...} with brace-free content
    no_match    0.0    regex          pattern did not match, or the group did not take part
    timeout     0.0    regex          the pattern ran past timeout_s (catastrophic backtracking)
    no_number   0.0    numeric        no number in the response
    no_choice   0.0    choice         no choice letter in the response
    no_box      0.0    boxed_math     no closed \\boxed{...} (lenient mode: nor any math expression)
    timeout     0.0    boxed_math     math-verify ran past timeout_s (or its worker died); worker replaced
    too_complex 0.0    boxed_math     pre-check: exponent tower, exponent or factorial >= 5 digits,
                                      nesting > 40, answer > 3,000 chars; never sent to sympy

Every built-in returns in well under 100 ms on any 5 MB response (about 50 ms worst measured,
microseconds on a realistic one); see bench/bench_verifiers.py. `regex` and `boxed_math` are bounded
by timeout_s (boxed_math: plus a fresh worker's start-up when the previous call timed out and its spare
is not ready yet).
Because a timeout depends on the machine, a pattern near its limit is the one impure case.

A reference answer the verifier cannot read (numeric: no number; choice: not one of the letters)
is bad task data, not a bad response: it raises HarnessError rather than scoring 0 silently.
"""

from __future__ import annotations

import decimal
import inspect
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

import regex as _regex

from harness.errors import HarnessError
from harness.registry import Registry, did_you_mean

__all__ = ["Verdict", "Verifier", "VERIFIERS", "get_verifier", "BaseVerifier"]

DEFAULT_MAX_CHARS = 1_000_000


@dataclass(frozen=True)
class Verdict:
    score: float  # 1.0 correct, 0.0 not
    extracted: str | None  # what the verifier read from the response; None if nothing
    reason: str  # short machine-friendly reason, see the module docstring
    # A verifier's graded score in [0, 1] where it has one (reasoning_gym: rg's own score). Never accuracy:
    # evaluation reports its mean separately as partial_credit_mean. None (and absent from to_dict) otherwise.
    partial: float | None = None
    # The lenient variant's 0/1 outcome where a verifier has one (boxed_math); evaluation reports its mean as
    # lenient_accuracy where it differs from the score. None (and absent from to_dict) otherwise.
    lenient: float | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("partial", "lenient"):
            if d[key] is None:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        p, lenient = d.get("partial"), d.get("lenient")
        return cls(float(d["score"]), d.get("extracted"), str(d["reason"]), None if p is None else float(p),
                   None if lenient is None else float(lenient))


@runtime_checkable
class Verifier(Protocol):
    name: str
    params: dict

    def __call__(self, response: str, answer: str, *, truncated: bool = False) -> Verdict: ...


VERIFIERS: Registry = Registry("verifier")


# --------------------------------------------------------------------------------------- params
@dataclass(frozen=True)
class Param:
    type: type  # bool, int, float or str
    default: Any
    check: Callable[[Any], bool] | None = None
    must: str = ""  # what check demands, for the error message


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(verifier: str, key: str, spec: Param, value: Any) -> Any:
    # bool is an int in Python; YAML `yes`/`1` mix-ups should be caught, not coerced.
    if spec.type is bool:
        ok = isinstance(value, bool)
    elif spec.type is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, spec.type) and not isinstance(value, bool)
    if not ok:
        hint = ""
        if spec.type is float and isinstance(value, str):
            try:
                float(value)
                hint = f" (YAML reads {value} as a string; write it with a dot, e.g. 1.0e-6)"
            except ValueError:
                pass
        raise HarnessError(
            f"verifier '{verifier}': parameter '{key}' must be {_TYPE_WORDS[spec.type]}, "
            f"got {type(value).__name__} {value!r}{hint}"
        )
    value = float(value) if spec.type is float else value
    if spec.check is not None and not spec.check(value):
        raise HarnessError(f"verifier '{verifier}': parameter '{key}' must be {spec.must}, got {value!r}")
    return value


def _unknown_param(verifier: str, key: Any, valid: list[str]) -> HarnessError:
    listing = ", ".join(valid) if valid else "(none)"
    hint = did_you_mean(str(key), valid) if valid else ""
    hint = f" ({hint})" if hint.startswith("did you mean") else ""
    msg = f"verifier '{verifier}': unknown parameter {key!r}{hint}; valid parameters: {listing}"
    return HarnessError(msg)


def _construct(cls: type, params: dict) -> Any:
    return cls(**params)


class BaseVerifier:
    """Validates params, applies require_eos and the max_chars cap, then calls `_judge`.

    Picklable (rebuilt from params), comparable by (class, params), and stateless after __init__.
    """

    name: ClassVar[str] = ""
    # The Verdict keys besides the score that every verdict carries ("partial", "lenient"): exports report their means.
    GRADED: ClassVar[tuple[str, ...]] = ()
    PARAMS: ClassVar[dict[str, Param]] = {}
    COMMON: ClassVar[dict[str, Param]] = {
        "max_chars": Param(int, DEFAULT_MAX_CHARS, lambda v: v >= 1, "at least 1"),
        "require_eos": Param(bool, False),
    }

    def __init__(self, **params: Any) -> None:
        specs = {**self.PARAMS, **self.COMMON}
        for key in params:
            if key not in specs:
                raise _unknown_param(self.name, key, list(specs))
        resolved = {k: _coerce(self.name, k, s, params.get(k, s.default)) for k, s in specs.items()}
        self._params = resolved
        self.max_chars: int = resolved["max_chars"]
        self.require_eos: bool = resolved["require_eos"]
        self._setup(resolved)

    def _setup(self, p: dict) -> None:
        """Subclass hook: read params, compile patterns; raise HarnessError on bad values."""

    @property
    def params(self) -> dict:
        return dict(self._params)

    def __call__(self, response: str, answer: str, *, truncated: bool = False) -> Verdict:
        if not isinstance(response, str):
            raise TypeError(f"verifier '{self.name}': response must be str, got {type(response).__name__}")
        if self.require_eos and truncated:
            return Verdict(0.0, None, "truncated")
        if len(response) > self.max_chars:
            response = response[-self.max_chars :]
        return self._judge(response, answer)

    def _judge(self, response: str, answer: str) -> Verdict:
        raise NotImplementedError

    def __reduce__(self) -> tuple:
        return (_construct, (type(self), self._params))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._params == self._params  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self._params.items()))))

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self._params.items())})"


def _verdict(ok: bool, extracted: str) -> Verdict:
    return Verdict(1.0 if ok else 0.0, extracted, "correct" if ok else "wrong")


def _last(matches: Any) -> Any:
    # deque(maxlen=1) drains the iterator in C: the last match without a Python-level loop.
    d = deque(matches, maxlen=1)
    return d[0] if d else None


def _builtin(cls: type[BaseVerifier]) -> type[BaseVerifier]:
    VERIFIERS.register(cls.name)(cls)
    return cls


# ------------------------------------------------------------------------------------ last \boxed{}
_ANY_BOX = re.compile(r"\\(?:boxed|fbox)")
_SPACE_FORM = re.compile(r"[ \t]+([^\s$]+)")


def _close(text: str, start: int, limit: int) -> int:
    """Index of the "}" that closes the "{" at `start`, or -1 if it is not closed before `limit`. Walks the "}"s
    and counts the "{"s between them in C, so a run of one kind of brace costs one step."""
    opened, closed, at = 0, 0, start
    while True:
        c = text.find("}", at, limit)
        if c < 0:
            return -1
        opened += text.count("{", at, c)
        closed += 1
        if closed >= opened:
            return c
        at = c + 1


def last_boxed(text: str) -> str | None:
    """Content of the last closed `\\boxed{...}` / `\\fbox{...}` (or `\\boxed x`), or None. Linear time: if the box
    at q never closes, no earlier box can close after q (its depth there is >= 1 plus the later box's >= 1), so each
    earlier scan stops at the last unclosed opening and the scans never overlap. The one extractor of boxed_math and
    countdown; kk_boxed keeps the paper's brace-free-content rule, which likewise skips an unclosed last box."""
    limit = len(text)
    nb, nf = text.rfind("\\boxed"), text.rfind("\\fbox")  # each cursor only moves left: linear in total
    while True:
        p = max(nb, nf)
        if p < 0:
            return None
        if p == nb:
            nb = text.rfind("\\boxed", 0, p)
        else:
            nf = text.rfind("\\fbox", 0, p)
        m = _ANY_BOX.match(text, p)
        if m is None:
            continue
        q = m.end()
        while q < len(text) and text[q] in " \t\n":
            q += 1
        if q < len(text) and text[q] == "{":
            end = _close(text, q, limit)
            if end >= 0:
                return text[q + 1:end]
            limit = p
        elif text.startswith("\\boxed", p) and m.end() < len(text) and text[m.end()] in " \t":
            s = _SPACE_FORM.match(text, m.end())
            if s is not None:
                return s.group(1)


# ------------------------------------------------------------------------------------ kk_boxed
# [^{}]* stops at the next brace, and every "\boxed{" holds a brace, so the scans from successive
# openings never overlap: linear in the response length however the boxes are arranged.
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
_NUM_FWD = (
    r"\$?-?\$?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+|(?=\.\d))(?:\.\d+)?(?:[eE][-+]?\d+)?(?:/\d+(?:\.\d+)?)?"
)
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
    ctx = decimal.Context(prec=digits, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
                          traps=[decimal.Overflow, decimal.Underflow, decimal.Inexact])
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
    bound = max(_ROUNDED.multiply(decimal.Decimal(rel_tol), _ROUNDED.abs(y)),
                _ROUNDED.multiply(decimal.Decimal(abs_tol), _ROUNDED.abs(_ROUNDED.multiply(q, s))))
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
            raise HarnessError(f"verifier 'numeric': the reference answer's number {ref[:200]!r} has a zero "
                               "denominator or an exponent beyond 10^18; fix the answer")
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
            ("fwd", re.compile(
                r"(?i:answer)(?:\s{1,4}(?i:is))?(?:\s{0,4}:)?\s{0,4}(?:\*\*|\()?" + x + r"(?!\w)"
            )),
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
def _check_signature(name: str, factory: Callable, params: dict) -> None:
    """For user factories that do not validate themselves: unknown or missing keyword params."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    named = [p for p in sig.parameters.values() if p.kind in kinds]
    valid = [p.name for p in named]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        for key in params:
            if key not in valid:
                raise _unknown_param(name, key, valid)
    for p in named:
        if p.default is inspect.Parameter.empty and p.name not in params:
            raise HarnessError(f"verifier '{name}': parameter '{p.name}' is required")


def get_verifier(name: str, params: Mapping[str, Any] | None = None) -> Verifier:
    """The verifier registered as `name`, built with `params` (HarnessError on bad name or params)."""
    factory = VERIFIERS.get(name)
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise HarnessError(f"verifier '{name}': params must be a mapping, got {type(params).__name__}")
    params = dict(params)
    for key in params:
        if not isinstance(key, str):
            raise HarnessError(f"verifier '{name}': parameter names must be strings, got {key!r}")
    if not (isinstance(factory, type) and issubclass(factory, BaseVerifier)):
        _check_signature(name, factory, params)
    return factory(**params)


# Built-ins in their own modules register themselves on import (they need the classes above).
from harness import verifiers_countdown  # noqa: E402,F401
from harness import gym  # noqa: E402,F401  (reasoning_gym; imports reasoning-gym only when used)
from harness import verifiers_math  # noqa: E402,F401  (boxed_math; math-verify runs in a worker process)
