"""The convergence table (one row per claim and cell, true minus signs, booktabs), labelled
key numbers, readable names, paper-style figures (single column, no verdict, no
overlapping tick labels) and byte-identical re-runs of ``report``."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from ntkcheck import cli, keynumbers, labels, latex
from ntkcheck.claims import Convergence, Verdict
from ntkcheck.report import PAPER_SIZE, paper_panels, plot_convergence, write_report
from ntkcheck.runner import run_study
from ntkcheck.studies import make_study
from test_report import check_tex

TINY = {"architecture": ["mlp"], "width": [8, 16], "activation": ["relu"], "n_networks": 40, "chunk": 20,
        "control_n_networks": 0}


def series(label: str, x=(16.0, 32.0, 64.0, 128.0, 256.0), exponent=-0.497) -> Convergence:
    x = np.asarray(x)
    y = 0.5 * x**-0.5
    return Convergence(label=label, x=tuple(x), y=tuple(y), lo=tuple(0.9 * y), hi=tuple(1.1 * y),
                       theory_exponent=-0.5, exponent=exponent, exponent_lo=-0.612, exponent_hi=-0.381,
                       log_prefactor=math.log(0.5), fitted=(True,) * len(x), exponent_level=0.9999,
                       y_name=r"$\|\hat\Theta - \Theta\|$")


def verdict(n_cells: int = 2) -> Verdict:
    cells = [series(rf"relative Frobenius error of $\hat\Theta$: cnn-flatten, relu, L={k + 1}, $\sigma_b$=0.1",
                    exponent=-0.4 - 0.01 * k) for k in range(n_cells)]
    control = series(r"negative control, L/n = 0.125: relative Frobenius error of $\hat\Theta$, relu", exponent=0.01)
    return Verdict("ntk-init-convergence", True, "pass: exponents -0.497 [-0.612, -0.381]",
                   {"exponent[cnn-flatten,relu,L=2,sigma_b=0.1]": -0.497}, 0.01, "d", "c", True,
                   (*cells, control))


def test_readable_names():
    assert labels.cell("cnn-flatten,relu,L=2,sigma_b=0.1") == r"CNN (flatten), ReLU, $L = 2$, $\sigma_b = 0.1$"
    assert labels.plain(labels.statistic("exponent[cnn-flatten,relu,L=2,sigma_b=0.1]")) == \
        "exponent: CNN (flatten), ReLU, L = 2, σ_b = 0.1"
    assert labels.quantity("kernel_change") == "kernel change"
    assert labels.quantity("weight_change_layer1") == "weights, layer 1"
    assert labels.split_label("kernel_change: mlp, erf, L=1 (control: mean-field)") == \
        ("kernel change", "MLP, erf, $L = 1$")
    assert labels.number(-0.4966) == "\u22120.497" and labels.fraction(-0.5) == "\u22121/2"
    assert labels.percent(1 - 0.000718 / 60) == "99.9988%" and labels.percent(0.95) == "95%"


def test_one_row_per_claim_and_cell_without_the_control():
    v = verdict(3)
    df = keynumbers.frame({"ntk-init-convergence": v})
    assert list(df.columns) == list(keynumbers.COLUMNS) and len(df) == 3
    assert df["cell"].tolist()[0] == "CNN (flatten), ReLU, L = 1, σ_b = 0.1"
    assert df["width_min"].tolist() == [16.0] * 3 and df["verdict"].eq("PASS").all()
    # the least favourable cell, labelled, theory as a fraction
    assert keynumbers.key_line(v) == ("exponent \u22120.400 [\u22120.612, \u22120.381] (theory \u22121/2), "
                                      "worst of 3 cells")


def numbers_outside_math(tex: str) -> list[str]:
    text = re.sub(r"(?<!\\)\$[^$]*(?<!\\)\$", "", tex)
    return re.findall(r"(?<![\w.-])-\.?\d", "\n".join(line for line in text.splitlines() if not line.startswith("%")))


@pytest.mark.parametrize("n_cells, env", [(2, "table"), (latex.LONG + 1, "longtable")])
def test_convergence_tex_booktabs_true_minus_signs(n_cells, env):
    tex = latex.convergence_latex({"ntk-init-convergence": verdict(n_cells)})
    check_tex(tex)
    assert all(rule in tex for rule in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert f"\\begin{{{env}}}" in tex and tex.count(r"\caption{") == 1
    assert "$-$0.612" in tex and not numbers_outside_math(tex)
    assert r"CNN (flatten), ReLU, $L = 1$, $\sigma_b = 0.1$" in tex


def test_claim_tex_short_captions_readable_rows_true_minus_signs():
    tex = latex.claim_latex(verdict())
    captions = re.findall(r"\\caption\{(.*)\}", tex)
    assert captions and max(map(len, captions)) < 160, captions
    assert "exponent: CNN (flatten), ReLU, $L = 2$, $\\sigma_b = 0.1$" in tex
    assert "$-0.497$" in tex and not numbers_outside_math(tex)


def tick_labels_overlap(fig) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [t.get_window_extent(renderer) for t in axis.get_ticklabels(which="both")
                     if t.get_visible() and t.get_text()]
            if any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]):
                return True
    return False


def test_paper_panels_single_column_no_verdict_no_overlapping_ticks(tmp_path, monkeypatch):
    import ntkcheck.report as report

    drawn = []

    def keep(fig, path):
        drawn.append((fig.get_size_inches(), [t.get_text() for ax in fig.axes for t in (ax.title, *ax.texts)]
                      + [t.get_text() for t in fig.texts], tick_labels_overlap(fig)))
        import matplotlib.pyplot as plt

        plt.close(fig)

    monkeypatch.setattr(report, "save_figure", keep)
    v = verdict()
    for (name, title), c in zip(paper_panels(v), v.convergence):
        report.plot_series(c, tmp_path / f"{name}.png", title)
    plot_convergence(v, tmp_path / "all.png")
    assert [n for n, _ in paper_panels(v)] == ["cnn-flatten-relu-l-1-sigma-b-0.1", "cnn-flatten-relu-l-2-sigma-b-0.1",
                                               "negative-control"]
    for size, texts, overlap in drawn[:-1]:
        assert tuple(size) == PAPER_SIZE
        assert not overlap
        text = re.sub(r"\$[^$]*\$", "", " ".join(texts))               # code names show as "_" outside math
        assert not any(w in text for w in ("PASS", "FAIL", "ntk-init-convergence", "_")), texts
    assert not drawn[-1][2]                                          # the report's panels too


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "out"
    run_study(make_study("quick", claims=["kernel-mean"], seed=1, out=out, overrides={"kernel-mean": TINY}), jobs=1)
    return out


def test_report_writes_the_convergence_table_and_paper_figures_identically_twice(tiny_study):
    files = lambda: {p.relative_to(tiny_study): p.read_bytes() for p in sorted(tiny_study.rglob("*"))  # noqa: E731
                     if p.is_file() and p.suffix in (".csv", ".md", ".tex", ".png") and "tasks" not in p.parts}
    verdicts = write_report(tiny_study, latex=True, style="paper")
    first = files()
    rows = (tiny_study / "convergence.csv").read_text().splitlines()
    assert rows[0] == ",".join(keynumbers.COLUMNS)
    table = pd.read_csv(tiny_study / "convergence.csv")
    assert all(table[c].dtype.kind == "f" for c in ("value", "ci_low", "ci_high", "ci_level", "theory", "width_min"))
    assert len(rows) - 1 == len(keynumbers.key_numbers(verdicts["kernel-mean"])) == 2   # NNGP and NTK of one cell
    assert sorted(p.name for p in (tiny_study / "figures" / "kernel-mean").iterdir()) == \
        ["nngp-mlp-relu-l-2-ntk-parameterization.png", "ntk-mlp-relu-l-2-ntk-parameterization.png"]
    for tex in tiny_study.glob("*.tex"):
        check_tex(tex.read_text())
        assert not numbers_outside_math(tex.read_text()), tex.name
    summary = (tiny_study / "summary.md").read_text()
    assert "intercept" in summary and "(theory 0" in summary and re.search(r"\*\*\d+/\d+ verified", summary)
    write_report(tiny_study, latex=True, style="paper")
    assert files() == first


def test_report_style_flag_and_key_number_column(tiny_study, capsys):
    assert cli.main(["report", str(tiny_study), "--style", "paper"]) in (0, 1, 4)
    out = capsys.readouterr().out
    assert "key number" in out and "intercept " in out
    with pytest.raises(SystemExit) as exc:
        cli.main(["report", str(tiny_study), "--style", "poster"])
    assert exc.value.code == 2


def test_run_writes_the_convergence_table(tmp_path):
    toml = "\n".join(['claims = ["kernel-mean"]', "[grid.kernel-mean]"]
                     + [f"{k} = {v!r}".replace("'", '"') for k, v in TINY.items()])
    (tmp_path / "s.toml").write_text(toml + "\n")
    assert cli.main(["run", str(tmp_path / "s.toml"), "--jobs", "1", "--out", str(tmp_path / "out"), "--latex"]) in (0, 1, 4)
    assert all((tmp_path / "out" / f"convergence.{ext}").is_file() for ext in ("csv", "md", "tex"))
