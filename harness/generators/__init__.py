"""Procedural data generators, by registered name. A generator is a pure function

    generate(*, seed, split, index, partition=(k, K), **params) -> dict

returning the sample's fields (question, answer, level, traces, metadata). Users add their own with
`GENERATORS.register("name")(fn)` from a plugin module (see harness.plugins).
"""

import hashlib
import random

from harness.registry import Registry

GENERATORS: Registry = Registry("generator")


def seeded_rng(*parts) -> random.Random:
    """A Random seeded by the sha256 of the parts joined with '|': sample streams are pure functions of them."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))


def _register_builtins() -> None:
    from harness.generators import countdown, kk

    GENERATORS.register("kk")(kk.generate)
    GENERATORS.register("countdown")(countdown.generate)


_register_builtins()
