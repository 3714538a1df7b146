"""Subscribe to touchstream signals with nothing but kafka-python and the `schemas` package.

    python examples/subscribe_signals.py 127.0.0.1:9092 my-service

Every record on the `signals` topic is one `Signal` (schemas/json/signal.schema.json), keyed
by customer_id. Redeliveries carry the same `signal_id`: use it to deduplicate.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from kafka import KafkaConsumer

from touchstream.schemas import Signal


def signals(
    bootstrap: str, group: str, topic: str = "signals", idle_ms: int = 0
) -> Iterator[Signal]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,  # your service's own group: it gets every signal
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        consumer_timeout_ms=idle_ms or float("inf"),
    )
    try:
        for record in consumer:
            yield Signal.model_validate_json(record.value)
    finally:  # leave the group now, not when the process ends
        consumer.close()


if __name__ == "__main__":
    for signal in signals(sys.argv[1], sys.argv[2]):
        why = ", ".join(f"{r.factor} {r.contribution:+.2f}" for r in signal.reasons)
        print(f"{signal.kind.value} {signal.customer_id} {signal.score:.2f}: {why}")
