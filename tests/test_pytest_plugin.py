"""ntkcheck.pytest_plugin: imports nothing heavy, registers the fixture and its options, and a failure's
traceback ends at the test's line."""
import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

import ntkcheck.pytest_plugin as plugin
import ntkcheck.testing as testing

pytest_plugins = ["pytester"]

ROOT = pathlib.Path(__file__).resolve().parents[1]
# -p no:ntkcheck then the module: the same plugin whatever the installed entry point's metadata says
PLUGIN = ("-p", "no:ntkcheck", "-p", "ntkcheck.pytest_plugin", "-p", "no:cacheprovider")
HEAVY = ("numpy", "scipy", "scipy.stats", "pandas", "matplotlib", "jinja2", "tqdm", "ntkcheck.check")

# the user's test module: one small check (a cached sample) in the fixture and in assert_kernel
USER_TESTS = '''
import numpy as np
from ntkcheck import MLP, ntk_kernel
from ntkcheck.testing import assert_kernel

SPEC, X, FAST = MLP(1, 1, "erf", 1.5, 0.3), np.linspace(-1, 1, 6).reshape(3, 2), dict(discrepancy=0.3, widths=(8, 32))


def test_fixture_uses_the_options(kernel_checker):
    assert kernel_checker(ntk_kernel(SPEC, X), SPEC, X, **FAST)


def test_fixture_fails_at_the_users_line(kernel_checker):
    kernel_checker(2 * ntk_kernel(SPEC, X), SPEC, X, **FAST)  # USER LINE A


def test_assert_kernel_fails_at_the_users_line():
    assert_kernel(2 * ntk_kernel(SPEC, X), SPEC, X, cache=CACHE, seed=SEED, **FAST)  # USER LINE B
'''


def imported_after(statement: str) -> set:
    """Modules of HEAVY that ``statement`` imports in a fresh interpreter (after pytest itself)."""
    code = f"import sys, pytest; {statement}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_plugin_and_package_import_nothing_heavy():
    assert imported_after("import ntkcheck.pytest_plugin") == set()
    assert imported_after("import ntkcheck; ntkcheck.__version__") == set()
    # the testing path: numpy and scipy, never the report stack
    assert imported_after("import ntkcheck.testing") == {"numpy", "scipy", "scipy.stats", "ntkcheck.check"}


def test_package_names_resolve_on_first_use():
    # a submodule imported first (as a claim imports it) does not replace the public name it shares
    code = ("import types, ntkcheck.linearized, ntkcheck; from ntkcheck import linearized; "
            "assert not isinstance(linearized, types.ModuleType) and ntkcheck.linearized is linearized; "
            "from ntkcheck.linearized import residual_modes; assert ntkcheck.residual_modes is residual_modes")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    import ntkcheck
    for name in ntkcheck.__all__:
        assert getattr(ntkcheck, name) is not None and name in dir(ntkcheck), name
    assert ntkcheck.stax.Conv and ntkcheck.stats.holm is ntkcheck.holm
    with pytest.raises(AttributeError, match="module 'ntkcheck' has no attribute 'no_such_name'"):
        ntkcheck.no_such_name


def test_entry_point_is_the_thin_module():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        entry = tomllib.load(fh)["project"]["entry-points"]["pytest11"]
    assert entry == {"ntkcheck": "ntkcheck.pytest_plugin"}
    assert testing.kernel_checker is plugin.kernel_checker      # conftest files that import it get the same


def run_user_tests(pytester, *args, seed: int, cache=None):
    pytester.makepyfile(test_user=USER_TESTS.replace("SEED", str(seed)).replace("CACHE", repr(str(cache))))
    return pytester.runpytest(*PLUGIN, *args)


def test_options_and_tracebacks(pytester, monkeypatch, tmp_path):
    env_dir, opt_dir = tmp_path / "env", tmp_path / "opt"
    monkeypatch.setenv("NTKCHECK_CACHE", str(env_dir))
    # -rN: no short summary (under CI=true pytest prints it untruncated, repeating each message)
    result = run_user_tests(pytester, "-rN", f"--ntkcheck-cache={opt_dir}", "--ntkcheck-seed=7", seed=7,
                            cache=opt_dir)
    result.assert_outcomes(passed=1, failed=2)
    assert len(list(opt_dir.glob("check_kernel-*.sample"))) == 2 and not env_dir.exists()   # the option wins
    text = result.stdout.str()
    assert text.count("failed: p = ") == 2 and text.count("with seed=7,") == 2                # the seed option
    assert "USER LINE A" in text and "USER LINE B" in text
    # the traceback stops at the user's line: no line of ntkcheck's source
    for source in ("raise AssertionError(failure_message(result))", "kernel_test(cand", "def assert_kernel"):
        assert source not in text
    result = run_user_tests(pytester, "-k", "options", seed=0)                        # the defaults
    result.assert_outcomes(passed=1)
    assert len(list(env_dir.iterdir())) == 1                                          # $NTKCHECK_CACHE


def test_fixture_imported_by_a_conftest_without_the_plugin(pytester, tmp_path):
    """-p no:ntkcheck: the options are not registered; a conftest's import still gives the fixture."""
    pytester.makeconftest("from ntkcheck.testing import kernel_checker  # noqa: F401")
    pytester.makepyfile(test_user=f"""
def test_defaults(kernel_checker):
    assert kernel_checker.keywords == {{"seed": 0, "cache": None}}
""")
    pytester.runpytest("-p", "no:ntkcheck", "-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize("option, message", [("--ntkcheck-seed=-1", "must be an integer >= 0, got '-1'"),
                                             ("--ntkcheck-seed=x", "must be an integer >= 0, got 'x'"),
                                             ("--ntkcheck-cache=", "must be a folder")])
def test_bad_options_are_usage_errors(pytester, option, message):
    result = pytester.runpytest(*PLUGIN, option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
