"""What the installed ntkcheck pytest plugin adds to every pytest run of the environment.

Runs ``python -m pytest -p no:cacheprovider --co -q`` in an empty folder with and without
``-p no:ntkcheck``, interleaved (so that both see the same machine load), and prints each one's
mean +- standard deviation of wall seconds and the difference with its standard error.  It
measures the plugin the environment has installed (its ``pytest11`` entry point), so run it with
the interpreter of that environment:

    python benchmarks/plugin_import_cost.py [--runs 10]
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time


def wall(args: list[str], folder: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q", *args], cwd=folder,
                   check=False, capture_output=True)          # exit code 5: no tests collected
    return time.perf_counter() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    times = {"with the plugin": [], "-p no:ntkcheck": []}
    with tempfile.TemporaryDirectory() as folder:
        wall([], folder)                                      # warm the file cache
        for _ in range(runs):
            times["with the plugin"].append(wall([], folder))
            times["-p no:ntkcheck"].append(wall(["-p", "no:ntkcheck"], folder))
    for name, t in times.items():
        print(f"{name}: {statistics.mean(t):.3f} +- {statistics.stdev(t):.3f} s ({runs} runs)")
    diff = [a - b for a, b in zip(*times.values())]
    print(f"plugin cost: {statistics.mean(diff):+.3f} s +- {statistics.stdev(diff) / runs ** 0.5:.3f} (standard error)")


if __name__ == "__main__":
    main()
