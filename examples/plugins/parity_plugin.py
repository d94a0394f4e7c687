"""An example harness plugin: the `parity` verifier and the `bit_parity` generator (see README.md here).

A plugin registers what it defines when it is imported; nothing else is needed. Load this one with
`--plugin examples/plugins/parity_plugin.py`, with `HARNESS_PLUGINS=examples/plugins/parity_plugin.py`, or through an
entry point in the group `harness.plugins` of an installed package.
"""

import hashlib
import re

from harness.errors import HarnessError
from harness.generators import GENERATORS, seeded_rng
from harness.verifiers import VERIFIERS, BaseVerifier, Param, Verdict

PARITIES = ("even", "odd")


@VERIFIERS.register("parity")
class ParityVerifier(BaseVerifier):
    """The last "even" or "odd" of the response, as a whole word, equals the answer.

    Reasons: correct, wrong, no_parity (neither word), and truncated (with require_eos). Linear time: one scan."""

    name = "parity"
    PARAMS = {"case_sensitive": Param(bool, False)}

    def _setup(self, p: dict) -> None:
        self._word = re.compile(r"\b(even|odd)\b", 0 if p["case_sensitive"] else re.IGNORECASE)

    def _judge(self, response: str, answer: str) -> Verdict:
        truth = answer.strip().lower()
        if truth not in PARITIES:  # bad task data, not a bad response: say so instead of scoring 0
            raise HarnessError(f"verifier 'parity': the answer must be 'even' or 'odd', got {answer!r}; fix the data")
        last = None
        for last in self._word.finditer(response):
            pass
        if last is None:
            return Verdict(0.0, None, "no_parity")
        said = last.group(1)
        return Verdict(1.0, said, "correct") if said.lower() == truth else Verdict(0.0, said, "wrong")


@GENERATORS.register("bit_parity")
def bit_parity(
    *,
    seed: int,
    split: str,
    index: int,
    partition: tuple[int, int] = (0, 1),
    length: list[int] | tuple[int, int] = (8, 12),
) -> dict:
    """A random bit string of `length` [min, max] bits (the level, balanced over consecutive indices). Split k of K
    keeps the strings whose sha256 is k modulo K, so procedural splits never share a string."""
    lo, hi = length
    if not 1 <= lo <= hi:
        raise ValueError(f"length must be [min, max] with 1 <= min <= max, got {length!r}")
    k, parts = partition
    n = lo + index % (hi - lo + 1)
    for attempt in range(1000):
        rng = seeded_rng("bit_parity", seed, split, index, attempt)
        bits = "".join(rng.choice("01") for _ in range(n))
        if int(hashlib.sha256(bits.encode()).hexdigest(), 16) % parts == k:
            break
    ones = bits.count("1")
    answer = PARITIES[ones % 2]
    return {
        "question": " ".join(bits),
        "answer": answer,
        "level": n,
        "metadata": {"key": bits, "ones": ones},
        "traces": {"short": f"Count the 1s: there are {ones}. {ones} is {answer}.\n{answer}"},
    }
