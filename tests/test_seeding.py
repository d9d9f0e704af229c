"""network_rngs builds numpy's own generators without SeedSequence objects: draw for draw the same."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ntkcheck.claims import task_seed
from ntkcheck.seeding import child, child_states, network_rngs

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)

entropies = st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**128 - 1), st.integers(0, 2**200),
                      st.lists(st.integers(0, 2**70), min_size=1, max_size=6))
keys = st.lists(st.one_of(st.integers(0, 2**32 - 1), st.integers(0, 2**64)), max_size=5).map(tuple)
# ranges inside 2**32 and across it (from there on an index is two words)
ranges = st.one_of(st.tuples(st.integers(0, 5000), st.integers(0, 12)),
                   st.tuples(st.integers(2**32 - 6, 2**32 + 3), st.integers(0, 8)),
                   st.tuples(st.integers(2**40, 2**62), st.integers(0, 4)))


def _same(seed, start, stop):
    ours = network_rngs(seed, start, stop)
    theirs = [np.random.default_rng(child(seed, i)) for i in range(start, stop)]
    assert len(ours) == len(theirs) == max(0, stop - start)
    for a, b in zip(ours, theirs):
        assert a.bit_generator.state == b.bit_generator.state
        assert np.array_equal(a.standard_normal(3), b.standard_normal(3))
        assert np.array_equal(a.integers(0, 2**63, 3), b.integers(0, 2**63, 3))


@SETTINGS
@given(entropies, keys, ranges)
def test_network_rngs_are_numpys_seedsequence_children(entropy, key, r):
    _same(np.random.SeedSequence(entropy, spawn_key=key), r[0], r[0] + r[1])


@SETTINGS
@given(st.integers(0, 2**31), st.text(min_size=1, max_size=8), st.integers(0, 300), st.integers(0, 40))
def test_network_rngs_of_task_seeds(seed, key, start, n):
    _same(task_seed(seed, "claim", key), start, start + n)


def test_network_rngs_of_other_seeds():
    _same(7, 0, 5)                                            # an int seed
    _same(np.random.SeedSequence(), 3, 9)                     # fresh 128-bit entropy
    _same(np.random.SeedSequence(3, pool_size=8), 0, 4)       # children use the default pool
    _same(np.random.SeedSequence(["0x1234567890abcdef1", "77"], spawn_key=("5", 2**33)), 0, 3)
    _same(np.random.SeedSequence(np.arange(7, dtype=np.uint32), spawn_key=(1,)), 10, 13)
    assert child_states(0, 4, 4).shape == (0, 4)
    with pytest.raises(ValueError, match="network indices"):
        network_rngs(0, -1, 2)
