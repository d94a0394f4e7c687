"""Procedural data generators, by registered name. A generator is a pure function

    generate(*, seed, split, index, partition=(k, K), **params) -> dict

returning the sample's fields (question, answer, level, traces, metadata). Users add their own with
`GENERATORS.register("name")(fn)` from a plugin module (see harness.plugins).
"""

from harness.generators.rng import seeded_rng  # noqa: F401  (re-exported)
from harness.registry import Registry

GENERATORS: Registry = Registry("generator")


def _register_builtins() -> None:
    from harness.generators import countdown, kk

    GENERATORS.register("kk")(kk.generate)
    GENERATORS.register("countdown")(countdown.generate)


_register_builtins()
