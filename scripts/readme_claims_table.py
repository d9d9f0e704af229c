"""Print the README's claims table from the committed results: the standard run's verdicts
(stated false-fail rate, detectable discrepancy) and, where present, the calibration's
measured false-fail rates.

    python scripts/readme_claims_table.py [results/standard] [results/calibration]
"""
import math
import sys
from pathlib import Path

import pandas as pd

from ntkcheck.claims import all_claims, get_claim
from ntkcheck.store import Store


def main(standard="results/standard", calibration="results/calibration") -> None:
    store = Store(standard)
    cal_path = Path(calibration) / "calibration.csv"
    cal = pd.read_csv(cal_path).set_index("claim") if cal_path.is_file() else None
    text = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    claims, rates = [], []
    for cid in all_claims(plugins=False):   # the built-in claims only
        claim = get_claim(cid)
        if not (Path(standard) / f"{cid}.csv").is_file():
            claims.append(f"| `{cid}` | {text(claim.title)} | {text('; '.join(claim.sources))} | "
                          "not in the committed standard run yet (added after it) |")
            rates.append(f"| `{cid}` | n/a | n/a | n/a |")
            continue
        try:
            v = claim.judge(store.read_claim(cid))
        except ValueError as err:       # committed rows from before the claim's current measurement
            claims.append(f"| `{cid}` | {text(claim.title)} | {text('; '.join(claim.sources))} | "
                          f"not judged: {text(err)} |")
            rates.append(f"| `{cid}` | n/a | n/a | n/a |")
            continue
        verdict = ("PASS" if v.passed else "FAIL") + (", control rejected" if v.negative_control_rejected
                                                     else ", control NOT rejected")
        measured = "not measured"
        if cal is not None and cid in cal.index:
            r = cal.loc[cid]
            measured = (f"{int(r.claim_failures)}/{int(r.seeds)} (95% CI [{r.ci_low:.2g}, {r.ci_high:.2g}]); "
                        f"controls not rejected {int(r.controls_not_rejected)}/{int(r.seeds)}")
            if not math.isclose(r.stated_false_fail_rate, v.false_fail_rate, rel_tol=1e-6):
                # measured under another design: show it for what it is, not as this verdict's rate
                measured = f"not yet at this level (earlier design, stated {r.stated_false_fail_rate:.2g}: {measured})"
        claims.append(f"| `{cid}` | {text(claim.title)} | {text('; '.join(claim.sources))} | {verdict} "
                      f"([table]({standard}/{cid}.md)) |")
        rates.append(f"| `{cid}` | {v.false_fail_rate:.3g} | {measured} | {text(v.detectable)} |")
    print("| claim | statement | sources | verdict (standard) |\n|---|---|---|---|")
    print("\n".join(claims))
    print("\n| claim | stated false-fail rate | claim failures over K quick-budget seeds | detects (standard budget) |")
    print("|---|---|---|---|")
    print("\n".join(rates))


if __name__ == "__main__":
    main(*sys.argv[1:])
