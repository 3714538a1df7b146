"""Risk on real customers: the CDNOW sample, with a calibration/holdout split.

    python -m bench.cdnow            (or `make eval`)

The CDNOW sample (2,357 customers who first bought at CDNOW in Q1 1997, 6,919 purchases to
June 1998; Fader & Hardie's standard data set) ships inside the `lifetimes` wheel (a dev
dependency); nothing is downloaded. Purchases only: no promises, ratings or complaints,
which is most real data.

* Calibration: purchases before 1997-10-01. Holdout: 1997-10-01 to 1998-06-30.
* Label: the customer made no purchase in the holdout (they left, or at least went quiet).
* Scores at the end of calibration, computed in the same run:
  - touchstream's risk: the live engine replayed over the calibration purchases with the
    default rules and BG/NBD parameters fitted on the calibration purchases;
  - baseline recency: days since the last purchase;
  - baseline BG/NBD: 1 − P(alive) with the same fitted parameters.
* AUC of each for the label; precision and recall of the `about_to_defect` signal (active at
  the cutoff), beside the recency baseline flagging as many customers.

Nothing here is tuned: the rules are the defaults, set on hand-made histories
(tests/histories.py); the holdout labels are only read to report.
"""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import typer
from rich.console import Console
from rich.table import Table
from scipy.stats import rankdata

from touchstream.inputs import InputRecord
from touchstream.replay import replay
from touchstream.streams.bgnbd import BGNBDParams, fit, p_alive, rfm
from touchstream.streams.rules import Rules

CUTOFF = datetime(1997, 10, 1, tzinfo=UTC)
RESULTS = Path(__file__).parent / "results" / "cdnow"
console = Console()


def cdnow_sample() -> Path:
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the CDNOW sample comes with `lifetimes`: pip install -e '.[dev]'")
    return Path(spec.submodule_search_locations[0], "datasets", "CDNOW_sample.txt")


def purchases(path: Path) -> list[dict[str, Any]]:
    """Each line: customer id, id in the master file, yyyymmdd, CDs bought, dollars."""
    events = []
    for n, line in enumerate(path.read_text().splitlines()):
        customer, _, day, quantity, amount = line.split()
        when = datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC)
        events.append(
            {
                "event_id": f"cdnow-{n}",
                "customer_id": f"cdnow-{customer}",
                "occurred_at": when.isoformat(),
                "channel": "web",
                "kind": "purchase",
                "value": {"amount": float(amount), "currency": "USD"},
                "attributes": {"cds": int(quantity)},
                "source": "cdnow",
            }
        )
    events.sort(key=lambda e: (e["occurred_at"], e["event_id"]))
    return events


def auc(scores: list[float], positive: list[bool]) -> float:
    """Mann-Whitney AUC, ties counted half."""
    ranks = rankdata(scores)
    pos = np.asarray(positive)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_recall(flagged: list[bool], positive: list[bool]) -> tuple[float, float]:
    hits = sum(f and p for f, p in zip(flagged, positive, strict=True))
    return hits / max(1, sum(flagged)), hits / max(1, sum(positive))


def evaluate(partitions: int = 4) -> dict[str, Any]:
    events = purchases(cdnow_sample())
    calibration = [e for e in events if datetime.fromisoformat(e["occurred_at"]) < CUTOFF]
    returned = {
        e["customer_id"] for e in events if datetime.fromisoformat(e["occurred_at"]) >= CUTOFF
    }
    records = [InputRecord(i, orjson.dumps(e)) for i, e in enumerate(calibration, 1)]
    end = CUTOFF.timestamp()

    def run(population: BGNBDParams) -> Any:
        return replay(
            records,
            rules=Rules(),
            population=population,
            partitions=partitions,
            source="cdnow",
            as_of=CUTOFF,
        )

    with console.status("fitting BG/NBD on the calibration purchases..."):
        x, t_x, T = rfm(run(BGNBDParams()).states.values(), end)
        fitted = fit(x, t_x, T)
    with console.status("replaying the calibration purchases through the engine..."):
        result = run(fitted)
    final = {m.customer_id: m for m in result.final}
    customers = sorted(final)
    left = [c not in returned for c in customers]
    states = result.states
    risk = [final[c].risk_score for c in customers]
    recency = [(end - states[c].last_seen) / 86_400 for c in customers]
    bgnbd = []
    for c in customers:
        s = states[c]
        xi = s.active_days - 1
        txi = float(s.last_active_day - s.first_active_day)
        bgnbd.append(1.0 - p_alive(xi, txi, max(txi, end / 86_400 - s.first_active_day), fitted))
    flagged = [bool(states[c].signal_state.get("about_to_defect", [False])[0]) for c in customers]
    by_recency = set(np.argsort(recency)[::-1][: sum(flagged)])
    recency_flagged = [i in by_recency for i in range(len(customers))]
    precision, recall = precision_recall(flagged, left)
    base_precision, base_recall = precision_recall(recency_flagged, left)
    raised = [s for s in result.signals if s.kind.value == "about_to_defect"]
    return {
        "data": "CDNOW sample (lifetimes 0.11.3): 2,357 customers, purchases 1997-01..1998-06",
        "calibration_end": CUTOFF.isoformat(),
        "customers": len(customers),
        "calibration_purchases": len(calibration),
        "left_share": sum(left) / len(left),
        "bgnbd_fitted": {"r": fitted.r, "alpha": fitted.alpha, "a": fitted.a, "b": fitted.b},
        "auc": {
            "touchstream_risk": auc(risk, left),
            "baseline_recency_days": auc(recency, left),
            "baseline_bgnbd_1_minus_p_alive": auc(bgnbd, left),
        },
        "about_to_defect": {
            "raised_during_calibration": len(raised),
            "active_at_cutoff": sum(flagged),
            "precision": precision,
            "recall": recall,
            "recency_baseline_same_count": {"precision": base_precision, "recall": base_recall},
        },
        "rules_version": Rules().version,
    }


def report(result: dict[str, Any]) -> Table:
    table = Table(title=f"CDNOW holdout: {result['customers']:,} customers")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("share with no purchase in the holdout", f"{result['left_share']:.1%}")
    for name, value in result["auc"].items():
        table.add_row(f"AUC {name}", f"{value:.3f}")
    signal = result["about_to_defect"]
    table.add_row("about_to_defect active at the cutoff", f"{signal['active_at_cutoff']:,}")
    table.add_row("  precision / recall", f"{signal['precision']:.3f} / {signal['recall']:.3f}")
    base = signal["recency_baseline_same_count"]
    table.add_row(
        "  recency, as many flagged: precision / recall",
        f"{base['precision']:.3f} / {base['recall']:.3f}",
    )
    return table


def main(label: str = typer.Option("cdnow", help="Name of the results file.")) -> None:
    result = evaluate()
    console.print(report(result))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%S}-{label}.json"
    path.write_text(json.dumps(result, indent=2))
    console.print(f"results written to {path}")


if __name__ == "__main__":
    typer.run(main)
