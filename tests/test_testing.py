"""ntkcheck.testing: assert_kernel's messages, validation before sampling, the sample cache, the fixture."""
import errno
import logging
import math
import os
import time

import numpy as np
import pytest

import ntkcheck.testing as testing
from ntkcheck import MLP, nngp_kernel, ntk_kernel
from ntkcheck.check import stage_rates
from ntkcheck.testing import assert_kernel, cache_key, cached_sample_kernel, default_cache_dir

SPEC = MLP(2, 1, "erf", 1.5, 0.3)
X = np.random.default_rng(0).standard_normal((5, 3))
FAST = dict(discrepancy=0.2, widths=(16, 128))


def test_pass_returns_a_truthy_result_and_failure_names_the_worst_entry(tmp_path):
    ntk = ntk_kernel(SPEC, X)
    res = assert_kernel(ntk, SPEC, X, cache=tmp_path, **FAST)
    assert res and res.passed
    wrong = ntk.copy()
    wrong[1, 3] = wrong[3, 1] = ntk[1, 3] + 0.5 * math.sqrt(ntk[1, 1] * ntk[3, 3])
    with pytest.raises(AssertionError) as err:
        assert_kernel(wrong, SPEC, X, cache=tmp_path, **FAST)
    text = str(err.value)
    assert "K[1, 3]" in text and f"candidate {wrong[1, 3]:.6g}" in text and "+-" in text
    assert "relative error +" in text and "false-fail rate 0.001" in text
    # both stages, their seeds, and what to do next
    assert "confirmed on an independent seed" in text and "with seed=0, then p = " in text
    assert "with seed=np.random.SeedSequence(0, spawn_key=(4,))" in text and "each <= 0.0316" in text
    assert "First stage: worst entry K[1, 3]" in text and "Confirmation: worst entry K[1, 3]" in text
    assert "Next: to reproduce, rerun with seed=0" in text and "details['relative_error']" in text


def test_the_plan_is_logged_before_sampling_and_a_cached_sample_states_nothing(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="ntkcheck"):
        assert assert_kernel(ntk_kernel(SPEC, X), SPEC, X, cache=tmp_path, seed=5, **FAST)
        ((record),) = caplog.records
        assert record.name == "ntkcheck" and record.levelno == logging.INFO
        assert record.getMessage().startswith("check_kernel first stage: ~") and "widths (16, 128)" in record.getMessage()
        caplog.clear()
        assert assert_kernel(ntk_kernel(SPEC, X), SPEC, X, cache=tmp_path, seed=5, **FAST)
        assert not caplog.records


def test_failure_names_the_entries_with_zero_sampled_variance(tmp_path):
    spec, X1 = MLP(1, 1, "relu", math.sqrt(2), 0.0), np.array([[1.7], [-0.72], [-1.0], [-2.1]])
    ntk = ntk_kernel(spec, X1)
    scale = math.sqrt(ntk[0, 0] * ntk[3, 3])
    for size in (1e-12, 0.01):
        cand = ntk.copy()
        cand[0, 3] = cand[3, 0] = size * scale
        cand[0, 2] = cand[2, 0] = size * scale / 4
        if size < 1e-8:
            assert assert_kernel(cand, spec, X1, cache=tmp_path, discrepancy=0.1)
            continue
        with pytest.raises(AssertionError) as err:
            assert_kernel(cand, spec, X1, cache=tmp_path, discrepancy=0.1)
    text = str(err.value)
    assert "worst entry K[0, 3]" in text and "zero sampled variance" in text and "t = inf" not in text
    assert "the candidate misses: K[0, 2], K[0, 3]." in text


def test_cache_is_reused_and_keyed(tmp_path):
    ntk = ntk_kernel(SPEC, X)
    first = assert_kernel(ntk, SPEC, X, cache=tmp_path, seed=3, **FAST)
    files = list(tmp_path.glob("check_kernel-*.sample"))
    assert len(files) == 1
    t0 = time.perf_counter()
    again = assert_kernel(ntk, SPEC, X, cache=tmp_path, seed=3, **FAST)
    assert time.perf_counter() - t0 < 1.0
    assert again.pvalue == first.pvalue and np.array_equal(again.stderr, first.stderr)
    uncached = assert_kernel(ntk, SPEC, X, cache=False, seed=3, **FAST)
    assert uncached.pvalue == first.pvalue
    a, b = stage_rates(1e-3, 1e-3)                  # the first stage's sample, cached under the call's seed
    key = cache_key(SPEC, X, "ntk", a, 3, {**FAST, "false_pass_rate": b})
    assert files[0].name == f"check_kernel-{key}.sample"
    others = [cache_key(SPEC, X, "ntk", 1e-3, 4, FAST), cache_key(SPEC, X + 1e-9, "ntk", 1e-3, 3, FAST),
              cache_key(SPEC, X, "nngp", 1e-3, 3, FAST), cache_key(SPEC, X, "ntk", 1e-2, 3, FAST),
              cache_key(SPEC, X, "ntk", 1e-3, 3, {**FAST, "discrepancy": 0.3}),
              cache_key(MLP(2, 1, "erf", 1.5, 0.2), X, "ntk", 1e-3, 3, FAST)]
    assert len({key, *others}) == 7
    # jobs, notify and max_seconds do not change the sample
    assert cache_key(SPEC, X, "ntk", a, 3, {**FAST, "false_pass_rate": b, "jobs": 2, "notify": print,
                                            "max_seconds": 60}) == key


def counting_sampler(monkeypatch) -> list:
    """Count the draws cached_sample_kernel makes (a cache hit makes none)."""
    calls, sample = [], testing.sample_kernel

    def counted(*args, **kwargs):
        calls.append(1)
        return sample(*args, **kwargs)

    monkeypatch.setattr(testing, "sample_kernel", counted)
    return calls


def test_damaged_cache_entry_is_redrawn(tmp_path, monkeypatch):
    calls = counting_sampler(monkeypatch)
    first = cached_sample_kernel(SPEC, X, cache=tmp_path, **FAST)
    (path,) = tmp_path.glob("check_kernel-*.sample")
    good = path.read_bytes()
    other = tmp_path / "other"
    cached_sample_kernel(SPEC, X, cache=other, seed=1, **FAST)
    (foreign,) = other.glob("*.sample")
    flipped = bytearray(good)
    flipped[-len(good) // 3] ^= 1
    damaged = {"empty": b"", "truncated": good[:len(good) // 2], "cut short by 10 bytes": good[:-10],
               "not an npz": b"not an npz", "one bit flipped": bytes(flipped),
               "another key's entry": foreign.read_bytes(), "no header": good[good.index(b"\n") + 1:]}
    for name, content in damaged.items():
        path.write_bytes(content)
        calls.clear()
        again = cached_sample_kernel(SPEC, X, cache=tmp_path, **FAST)
        assert calls == [1] and np.array_equal(again.draws, first.draws), name
        assert path.read_bytes() == good, name                                  # rewritten whole
        assert np.array_equal(cached_sample_kernel(SPEC, X, cache=tmp_path, **FAST).draws, first.draws)
        assert calls == [1], name                                               # then read, not redrawn
    assert not list(tmp_path.glob(".tmp-*"))


class FullDisk:
    """os.fdopen's file on a full disk: every write fails with ENOSPC."""

    def __init__(self, fd, mode):
        self.fd = fd

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")


def read_only(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


def test_unwritable_cache_falls_back_to_no_cache_with_a_warning(tmp_path, monkeypatch):
    reference = cached_sample_kernel(SPEC, X, cache=False, **FAST)
    blocker = tmp_path / "a-file"
    blocker.write_text("not ntkcheck's")
    cases = {"a file, not a folder": ("it is a file, not a folder", {"cache": blocker}),
             "the same via NTKCHECK_CACHE": ("it is a file, not a folder", {"env": blocker}),
             "below a file": ("Not a directory", {"cache": blocker / "sub"}),
             "read-only": ("Permission denied", {"cache": tmp_path / "ro", "patch": ("tempfile.mkstemp", read_only)}),
             "full": ("No space left", {"cache": tmp_path / "full", "patch": ("os.fdopen", FullDisk)})}
    for name, (why, how) in cases.items():
        with monkeypatch.context() as m:
            if "env" in how:
                m.setenv("NTKCHECK_CACHE", str(how["env"]))
            if "patch" in how:
                m.setattr(f"ntkcheck.testing.{how['patch'][0]}", how["patch"][1])
            with pytest.warns(testing.CacheWarning, match=f"cannot be written \\(.*{why}.*without it"):
                sample = cached_sample_kernel(SPEC, X, cache=how.get("cache"), **FAST)
        assert np.array_equal(sample.draws, reference.draws), name
    assert blocker.read_text() == "not ntkcheck's"                             # never touched
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a-file", "full", "ro"]      # no temporary files left
    for bad in (True, "", 0):
        with pytest.raises(ValueError, match="cache must be a folder"):
            cached_sample_kernel(SPEC, X, cache=bad, **FAST)


def test_candidate_is_checked_before_sampling(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("sampled before validating the candidate")

    monkeypatch.setattr(testing, "sample_kernel", never)
    with pytest.raises(ValueError, match="shape"):
        assert_kernel(lambda a, b: np.eye(4), SPEC, X, cache=tmp_path)
    with pytest.raises(ValueError, match="symmetric"):
        assert_kernel(np.triu(np.ones((5, 5))), SPEC, X, cache=tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        assert_kernel(np.full((5, 5), np.inf), SPEC, X, cache=tmp_path)
    with pytest.raises(ValueError, match="imaginary part"):
        assert_kernel(ntk_kernel(SPEC, X) * (1 + 5j), SPEC, X, cache=tmp_path)
    assert not list(tmp_path.iterdir())


def test_neural_tangents_kernel_fn(tmp_path):
    calls = []

    def kernel_fn(x1, x2=None, get=None):
        calls.append((x2, get))
        return (ntk_kernel if get == "ntk" else nngp_kernel)(SPEC, x1, x2)

    assert assert_kernel(kernel_fn, SPEC, X, kind="nngp", cache=tmp_path, **FAST)
    assert calls == [(None, "nngp")]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NTKCHECK_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NTKCHECK_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    if default_cache_dir().parent == tmp_path / "x":           # Linux and other XDG platforms
        assert default_cache_dir() == tmp_path / "x" / "ntkcheck"
    assert default_cache_dir().is_absolute()


def test_fixture(kernel_checker, monkeypatch, tmp_path):
    monkeypatch.setenv("NTKCHECK_CACHE", str(tmp_path))
    assert kernel_checker(ntk_kernel(SPEC, X), SPEC, X, **FAST)
    assert len(list(tmp_path.glob("check_kernel-*.sample"))) == 1
