"""Verifiers: pure, time-bounded functions `(response, answer) -> Verdict(score, extracted, reason)`.

The same verifier object is the RL reward, the re-distillation filter and the evaluation metric,
so it must never raise on a response and must return quickly on anything a model (or an attacker)
can emit. Built-ins use only linear-time patterns; the user-supplied `regex` verifier runs under
the `regex` package's timeout. Responses longer than `max_chars` (default 1,000,000) are judged
on their LAST `max_chars` characters: the answer is expected at the end, and this bounds the work.

YAML names a verifier by its registered name and passes params (`get_verifier(name, params)`);
unknown or ill-typed params are a HarnessError naming the parameter and listing the valid ones.
Users add their own with `VERIFIERS.register("name")(factory)`.

Layout: base.py (Verdict, Param, BaseVerifier, the registry, get_verifier), builtin.py (kk_boxed, exact, regex,
numeric, choice), countdown.py, boxed_math.py, gym.py (reasoning_gym); each imports base (boxed_math also
builtin's numbers_match, gym the data side harness/gym.py), never this package.

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
                                    (harness/verifiers/countdown.py, with its own reasons)
    boxed_math(mode, timeout_s)     last \\boxed{...} (nested braces, \\fbox, "\\boxed 5"): exact after light
                                    normalization, else math-verify in a worker process killed at
                                    timeout_s (harness/verifiers/boxed_math.py); mode strict|lenient, the
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

# The built-in families register themselves on import.
from harness.verifiers import boxed_math, builtin, countdown, gym  # noqa: F401,E402
from harness.verifiers.base import VERIFIERS, BaseVerifier, Param, Verdict, Verifier, get_verifier  # noqa: F401

__all__ = ["Verdict", "Verifier", "VERIFIERS", "get_verifier", "BaseVerifier"]
