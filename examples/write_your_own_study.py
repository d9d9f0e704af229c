"""Write your own study: a TOML file overriding a claim's grid, run it, read the results back.

Every key a study file may set, with its meaning and per-budget default, is in
docs/studies.md (or ``ntkcheck list --grid kernel-mean``).  Runs in ~10 s.

    python examples/write_your_own_study.py [FOLDER]
"""
import sys
import tempfile
from pathlib import Path

import ntkcheck as nc

folder = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="ntkcheck-study-"))
study_file = folder / "tanh.toml"
study_file.parent.mkdir(parents=True, exist_ok=True)
study_file.write_text("""\
budget = "quick"
seed = 1
claims = ["kernel-mean"]
out = "tanh"                      # relative to this file

[grid.kernel-mean]                # kernel means of tanh MLPs of depth 3, MLP cells only
architecture = ["mlp"]
activation = ["tanh"]
depth = [3]
width = [64, 256, 1024]
n_networks = 1024
chunk = 512
""")

study = nc.load_study(study_file)                   # validated before any work
result = nc.run_study(study, jobs=1)                # resumable: run it again and nothing is recomputed
print(f"{result.n_run} tasks run in {result.wall_time:.1f} s")

res = nc.load_results(study.out)                    # verdicts and tidy rows, from the CSVs only
print(res)
v = res.verdicts["kernel-mean"]
print(v.status, "-", v.summary[:160], "...")
print(res.frames["kernel-mean"].groupby(["width", "quantity"]).value.mean().unstack().iloc[:, :4])
