"""Tick labels of log axes that never overlap.

Matplotlib labels minor ticks of a log axis that spans less than about a decade, and at a
small figure width ``3x10^1`` and ``4x10^1`` run into each other.  :func:`log_ticks` labels
major ticks only: the decades when the axis spans two or more, otherwise at most
``max_ticks`` plain numbers (the measured widths when given, else 1-2-5 steps).
"""
from __future__ import annotations

import math

import numpy as np


def _thin(values, max_ticks: int) -> list[float]:
    """At most ``max_ticks`` of the sorted ``values``, evenly spaced, both ends kept."""
    values = sorted(set(float(v) for v in values))
    if len(values) <= max_ticks:
        return values
    keep = np.unique(np.round(np.linspace(0, len(values) - 1, max_ticks)).astype(int))
    return [values[k] for k in keep]


def _steps(lo: float, hi: float) -> list[float]:
    """1-2-5 steps inside [lo, hi] (at least the two ends' neighbours when none fall inside)."""
    out = [m * 10.0**e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
           for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    return out or [lo, hi]


def log_ticks(ax, axis: str = "both", values=None, max_ticks: int = 6) -> None:
    """Readable ticks on the log axes of ``ax`` (``axis``: "x", "y" or "both"; call after
    the limits are final).  ``values`` (e.g. the widths measured) become the x ticks when
    the x axis spans less than two decades."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plain = FuncFormatter(lambda v, _: f"{v:g}".replace("-", "\u2212"))
    for name in ("x", "y") if axis == "both" else (axis,):
        part = ax.xaxis if name == "x" else ax.yaxis
        if part.get_scale() != "log":
            continue
        part.set_minor_formatter(NullFormatter())
        if getattr(part.get_transform(), "base", 10) != 10:
            continue    # a chosen base (e.g. 2) labels its own powers
        lo, hi = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
        decades = math.log10(hi / lo) if lo > 0 else math.inf
        if name == "x" and values is not None and decades < 2:
            part.set_major_locator(_fixed(_thin([v for v in values if lo <= v <= hi], max_ticks)))
            part.set_major_formatter(plain)
        elif decades >= 2:
            part.set_major_locator(LogLocator(base=10, numticks=max_ticks + 1))
        else:
            part.set_major_locator(_fixed(_thin(_steps(lo, hi), max_ticks)))
            part.set_major_formatter(plain)


def _fixed(values):
    from matplotlib.ticker import FixedLocator

    return FixedLocator(values)
