"""Assertions for kernel authors: is my function the NNGP/NTK of this network?

::

    from ntkcheck.testing import assert_kernel
    assert_kernel(my_ntk, MLP(3, 1, "relu", 2 ** 0.5, 0.1), X, kind="ntk")

:func:`assert_kernel` runs :func:`ntkcheck.check.check_kernel` and raises
``AssertionError`` naming the worst entry when it fails.  The candidate is
evaluated and validated before any network is sampled.  Samples of networks are
cached on disk, keyed by the spec, the inputs, the kind, the seed and the
design options, so a suite that re-runs its checks pays for the sampling once:
the cache directory is ``cache=`` if given, else the environment variable
``NTKCHECK_CACHE``, else the user cache directory (``$XDG_CACHE_HOME/ntkcheck``,
``~/.cache/ntkcheck``; ``~/Library/Caches/ntkcheck`` on macOS,
``%LOCALAPPDATA%\\ntkcheck\\Cache`` on Windows); ``cache=False`` turns it off.
Each entry carries a checksum: a damaged or truncated one is redrawn; a cache that
cannot be written gives a :class:`CacheWarning` and the check runs without it.
A stax network is keyed by its ``repr`` with the hidden channel counts set to 1
(the design chooses the widths, so networks that differ only there share a
sample).  Specs and networks with a custom activation object are never cached
(their functions have no stable key).

For pytest, installing ntkcheck registers the fixture ``kernel_checker`` (the plugin
:mod:`ntkcheck.pytest_plugin`, with the options ``--ntkcheck-cache DIR`` and
``--ntkcheck-seed N``); no import is needed::

    def test_my_ntk(kernel_checker):
        kernel_checker(my_ntk, spec, X, kind="ntk")

A failure's traceback ends at the test's line (``__tracebackhide__``), not in ntkcheck.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import pathlib
import sys
import tempfile
import warnings

import numpy as np

from . import __version__, stax
from .check import (ROUNDOFF, KernelCheckDesign, KernelSample, _inputs, candidate_kernel, sample_kernel,
                    two_stage_test)
from .seeding import as_seed_sequence
from .spec import MLP
from .stats import TestResult

ENV = "NTKCHECK_CACHE"
#: Bumped when the cache file's layout, the cached arrays or the sampler's law of them change.
CACHE_FORMAT = 5
#: A cache file is a header line (format, checksum) followed by an npz: not an npz itself.
SUFFIX = ".sample"
#: sample_kernel options that change the sample (``jobs`` does not).
_DESIGN_OPTIONS = ("false_pass_rate", "discrepancy", "widths", "n_networks", "max_networks", "method")


class CacheWarning(UserWarning):
    """The sample cache cannot be written: the check runs without it."""


def default_cache_dir() -> pathlib.Path:
    """``NTKCHECK_CACHE`` if set, else the platform's user cache directory + ``ntkcheck``."""
    if os.environ.get(ENV):
        return pathlib.Path(os.environ[ENV]).expanduser()
    home = pathlib.Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "ntkcheck"
    if os.name == "nt":
        return pathlib.Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "ntkcheck" / "Cache"
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache") / "ntkcheck"


def _fields(spec) -> dict | None:
    """What identifies the law of the sampled networks, or None (custom activation, not a network)."""
    if isinstance(spec, stax.Layer):
        if not all(isinstance(layer.name, str) for layer in stax.layers(spec) if isinstance(layer, stax.Activation)):
            return None
        try:
            return {"network": repr(stax.with_width(spec, 1))}
        except ValueError:            # not a network check_kernel accepts: sample_kernel says why
            return None
    if not isinstance(spec, MLP) or not isinstance(spec.activation, str):
        return None
    return {"depth": spec.depth, "activation": spec.activation, "sigma_w": spec.sigma_w, "sigma_b": spec.sigma_b,
            "parameterization": spec.parameterization, "d_out": spec.d_out, "output_scale": spec.output_scale}


def cache_key(spec: MLP | stax.Layer, X, kind: str, false_fail_rate: float, seed, options: dict) -> str | None:
    """Hex digest naming a sample, or None when the spec cannot be keyed (custom activation)."""
    fields = _fields(spec)
    if fields is None:
        return None
    ss = as_seed_sequence(seed)
    X = np.ascontiguousarray(X, dtype=float)
    design = {k: options.get(k) for k in _DESIGN_OPTIONS}
    design["widths"] = None if design["widths"] is None else [int(w) for w in design["widths"]]
    text = json.dumps({"format": CACHE_FORMAT, "version": __version__, "spec": fields, "kind": kind,
                       "false_fail_rate": float(false_fail_rate), "design": design,
                       "seed": [str(ss.entropy), [int(k) for k in ss.spawn_key]]}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    digest.update(repr(X.shape).encode())
    digest.update(X.tobytes())
    return digest.hexdigest()


def _header(key: str, payload: bytes) -> bytes:
    """First line of a cache file: the format and a SHA-256 of the key and the npz payload after it
    (so a damaged, truncated or renamed file is told from a good one before it is parsed)."""
    digest = hashlib.sha256(key.encode() + b"\n" + payload).hexdigest()
    return f"ntkcheck check_kernel sample, format {CACHE_FORMAT}, sha256 {digest}\n".encode()


def _load(path: pathlib.Path, key: str, spec, X: np.ndarray, kind: str) -> KernelSample | None:
    """The cached sample, or None if missing, unreadable or failing its checksum (then it is redrawn)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, newline, payload = data.partition(b"\n")
    if header + newline != _header(key, payload):
        return None
    with np.load(io.BytesIO(payload), allow_pickle=False) as f:
        draws, means, design = f["draws"], f["width_means"], json.loads(str(f["design"]))
    design = KernelCheckDesign(**{**design, "widths": tuple(design["widths"])})
    return KernelSample(spec, X, kind, draws, design, means)


def _save(path: pathlib.Path, key: str, sample: KernelSample) -> None:
    """Write via a temporary file and a rename: a crash never leaves a half-written entry."""
    design = {**sample.design.__dict__, "widths": list(sample.design.widths)}
    buffer = io.BytesIO()
    np.savez(buffer, draws=sample.draws, width_means=sample.width_means, design=json.dumps(design))
    payload = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(_header(key, payload) + payload)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def cached_sample_kernel(spec: MLP | stax.Layer, X, kind: str = "ntk", false_fail_rate: float = 1e-3, seed=0, *,
                         cache=None, **options) -> KernelSample:
    """:func:`ntkcheck.check.sample_kernel`, read from / written to the on-disk cache.

    cache : directory, None (the default directory, see the module docstring) or
        False (no cache).  The result is identical with or without the cache.
        A missing, damaged or truncated entry (each file carries a checksum) is
        redrawn and rewritten; a cache that cannot be written (read-only, full,
        a file where the folder should be) gives a :class:`CacheWarning` and
        the sample is used uncached.
    """
    if not (cache is None or cache is False or isinstance(cache, (str, os.PathLike)) and os.fspath(cache)):
        raise ValueError(f"cache must be a folder, None (the default folder) or False (no cache), got {cache!r}")
    X = _inputs(spec, X)
    key = None if cache is False else cache_key(spec, X, kind, false_fail_rate, seed, options)
    if key is None:
        return sample_kernel(spec, X, kind, false_fail_rate, seed, **options)
    folder = default_cache_dir() if cache is None else pathlib.Path(cache)
    path = folder / f"check_kernel-{key}{SUFFIX}"
    sample = _load(path, key, spec, X, kind)
    if sample is None:
        sample = sample_kernel(spec, X, kind, false_fail_rate, seed, **options)
        try:
            _save(path, key, sample)
        except OSError as err:
            why = "it is a file, not a folder" if os.path.isfile(folder) else err
            warnings.warn(f"ntkcheck: the check_kernel cache {folder} cannot be written ({why}); the check ran "
                          f"without it (set cache= or ${ENV} to a writable folder, or cache=False)", CacheWarning,
                          stacklevel=3)
    return sample


def _entry_text(result: TestResult) -> str:
    """The worst entry of one stage's kernel test."""
    d = result.details
    k = d["worst_entry"][0]
    i, j = d["worst_pair"]
    if d["zero_variance"][k]:
        rows, cols = d["index"]
        missed = d["zero_variance"] & (np.abs(d["relative_error"]) > ROUNDOFF)
        names = ", ".join(f"K[{r}, {c}]" for r, c in zip(rows[missed], cols[missed]))
        worst = (f"the same {d['mean'][k]:.6g} in every sampled network (zero sampled variance), so it is exact: "
                 f"compared with a round-off allowance of {ROUNDOFF:.2g} of that scale.\nEntries with zero sampled "
                 f"variance the candidate misses: {names}")
    else:
        worst = f"sampled mean {d['mean'][k]:.6g} +- {result.stderr[k]:.2g} (standard error), t = {d['t'][k]:.3g}"
    design = d["design"]
    return (f"worst entry K[{i}, {j}]: candidate {d['candidate'][k]:.6g}, relative error "
            f"{d['relative_error'][k]:+.3%} of sqrt(K[{i},{i}] K[{j},{j}]); {worst}.\n"
            f"{design.n_networks} pairs of networks of widths {design.widths}, extrapolated in 1/width; "
            f"detects a relative error of {result.detectable:.3g} with probability >= {1 - result.false_pass_rate:g}.")


def _seed_text(seed) -> str:
    """A seed as the user would type it."""
    if not isinstance(seed, np.random.SeedSequence):
        return repr(seed)
    return f"np.random.SeedSequence({seed.entropy}, spawn_key={tuple(int(k) for k in seed.spawn_key)})"


def failure_message(result: TestResult) -> str:
    """What a failed kernel check found and what to do next: each stage's p-value, seed and worst entry
    (a two-stage check, :func:`ntkcheck.check.two_stage_test`) or the one test's worst entry."""
    if "stages" not in result.details:
        return (f"{result.name} failed: p = {result.pvalue:.3g} <= false-fail rate {result.false_fail_rate:g}.\n"
                + _entry_text(result))
    first, second = result.details["stages"]
    seeds = [_seed_text(s) for s in result.details["stage_seeds"]]
    level = result.details["stage_rates"][0]
    return (f"{result.name} failed: p = {result.pvalue:.3g} <= false-fail rate {result.false_fail_rate:g}, confirmed "
            f"on an independent seed: the candidate differs from the sampled networks' mean kernel in both of two "
            f"independent samples (p = {first.pvalue:.3g} with seed={seeds[0]}, then p = {second.pvalue:.3g} with "
            f"seed={seeds[1]}, each <= {level:.3g}; a correct kernel fails both with probability "
            f"{result.false_fail_rate:g}).\n"
            f"First stage: {_entry_text(first)}\nConfirmation: {_entry_text(second)}\n"
            f"Next: to reproduce, rerun with seed={seeds[0]} (cached samples are reused); to see every entry, "
            f"ntkcheck.check_kernel with the same arguments returns this result: details['relative_error'] "
            f"(details['index'] names the entries; details['stages'][1] is the confirmation's).")


def _log_plan(plan) -> None:
    logging.getLogger("ntkcheck").info("%s", plan)


def assert_kernel(candidate, spec: MLP | stax.Layer, X, kind: str = "ntk", false_fail_rate: float = 1e-3, seed=0, *,
                  cache=None, notify=_log_plan, **options) -> TestResult:
    """Assert that ``candidate`` is the infinite-width ``kind`` kernel of ``spec`` (an MLP or a
    :mod:`ntkcheck.stax` network) on X.

    candidate : (N, N) array, callable ``(X1, X2)``, or a neural-tangents
        ``kernel_fn(x1, x2, get)``; validated (shape, real values, symmetry,
        finiteness) before any sampling.
    cache : see :func:`cached_sample_kernel`; each stage's sample is cached under its own seed.
    notify : called with each sample's :class:`~ntkcheck.check.KernelCheckPlan` (widths,
        estimated pairs and seconds) before its bulk is drawn; default: an INFO record on the
        ``ntkcheck`` logger, which pytest shows live with ``--log-cli-level=INFO`` and
        with the report of a failing test (a cached sample draws nothing and states nothing).
    options : as :func:`ntkcheck.check.check_kernel`, including ``max_seconds``.

    Two stages (:func:`ntkcheck.check.two_stage_test`): a first-stage failure is confirmed
    on an independent seed before the assertion fails.  Returns the (passed)
    :class:`~ntkcheck.stats.TestResult`; raises ``AssertionError`` (:func:`failure_message`)
    when the check fails, which happens with probability about ``false_fail_rate`` for a
    correct kernel.
    """
    __tracebackhide__ = True          # pytest: a failure shows the caller's line, not this function
    X = _inputs(spec, X)
    cand = candidate_kernel(candidate, X, kind)       # a typo fails here, before a second of sampling
    b = options.pop("false_pass_rate", 1e-3)

    def draw(a_stage, b_stage, stage_seed, stage):
        return cached_sample_kernel(spec, X, kind, a_stage, stage_seed, cache=cache, false_pass_rate=b_stage,
                                    notify=notify, stage=stage, **options)

    result = two_stage_test(cand, draw, false_fail_rate, seed, b)
    if not result.passed:
        raise AssertionError(failure_message(result))
    return result


try:        # the fixture, for conftest files that import it (the plugin registers it without)
    from .pytest_plugin import kernel_checker  # noqa: F401
except ImportError:        # pytest is optional
    pass
