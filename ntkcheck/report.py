"""Reports: verdict tables, convergence tables (markdown, LaTeX) and log-log figures,
rebuilt from the stored CSVs without recomputing any network.

For each claim of a study folder ``report`` writes ``<claim>.md`` (verdict, statistics,
one convergence table per :class:`~ntkcheck.claims.Convergence` series, the claim's detail
table), ``<claim>.tex`` on request, ``<claim>.png`` (one log-log panel per series: points
with their intervals, fitted power law with its band, the theory's slope for reference,
the Monte Carlo resolution and the negative control; every interval is labelled with the
confidence level the claim states in the series) and the claim's own
figure ``<claim>-figure.png`` if it has one; ``summary.md`` lists the verdicts.
"""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from scipy.stats import norm

from .claims import Convergence, Verdict, get_claim
from .store import Store


def _cell(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "n/a" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def markdown_table(df) -> str:
    """A GitHub markdown table of a DataFrame (numbers to 4 significant digits)."""
    esc = lambda s: str(s).replace("|", "\\|")
    lines = ["| " + " | ".join(esc(c) for c in df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(esc(_cell(v)) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def latex_table(df, caption: str = "") -> str:
    """A LaTeX ``tabular`` of a DataFrame (booktabs rules)."""
    esc = lambda s: str(s).replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
    lines = [r"\begin{table}[h]", r"\centering", r"\begin{tabular}{" + "r" * len(df.columns) + "}",
             r"\toprule", " & ".join(esc(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(_cell(v)) for v in row) + r" \\" for row in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + esc(caption) + "}")
    return "\n".join(lines + [r"\end{table}"]) + "\n"


def percent(level: float) -> str:
    """A confidence level as a percentage: 0.95 -> '95%', 0.99875 -> '99.88%'."""
    return f"{100 * level:.4g}%"


def _z(level: float) -> float:
    """Two-sided normal quantile of a confidence level."""
    return float(norm.isf((1 - level) / 2))


def convergence_frame(c: Convergence):
    """One row per x: measured error, its interval, MC resolution, control, in fit."""
    import pandas as pd

    cols = {c.x_name: [int(x) if float(x).is_integer() else x for x in c.x], c.y_name: c.y,
            f"{percent(c.level)} low": c.lo, f"{percent(c.level)} high": c.hi}
    if c.floor is not None:
        cols["MC resolution"] = c.floor
    if c.control is not None:
        cols["vs negative control"] = c.control
    if c.fitted:
        cols["in fit"] = c.fitted
    return pd.DataFrame(cols)


def fit_line(c: Convergence) -> str:
    """The fitted exponent next to the theory's, or why there is none."""
    if math.isfinite(c.exponent):
        return (f"fitted exponent {c.exponent:.3f} ({percent(c.exponent_level)} CI "
                f"[{c.exponent_lo:.3f}, {c.exponent_hi:.3f}]), "
                f"theory {c.theory_exponent:g}")
    return (f"fitted exponent: n/a (fewer than 3 points resolve the error above the Monte Carlo "
            f"resolution), theory {c.theory_exponent:g}")


def verdict_frame(verdicts: dict[str, Verdict]):
    """One row per claim: claim verdict, negative control, false-fail rate, summary."""
    import pandas as pd

    return pd.DataFrame([{"claim": c, "verdict": "PASS" if v.verified else "FAIL",
                          "claim test": "pass" if v.passed else "fail",
                          "negative control": "rejected (as it should)" if v.negative_control_rejected
                          else "NOT rejected (check is defective)",
                          "false-fail rate": v.false_fail_rate, "summary": v.summary}
                         for c, v in verdicts.items()])


def claim_markdown(v: Verdict) -> str:
    claim = get_claim(v.claim)
    parts = [f"# {v.claim}: {claim.title}", "", claim.statement, "",
             "Sources: " + "; ".join(claim.sources), "",
             f"**Verdict: {'PASS' if v.verified else 'FAIL'}** - {v.summary}", "",
             f"- false-fail rate: {v.false_fail_rate}", f"- detects: {v.detectable}",
             f"- negative control: {v.negative_control}: "
             f"{'rejected' if v.negative_control_rejected else 'NOT rejected'}", "",
             "| statistic | value |", "|---|---|"]
    parts += [f"| {k} | {_cell(val)} |" for k, val in v.statistics.items()]
    for c in v.convergence:
        parts += ["", f"## {c.label}", "", fit_line(c), "", markdown_table(convergence_frame(c))]
    if v.table is not None:
        parts += ["", "## Details", "", markdown_table(v.table)]
    return "\n".join(parts) + "\n"


def claim_latex(v: Verdict) -> str:
    return "".join(latex_table(convergence_frame(c), f"{c.label}. {fit_line(c)}") for c in v.convergence)


def convergence_png(v: Verdict) -> bytes:
    """One log-log panel per convergence series (see the module docstring), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(v.convergence)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4 * rows), squeeze=False)
    for ax, c in zip(axes.flat, v.convergence):
        x, y = np.asarray(c.x, float), np.asarray(c.y, float)
        lo, hi = np.asarray(c.lo, float), np.asarray(c.hi, float)
        ax.set_xscale("log")
        ax.set_yscale("log", nonpositive="clip")
        ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", color="C0", capsize=3, label=f"measured ({percent(c.level)})")
        if c.floor is not None:
            ax.plot(x, c.floor, ":", color="gray", label=f"MC resolution ({_z(c.level):.3g} SE)")
        if c.control is not None:
            ax.plot(x, c.control, "x", color="C3", label="vs negative control")
        xs = np.geomspace(x.min(), x.max(), 50)
        if math.isfinite(c.exponent):
            ax.plot(xs, np.exp(c.log_prefactor) * xs**c.exponent, "-", color="C1",
                    label=f"fit: slope {c.exponent:.2f}")
            if c.fit_cov is not None:
                A = np.stack([np.ones_like(xs), np.log(xs)], axis=1)
                half = _z(c.exponent_level) * np.sqrt(np.einsum("ij,jk,ik->i", A, np.asarray(c.fit_cov), A))
                mid = c.log_prefactor + c.exponent * np.log(xs)
                ax.fill_between(xs, np.exp(mid - half), np.exp(mid + half), color="C1", alpha=0.2)
        anchor = int(np.argmax(c.fitted)) if any(c.fitted) else 0
        ax.plot(xs, y[anchor] * (xs / x[anchor]) ** c.theory_exponent, "--", color="k",
                label=f"theory slope {c.theory_exponent:g}")
        ax.set_xlabel(c.x_name)
        ax.set_ylabel(c.y_name, fontsize=8)
        ax.set_title(c.label, fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    fig.suptitle(f"{v.claim}: {'PASS' if v.verified else 'FAIL'}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write_report(out: str | Path, verdicts: dict[str, Verdict] | None = None,
                 latex: bool = False) -> dict[str, Verdict]:
    """Write tables and figures for every claim of the study folder ``out``; returns the
    verdicts (recomputed from the CSVs when not given)."""
    with Store(out) as store:
        meta = store.open_existing()
        claims = meta["study"]["claims"]
        if verdicts is None:
            verdicts = {c: _judge(store, c) for c in claims}
        root = Path(out)
        for c, v in verdicts.items():
            store.write_file(root / f"{c}.md", claim_markdown(v))
            if latex:
                store.write_file(root / f"{c}.tex", claim_latex(v))
            if v.convergence:
                store.write_file(root / f"{c}.png", convergence_png(v))
            figure = get_claim(c).figure
            if figure is not None:
                df = store.read_claim(c)
                store.write_drawn(root / f"{c}-figure.png", lambda tmp: figure(df, v, tmp))
        summary = [f"# Study {meta.get('name', root.name)} (budget {meta['study'].get('budget')}, "
                   f"seed {meta['study'].get('seed')})", "",
                   markdown_table(verdict_frame(verdicts).drop(columns="summary")), ""]
        summary += [f"- [{c}]({c}.md): {v.summary}" for c, v in verdicts.items()]
        store.write_file(root / "summary.md", "\n".join(summary) + "\n")
    return verdicts


def _judge(store: Store, claim: str) -> Verdict:
    """The verdict of a claim from its stored CSV.  A CSV the manifest vouches for is
    intact, so an error judging it is a bug; one adopted from an older folder may be
    damaged, so an error names the file instead."""
    df = store.read_claim(claim)
    if not store.adopted(store.claim_path(claim)):
        return get_claim(claim).verdict(df)
    try:
        return get_claim(claim).verdict(df)
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as err:
        raise ValueError(f"{store.claim_path(claim)}: cannot judge {claim} from it "
                         f"({type(err).__name__}: {err}); is it damaged? re-run the study to rebuild it") from None
