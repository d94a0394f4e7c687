"""The verifier machinery: Verdict, Param, BaseVerifier, the VERIFIERS registry, get_verifier and the shared
helpers (last_boxed). Every family module imports from here; this module imports none of them."""

from __future__ import annotations

import inspect
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar, Protocol, runtime_checkable

from harness.errors import HarnessError
from harness.registry import Registry, did_you_mean

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
        return cls(
            float(d["score"]),
            d.get("extracted"),
            str(d["reason"]),
            None if p is None else float(p),
            None if lenient is None else float(lenient),
        )


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
                return text[q + 1 : end]
            limit = p
        elif text.startswith("\\boxed", p) and m.end() < len(text) and text[m.end()] in " \t":
            s = _SPACE_FORM.match(text, m.end())
            if s is not None:
                return s.group(1)


# ------------------------------------------------------------------------------------ kk_boxed
# [^{}]* stops at the next brace, and every "\boxed{" holds a brace, so the scans from successive
# openings never overlap: linear in the response length however the boxes are arranged.


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
