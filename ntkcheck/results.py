"""Results from Python: a study folder's verdicts and tables, judged from its CSVs only.

    res = ntkcheck.load_results("results/standard")
    res                                   # one line per claim, no array dumps
    res.verdicts["kernel-mean"].status    # "PASS", "FAIL" or "INCONCLUSIVE"
    res.frames["kernel-mean"]             # the tidy rows (one per measured quantity)
    res.convergence()                     # one row per convergence series: fitted vs theory exponent

Figures: :func:`ntkcheck.report.plot_convergence` (``verdict, path``) draws a verdict's
log-log panels, :func:`ntkcheck.report.claim_figure` (``claim id, frame, verdict, path``) a
claim's own figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .claims import FAMILY_FALSE_FAIL_RATE, Verdict, get_claim
from .store import Store


@dataclass(frozen=True)
class Results:
    """A study folder's ``study`` (budget, seed, claims, grids), ``verdicts`` and ``frames``
    (the consolidated ``<claim>.csv`` as DataFrames), by claim id."""

    folder: Path
    study: Mapping[str, Any]
    verdicts: Mapping[str, Verdict]
    frames: Mapping[str, Any]

    @property
    def verified(self) -> bool:
        """Every claim verified (its test passed, its negative control rejected)."""
        return all(v.verified for v in self.verdicts.values())

    def convergence(self):
        """One row per convergence series of every claim: label, fitted exponent with its
        interval and confidence level, the theory's exponent, and whether that is a bound."""
        import pandas as pd

        return pd.DataFrame([{"claim": c, "series": s.label, "exponent": s.exponent, "ci_low": s.exponent_lo,
                              "ci_high": s.exponent_hi, "level": s.exponent_level, "theory": s.theory_exponent,
                              "bound": s.bound, "x_min": min(s.x), "x_max": max(s.x)}
                             for c, v in self.verdicts.items() for s in v.convergence])

    def __repr__(self) -> str:
        lines = [f"Results({str(self.folder)!r}, budget {self.study.get('budget')}, seed {self.study.get('seed')}: "
                 f"{sum(v.verified for v in self.verdicts.values())}/{len(self.verdicts)} verified)"]
        lines += [f"  {c}: {v.status}, {len(self.frames[c])} rows" for c, v in self.verdicts.items()]
        return "\n".join(lines)


def load_results(folder: str | Path, claims: list[str] | None = None,
                 family_rate: float | None = None) -> Results:
    """The verdicts and rows of the study folder ``folder`` (``claims``: a subset), judged
    from its CSVs at ``family_rate`` (default: the rate the study ran at).  Nothing is
    written; ValueError names a missing or damaged file."""
    folder = Path(folder)
    with Store(folder) as store:
        meta = store.open_existing()
        known = meta["study"]["claims"]
        unknown = [c for c in claims or () if c not in known]
        if unknown or not known or claims == []:
            raise ValueError(f"claims: {', '.join(unknown) or 'none'}; the study in {folder} has "
                             f"{', '.join(known) or 'no claims'}")
        rate = family_rate or meta.get("family_false_fail_rate", FAMILY_FALSE_FAIL_RATE)
        frames = {c: store.read_claim(c) for c in claims or known}
    verdicts = {c: get_claim(c).judge(df, rate) for c, df in frames.items()}
    return Results(folder=folder, study=meta["study"], verdicts=verdicts, frames=frames)
