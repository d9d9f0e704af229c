"""What the installed ntkcheck pytest plugin adds to every pytest run of the environment.

Runs ``python -m pytest -p no:cacheprovider --co -q`` in an empty folder with and without
``-p no:ntkcheck``, interleaved (so that both see the same machine load), and prints each one's
mean +- standard deviation of wall and CPU seconds (user + system of the child: steadier on a
loaded machine) and the differences with their standard errors.  It
measures the plugin the environment has installed (its ``pytest11`` entry point), so run it with
the interpreter of that environment:

    python benchmarks/plugin_import_cost.py [--runs 10]
"""
import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seconds(args: list[str], folder: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``pytest --co`` run."""
    t, c = time.perf_counter(), cpu()
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q", *args], cwd=folder,
                   check=False, capture_output=True)          # exit code 5: no tests collected
    return time.perf_counter() - t, cpu() - c


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    times = {"with the plugin": [], "-p no:ntkcheck": []}
    with tempfile.TemporaryDirectory() as folder:
        seconds([], folder)                                   # warm the file cache
        for _ in range(runs):
            times["with the plugin"].append(seconds([], folder))
            times["-p no:ntkcheck"].append(seconds(["-p", "no:ntkcheck"], folder))
    for i, kind in enumerate(("wall", "CPU")):
        for name, t in times.items():
            t = [x[i] for x in t]
            print(f"{kind} {name}: {statistics.mean(t):.3f} +- {statistics.stdev(t):.3f} s ({runs} runs)")
        diff = [a[i] - b[i] for a, b in zip(*times.values())]
        print(f"{kind} plugin cost: {statistics.mean(diff):+.3f} s +- {statistics.stdev(diff) / runs ** 0.5:.3f} "
              "(standard error)")


if __name__ == "__main__":
    main()
