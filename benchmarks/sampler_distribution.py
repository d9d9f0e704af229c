"""Closing-note numbers for the distribution test of tests/test_sampler.py:
for each architecture, the smallest KS p-value and Holm's decision (family-wise
alpha = 1e-3) for exact vs dense and for the two broken samplers vs dense.

Run from the repository root:  python benchmarks/sampler_distribution.py [M]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ntkcheck import sample_init  # noqa: E402
from tests.test_sampler import ARCHS, X3, _broken, _two_sample  # noqa: E402


def main(M: int = 20_000):
    print(f"M = {M} draws per method, KS + Holm at family-wise alpha = 1e-3")
    for name, spec in ARCHS.items():
        dense = sample_init(spec, X3, M, seed=1, method="dense")
        others = {"exact": sample_init(spec, X3, M, seed=2),
                  "unprojected": _broken(spec, X3, M, 3, "unprojected"),
                  "independent W": _broken(spec, X3, M, 4, "independent")}
        for label, other in others.items():
            p, reject = _two_sample(other, dense)
            worst = min(p, key=p.get)
            print(f"{name:7s} {label:14s} vs dense: {len(p)} tests, min p = {p[worst]:.1e} ({worst}), "
                  f"Holm rejects {int(reject.sum())}", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
