"""The `reasoning_gym` verifier: reasoning-gym's own score_answer on the last <answer>...</answer> of a response (the
data side, and how a sample's answer holds the whole rg entry, is in harness/gym.py)."""

from __future__ import annotations

import copy
import json
import math
from functools import lru_cache
from typing import Any, Optional

from harness.errors import HarnessError
from harness.gym import _key, _unpack, datasets, make_dataset
from harness.verifiers.base import BaseVerifier, Param, Verdict, _builtin


def extract_tag(text: str, tag: str = "answer") -> Optional[str]:
    """reasoning_gym.utils.extract_answer(text, tag) in linear time: matches are non-overlapping, each from an
    opening tag to the first closing tag after it; the last one's content, stripped, or None."""
    op, cl = f"<{tag}>", f"</{tag}>"
    pos, last = 0, None
    while True:
        i = text.find(op, pos)
        if i < 0:
            break
        j = text.find(cl, i + len(op))
        if j < 0:
            break
        last, pos = (i + len(op), j), j + len(cl)
    return None if last is None else text[last[0] : last[1]].strip()


@lru_cache(maxsize=4096)
def _entry(answer: str) -> tuple[Any, dict]:
    try:
        env = json.loads(answer)
        ok = isinstance(env, dict) and {"rg", "config", "answer", "metadata"} <= set(env)
    except ValueError:
        ok = False
    if not ok:
        raise HarnessError(
            f"verifier 'reasoning_gym': the reference answer {answer[:120]!r} is not a reasoning-gym "
            "entry; use it with source.reasoning_gym, and score the 'answer' field that "
            "`harness data export` writes"
        )
    if env["rg"] not in datasets():
        raise HarnessError(
            f"verifier 'reasoning_gym': unknown reasoning-gym dataset '{env['rg']}' in the reference "
            "answer; is this the reasoning-gym version that made the data?"
        )
    ds = make_dataset(env["rg"], _key(env["config"]), 0, 1)
    return ds, {"question": None, "answer": env["answer"], "metadata": _unpack(env["metadata"])}


@_builtin
class ReasoningGymVerifier(BaseVerifier):
    """reasoning-gym's own score: the last <tag>...</tag> of the response, stripped, scored by the dataset's
    score_answer(answer, entry). score 1.0 only when rg says 1.0; Verdict.partial holds rg's score.
    Reasons: correct, partial (0 < rg score < 1), wrong (rg score 0), no_answer (no closed tag),
    too_long (the tagged answer is over max_answer_chars; rg scorers are Python and unbounded),
    scorer_error (score_answer raised on this answer), truncated (require_eos)."""

    name = "reasoning_gym"
    GRADED = ("partial",)
    PARAMS = {
        "tag": Param(str, "answer", lambda v: v.isidentifier(), "a tag name such as 'answer'"),
        "max_answer_chars": Param(int, 10_000, lambda v: v >= 1, "at least 1"),
    }

    def __call__(self, response: str, answer: str, *, truncated: bool = False) -> Verdict:
        v = super().__call__(response, answer, truncated=truncated)
        return v if v.partial is not None else Verdict(v.score, v.extracted, v.reason, partial=0.0)

    def _judge(self, response: str, answer: str) -> Verdict:
        ds, entry = _entry(answer)
        got = extract_tag(response, self._params["tag"])
        if got is None:
            return Verdict(0.0, None, "no_answer", partial=0.0)
        if len(got) > self._params["max_answer_chars"]:
            return Verdict(0.0, got[:200], "too_long", partial=0.0)
        try:
            s = float(ds.score_answer(got, copy.deepcopy(entry)))
        except Exception:  # third-party scorer on model output: never raise
            return Verdict(0.0, got, "scorer_error", partial=0.0)
        s = min(max(s, 0.0), 1.0) if math.isfinite(s) else 0.0
        return Verdict(
            1.0 if s == 1.0 else 0.0, got, "correct" if s == 1.0 else "partial" if s > 0 else "wrong", partial=s
        )
