"""The one-command demo: embedded broker, generated traffic, a real worker, a summary."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from touchstream.broker import EmbeddedBroker
from touchstream.generator import Customer, generate
from touchstream.kafka import committed, read_topic
from touchstream.launcher import Worker
from touchstream.learner import learn_from_events, store_model
from touchstream.publisher import TouchpointPublisher
from touchstream.report import bar_chart, line_chart, table, write_report
from touchstream.schemas import validate_touchpoint
from touchstream.schemas.decoder import Touchpoint
from touchstream.settings import Settings
from touchstream.sinks import queries
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.offers import decide_and_store
from touchstream.sinks.promise_alerts import judge
from touchstream.streams.rules import Rules
from touchstream.worker import ensure_worker_topics


def _worker_env(settings: Settings, broker: EmbeddedBroker) -> dict[str, str]:
    env = {
        **os.environ,
        "TOUCHSTREAM_BROKER_URL": broker.url,
        "TOUCHSTREAM_DATA_DIR": str(settings.data_dir),
        "TOUCHSTREAM_APP_ID": settings.worker.app_id,
        "TOUCHSTREAM_PARTITIONS": str(settings.broker.partitions),
        "TOUCHSTREAM_CLOCK_TICK_SECONDS": "0",
    }  # history: event time comes from the data
    return env


def cohort_scores(
    planted: list[Customer], signals: list[dict[str, Any]], at_risk: set[str]
) -> dict[str, dict[str, float]]:
    """Recall and precision of the two planted cohorts that have a right answer.

    `slipping_then_silent` is judged on the at-risk list at the end of the run (raised and
    not cleared since: what a customer-success team works from); `(ever raised)` counts
    every customer raised at any time, also those who came back (and were cleared)."""
    cohort = {c.customer_id: c.cohort for c in planted}
    raised = {s["customer_id"] for s in signals if s["kind"] == "about_to_defect"}
    flagged = {
        "slipping_then_silent": raised & at_risk,
        "slipping_then_silent (ever raised)": raised,
        "recovery": {
            s["customer_id"]
            for s in signals
            if s["kind"] == "wow_opportunity" and "recovery" in (s.get("suggested_action") or "")
        },
    }
    scores = {}
    for name, customers in flagged.items():
        members = {c for c, k in cohort.items() if k == name.split(" ")[0]}
        hits = len(customers & members)
        scores[name] = {
            "planted": len(members),
            "flagged": len(customers),
            "recall": hits / len(members) if members else 0.0,
            "precision": hits / len(customers) if customers else 0.0,
        }
    return scores


def run_demo(
    settings: Settings, *, customers: int, months: float, seed: int, console: Console
) -> dict[str, Any]:
    planted, events = generate(customers=customers, months=months, seed=seed)
    console.print(
        f"generated {len(events):,} touchpoints for {customers:,} customers over {months} months"
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _learn_first_half(settings, events, console)
    with EmbeddedBroker(log_file=settings.data_dir / "broker.log") as broker:
        console.print(f"embedded broker at {broker.url}")
        ensure_worker_topics(settings, broker.bootstrap)
        with (
            TouchpointPublisher(broker.bootstrap, settings.topics.touchpoints) as publisher,
            Progress(console=console) as progress,
        ):
            task = progress.add_task("publishing", total=len(events))
            for index, event in enumerate(events, start=1):
                publisher.publish(event, position=index)
                if index % 2000 == 0:
                    progress.update(task, completed=index)
            progress.update(task, completed=len(events))
            report = publisher.flush()
        worker = Worker(_worker_env(settings, broker), settings.data_dir / "worker.log")
        worker.start()
        try:
            elapsed = _follow(broker, settings, report.accepted, worker, console)
        finally:
            worker.stop()
        signals = [
            orjson.loads(v)
            for _, _, _, v in read_topic(
                broker.bootstrap, settings.topics.signals, idle_timeout_ms=2000
            )
        ]
        dead = sum(
            1
            for _ in read_topic(
                broker.bootstrap, settings.topics.dead_letters, idle_timeout_ms=1000
            )
        )
    # the worker has stopped, so chDB can be opened here
    clickhouse = settings.clickhouse_client()
    try:
        rules = Rules.load(settings.rules_file)
        # the windows and days the worker's timers had not decided yet when it stopped
        # (same functions): the last days of the history are never behind its event time
        judge(clickhouse, rules, lookback_windows=None)
        late = decide_and_store(clickhouse, rules.wow, final=True)
        signals += [o.signal.model_dump(mode="json") for o in late if o.decision == "published"]
        _, decisions = clickhouse.query(
            "SELECT decision, count() FROM wow_offers FINAL GROUP BY decision"
        )
        offers = {str(decision): int(n) for decision, n in decisions}
        at_risk = at_risk_now(clickhouse, rules.risk.trigger.clear_below)
        summary = _summarise(
            planted, signals, at_risk, report.accepted, dead, elapsed, months, console
        )
        summary["wow_offers"] = offers
        console.print(
            f"wow offers: {offers.get('published', 0):,} published, "
            f"{offers.get('over_capacity', 0):,} over the teams' capacity "
            "(rules: wow.capacity_per_day; query wow_offers for them)"
        )
        path = build_report(clickhouse, settings.data_dir, summary)
    finally:
        clickhouse.close()
    summary["report"] = str(path)
    console.print(f"HTML report: [bold]{path}[/]")
    return summary


def _learn_first_half(settings: Settings, events: list[dict[str, Any]], console: Console) -> None:
    """The business's risk model, learned from the first half of its history (as `touchstream
    learn` would have been run then) and stored where the worker loads it at start."""
    parsed = [Touchpoint.from_event(validate_touchpoint(event)) for event in events]
    times = sorted(e.occurred_at.timestamp() for e in parsed)
    until = times[0] + (times[-1] - times[0]) / 2
    rules = Rules.load(settings.rules_file)
    model = learn_from_events(parsed, until, rules)
    clickhouse = settings.clickhouse_client()
    try:
        if model.learned:
            store_model(clickhouse, model)
    finally:
        clickhouse.close()
    console.print(f"risk model: {model.describe()}")


def at_risk_now(clickhouse: ClickHouse, clear_below: float) -> set[str]:
    """Customers whose latest metrics keep them on the at-risk list (not cleared)."""
    _, rows = clickhouse.query(
        "SELECT customer_id FROM customer_metrics FINAL WHERE risk_score >= {c:Float64}",
        {"c": clear_below},
    )
    return {row[0] for row in rows}


def build_report(clickhouse: ClickHouse, data_dir: Path, summary: dict[str, Any]) -> Path:
    """Charts from ClickHouse, written to DATA_DIR/report.html."""
    _, daily = clickhouse.query(
        "SELECT toString(day), kind, uniqExactMerge(signals) FROM signals_daily "
        "GROUP BY day, kind ORDER BY day"
    )
    _, channels = clickhouse.query(
        "SELECT channel, avgIf(toFloat64(quality), quality IS NOT NULL), "
        "avgIf(toFloat64(gap), gap IS NOT NULL), "
        "countIf(level IN ('met', 'exceeded')) / greatest(countIf(level != 'none'), 1) "
        "FROM touchpoints FINAL GROUP BY channel HAVING countIf(level != 'none') > 0 "
        "ORDER BY channel"
    )
    series: dict[str, list[tuple[str, float]]] = {}
    for day, kind, count in daily:
        series.setdefault(kind, []).append((day, float(count)))
    cohorts = summary["cohorts"]
    sections = [
        line_chart(series, "signals per day (event time)"),
        bar_chart(
            [(c, float(q or 0)) for c, q, _, _ in channels], "mean touchpoint quality by channel"
        ),
        bar_chart(
            [(c, float(g)) for c, _, g, _ in channels if g == g and g is not None],
            "mean expectation gap by channel (tolerance units)",
            low=-3,
            high=3,
        ),
        bar_chart(
            [(c, float(m)) for c, _, _, m in channels],
            "share of touchpoints met or better, by channel",
            low=0,
            high=1,
        ),
        "<h3>planted cohorts</h3>"
        + table(
            ["cohort", "planted", "flagged", "recall", "precision"],
            [
                [n, c["planted"], c["flagged"], f"{c['recall']:.2f}", f"{c['precision']:.2f}"]
                for n, c in cohorts.items()
            ],
        ),
    ]
    return write_report(data_dir / "report.html", summary, sections + ops_views(clickhouse))


def ops_views(clickhouse: ClickHouse) -> list[str]:
    """The organisation's views (docs/queries.md), as charts: where promises break, which
    promise types are over-committed, complaint handling per team, revenue at risk, and
    whether customers flagged at risk stayed."""
    columns, breaks = clickhouse.query(queries.PROMISE_BREAKS, {"weeks": 4})
    share = list(columns).index("broken_share")
    _, alerts = clickhouse.query(queries.PROMISE_ALERTS)
    _, resolution = clickhouse.query(queries.COMPLAINT_RESOLUTION, {"sla_hours": 48})
    _, revenue = clickhouse.query(queries.REVENUE_AT_RISK, {"at_risk": 0.5})
    _, outcomes = clickhouse.query(queries.SIGNAL_OUTCOMES, {"days": 30})
    stayed: dict[str, list[tuple[str, float]]] = {}
    for week, severity, _, _, stayed_share in outcomes:
        stayed.setdefault(str(severity), []).append((str(week), float(stayed_share)))
    top = max((float(r[2]) for r in revenue), default=1.0) or 1.0
    broken = [(f"{r[0]} · {r[1]} · {r[2] or '-'}", float(r[share])) for r in breaks[:12]]
    hours = [(f"{r[0] or '-'} (raised with {r[1] or '-'})", float(r[3])) for r in resolution]
    return [
        bar_chart(
            broken,
            "where promises break: share broken, by metric · channel · team",
            low=0,
            high=1,
        ),
        "<h3>promise types over-committed (promise_overcommitted)</h3>"
        + table(
            ["week of", "metric", "channel", "team", "promises", "broken", "share"],
            [[str(a[0])[:10], a[1], a[2], a[3], a[4], a[5], f"{a[6]:.2f}"] for a in alerts[:20]],
        ),
        bar_chart(
            hours,
            "complaint resolution: mean hours, by team",
            low=0,
            high=max((h for _, h in hours), default=1.0) or 1.0,
            fmt="{:.1f} h",
        ),
        bar_chart(
            [(str(team), float(value)) for team, _, value, _ in revenue],
            "revenue at risk (a year), by the team behind the worst promises",
            low=0,
            high=top,
            fmt="{:,.0f}",
        ),
        line_chart(stayed, "share of at-risk customers who came back within 30 days, by week"),
    ]


def _follow(
    broker: EmbeddedBroker,
    settings: Settings,
    total: int,
    worker: Worker,
    console: Console,
) -> float | None:
    """Wait until the worker has committed every published event (its rows are in
    ClickHouse by then); returns the seconds from its first commit to its last, None when
    both fell between two checks (too small a run)."""
    with Progress(console=console) as progress:
        task = progress.add_task("worker processing (starting...)", total=total)
        started: float | None = None
        while True:
            worker.check_alive()
            done = committed(broker.bootstrap, settings.worker.app_id, settings.topics.touchpoints)
            if done and started is None and done < total:
                started = time.perf_counter()
                progress.update(task, description="worker processing")
            progress.update(task, completed=done)
            if done >= total:
                return None if started is None else time.perf_counter() - started
            time.sleep(0.5)


def _summarise(
    planted: list[Customer],
    signals: list[dict[str, Any]],
    at_risk: set[str],
    events: int,
    dead: int,
    elapsed: float | None,
    months: float,
    console: Console,
) -> dict[str, Any]:
    kinds = Counter(s["kind"] for s in signals)
    per_thousand = {
        kind: kinds[kind] / max(1, len(planted)) * 1000 / months
        for kind in ("about_to_defect", "wow_opportunity")
    }
    table = Table(title="touchstream demo")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("events processed", f"{events:,}")
    rate = round(events / elapsed) if elapsed else None
    shown = f"{rate:,} events/s" if rate else "too few events to measure"
    table.add_row("throughput (after first commit)", shown)
    table.add_row("dead letters", f"{dead:,}")
    for kind in ("about_to_defect", "wow_opportunity"):
        table.add_row(
            f"signals: {kind}",
            f"{kinds[kind]:,} ({per_thousand[kind]:.1f} per 1,000 customers a month)",
        )
    console.print(table)

    latest_risk: dict[str, dict[str, Any]] = {}
    for s in signals:
        if s["kind"] == "about_to_defect":
            latest_risk[s["customer_id"]] = s
    risky = sorted(latest_risk.values(), key=lambda s: -s["score"])[:10]
    top = Table(title="top 10 at-risk customers")
    for column in ("customer", "score", "severity", "trigger", "why"):
        top.add_column(column)
    for s in risky:
        why = "; ".join(f"{r['factor']} {r['contribution']:+.2f}" for r in s["reasons"][:3])
        top.add_row(s["customer_id"], f"{s['score']:.2f}", s["severity"], s["trigger"], why)
    console.print(top)

    wows = sorted(
        (s for s in signals if s["kind"] == "wow_opportunity"),
        key=lambda s: (-s.get("expected_value", 0.0), s["signal_id"]),
    )[:10]
    wow_table = Table(title="top 10 wow offers published (by expected value)")
    for column in ("customer", "score", "value", "team", "suggested action"):
        wow_table.add_column(column)
    for s in wows:
        wow_table.add_row(
            s["customer_id"],
            f"{s['score']:.2f}",
            f"{s.get('expected_value', 0.0):,.0f}",
            s.get("team") or "",
            s.get("suggested_action") or "",
        )
    console.print(wow_table)

    scores = cohort_scores(planted, signals, at_risk)
    cohorts = Table(title="planted cohorts found")
    for column in ("cohort", "planted", "flagged", "recall", "precision"):
        cohorts.add_column(column, justify="right")
    for name, score in scores.items():
        cohorts.add_row(
            name,
            str(score["planted"]),
            str(score["flagged"]),
            f"{score['recall']:.2f}",
            f"{score['precision']:.2f}",
        )
    console.print(cohorts)
    return {
        "events": events,
        "seconds": None if elapsed is None else round(elapsed, 2),
        "events_per_second": rate,
        "dead_letters": dead,
        "signals": dict(kinds),
        "signals_per_1000_customers_per_month": per_thousand,
        "cohorts": scores,
    }
