"""LaTeX tables of a study (pandas ``Styler.to_latex``, booktabs rules) and its convergence
table (one row per claim and cell, :mod:`ntkcheck.keynumbers`).

Text is escaped for LaTeX except inside ``$...$``, which is kept as math: labels such
as ``$\\hat\\Theta$`` render as formulas, a stray ``H^inf`` or ``50%`` outside math as
text.  Negative numbers get a true minus sign (``$-$``, never a hyphen).  Tables longer
than :data:`LONG` rows are ``longtable``s (they break across pages).  The tables need
``\\usepackage{booktabs,longtable,amssymb}`` (``\\mathbb``) in the preamble; every file
says so in its first line.
"""
from __future__ import annotations

import re

from . import keynumbers, labels
from .claims import Verdict
from .report import _cell, convergence_frame, verdict_frame

PREAMBLE = r"% needs \usepackage{booktabs}, \usepackage{longtable} and \usepackage{amssymb}"

#: Tables with more rows than this are longtables.
LONG = 30

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
            "\u2014": "---", "\u2013": "--", "\u2264": r"$\leq$", "\u2265": r"$\geq$", "\u00b1": r"$\pm$",
            "\u00d7": r"$\times$", "\u221e": r"$\infty$", labels.MINUS: "$-$", "\u03c3": r"$\sigma$"}
_TEXT = re.compile("|".join(re.escape(k) for k in _SPECIAL))
_MATH = re.compile(r"(?<!\\)\$(.+?)(?<!\\)\$")
# a hyphen that starts a number ("-0.92", "[-1.17, ...]"), not one inside a word or range ("L=2..32", "64-1024")
_HYPHEN_MINUS = re.compile(r"(?<![\w.)\]}-])-(?=\.?\d)")
_EXPONENT = re.compile(r"^(-?[\d.]+)e([+-]\d+)$")


def escape(text) -> str:
    """``text`` as LaTeX: special characters escaped outside ``$...$``; math kept (an
    unpaired ``$`` is escaped as a dollar sign)."""
    text, out, pos = str(text), [], 0
    for m in _MATH.finditer(text):
        out += [_text(text[pos:m.start()]), m.group()]
        pos = m.end()
    out.append(_text(text[pos:]))
    return "".join(out)


def _text(text: str) -> str:
    return _HYPHEN_MINUS.sub("$-$", _TEXT.sub(lambda t: _SPECIAL[t.group()], text))


def number(v) -> str:
    """A table cell as in the markdown report (:func:`ntkcheck.report._cell`), numbers in
    math: a true minus sign, ``1.2e-05`` as ``$1.2 \\times 10^{-5}$``."""
    text = _cell(v)
    m = _EXPONENT.match(text)
    if m:
        return f"${m.group(1)} \\times 10^{{{int(m.group(2))}}}$"
    return f"${text}$" if re.fullmatch(r"-[\d.]+", text) else escape(text)


def table(df, caption: str = "", label: str | None = None, column_format: str | None = None) -> str:
    """A LaTeX ``table`` of a DataFrame: cells as in the markdown report (4 significant
    digits, yes/no, n/a), every cell and header escaped by :func:`escape`."""
    styler = df.style.hide(axis="index").format(number)
    styler = styler.format_index(escape, axis=1)
    fmt = column_format or "".join("r" if df[c].dtype.kind in "iuf" else "l" for c in df.columns)
    if len(df) > LONG:
        return styler.to_latex(caption=escape(caption) if caption else None, label=label, hrules=True,
                               column_format=fmt, environment="longtable") + "\n"
    return styler.to_latex(caption=escape(caption) if caption else None, label=label, position="htbp",
                           position_float="centering", hrules=True, column_format=fmt) + "\n"


def claim_latex(v: Verdict) -> str:
    """The claim's verdict and statistics, a table per convergence series and its detail
    table: never empty."""
    import pandas as pd

    key = re.sub(r"[^\w-]", "-", v.claim)
    verdict = v.status
    stats = pd.DataFrame({"statistic": ["verdict", "summary", "false-fail rate", "negative control rejected",
                                        *map(labels.statistic, map(str, v.statistics))],
                          "value": [verdict, v.summary, v.false_fail_rate, v.negative_control_rejected,
                                    *v.statistics.values()]})
    parts = [PREAMBLE + "\n",
             table(stats, f"{v.claim}: verdict ({verdict}) and statistics", f"tab:{key}",
                   column_format="lp{0.6\\linewidth}")]
    parts += [table(convergence_frame(c), f"{labels.title(c.label, v.claim)}: "
                    f"{keynumbers.describe(keynumbers.from_series(c, v.claim))}", f"tab:{key}-{i + 1}")
              for i, c in enumerate(v.convergence)]
    if v.table is not None and len(v.table):
        parts.append(table(v.table, f"{v.claim}: details", f"tab:{key}-details"))
    return "\n".join(parts)


def summary_latex(verdicts: dict[str, Verdict], title: str) -> str:
    """One row per claim: verdict, negative control, false-fail rate, key number."""
    df = verdict_frame(verdicts).drop(columns=["claim test", "summary"])
    df["negative control"] = ["rejected" if v.negative_control_rejected else "NOT rejected"
                              for v in verdicts.values()]
    return PREAMBLE + "\n\n" + table(df, title, "tab:summary", column_format="lllrp{0.45\\linewidth}")


def convergence_latex(verdicts: dict[str, Verdict]) -> str:
    """The convergence table (:func:`ntkcheck.keynumbers.display_frame`'s rows): under a
    header per claim and quantity (with the verdict and the intervals' level), one row per
    cell -- measured value, interval, theory, widths; a longtable beyond :data:`LONG` rows."""
    head = r"Cell & Statistic & Measured & Interval & Theory & Widths \\"
    body, n = [], 0
    for c, v in verdicts.items():
        groups: dict = {}
        for k in keynumbers.key_numbers(v):
            groups.setdefault((k.quantity, labels.percent(k.level)), []).append(k)
        for (quantity, level), ks in groups.items():
            body += [r"\addlinespace" if body else "",
                     rf"\multicolumn{{6}}{{l}}{{\textbf{{{escape(c)}}} ({v.status}): "
                     rf"{escape(quantity)}, {escape(level)} intervals}} \\"]
            for k in ks:
                body.append(" & ".join([escape(k.cell) or "---", escape(k.name), escape(labels.number(k.value)),
                                        escape(keynumbers.interval_text(k)), escape(keynumbers.theory_text(k)),
                                        escape(keynumbers.widths_text(k)) or "---"]) + r" \\")
                n += 1
    body = [b for b in body if b]
    caption = (r"\caption{Convergence to the infinite-width theory: measured key numbers, their intervals "
               r"and the theory's values.}\label{tab:convergence}")
    if n > LONG:
        lines = [r"\begin{longtable}{llllll}", caption + r" \\", r"\toprule", head, r"\midrule", r"\endfirsthead",
                 r"\toprule", head, r"\midrule", r"\endhead", r"\bottomrule", r"\endlastfoot", *body,
                 r"\end{longtable}"]
    else:
        lines = [r"\begin{table}[htbp]", r"\centering", caption, r"\begin{tabular}{llllll}", r"\toprule", head,
                 r"\midrule", *body, r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return PREAMBLE + "\n\n" + "\n".join(lines) + "\n"
