"""Reproduce a theorem: the empirical NTK converges to Theta at rate width^(-1/2) (Jacot et
al. 2018, Thm 1), with its negative control, as ``ntkcheck verify`` does for one claim,
then the convergence table and the log-log figure.  Runs in ~15 s.

    python examples/reproduce_a_theorem.py [FOLDER]
"""
import sys
import tempfile
from pathlib import Path

import ntkcheck as nc
from ntkcheck.report import convergence_frame, plot_convergence

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ntkcheck-theorem-"))
study = nc.make_study("quick", claims=["ntk-init-convergence"], seed=0, out=folder,
                      overrides={"ntk-init-convergence": {"architecture": ["mlp"], "activation": ["relu"]}})
verdict = nc.run_study(study, jobs=1).verdicts["ntk-init-convergence"]
print(verdict)                                      # PASS: the claim holds and its control is rejected
print(verdict.detectable)
for series in verdict.convergence:                  # the claim's cell, then the negative control
    print(f"\n{series.label}\nfitted exponent {series.exponent:.3f} "
          f"[{series.exponent_lo:.3f}, {series.exponent_hi:.3f}], theory {series.theory_exponent}")
    print(convergence_frame(series).to_string(index=False))
plot_convergence(verdict, folder / "ntk-init-convergence.png")
print(f"\nfigure: {folder / 'ntk-init-convergence.png'}")
