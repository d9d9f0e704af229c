"""LaTeX tables of a study (pandas ``Styler.to_latex``, booktabs rules).

Text is escaped for LaTeX except inside ``$...$``, which is kept as math: labels such
as ``$\\hat\\Theta$`` render as formulas, a stray ``H^inf`` or ``50%`` outside math as
text.  The tables need ``\\usepackage{booktabs,amssymb}`` (``\\mathbb``) in the preamble;
every file says so in its first line.
"""
from __future__ import annotations

import re

from .claims import Verdict
from .report import _cell, convergence_frame, fit_line, verdict_frame

PREAMBLE = r"% needs \usepackage{booktabs} and \usepackage{amssymb}"

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
            "\u2014": "---", "\u2013": "--", "\u2264": r"$\leq$", "\u2265": r"$\geq$", "\u00b1": r"$\pm$",
            "\u00d7": r"$\times$", "\u221e": r"$\infty$"}
_TEXT = re.compile("|".join(re.escape(k) for k in _SPECIAL))
_MATH = re.compile(r"(?<!\\)\$(.+?)(?<!\\)\$")


def escape(text) -> str:
    """``text`` as LaTeX: special characters escaped outside ``$...$``; math kept (an
    unpaired ``$`` is escaped as a dollar sign)."""
    text, out, pos = str(text), [], 0
    for m in _MATH.finditer(text):
        out += [_TEXT.sub(lambda t: _SPECIAL[t.group()], text[pos:m.start()]), m.group()]
        pos = m.end()
    out.append(_TEXT.sub(lambda t: _SPECIAL[t.group()], text[pos:]))
    return "".join(out)


def table(df, caption: str = "", label: str | None = None, column_format: str | None = None) -> str:
    """A LaTeX ``table`` of a DataFrame: cells as in the markdown report (4 significant
    digits, yes/no, n/a), every cell and header escaped by :func:`escape`."""
    styler = df.style.hide(axis="index").format(lambda v: escape(_cell(v)))
    styler = styler.format_index(escape, axis=1)
    fmt = column_format or "".join("r" if df[c].dtype.kind in "iuf" else "l" for c in df.columns)
    return styler.to_latex(caption=escape(caption) if caption else None, label=label, position="htbp",
                           position_float="centering", hrules=True, column_format=fmt) + "\n"


def claim_latex(v: Verdict) -> str:
    """The claim's verdict and statistics, a table per convergence series and its detail
    table: never empty."""
    import pandas as pd

    key = re.sub(r"[^\w-]", "-", v.claim)
    verdict = v.status
    stats = pd.DataFrame({"statistic": ["verdict", "false-fail rate", "negative control rejected",
                                        *map(str, v.statistics)],
                          "value": [verdict, v.false_fail_rate, v.negative_control_rejected,
                                    *v.statistics.values()]})
    parts = [PREAMBLE + "\n",
             table(stats, f"{v.claim}: {verdict}. {v.summary}", f"tab:{key}", column_format="lp{0.6\\linewidth}")]
    parts += [table(convergence_frame(c), f"{c.label}. {fit_line(c)}", f"tab:{key}-{i + 1}")
              for i, c in enumerate(v.convergence)]
    if v.table is not None and len(v.table):
        parts.append(table(v.table, f"{v.claim}: details", f"tab:{key}-details"))
    return "\n".join(parts)


def summary_latex(verdicts: dict[str, Verdict], title: str) -> str:
    """One row per claim: verdict, negative control, false-fail rate, summary."""
    df = verdict_frame(verdicts).drop(columns="claim test")
    df["negative control"] = ["rejected" if v.negative_control_rejected else "NOT rejected"
                              for v in verdicts.values()]
    return PREAMBLE + "\n\n" + table(df, title, "tab:summary", column_format="lllrp{0.45\\linewidth}")
