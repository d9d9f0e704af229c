"""Seeds: every random network has its own ``SeedSequence`` child.

Network ``i`` of a run seeded by ``seed`` always draws from
``SeedSequence(entropy, spawn_key=spawn_key + (i,))``, so results never depend on
how networks are chunked or which worker computes them.
"""
from __future__ import annotations

import numpy as np


def as_seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer or a SeedSequence, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def child(seed: int | np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """The child of ``seed`` at spawn key ``key`` (same as repeated ``spawn``)."""
    ss = as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + tuple(int(k) for k in key))


def network_rngs(seed: int | np.random.SeedSequence, start: int, stop: int) -> list[np.random.Generator]:
    """Generators of networks ``start .. stop-1``."""
    return [np.random.default_rng(child(seed, i)) for i in range(start, stop)]
