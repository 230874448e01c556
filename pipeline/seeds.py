"""Per-sample randomness: every random choice is drawn from a generator seeded by (run seed, stable keys).

Never Python's ``hash()`` (salted per process); a sha256 of the keys gives the same stream on every machine.
"""

from __future__ import annotations

import hashlib

import numpy as np


def seed_for(seed: int, *keys: object) -> int:
    h = hashlib.sha256(repr((int(seed),) + tuple(str(k) for k in keys)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "little")


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng(seed_for(seed, *keys))
