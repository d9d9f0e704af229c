"""False-fail rate of :func:`ntkcheck.stats.mean_test` on real network draws.

Narrow one-hidden-layer networks (width 16), whose empirical NTK and post-activation
Gram have an exactly known mean at every width (the analytic kernels), so any excess
rejection is the test's.  For M networks per test and R replications, prints the
rejection rate at nominal 5% and 1% of the Student t rule (Sidak over entries) and of
``mean_test`` (bootstrap-t of the maximum for 10 <= M <= 1000), with the 99.9% binomial
range of a calibrated rate.

    python benchmarks/calibrate_stats.py [R]
"""
import math
import sys

import numpy as np
from scipy import stats as sps

from ntkcheck import MLP, nngp_kernel, ntk_kernel, sample_init, stats
from ntkcheck.data import sphere_inputs


def student_t_pvalue(x, target):
    m = x.shape[0]
    t = np.abs(x.mean(0) - target) / (x.std(0, ddof=1) / math.sqrt(m))
    return -math.expm1(t.size * math.log1p(-min(1.0, 2 * sps.t.sf(t.max(), m - 1))))


def main(r=2000):
    X = sphere_inputs(4, 3, seed=0)
    iu = np.triu_indices(4)
    lo, hi = (sps.binom.ppf(q, r, a) / r for a, q in ((0.05, 5e-4), (0.05, 1 - 5e-4)))
    print(f"R = {r}; a calibrated 5% rate lies in [{lo:.3f}, {hi:.3f}] (99.9%)")
    print(f"{'M':>3s} {'act':5s} {'kernel':6s} {'t 5%':>6s} {'t 1%':>6s} {'mean_test 5%':>12s} {'1%':>6s}")
    for m in (10, 20, 40):
        for act, sw in (("relu", math.sqrt(2)), ("erf", 1.5)):
            spec = MLP(1, 16, act, sw, 0.3)
            s = sample_init(spec, X, r * m, seed=m)
            draws = {"ntk": (s.ntk, ntk_kernel(spec, X)),
                     "post": (s.post_grams[:, 0], (nngp_kernel(spec, X) - 0.3**2) / sw**2)}
            for kind, (d, k) in draws.items():
                d, k = d.reshape(r, m, 4, 4)[:, :, iu[0], iu[1]], k[iu]
                pt = np.array([student_t_pvalue(x, k) for x in d])
                pb = np.array([stats.mean_test(x, k, false_fail_rate=0.05, seed=i).pvalue for i, x in enumerate(d)])
                print(f"{m:3d} {act:5s} {kind:6s} {np.mean(pt <= .05):6.3f} {np.mean(pt <= .01):6.3f} "
                      f"{np.mean(pb <= .05):12.3f} {np.mean(pb <= .01):6.3f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
