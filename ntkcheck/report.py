"""Reports: verdict tables, convergence tables (markdown, LaTeX) and log-log figures,
rebuilt from the stored CSVs without recomputing any network.

For each claim of a study folder ``report`` writes ``<claim>.md`` (verdict, statistics,
one convergence table per :class:`~ntkcheck.claims.Convergence` series, the claim's detail
table), on request ``<claim>.tex`` (the same tables, see :mod:`ntkcheck.latex`), the
figure ``<claim>.<fmt>`` for each requested format (png, pdf, svg; one log-log panel per
series: points with their intervals, the fitted power law with its band, the theory's
slope through the data's centre -- or, for a claimed bound, the shaded region the bound
allows -- the Monte Carlo resolution and the negative control; every interval names its
confidence level) and the claim's own figure ``<claim>-figure.<fmt>`` if it has one;
``summary.md`` (and ``summary.tex``) list the verdicts.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.stats import norm

from . import keynumbers, labels
from .claims import FAMILY_FALSE_FAIL_RATE, Convergence, Verdict, family_false_fail_rate, get_claim
from .axes import log_ticks
from .labels import percent
from .store import Store, drawn_bytes, format_value

#: Figure style: nothing cut off (constrained layout), mathtext labels, reproducible files.
STYLE = {"figure.constrained_layout.use": True, "font.size": 9, "axes.titlesize": 9, "legend.fontsize": 7,
         "mathtext.fontset": "dejavusans", "savefig.dpi": 150, "svg.hashsalt": "ntkcheck", "pdf.compression": 6}
#: ``report --style paper``: one panel per file at single-column width (3.4 in), print resolution.
PAPER_STYLE = {**STYLE, "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 6,
               "xtick.labelsize": 7, "ytick.labelsize": 7, "savefig.dpi": 300, "lines.markersize": 4}
PAPER_SIZE = (3.4, 2.6)
FORMATS = ("png", "pdf", "svg")
STYLES = ("report", "paper")


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


def theory_text(c: Convergence) -> str:
    """What the theory says about the exponent: a value or an upper bound."""
    return f"bound: exponent <= {c.theory_exponent:g}" if c.bound else f"theory {c.theory_exponent:g}"


def fit_line(c: Convergence) -> str:
    """The fitted exponent next to the theory's, or why there is none."""
    if math.isfinite(c.exponent):
        return (f"fitted exponent {c.exponent:.3f} ({percent(c.exponent_level)} CI "
                f"[{c.exponent_lo:.3f}, {c.exponent_hi:.3f}]), {theory_text(c)}")
    return (f"fitted exponent: n/a (fewer than 3 points resolve the error above the Monte Carlo "
            f"resolution), {theory_text(c)}")


def verdict_frame(verdicts: dict[str, Verdict]):
    """One row per claim: claim verdict, negative control, false-fail rate, key number
    (:func:`ntkcheck.keynumbers.key_line`), summary."""
    import pandas as pd

    return pd.DataFrame([{"claim": c, "verdict": v.status,
                          "claim test": "pass" if v.passed else "fail",
                          "negative control": "rejected (as it should)" if v.negative_control_rejected
                          else "NOT rejected (widen the study, or the check is defective)",
                          "false-fail rate": v.false_fail_rate, "key number": keynumbers.key_line(v) or "\u2014",
                          "summary": v.summary}
                         for c, v in verdicts.items()])


def claim_markdown(v: Verdict) -> str:
    claim = get_claim(v.claim)
    parts = [f"# {v.claim}: {claim.title}", "", claim.statement, "",
             "Sources: " + "; ".join(claim.sources), "",
             f"**Verdict: {v.status}** - {v.summary}", "",
             f"- false-fail rate: {v.false_fail_rate}", f"- detects: {v.detectable}",
             f"- negative control: {v.negative_control}: "
             f"{'rejected' if v.negative_control_rejected else 'NOT rejected'}", "",
             "| statistic | value |", "|---|---|"]
    parts += [f"| {labels.plain(labels.statistic(k))} | {_cell(val)} |" for k, val in v.statistics.items()]
    for c in v.convergence:
        parts += ["", f"## {c.label}", "", fit_line(c), "", markdown_table(convergence_frame(c))]
    if v.table is not None:
        parts += ["", "## Details", "", markdown_table(v.table)]
    return "\n".join(parts) + "\n"


def _fit_band(c: Convergence, xs: np.ndarray, x: np.ndarray):
    """Fitted line and its band at ``xs``: from ``fit_cov`` when given, else the exponent's
    interval pivoted at the centre (mean log x, mean log y) of the fitted points, where
    the least-squares line has no intercept error to add."""
    mid = c.log_prefactor + c.exponent * np.log(xs)
    if c.fit_cov is not None:
        A = np.stack([np.ones_like(xs), np.log(xs)], axis=1)
        half = _z(c.exponent_level) * np.sqrt(np.einsum("ij,jk,ik->i", A, np.asarray(c.fit_cov), A))
        return mid, mid - half, mid + half
    fitted = np.asarray(c.fitted, bool) if len(c.fitted) == len(x) else np.ones(len(x), bool)
    centre = np.log(x[fitted]).mean()
    ends = [c.log_prefactor + c.exponent * centre + b * (np.log(xs) - centre) for b in (c.exponent_lo, c.exponent_hi)]
    return mid, np.minimum(*ends), np.maximum(*ends)


def _wrap(text: str, width: int) -> str:
    """Wrap a title at spaces outside $...$ (math must stay on one line)."""
    words: list[str] = []
    for w in text.split(" "):
        if words and words[-1].count("$") % 2:   # inside math: keep the space
            words[-1] += " " + w
        else:
            words.append(w)
    lines, line = [], ""
    for w in words:
        if line and len(re.sub(r"\$[^$]*\$", "xxxx", line + " " + w)) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}" if line else w
    return "\n".join(lines + [line])


def plot_convergence(v: Verdict, path: str | Path) -> None:
    """One log-log panel per convergence series (see the module docstring); the format
    follows the suffix of ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(v.convergence)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    with matplotlib.rc_context(STYLE):
        fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 4.2 * rows), squeeze=False)
        for ax, c in zip(axes.flat, v.convergence):
            _panel(ax, c)
            ax.set_title(_wrap(labels.title(c.label, v.claim), 60))
        for ax in axes.flat[n:]:
            ax.set_visible(False)
        fig.suptitle(f"{v.claim}: {v.status}", fontsize=10)
        save_figure(fig, path)


def plot_series(c: Convergence, path: str | Path, title: str) -> None:
    """One convergence series for a paper: a single-column panel (:data:`PAPER_STYLE`),
    no verdict."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(PAPER_STYLE):
        fig, ax = plt.subplots(figsize=PAPER_SIZE)
        _panel(ax, c)
        ax.set_title(_wrap(title, 55))
        save_figure(fig, path)


def paper_panels(v: Verdict) -> list[tuple[str, str]]:
    """(file name without suffix, title) per convergence series: named by its cell in lower
    case, words joined by "-" ("cnn-flatten-relu-l-2-sigma-b-0.1") and titled by it (the
    quantity is the y label); where series share a cell, the quantity's first word prefixes
    the name and the title is the whole label; a series without a cell is named by its
    quantity, the negative control's "negative-control"."""
    parts = [labels.split_label(c.label, v.claim) for c in v.convergence]
    control = [c.label.startswith("negative control") for c in v.convergence]
    names = ["negative-control" if ctl else _slug(cell) or _slug(q) or "series" for (q, cell), ctl in zip(parts, control)]
    panels = []
    for c, (q, cell), ctl, name in zip(v.convergence, parts, control, names):
        shared = names.count(name) > 1
        title = (f"negative control: {cell}" if ctl else labels.title(c.label, v.claim) if shared or not cell
                 else cell)
        panels.append((f"{_slug(q.split(' ')[0])}-{name}" if shared else name, title))
    unique = [n for n, _ in panels]
    return [(n if unique.count(n) == 1 else f"{n}-{i + 1}", t) for i, (n, t) in enumerate(panels)]


def _signed(x: float) -> str:
    """Two decimals with a true minus sign (a figure's legend)."""
    return f"{x:.2f}".replace("-", labels.MINUS)


def _slug(text: str) -> str:
    """Lower-case words of ``text`` (math commands by their names) joined by "-"."""
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-.")[:60]


def _panel(ax, c: Convergence) -> None:
    x, y = np.asarray(c.x, float), np.asarray(c.y, float)
    lo, hi = np.asarray(c.lo, float), np.asarray(c.hi, float)
    ax.set_xscale("log")
    ax.set_yscale("log", nonpositive="clip")
    interval = "interquartile range" if c.level == 0.5 else f"{percent(c.level)} interval"
    ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", color="C0", capsize=3, label=f"measured ({interval})")
    if c.floor is not None:
        ax.plot(x, c.floor, ":", color="gray", label=f"MC resolution ({_z(c.level):.3g} SE)")
    if c.control is not None:
        ax.plot(x, c.control, "x", color="C3", label="negative control")
    xs = np.geomspace(x.min(), x.max(), 50)
    fitted = np.asarray(c.fitted, bool) if len(c.fitted) == len(x) and any(c.fitted) else np.ones(len(x), bool)
    centre_x, centre_y = np.exp(np.log(x[fitted]).mean()), np.exp(np.log(y[fitted]).mean())
    if math.isfinite(c.exponent) and math.isfinite(c.log_prefactor):
        mid, low, high = _fit_band(c, xs, x)
        ax.plot(xs, np.exp(mid), "-", color="C1",
                label=f"fit: slope {_signed(c.exponent)}, {percent(c.exponent_level)} CI "
                      f"[{_signed(c.exponent_lo)}, {_signed(c.exponent_hi)}]")
        ax.fill_between(xs, np.exp(low), np.exp(high), color="C1", alpha=0.2, lw=0)
    if c.bound:
        # an O(x^b) bound allows every curve below slope b from the first fitted point on
        x0, y0 = x[fitted][0], y[fitted][0]
        edge = y0 * (xs / x0) ** c.theory_exponent
        floor = np.full_like(xs, min(np.nanmin(lo[lo > 0]) if np.any(lo > 0) else y0, np.nanmin(edge)) / 10)
        ax.fill_between(xs, floor, edge, color="C2", alpha=0.12, lw=0,
                        label=f"allowed by the bound: slope $\\leq$ {labels.fraction(c.theory_exponent)}")
        ax.plot(xs, edge, "-", color="C2", lw=0.8)
        ax.set_ylim(bottom=floor[0] * 5)
    else:
        ax.plot(xs, centre_y * (xs / centre_x) ** c.theory_exponent, "--", color="k",
                label=f"theory: slope {labels.fraction(c.theory_exponent)}")
    ax.set_xlabel(c.x_name)
    ax.set_ylabel(c.y_name)
    ax.legend(loc="best")
    log_ticks(ax, values=x)


def save_figure(fig, path: str | Path) -> None:
    """Save and close ``fig``; the format follows the suffix (atomicity is the store's:
    :func:`ntkcheck.store.drawn_bytes` hands a temporary path)."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.savefig(path, metadata=_METADATA.get(path.suffix.lstrip("."), {}))
    plt.close(fig)


# without dates or versions the same data give byte-identical files
_METADATA = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
             "svg": {"Creator": None, "Date": None}}


def claim_figure(claim_id: str, df, v: Verdict, path: str | Path, style: str = "report") -> None:
    """The claim's own figure, drawn in :data:`STYLE` (or :data:`PAPER_STYLE`) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(PAPER_STYLE if style == "paper" else STYLE):
        get_claim(claim_id).figure(df, v, Path(path))
    plt.close("all")


def key_numbers_text(v: Verdict) -> list[str]:
    """The claim's key numbers as markdown lines, one per quantity: "<quantity> — exponent
    (theory −1/2, 95% CI): <cell>: −0.497 [−0.612, −0.381]; <cell>: ..."."""
    groups: dict = {}
    for k in keynumbers.key_numbers(v):
        groups.setdefault((k.quantity, k.name, keynumbers.theory_text(k), percent(k.level)), []).append(k)
    return [f"{quantity} \u2014 {labels.plain(name)} (theory {theory}, {level} CI): "
            + "; ".join(f"{labels.plain(k.cell) + ': ' if k.cell else ''}{labels.number(k.value)} "
                        f"{keynumbers.interval_text(k)}" for k in ks)
            for (quantity, name, theory, level), ks in groups.items()]


def verified_line(verdicts: dict[str, Verdict]) -> str:
    """The run's bottom line: how many claims were verified, and the probability that a
    correct implementation fails some claim of this run (independent claims: the product rule)."""
    ok = sum(v.verified for v in verdicts.values())
    rates = [v.false_fail_rate for v in verdicts.values()]
    each = f"each claim at {rates[0]:.3g}" if len(set(rates)) == 1 else "claims at " + ", ".join(f"{r:.3g}" for r in rates)
    return (f"{ok}/{len(verdicts)} verified (family-wise false-fail rate {family_false_fail_rate(rates):.3g}: "
            f"{each}, independent given the seed; controls not counted)")


def write_report(out: str | Path, verdicts: dict[str, Verdict] | None = None, latex: bool = False,
                 formats=("png",), notify: Callable[[str], None] | None = None,
                 family_rate: float | None = None, claims: list[str] | None = None,
                 progress: Callable[[int, int, str | None], None] | None = None,
                 style: str = "report") -> dict[str, Verdict]:
    """Write tables and figures (in each of ``formats``) for every claim of the study
    folder ``out`` (or only ``claims``); returns the verdicts (recomputed from the CSVs when
    not given, at ``family_rate``, by default the one the study was run at;
    ``progress(judged, total, claim being judged)`` follows them, e.g.
    :class:`ntkcheck.progress.Progress`).  A folder this process cannot write is only
    judged (``notify`` is told)."""
    _check_formats(formats)
    with Store(out) as store:
        _refuse_without_claims(store)
        meta = store.open_existing()
        known = meta["study"]["claims"]
        unknown = [c for c in claims or () if c not in known]
        if unknown or claims == []:
            raise ValueError(f"--claims: {', '.join(unknown) or 'empty'}; the study in {out} has {', '.join(known)}")
        claims = claims or known
        if verdicts is None:
            rate = family_rate or meta.get("family_false_fail_rate", FAMILY_FALSE_FAIL_RATE)
            verdicts = {}
            for k, c in enumerate(claims):
                if progress:
                    progress(k, len(claims), c)
                verdicts[c] = _judge(store, c, rate)
            if progress:
                progress(len(claims), len(claims), None)
        if store.read_only:
            if notify:
                notify(f"{out} is read-only: verdicts judged from its CSVs; tables and figures not rebuilt")
            return verdicts
        write_files(store, verdicts, latex, formats, style)
    return verdicts


@dataclass(frozen=True)
class ReportFiles:
    """The report :func:`ntkcheck.runner.run_study` writes, as :func:`write_files` would:
    each claim's files are drawn where the claim is judged (a worker process, as soon as
    its tasks are done), the study's tables by the run."""

    latex: bool = False
    formats: tuple[str, ...] = ("png",)
    style: str = "report"

    def __post_init__(self):
        object.__setattr__(self, "formats", _check_options(self.formats, self.style))

    def claim(self, root: Path, claim: str, v: Verdict, df) -> dict[Path, str | bytes]:
        return claim_files(root, claim, v, df, self.latex, self.formats, self.style)

    def write(self, store: Store, verdicts: dict[str, Verdict], drawn: dict[str, dict[Path, str | bytes]]) -> None:
        write_files(store, verdicts, self.latex, self.formats, self.style, drawn)


def claim_files(root: Path, claim: str, v: Verdict, df, latex: bool = False, formats=("png",),
                style: str = "report") -> dict[Path, str | bytes]:
    """The files of ``claim`` in the study folder ``root`` that :func:`write_files` writes,
    by path, drawn but not recorded (figures pass through temp files in ``root``).  ``df``:
    the claim's rows, for its own figure (None if it has none)."""
    from . import latex as tex

    files: dict[Path, str | bytes] = {root / f"{claim}.md": claim_markdown(v)}
    if latex:
        files[root / f"{claim}.tex"] = tex.claim_latex(v)
    figure = get_claim(claim).figure
    drawings = []
    for fmt in formats:
        if style == "paper":
            drawings += [(root / "figures" / claim / f"{name}.{fmt}", partial(plot_series, s, title=title))
                         for (name, title), s in zip(paper_panels(v), v.convergence)]
            if figure is not None:
                drawings.append((root / "figures" / claim / f"figure.{fmt}",
                                 lambda tmp: claim_figure(claim, df, v, tmp, style)))
            continue
        if v.convergence:
            drawings.append((root / f"{claim}.{fmt}", partial(plot_convergence, v)))
        if figure is not None:
            drawings.append((root / f"{claim}-figure.{fmt}", lambda tmp: claim_figure(claim, df, v, tmp)))
    files.update((path, drawn_bytes(path, draw)) for path, draw in drawings)
    return files


def write_files(store: Store, verdicts: dict[str, Verdict], latex: bool = False, formats=("png",),
                style: str = "report", drawn: dict[str, dict[Path, str | bytes]] | None = None) -> None:
    """Write the tables and figures of ``verdicts`` into the study folder ``store`` (open,
    so that no other process writes between the results and their report).  ``style``
    "paper" draws, instead of the report's figures, one single-column file per convergence
    series, ``figures/<claim>/<cell>.<fmt>``, and the claim's own figure as
    ``figures/<claim>/figure.<fmt>``, without verdicts.  ``drawn``: claims' files already
    drawn (:func:`claim_files`), by claim."""
    from . import latex as tex

    formats = _check_options(formats, style)
    meta = store.read_metadata()
    root = store.root
    for c, v in verdicts.items():
        if drawn is not None and c in drawn:
            files = drawn[c]
        else:
            files = claim_files(root, c, v, store.read_claim(c) if get_claim(c).figure else None,
                                latex, formats, style)
        for path, data in files.items():
            store.write_file(path, data)
    if set(verdicts) != set(meta["study"]["claims"]):   # a claim subset: the summary and convergence table stay
        return
    title = (f"Study {meta.get('name', root.name)} (budget {meta['study'].get('budget')}, "
             f"seed {meta['study'].get('seed')})")
    store.write_file(root / "convergence.csv", keynumbers.frame(verdicts).to_csv(
        index=False, float_format=format_value, lineterminator="\n"))
    store.write_file(root / "convergence.md", "# Convergence to the infinite-width theory\n\n"
                     "One row per claim and cell: the measured key number, its interval, the theory's value "
                     "and the widths measured (how many); the verdict is the claim's.\n\n"
                     + markdown_table(keynumbers.display_frame(verdicts)) + "\n")
    summary = [f"# {title}", "", markdown_table(verdict_frame(verdicts).drop(columns="summary")), "",
               "The key number is the claim's worst cell: the one whose measurement lies farthest from the "
               "theory, in units of its interval.", "",
               "## Key numbers", "", "Per claim and cell (every row: [convergence.md](convergence.md)):", ""]
    for c, v in verdicts.items():
        lines = key_numbers_text(v)
        summary += [f"- [{c}]({c}.md)" + (":" if lines else ": no key number (see its file)")]
        summary += [f"  - {line}" for line in lines]
    summary += ["", "## Verdicts", ""] + [f"- [{c}]({c}.md): {v.summary}" for c, v in verdicts.items()]
    summary += ["", f"**{verified_line(verdicts)}**"]
    store.write_file(root / "summary.md", "\n".join(summary) + "\n")
    if latex:
        store.write_file(root / "summary.tex", tex.summary_latex(verdicts, title))
        store.write_file(root / "convergence.tex", tex.convergence_latex(verdicts))


def _check_formats(formats) -> tuple[str, ...]:
    formats = tuple(formats)
    if not formats or any(f not in FORMATS for f in formats):
        raise ValueError(f"figure formats must be among {', '.join(FORMATS)}, got {', '.join(formats)}")
    return formats


def _check_options(formats, style: str) -> tuple[str, ...]:
    """The figure formats as a tuple, or a ValueError for a bad format or style."""
    formats = _check_formats(formats)
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    return formats


def _refuse_without_claims(store: Store) -> None:
    """ValueError (before the folder is locked) if its metadata lists no claim to report:
    a calibration folder has its own table, which ``calibrate`` rebuilds."""
    meta = store.read_metadata()
    if meta is None or meta["study"]["claims"]:
        return
    if meta["study"].get("calibration"):
        runs = store.root / "runs"
        raise ValueError(f"{store.root} is a calibration folder, not a study: its table is "
                         f"{store.root / 'calibration.md'}"
                         + (f" (to report one seed's study, give its folder {runs}/<claim>/seed-<s>)"
                            if runs.is_dir() else ""))
    raise ValueError(f"{store.metadata_path}: lists no claims, so there is nothing to report")


def _judge(store: Store, claim: str, family_rate: float) -> Verdict:
    """The verdict of a claim from its stored CSV.  A CSV the manifest vouches for is
    intact, so an error judging it is a bug; one adopted from an older folder may be
    damaged, so an error names the file instead."""
    df = store.read_claim(claim)
    if not store.adopted(store.claim_path(claim)):
        return get_claim(claim).judge(df, family_rate)
    try:
        return get_claim(claim).judge(df, family_rate)
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as err:
        raise ValueError(f"{store.claim_path(claim)}: cannot judge {claim} from it "
                         f"({type(err).__name__}: {err}); is it damaged? re-run the study to rebuild it") from None
