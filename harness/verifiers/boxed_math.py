"""boxed_math: the paper's MATH score, bounded in time from any thread or process.

The last `\\boxed{...}` (nested braces; also `\\boxed 5` and `\\fbox{...}`) is compared with the reference answer:
an exact match after light normalization first; two plain numbers (decimals, integer fractions such as \\frac{1}{2}
or 1/2) by the numeric verifier's exact rule in-process (an integer exactly, else within 1e-9 relative: math-verify
would round both to 6 decimals); then math-verify `parse`/`verify` (gold parsed from the reference).

math-verify bounds its own work with `signal.alarm`, which only works on the main thread of the main interpreter.
So sympy never runs in the caller: it runs in a persistent worker subprocess (one per calling process and thread)
that answers one JSON line per request. The caller waits at most `timeout_s`; past that the worker is killed and
a fresh one is started at once (its imports overlap with the caller's next work), and the verdict is "timeout".
`subprocess` (not multiprocessing) is used so that daemonic workers (multiprocessing.Pool, DataLoader) can verify too.
Cheap pre-checks keep obviously pathological answers (exponent towers, huge exponents or factorials, deep nesting,
long answers) away from sympy altogether: Verdict(0, extracted, "too_complex").

Strict (the default, the paper's rule): only the boxed answer counts, math-verify with strict=True.
Lenient: also math-verify with strict=False (variables matched by position, sets vs tuples), and without a box the
last math expression of the response's tail (math-verify's own extraction). Every verdict carries the lenient outcome
in `Verdict.lenient`, so evaluation reports a `lenient_accuracy` next to the accuracy where the two differ.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Optional

from harness.verifiers.base import BaseVerifier, Param, Verdict, _builtin, last_boxed
from harness.verifiers.builtin import numbers_match

__all__ = ["BoxedMath", "last_boxed", "normalize", "too_complex", "warm"]

TAIL_CHARS = 2000  # lenient, no box: the part of the response whose last expression counts
MAX_EXPR_CHARS = 3000  # longer text is not sent to sympy (MATH answers are < 200 chars; the tail is 2,000)
MAX_DEPTH = 40  # brace / bracket nesting beyond this is not sent to sympy
STARTUP_S = 120.0  # how long a fresh worker may take to import math-verify before that is an error

# ------------------------------------------------------------------------------------------- extraction
_SPACING = re.compile(r"\\[,;:! ]|\\left|\\right|\\displaystyle|\s+")
_FRAC = re.compile(r"\\[dt]frac")


def normalize(s: str) -> str:
    """Light, meaning-preserving normalization for the exact-match check."""
    s = _FRAC.sub(r"\\frac", _SPACING.sub("", s))
    while len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s[1:-1]
    return s.rstrip(".")


_PLAIN_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_PLAIN_FRACTION = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}|(-?)(\d+)/(\d+)")
# The numeric verifier's defaults: integers exactly, a decimal or fraction reference within 1e-9 relative.
NUMBER_REL_TOL, NUMBER_ABS_TOL = 1e-9, 1e-15


def _number_token(s: str) -> Optional[str]:
    """A plain decimal, an integer fraction (\\frac{a}{b}, -\\frac{a}{b}, a/b) as a token numbers_match reads."""
    if _PLAIN_NUMBER.fullmatch(s):
        return s
    m = _PLAIN_FRACTION.fullmatch(s)
    if m is None:
        return None
    sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) is not None else m.group(4, 5, 6)
    if num.startswith("-"):
        sign, num = ("" if sign else "-"), num[1:]
    return f"{sign}{num}/{den}"


def _plain_equal(a: str, b: str) -> Optional[bool]:
    """Both plain numbers (decimals or integer fractions): decided here, without the worker (most MATH answers are
    integers), by the numeric verifier's rule with its defaults (harness.verifiers.builtin.numbers_match): exact
    values, so an integer reference is matched exactly and a decimal or fraction one within 1e-9 relative (0.50000001
    is not \\frac{1}{2}, which math-verify's 6-decimal rounding would accept). Anything else: None (math-verify
    decides)."""
    x, y = _number_token(a), _number_token(b)
    if x is None or y is None:
        return None
    if any("/" in t and not t.rpartition("/")[2].strip("-0") for t in (x, y)):
        return None  # a zero denominator: leave it to math-verify
    return numbers_match(x, y, NUMBER_REL_TOL, NUMBER_ABS_TOL)


# -------------------------------------------------------------------------------------------- pre-checks
_TOWER = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\w{1,3}\s*\^")  # a^{b^c}, 9^9^9 (x^2+y^2 is fine)
_BIG_EXP = re.compile(r"\^\s*[{(]?\s*-?\d{5,}")  # 10^{100000}
_BIG_FACT = re.compile(r"\d{5,}\s*!")  # 100000!


def too_complex(s: str) -> bool:
    if len(s) > MAX_EXPR_CHARS:
        return True
    if _TOWER.search(s) or _BIG_EXP.search(s) or _BIG_FACT.search(s):
        return True
    depth = 0
    for c in s:
        if c in "{([":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif c in "})]":
            depth -= 1
    return False


# ------------------------------------------------------------------------------------------------ worker
def serve() -> None:
    """The worker loop: `{"gold", "pred", "boxed"}` per line in, `{"strict", "lenient", "got"}` per line out.
    strict: math-verify with strict=True on a boxed answer (False for free text); lenient: strict, or strict=False."""
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing a library prints may corrupt the protocol
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # a runaway expression fails, not the machine
    except (ImportError, ValueError, OSError):
        pass
    import logging

    logging.disable(logging.CRITICAL)
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    gold_cache: dict[str, Any] = {}
    # The first parse / verify compiles regexes and warms sympy (~0.3 s): do it before saying ready, so that no
    # request's deadline pays for it.
    verify(
        parse("\\boxed{\\frac{1}{2}}", configs, parsing_timeout=None),
        parse("$x = 0.5$ and $\\sqrt{2}$", configs, parsing_timeout=None),
        timeout_seconds=None,
    )
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            gold = gold_cache.get(req["gold"])
            if gold is None:
                gold = parse("\\boxed{" + req["gold"] + "}", configs, parsing_timeout=None)
                if len(gold_cache) > 10_000:
                    gold_cache.clear()
                gold_cache[req["gold"]] = gold
            pred_text = "\\boxed{" + req["pred"] + "}" if req["boxed"] else req["pred"]
            pred = parse(pred_text, configs, parsing_timeout=None)
            both = bool(gold) and bool(pred)
            strict = both and req["boxed"] and verify(gold, pred, strict=True, timeout_seconds=None)
            lenient = strict or (both and verify(gold, pred, strict=False, timeout_seconds=None))
            got = str(pred[-1]) if pred else None
            res = {"strict": bool(strict), "lenient": bool(lenient), "got": got[:200] if got else None}
        except Exception as e:  # noqa: BLE001 - a bad expression is a wrong answer, never a dead worker
            res = {"strict": False, "lenient": False, "got": None, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        out.write(json.dumps(res) + "\n")
        out.flush()


class _Proc:
    """One worker subprocess and its read buffer."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self.popen = subprocess.Popen(
            [sys.executable, "-c", "from harness.verifiers.boxed_math import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.buf = b""
        self.ready = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        try:
            self.popen.kill()
            self.popen.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for f in (self.popen.stdin, self.popen.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def readline(self, deadline: float) -> Optional[dict]:
        assert self.popen.stdout is not None
        fd = self.popen.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None  # the worker died
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)


class _Worker:
    """The worker of one (process, thread), plus a spare that has already imported math-verify, so that after a
    timeout the next call does not wait for a fresh worker's imports (about a second)."""

    def __init__(self) -> None:
        self.active: Optional[_Proc] = None
        self.spare: Optional[_Proc] = None
        self.pid = os.getpid()
        _ALL.add(self)

    @staticmethod
    def _wait_ready(w: _Proc) -> None:
        if not w.ready:
            if w.readline(time.monotonic() + STARTUP_S) is None:
                w.kill()
                from harness.errors import HarnessError

                raise HarnessError(
                    "boxed_math: the math-verify worker did not start; check that math-verify is "
                    "installed (pip install -e '.[math]')"
                )
            w.ready = True

    def warm(self) -> None:
        """Start the worker and its spare and wait until both are ready."""
        if self.active is None or not self.active.alive():
            self.active = _Proc()
        self._wait_ready(self.active)
        if self.spare is None or not self.spare.alive():
            self.spare = _Proc()
        self._wait_ready(self.spare)

    def call(self, req: dict, timeout: float) -> Optional[dict]:
        """The worker's answer, or None if it ran past `timeout` or died (it is then replaced by the spare)."""
        if self.active is None or not self.active.alive():
            self.active, self.spare = (self.spare if self.spare and self.spare.alive() else _Proc()), None
        w = self.active
        try:
            self._wait_ready(w)  # not part of the deadline: only a fresh worker's imports
        except Exception:
            self.active = None
            raise
        if self.spare is None:
            self.spare = _Proc()  # only now, so that its imports do not slow down the active worker's
        try:
            assert w.popen.stdin is not None
            w.popen.stdin.write(json.dumps(req).encode() + b"\n")
            w.popen.stdin.flush()
            res = w.readline(time.monotonic() + timeout)
        except (BrokenPipeError, OSError, ValueError):
            res = None
        if res is None:
            w.kill()
            self.active = None
        return res

    def close(self) -> None:
        if self.pid != os.getpid():
            return  # a forked child's copy: the processes belong to the parent
        for p in (self.active, self.spare):
            if p is not None:
                p.kill()
        self.active = self.spare = None


_local = threading.local()
_ALL: "weakref.WeakSet[_Worker]" = weakref.WeakSet()
atexit.register(lambda: [w.close() for w in list(_ALL)])  # workers also exit on their own when stdin closes


def warm() -> None:
    """Start this thread's math-verify worker (and spare) now rather than on the first call that needs it."""
    _worker().warm()


def _worker() -> _Worker:
    # Per thread (so one slow call never delays another thread) and per process (a forked child must not share
    # its parent's pipes).
    w = getattr(_local, "worker", None)
    if w is None or _local.pid != os.getpid():
        w = _local.worker = _Worker()
        _local.pid = os.getpid()
    return w


# ---------------------------------------------------------------------------------------------- verifier
@_builtin
class BoxedMath(BaseVerifier):
    """Last `\\boxed{}`; exact match after normalization, else math-verify in a worker bounded by timeout_s.
    mode strict (the paper's rule) or lenient; see the module docstring."""

    name = "boxed_math"
    GRADED = ("lenient",)
    PARAMS = {
        "mode": Param(str, "strict", lambda v: v in ("strict", "lenient"), "'strict' or 'lenient'"),
        "timeout_s": Param(float, 3.0, lambda v: 0 < v <= 60, "in (0, 60]"),
    }

    def _setup(self, p: dict) -> None:
        self._lenient_mode = p["mode"] == "lenient"
        self._timeout = p["timeout_s"]

    def _sympy(self, gold: str, pred: str, boxed: bool) -> tuple[Optional[float], float, Optional[str]]:
        """(strict, lenient, what math-verify read); strict None = timed out or too complex (then the third item
        is the reason)."""
        if too_complex(pred) or too_complex(gold):
            return None, 0.0, "too_complex"
        res = _worker().call({"gold": gold, "pred": pred, "boxed": boxed}, self._timeout)
        if res is None:
            return None, 0.0, "timeout"
        return float(res["strict"]), float(res["lenient"]), res.get("got")

    def _judge(self, response: str, answer: str) -> Verdict:
        gold = last_boxed(answer) if ("\\boxed" in answer or "\\fbox" in answer) else None
        gold = (answer if gold is None else gold).strip()
        box = last_boxed(response)
        if box is None:
            strict, lenient, got = self._sympy(gold, response[-TAIL_CHARS:], boxed=False)
            if not self._lenient_mode:
                return Verdict(0.0, None, "no_box", lenient=lenient)
            if strict is None:
                return Verdict(0.0, None, got or "timeout", lenient=0.0)
            return Verdict(lenient, got, "correct" if lenient else ("wrong" if got else "no_box"), lenient=lenient)
        pred, ref = normalize(box), normalize(gold)
        same = True if pred == ref else _plain_equal(pred, ref)
        if same is not None:
            return Verdict(float(same), box, "correct" if same else "wrong", lenient=float(same))
        strict, lenient, got = self._sympy(gold, box, boxed=True)
        if strict is None:
            return Verdict(0.0, box, got or "timeout", lenient=0.0)
        score = lenient if self._lenient_mode else strict
        return Verdict(score, box, "correct" if score else "wrong", lenient=lenient)
