"""Key numbers: one labelled number per (claim, cell) -- the convergence table of a study
(written by :mod:`ntkcheck.report`, the ``.tex`` by :mod:`ntkcheck.latex`) and the one-line key number of
each claim in ``summary.md`` and the CLI table.

A claim's key numbers are its ``key_numbers`` hook's (none for a verdict without its
details ``table``), else the fitted exponent of each of its
:class:`~ntkcheck.claims.Convergence` series (a negative control's series are the
control's, not the claim's, and are left out).
"""
from __future__ import annotations

import math

from . import labels
from .claims import Convergence, KeyNumber, Verdict, get_claim

#: Columns of ``convergence.csv``, in this order.
COLUMNS = ("claim", "cell", "quantity", "statistic", "value", "ci_low", "ci_high", "ci_level", "theory",
           "theory_is_bound", "theory_margin", "width_min", "width_max", "n_widths", "verdict")


def from_series(c: Convergence, claim: str = "") -> KeyNumber:
    """The fitted exponent of a convergence series, named by its label's quantity and cell."""
    quantity, cell = labels.split_label(c.label, claim)
    return KeyNumber(cell=cell, quantity=quantity, name="exponent", value=c.exponent, lo=c.exponent_lo,
                     hi=c.exponent_hi, level=c.exponent_level, theory=c.theory_exponent, bound=c.bound,
                     widths=tuple(float(x) for x in c.x) if c.x_name == "width" else ())


def key_numbers(v: Verdict) -> tuple[KeyNumber, ...]:
    """The claim's key numbers (module docstring)."""
    hook = get_claim(v.claim).key_numbers
    if hook is not None:
        # hooks read the claim's details table; a verdict built without one has no key numbers
        return tuple(hook(v)) if v.table is not None else ()
    return tuple(from_series(c, v.claim) for c in v.convergence if not c.label.startswith("negative control"))


def theory_text(k: KeyNumber) -> str:
    """"−1/2", "≤ −1/2" for a bound, "0 ± 0.2" for an equivalence claim."""
    margin = f" \u00b1 {k.margin:g}" if k.margin else ""
    return ("\u2264 " if k.bound else "") + labels.fraction(k.theory) + margin


def interval_text(k: KeyNumber) -> str:
    return f"[{labels.number(k.lo)}, {labels.number(k.hi)}]"


def widths_text(k: KeyNumber) -> str:
    """"64–8192 (8)": the range of widths and how many; "" without widths."""
    if not k.widths:
        return ""
    if len(k.widths) == 1:
        return f"{k.widths[0]:g}"
    return f"{min(k.widths):g}\u2013{max(k.widths):g} ({len(k.widths)})"


def describe(k: KeyNumber) -> str:
    """"exponent −0.497 [−0.612, −0.381] (theory −1/2)"."""
    value = "" if not math.isfinite(k.value) else f" {labels.number(k.value)}"
    return f"{k.name}{value} {interval_text(k)} (theory {theory_text(k)})"


def _distance(k: KeyNumber) -> float:
    """How far the theory lies from the measured value, in half-widths of its interval
    (for a bound: how far above it); unmeasured numbers come last."""
    half = (k.hi - k.lo) / 2
    if not (math.isfinite(k.value) and half > 0):
        return -math.inf
    return (k.value - k.theory) / half if k.bound else (abs(k.value - k.theory) - k.margin) / half


def key_line(v: Verdict) -> str:
    """The claim's worst key number, labelled: the one whose theory value lies farthest from
    the measurement, e.g. "exponent −0.465 [−0.585, −0.346] (theory −1/2), worst of 6
    cells"; "" without key numbers."""
    numbers = key_numbers(v)
    if not numbers:
        return ""
    worst = labels.plain(describe(max(numbers, key=_distance)))
    return worst + (f", worst of {len(numbers)} cells" if len(numbers) > 1 else "")


def frame(verdicts: dict[str, Verdict]):
    """The convergence table: one row per (claim, cell), :data:`COLUMNS`."""
    import pandas as pd

    rows = [{"claim": c, "cell": labels.plain(k.cell), "quantity": k.quantity, "statistic": k.name,
             "value": k.value, "ci_low": k.lo, "ci_high": k.hi, "ci_level": k.level, "theory": k.theory,
             "theory_is_bound": k.bound, "theory_margin": k.margin,
             "width_min": min(k.widths) if k.widths else math.nan,
             "width_max": max(k.widths) if k.widths else math.nan, "n_widths": len(k.widths),
             "verdict": v.status}
            for c, v in verdicts.items() for k in key_numbers(v)]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def display_frame(verdicts: dict[str, Verdict]):
    """The convergence table for people: true minus signs, intervals with their levels, the
    theory as a fraction, the cell's math as Unicode."""
    import pandas as pd

    rows = [{"claim": c, "cell": labels.plain(k.cell) or "\u2014", "quantity": k.quantity, "statistic": k.name,
             "measured": labels.number(k.value), "interval": f"{interval_text(k)} ({labels.percent(k.level)})",
             "theory": theory_text(k), "widths": widths_text(k) or "\u2014",
             "verdict": v.status}
            for c, v in verdicts.items() for k in key_numbers(v)]
    return pd.DataFrame(rows, columns=["claim", "cell", "quantity", "statistic", "measured", "interval", "theory",
                                       "widths", "verdict"])
