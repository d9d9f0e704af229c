"""Issue 23's kernel benchmark: the transformer encoder of ``scripts/stax_networks.py`` (2 blocks,
relu MLP) on 64 sequences of length 8 with 8 channels, NNGP and NTK in one call, ntkcheck's
``output_kernels`` against neural-tangents' jitted ``kernel_fn`` (compiled before timing).

neural-tangents is not a dependency: it runs in its own environment (see
scripts/compare_neural_tangents.py for the installation), named by ``--nt-python``:

    python benchmarks/bench_attention.py --nt-python ntref/bin/python [--repeats 15]

Each library runs in its own process, started once, that builds its kernel function, runs it once
(neural-tangents compiles it) and then times one call per request, in wall and in the process's
CPU seconds (all its threads); the driver asks the two in turn (neural-tangents, ntkcheck,
neural-tangents, ...) so that both see the same machine load, and prints every wall time, the
medians and the minima (on a shared machine the minimum is the least disturbed call) with their
ratios ntkcheck / neural-tangents, the same for CPU time, and the largest difference between the
two libraries' kernels (off the diagonal and on it, where relu's derivative kernel is steepest).
Both see the same inputs (a temporary .npy file written by the driver).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def worker(library: str, inputs: str, out: str) -> None:
    """Build the kernel function, compute once (saved to ``out``), then time one call per line of
    stdin and print its wall and CPU seconds."""
    sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
    from stax_networks import transformer
    X = np.load(inputs)
    if library == "neural-tangents":
        import warnings

        from jax import config, jit
        config.update("jax_enable_x64", True)
        warnings.filterwarnings("ignore", message="Linear scaling attention used")
        warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
        from neural_tangents import stax as nt
        fn = jit(transformer(nt, nt.Relu)[2], static_argnames="get")

        def run():
            k = fn(X, None, get=("nngp", "ntk"))
            k.ntk.block_until_ready()
            return np.asarray(k.nngp), np.asarray(k.ntk)
    else:
        from ntkcheck import stax
        from ntkcheck.kernels import output_kernels
        net = transformer(stax, stax.Relu)

        def run():
            k = output_kernels(net, X)
            return k.nngp, k.ntk
    np.save(out, np.stack(run()))
    print("ready", flush=True)
    for _ in sys.stdin:
        t, c = time.perf_counter(), time.process_time()
        run()
        print(time.perf_counter() - t, time.process_time() - c, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nt-python", required=True, help="a Python that has neural-tangents")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "X.npy")
        np.save(inputs, np.random.default_rng(2).standard_normal((64, 8, 8)))
        pythons = {"neural-tangents": args.nt_python, "ntkcheck": sys.executable}
        procs = {}
        for name, python in pythons.items():
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            procs[name] = subprocess.Popen([python, __file__, "--worker", name, inputs, os.path.join(tmp, name + ".npy")],
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                           stderr=subprocess.DEVNULL)
        for name, p in procs.items():
            if p.stdout.readline().strip() != "ready":
                sys.exit(f"the {name} worker failed to start (run it by hand: {pythons[name]} {__file__} "
                         f"--worker {name} X.npy out.npy)")
        times, cpu = {name: [] for name in procs}, {name: [] for name in procs}
        for _ in range(args.repeats):
            for name, p in procs.items():
                p.stdin.write("go\n")
                p.stdin.flush()
                wall, used = map(float, p.stdout.readline().split())
                times[name].append(wall)
                cpu[name].append(used)
        for p in procs.values():
            p.stdin.close()
            p.wait()
        ref, ours = (np.load(os.path.join(tmp, name + ".npy")) for name in procs)
    off = ~np.eye(len(ref[0]), dtype=bool)
    diff = {name: (np.abs(a - b)[off].max() / np.abs(b).max(), np.abs(np.diag(a) - np.diag(b)).max() / np.abs(b).max())
            for name, a, b in zip(("NNGP", "NTK"), ours, ref)}
    print("transformer encoder, 2 blocks, 64 x 8 x 8, NNGP + NTK; wall ms per call, alternating:")
    for name, t in times.items():
        print(f"  {name:16s} " + " ".join(f"{1e3 * x:.0f}" for x in t))
    for clock, values in (("wall", times), ("CPU", cpu)):
        for stat, fn in (("median", statistics.median), ("min", min)):
            nt, ours = fn(values["neural-tangents"]), fn(values["ntkcheck"])
            print(f"{clock} {stat}: neural-tangents (jit) {1e3 * nt:.1f} ms, ntkcheck {1e3 * ours:.1f} ms; "
                  f"ratio ntkcheck / neural-tangents = {ours / nt:.2f}")
    # relu's derivative kernel is steepest at correlation 1, where a rounding of (x, x)'s correlation shows
    print("largest difference relative to the largest entry, off the diagonal / on (x, x): "
          + ", ".join(f"{name} {a:.1e} / {b:.1e}" for name, (a, b) in diff.items()))
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(*sys.argv[2:])
    else:
        main()
