"""The one-command demo: embedded broker, generated traffic, the pipeline, a summary."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from touchstream.broker import EmbeddedBroker
from touchstream.generator import generate
from touchstream.kafka import ensure_topics, read_topic
from touchstream.publisher import TouchpointPublisher
from touchstream.settings import Settings


def run_demo(
    settings: Settings, *, customers: int, months: float, seed: int, console: Console
) -> dict[str, Any]:
    planted, events = generate(customers=customers, months=months, seed=seed)
    console.print(
        f"generated {len(events):,} touchpoints for {customers:,} customers over {months} months"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(log_file=settings.data_dir / "broker.log") as broker:
        console.print(f"embedded broker at {broker.url}")
        ensure_topics(broker.bootstrap, [settings.topic_touchpoints], settings.partitions)
        started = time.perf_counter()
        with (
            TouchpointPublisher(broker.bootstrap, settings.topic_touchpoints) as publisher,
            Progress(console=console) as progress,
        ):
            task = progress.add_task("publishing", total=len(events))
            for index, event in enumerate(events, start=1):
                publisher.publish(event, position=index)
                if index % 2000 == 0:
                    progress.update(task, completed=index)
            progress.update(task, completed=len(events))
            report = publisher.flush()
        elapsed = time.perf_counter() - started
        on_topic = sum(
            1
            for _ in read_topic(broker.bootstrap, settings.topic_touchpoints, idle_timeout_ms=2000)
        )
    table = Table(title="touchstream demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("events published", f"{report.accepted:,}")
    table.add_row("events rejected", f"{len(report.rejected):,}")
    table.add_row("events on the topic", f"{on_topic:,}")
    table.add_row("publish rate", f"{report.accepted / elapsed:,.0f} events/s")
    console.print(table)
    return {
        "published": report.accepted,
        "rejected": len(report.rejected),
        "on_topic": on_topic,
        "cohorts": {
            c: sum(1 for p in planted if p.cohort == c) for c in {p.cohort for p in planted}
        },
    }
