"""Run scenarios through whichever touchstream is importable and write what came out.

    python -S tests/differential.py SCENARIOS.json OUT.json    (PYTHONPATH: the tree to run)

Imports only `touchstream`, so the same file runs a pinned copy of the engine (extracted from
git) and the current one; tests/test_differential.py compares the two. SCENARIOS.json maps
a name to {"events": [...], "as_of": ISO time or null}; with `as_of`, the risk model is first
learned from the history before it, as `touchstream replay --as-of` does.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def outputs(events: list[dict[str, Any]], as_of: str | None) -> dict[str, Any]:
    """Signals (wow offers with their decision), every snapshot as live, the final metrics."""
    import orjson

    from touchstream.inputs import InputRecord
    from touchstream.replay import replay
    from touchstream.streams.churn import RiskModel
    from touchstream.streams.rules import Rules

    records = [InputRecord(n, orjson.dumps(e)) for n, e in enumerate(events, start=1)]
    result = replay(
        records,
        rules=Rules(),
        model=RiskModel(),
        partitions=4,
        source="differential",
        as_of=datetime.fromisoformat(as_of) if as_of else None,
        learn_before_as_of=as_of is not None,
    )
    return {
        "signals": sorted(
            (s.model_dump(mode="json") for s in result.signals), key=lambda s: s["signal_id"]
        ),
        "offers": sorted(
            ([o.signal.signal_id, o.decision] for o in result.offers), key=lambda o: o[0]
        ),
        "history": [_plain(snapshot._asdict()) for snapshot in result.history],
        "final": [snapshot.model_dump(mode="json") for snapshot in result.final],
        "counts": [result.applied, result.duplicates, result.late, len(result.dead_letters)],
    }


def main(scenarios_file: str, out_file: str) -> None:
    with open(scenarios_file) as handle:
        scenarios = json.load(handle)
    produced = {name: outputs(s["events"], s["as_of"]) for name, s in scenarios.items()}
    with open(out_file, "w") as handle:
        json.dump(produced, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
