"""ntkcheck's pytest plugin: the ``kernel_checker`` fixture and its command-line options.

Installing ntkcheck registers this module (entry point ``pytest11``), so the fixture needs no
import.  pytest loads it in every run of the environment, ntkcheck's users or not: it imports
nothing but pytest, and :mod:`ntkcheck.testing` (numpy, scipy, the samplers) only when a test
asks for the fixture.

Options: ``--ntkcheck-cache DIR``, the sample cache folder (it wins over ``$NTKCHECK_CACHE``,
which wins over the user cache folder); ``--ntkcheck-seed N``, the checks' seed (default 0:
another seed draws other networks, e.g. to see whether a failure is the stated false-fail rate).
Arguments given in the call win over both.
"""
from __future__ import annotations

import argparse
import functools

import pytest


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _folder(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must be a folder, got ''")
    return text


def pytest_addoption(parser):
    group = parser.getgroup("ntkcheck", "ntkcheck's kernel_checker fixture")
    group.addoption("--ntkcheck-cache", metavar="DIR", type=_folder, default=None,
                    help="folder of the kernel_checker sample cache (default: $NTKCHECK_CACHE, else the user "
                         "cache folder)")
    group.addoption("--ntkcheck-seed", metavar="N", type=_seed, default=0,
                    help="seed of the kernel_checker checks (default 0)")


@pytest.fixture
def kernel_checker(request):
    """:func:`ntkcheck.testing.assert_kernel`, with ``cache`` and ``seed`` from the options
    ``--ntkcheck-cache`` and ``--ntkcheck-seed`` unless the call gives them."""
    from .testing import assert_kernel

    # defaults: the options are not registered when a conftest imports the fixture under -p no:ntkcheck;
    # a partial adds no frame, so a failure's traceback ends at the test's line
    options = request.config.getoption
    return functools.partial(assert_kernel, seed=options("ntkcheck_seed", 0), cache=options("ntkcheck_cache", None))
