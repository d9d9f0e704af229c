"""Reports: convergence series carry a drawable fit, figures in every format, LaTeX that
compiles (balanced math, escaped text, never empty)."""
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ntkcheck import latex
from ntkcheck.claims import Convergence, Verdict, all_claims, get_claim
from ntkcheck.report import FORMATS, plot_convergence
from ntkcheck.store import Store

STANDARD = Path(__file__).resolve().parents[1] / "results" / "standard"


@pytest.mark.skipif(not (STANDARD / "metadata.json").is_file(), reason="no committed standard results")
def test_every_fitted_series_has_a_finite_prefactor():
    store = Store(STANDARD)
    seen = 0
    # the claims of the committed run (a claim registered since appears when the results are regenerated)
    committed = json.loads((STANDARD / "metadata.json").read_text())["runs"][-1]["verdicts"]
    for claim_id in (c for c in all_claims() if c in committed):
        v = get_claim(claim_id).verdict(store.read_claim(claim_id))
        for c in v.convergence:
            if math.isfinite(c.exponent):
                seen += 1
                assert math.isfinite(c.log_prefactor), (claim_id, c.label)
                assert c.exponent_lo <= c.exponent <= c.exponent_hi, (claim_id, c.label)
    assert seen >= 20


def series(bound: bool) -> Convergence:
    x = np.array([64.0, 256.0, 1024.0, 4096.0])
    y = 0.5 * x**-0.5
    return Convergence(label=r"error of $\hat\Theta$: relu, L=1 (control: $1.05\,H^\infty$) " * 2, x=tuple(x),
                       y=tuple(y), lo=tuple(0.8 * y), hi=tuple(1.2 * y), theory_exponent=-0.5, exponent=-0.52,
                       exponent_lo=-0.6, exponent_hi=-0.45, log_prefactor=math.log(0.5) + 0.1,
                       fitted=(True,) * 4, control=tuple(0 * y + 0.3), y_name=r"$\|\hat\Theta - \Theta\|$",
                       exponent_level=0.999, bound=bound)


def verdict() -> Verdict:
    table = pd.DataFrame({"width": [64, 256], "rate_error": [0.1, np.nan], "note": ["50% & H^inf", "a_b #1"]})
    return Verdict("ntk-init-convergence", True, "pass: |z| <= 2.5, 100% of H^inf entries ~ ok {x}", {"max |z|": 2.5, "p_value": 0.3},
                   0.01, "1%", "x1.03 kernel", True, (series(False), series(True)), table)


def test_figures_in_every_format(tmp_path):
    for fmt in FORMATS:
        plot_convergence(verdict(), tmp_path / f"k.{fmt}")
        assert (tmp_path / f"k.{fmt}").stat().st_size > 1000
    assert (tmp_path / "k.pdf").read_bytes()[:4] == b"%PDF" and b"<svg" in (tmp_path / "k.svg").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pdf", "k.png", "k.svg"]   # no temporaries left


@pytest.mark.parametrize("text, expected", [
    ("H^inf 50% a_b & #1 {x} ~ \\ <= |z|", r"H\textasciicircum{}inf 50\% a\_b \& \#1 \{x\} \textasciitilde{} "
                                           r"\textbackslash{} \textless{}= \textbar{}z\textbar{}"),
    (r"error of $\hat\Theta_0$ at 50%", r"error of $\hat\Theta_0$ at 50\%"),
    ("costs $5", r"costs \$5"),
    ("a \u2264 b \u2014 c", r"a $\leq$ b --- c"),
])
def test_escape(text, expected):
    assert latex.escape(text) == expected


def outside_math(tex: str) -> str:
    return re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$", "", tex)


def check_tex(tex: str) -> None:
    """Balanced math, braces and environments; every LaTeX special character in text
    escaped; every table row (tabular or longtable; not a caption or a spanning header)
    with one ``&`` per column boundary."""
    assert tex.strip()
    assert len(re.findall(r"(?<!\\)\$", tex)) % 2 == 0
    text = outside_math(tex)
    for line in text.splitlines():
        if line.startswith("%"):
            continue   # a comment
        for ch in "^_%#~":
            assert all(line[m.start() - 1] == "\\" for m in re.finditer(re.escape(ch), line)), (ch, line)
    for body in re.findall(r"\\begin\{(tabular|longtable)\}\{((?:[^{}]|\{[^{}]*\})*)\}(.*?)\\end\{\1\}", text, re.S):
        n_cols = len(re.sub(r"\{[^}]*\}", "", body[1]))
        rows = [r for r in body[2].splitlines() if r.endswith("\\\\") and not re.match(r"\\(caption|multicolumn)", r)]
        assert rows and all(len(re.findall(r"(?<!\\)&", r)) == n_cols - 1 for r in rows), body
    tables = r"\\begin\{(tabular|longtable)\}.*?\\end\{\1\}"
    assert len(re.findall(r"(?<!\\)&", re.sub(tables, "", text, flags=re.S))) == 0
    assert len(re.findall(r"(?<!\\)\{", text)) == len(re.findall(r"(?<!\\)\}", text))
    for env in ("table", "tabular", "longtable"):
        assert text.count(f"\\begin{{{env}}}") == text.count(f"\\end{{{env}}}")


def test_claim_and_summary_latex_are_balanced_and_escaped():
    v = verdict()
    claim_tex, summary_tex = latex.claim_latex(v), latex.summary_latex({"kernel-mean": v}, "Study s_1 (100%)")
    for tex in (claim_tex, summary_tex):
        check_tex(tex)
    assert r"$\hat\Theta$" in claim_tex and r"H\textasciicircum{}inf" in claim_tex and r"(100\%)" in summary_tex
    no_series = Verdict("critical-lr", True, "s", {}, 0.0, "d", "c", True)
    check_tex(latex.claim_latex(no_series))                      # never empty: the verdict table


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX engine")
def test_latex_compiles(tmp_path):
    v = verdict()
    body = latex.claim_latex(v) + latex.summary_latex({"kernel-mean": v}, "Study s_1")
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{amssymb}\n\\begin{document}\n"
           + body + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
