"""The peer in `make bench`: Quix Streams' per-key stateful aggregate on the same topic.

    .venv-peer/bin/python bench/peer_quix.py BOOTSTRAP TOPIC EVENTS STATE_DIR

Runs in a virtualenv of its own (`make bench` makes `.venv-peer` from
bench/peer-requirements.txt): Quix Streams pins its own pydantic, and the product's
environment is not the benchmark's. What it does per event, the least a stateful stream
processor does: parse the JSON value, read the customer's aggregate from RocksDB (the key
is the customer), update a count, a spend and the last event time, write it back; the
state's changelog topic and the offsets committed every `commit_interval` (Quix's default,
5 s) as a user gets them. Prints one JSON line: events, seconds, and the steady rate from
10 % to 100 % of the events processed (the pipeline's steady window counts commits).
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid

from quixstreams import Application, State


def main(bootstrap: str, topic_name: str, total: int, state_dir: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-peer-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel=logging.WARNING,
    )
    topic = app.topic(topic_name, value_deserializer="json", key_deserializer="str")
    # Tansu describes no topic configs; Quix derives its changelog's retention from the
    # source's and needs one: unbounded, what Kafka's default compacted changelog keeps
    config = topic.broker_config
    config.extra_config.setdefault("retention.ms", "-1")
    topic.broker_config = config
    marks: dict[str, float] = {}
    seen = 0
    tenth = max(1, total // 10)

    def aggregate(event: dict, state: State) -> dict:
        nonlocal seen
        kept = state.get("agg") or {"events": 0, "spend": 0.0, "last": ""}
        kept["events"] += 1
        value = event.get("value") or {}
        kept["spend"] += float(value.get("amount") or 0.0)
        kept["last"] = max(kept["last"], event.get("occurred_at") or "")
        state.set("agg", kept)
        seen += 1
        if seen == tenth:
            marks["tenth"] = time.perf_counter()
        if seen == total:
            marks["last"] = time.perf_counter()
            app.stop()
        return kept

    app.dataframe(topic).apply(aggregate, stateful=True)
    started = time.perf_counter()
    app.run()
    if "last" not in marks:
        raise SystemExit(f"the peer stopped after {seen} of {total} events")
    print(
        json.dumps(
            {
                "events": total,
                "seconds": marks["last"] - started,
                "events_per_second": total / (marks["last"] - started),
                "steady_events_per_second": (total - tenth) / (marks["last"] - marks["tenth"]),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
