"""Seeds: every random network has its own ``SeedSequence`` child.

Network ``i`` of a run seeded by ``seed`` always draws from
``SeedSequence(entropy, spawn_key=spawn_key + (i,))``, so results never depend on
how networks are chunked or which worker computes them.

:func:`network_rngs` builds those generators without building the ``SeedSequence``
objects (about a fifth of a sampler's time went there): it runs numpy's SeedSequence
algorithm once for what the children share and vectorized for their own words, and
seeds numpy's PCG64 with the words each child would generate, so every draw is the same.
"""
from __future__ import annotations

import numpy as np
from numpy.random.bit_generator import ISeedSequence


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
    """Generators of networks ``start .. stop-1``: network i's is
    ``default_rng(child(seed, i))``, draw for draw."""
    ss = as_seed_sequence(seed)
    return [np.random.Generator(np.random.PCG64(_Words(w))) for w in child_states(ss, start, stop)]


class _Words(ISeedSequence):
    """A seed sequence handing over words computed beforehand (PCG64 asks once, for 4 uint64)."""

    def __init__(self, words: np.ndarray):
        self.words = words

    def generate_state(self, n_words, dtype=np.uint32):
        return self.words


# numpy's SeedSequence constants (numpy/random/bit_generator.pyx, after M. O'Neill's seed_seq)
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _MASK, _POOL = 0xCA01F9DD, 0x4973F715, 0xFFFFFFFF, 4


def child_states(seed: int | np.random.SeedSequence, start: int, stop: int) -> np.ndarray:
    """``child(seed, i).generate_state(4, np.uint64)`` (PCG64's seed) for i in
    ``start .. stop-1``, as a (stop - start, 4) uint64 array.  numpy's algorithm mixes the
    words of the entropy, then of the spawn key, into the pool in order, each mix stepping a
    hash constant, so the children share the parent's pool (``SeedSequence.pool``) and only
    mix in their index's words: that part runs on arrays (rows: children, columns: pool words)."""
    ss = as_seed_sequence(seed)
    if start < 0 or stop > 2**63:
        raise ValueError(f"network indices must lie in [0, 2**63), got {start!r} .. {stop!r}")
    parent = ss if ss.pool_size == _POOL else np.random.SeedSequence(ss.entropy, spawn_key=ss.spawn_key)
    # the parent's pool took 4 hash steps per word, its entropy padded to the pool size
    steps = _POOL * (max(_POOL, _n_words(ss.entropy)) + _n_words(ss.spawn_key))
    const = (_INIT_A * pow(_MULT_A, steps, 2**32)) & _MASK
    # numpy splits an index into 32-bit words: one below 2**32, two from there on
    out = [np.empty((0, 4), dtype=np.uint64)]
    for n_words, (lo, hi) in enumerate(((start, min(stop, 2**32)), (max(start, 2**32), stop)), start=1):
        if hi <= lo:
            continue
        index = np.arange(lo, hi, dtype=np.uint64)[:, None]
        pool, c = parent.pool[None, :], const
        for k in range(n_words):
            old, new, c = _constants(c, _MULT_A, _POOL)
            word = ((index >> np.uint64(32 * k)) & np.uint64(_MASK)).astype(np.uint32)
            pool = _mix(pool, _hashmix(word, old, new))
        out.append(_generate(pool))
    return np.concatenate(out)


def _constants(const: int, mult: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The next ``n`` values of a running hash constant before and after each step
    (uint32 arrays), and the last."""
    old, new = [], []
    for _ in range(n):
        old.append(const)
        const = (const * mult) & _MASK
        new.append(const)
    return np.array(old, dtype=np.uint32), np.array(new, dtype=np.uint32), const


#: generate_state's hash constants for PCG64's 8 uint32 words (they do not depend on the pool).
_GEN_OLD, _GEN_NEW, _ = _constants(_INIT_B, _MULT_B, 8)


def _n_words(x) -> int:
    """How many uint32 words numpy makes of an entropy or spawn key (an int or a sequence
    of ints, or of decimal or "0x" hex strings): 32 bits each, at least one per int."""
    if isinstance(x, str):
        return _n_words(int(x, 16) if x.startswith("0x") else int(x))
    if isinstance(x, (int, np.integer)):
        return max(1, -(-int(x).bit_length() // 32))
    return sum(_n_words(v) for v in x)


def _hashmix(value, old, new):
    """numpy's ``hashmix`` of uint32 arrays with the hash constant before (``old``) and
    after (``new``) its step."""
    value = (value ^ old) * new
    return value ^ (value >> 16)


def _mix(x, y):
    """numpy's ``mix`` of uint32 arrays."""
    result = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
    return result ^ (result >> 16)


def _generate(pool: np.ndarray) -> np.ndarray:
    """numpy's ``generate_state(4, np.uint64)`` of pools (rows, 4 uint32): 8 words cycling
    over the pool, paired little-endian into uint64."""
    words = _hashmix(pool[:, [0, 1, 2, 3, 0, 1, 2, 3]], _GEN_OLD, _GEN_NEW).astype(np.uint64)
    return words[:, 0::2] | (words[:, 1::2] << np.uint64(32))
