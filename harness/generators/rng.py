"""The seeded random stream every generator draws from (its own module, so generators need not import the package
that registers them)."""

import hashlib
import random


def seeded_rng(*parts) -> random.Random:
    """A Random seeded by the sha256 of the parts joined with '|': sample streams are pure functions of them."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest, "big"))
