"""The Faust app: touchpoints in; dead letters, metrics snapshots and signals out.

Read top to bottom: the app, its topics and tables, the engine, the endpoints, the one
processing loop. This module only wires: every decision is made by `Engine` (pure, shared
with `touchstream replay`), the batch's steps are `Pipeline`'s (streams/runtime), rows are
written by `store_batch` (sinks/writer.py). docs/architecture.md follows one touchpoint
through them.

Guarantees: one batch is handled at a time (faust-streaming #606); offsets are committed
by `CommittedBatches`, not by Faust's acks, and only after a batch's outputs are on the
broker and its rows in ClickHouse, and then its state (at-least-once, no holes; see
streams/runtime/batches.py for why). Duplicates are absorbed downstream: state dedups by
event_id and offset, signal ids are deterministic, sinks write idempotently.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from functools import partial
from typing import Any

import faust
import orjson

from touchstream.alerting import attach_webhooks
from touchstream.ingest import attach_ingest
from touchstream.kafka import GroupProgress
from touchstream.learner import history_from_clickhouse, load_model, store_model
from touchstream.openapi import attach_openapi
from touchstream.probes import Health, attach_metrics_endpoint
from touchstream.query_endpoint import attach_query_endpoint
from touchstream.rebuild import StateRebuild
from touchstream.schemas.control import CLOCK_KEY
from touchstream.settings import Settings
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.sinks.identity import GraphCopy, store_identity
from touchstream.sinks.offers import decide, published, store_decisions, store_published
from touchstream.sinks.promise_alerts import judge
from touchstream.sinks.writer import store_batch, store_dead_letters
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.engine import Engine
from touchstream.streams.identity import IdentityGraph, denied_keys
from touchstream.streams.learning import learn
from touchstream.streams.params import DAY
from touchstream.streams.rules import Rules
from touchstream.streams.runtime.batches import CommittedBatches
from touchstream.streams.runtime.faust_api import set_fetch_max_wait
from touchstream.streams.runtime.pipeline import AFTER, STAGES, Pipeline
from touchstream.streams.runtime.produce import BatchProducer
from touchstream.streams.runtime.resolver import Resolver
from touchstream.streams.runtime.tables import StagedTable
from touchstream.streams.runtime.telemetry import Progress, Telemetry

log = logging.getLogger("touchstream.worker")


def build_app(
    settings: Settings,
    bootstrap: str,
    rules: Rules,
    model: RiskModel,
    clickhouse: ClickHouse,
) -> faust.App:
    datadir = settings.data_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker.app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        key_serializer="raw",
        value_serializer="raw",
        datadir=str(datadir / settings.worker.app_id),
        topic_partitions=settings.broker.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        broker_credentials=settings.faust_credentials(),
        broker_session_timeout=settings.broker.consumer_session_timeout_seconds,
        broker_heartbeat_interval=max(1.0, settings.broker.consumer_session_timeout_seconds / 5),
        web_enabled=settings.web.port > 0,
        web_port=settings.web.port or 6066,
        web_bind=settings.web.bind,
        web_host=settings.web.bind,
        # Faust's own pages would serve every table's values (customer state) to anyone
        # who can reach the port: only our endpoints, each with its own keys
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        producer_max_batch_size=settings.worker.batch_bytes,
        table_standby_replicas=settings.worker.standby_replicas,
    )
    set_fetch_max_wait(app, settings.broker.consumer_fetch_max_wait_ms)
    as_bytes: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "partitions": settings.broker.partitions,
        "acks": False,  # offsets are ours to commit: streams/runtime/batches.py
    }
    touchpoints = app.topic(settings.topics.touchpoints, **as_bytes)
    # one partition: the identity graph is one (streams/runtime/resolver.py)
    identify = app.topic(settings.topics.identify, **{**as_bytes, "partitions": 1})
    identity = app.topic(settings.topics.identity, **as_bytes)
    dead_letters = app.topic(settings.topics.dead_letters, **as_bytes)
    metrics = app.topic(settings.topics.metrics, **as_bytes)
    signals = app.topic(settings.topics.signals, **as_bytes)

    customers = app.Table(
        "customer-state", key_type=str, value_type=bytes, partitions=settings.broker.partitions
    )
    clocks = app.Table(
        "event-clock", key_type=str, value_type=bytes, partitions=settings.broker.partitions
    )
    graph = app.Table("identity-graph", key_type=str, value_type=bytes, partitions=1)
    states = StagedTable(customers, CustomerState.encode, CustomerState.decode)
    # event times as their shortest round-trip text (what repr() writes), by C functions
    watermarks = StagedTable(clocks, orjson.dumps, float)
    engine = Engine(rules, model, states, watermarks, settings.broker.partitions)
    outputs = {
        "dead_letters": dead_letters,
        "metrics": metrics,
        "signals": signals,
        "touchpoints": touchpoints,  # touchpoints of merged-away keys go on to their customer
    }

    spill_dir = settings.data_dir / "sink-rejected"
    telemetry = Telemetry()
    store = partial(store_batch, clickhouse, spill_dir=spill_dir, observe=telemetry.observe_write)
    store_letters = partial(
        store_dead_letters, clickhouse, spill_dir=spill_dir, observe=telemetry.observe_write
    )
    attach_metrics_endpoint(app, telemetry, settings.endpoint_keys("metrics"))
    health = Health()
    health.attach(app)
    attach_query_endpoint(app, clickhouse, settings)
    attach_ingest(app, settings, touchpoints, identify, dead_letters, store_letters)
    attach_openapi(app)

    alerts = attach_webhooks(app, clickhouse, settings, as_bytes, telemetry)
    committed = CommittedBatches(
        app, touchpoints, settings.worker.batch_size, settings.worker.batch_seconds, telemetry
    )
    rebuild = StateRebuild(clickhouse, engine, states, watermarks, committed.resumed)
    pipeline = Pipeline(
        engine,
        settings.input_limits,
        states,
        watermarks,
        BatchProducer(app),
        {name: topic.get_topic_name() for name, topic in outputs.items()},
        store,
        alerts=alerts,
        prepare=rebuild.ensure,
        progress=Progress(telemetry),
        end_marker=settings.broker.changelog_end_marker,
    )

    denied = denied_keys(rules.identity, settings.identity_secret())
    resolver = Resolver(
        lambda: IdentityGraph(rules.identity, denied),
        settings.input_limits,
        StagedTable(graph, bytes, bytes),
        BatchProducer(app),
        {
            "touchpoints": touchpoints.get_topic_name(),
            "identity": identity.get_topic_name(),
            "dead_letters": dead_letters.get_topic_name(),
        },
        partial(store_identity, clickhouse, spill_dir=spill_dir, observe=telemetry.observe_write),
        copy=GraphCopy(clickhouse),
        telemetry=telemetry,
        end_marker=settings.broker.changelog_end_marker,
    )
    resolving = CommittedBatches(
        app, identify, settings.worker.batch_size, settings.worker.batch_seconds, telemetry
    )

    @app.task
    async def resolve() -> None:
        """Touchpoints named by identifiers get their customer (docs/identity.md)."""
        await resolving.run(resolver.run_batch, stages=2)

    @app.task
    async def process() -> None:
        """One batch handled at a time (the `concurrency=1` of an agent; faust-streaming
        #606), the writes of the previous ones meanwhile."""
        await committed.run(
            pipeline.run_batch, stages=STAGES, in_flight=WRITES_IN_FLIGHT, after=AFTER
        )

    if settings.worker.clock_tick_seconds > 0:

        @app.timer(interval=settings.worker.clock_tick_seconds, on_leader=True)
        async def clock_ticks() -> None:
            """Wall-clock ticks go *through the log*, so silent partitions still get their
            silence checks and a re-read of the topic sees the very same ticks."""
            value = orjson.dumps({"clock": datetime.now(UTC).isoformat()})
            for partition in range(settings.broker.partitions):
                await touchpoints.send(key=CLOCK_KEY, value=value, partition=partition)

    progress = GroupProgress(
        bootstrap, settings.worker.app_id, settings.topics.touchpoints, settings.kafka_security()
    )

    @app.on_before_shutdown.connect  # type: ignore[misc,arg-type]
    async def _close_progress(app: faust.App, **kwargs: Any) -> None:
        progress.close()

    async def waiting() -> set[int] | None:
        """The touchpoints topic's partitions with records not handled yet, which hold the
        company-level judgements back (sinks/promise_alerts.py `watermark`); None when
        the broker did not say (nothing is judged this round)."""
        try:
            return await asyncio.to_thread(progress.unprocessed)
        except Exception as error:  # any broker trouble: the next round tries again
            log.warning("partitions' progress unknown (%s): nothing judged this round", error)
            return None

    if settings.worker.promise_check_seconds > 0:
        promise_alerts = app.topic(settings.topics.promise_alerts, **as_bytes)

        @app.timer(interval=settings.worker.promise_check_seconds, on_leader=True)
        async def calibrate_promises() -> None:
            """Company level: the promise types broken too often, once per window."""
            held = await waiting()
            if held is None:
                return
            for alert in await clickhouse.run(judge, clickhouse, rules, waiting=held):
                await promise_alerts.send(
                    key=alert.alert_id.encode(), value=alert.model_dump_json().encode()
                )

    if settings.worker.wow_check_seconds > 0:

        @app.timer(interval=settings.worker.wow_check_seconds, on_leader=True)
        async def decide_wow_offers() -> None:
            """Company level: the wow offers of the days event time has left behind, within
            each team's capacity. Published ones are stored, sent and handed to the
            webhooks before the decision is stored, so a crash between decides them again."""
            held = await waiting()
            if held is None:
                return
            decided = await clickhouse.run(decide, clickhouse, rules.wow, waiting=held)
            if not decided:
                return
            await clickhouse.run(store_published, clickhouse, decided)
            shown = published(decided)
            for signal in shown:
                await signals.send(
                    key=signal.customer_id.encode(), value=signal.model_dump_json().encode()
                )
            if alerts is not None and shown:
                await alerts(shown)
            await clickhouse.run(store_decisions, clickhouse, decided)
            for offer in decided:
                telemetry.offers.labels(offer.decision, offer.team).inc()

    if settings.learning.every_seconds > 0:

        @app.timer(interval=settings.learning.every_seconds, on_leader=True)
        async def relearn() -> None:
            """The leader relearns the risk model from the stored history: the read on the
            ClickHouse thread, the fit on another, so the writes never wait for it."""
            until = datetime.now(UTC)
            days, values = await clickhouse.run(
                history_from_clickhouse,
                clickhouse,
                until,
                rules.loyalty.pace_min_days,
                settings.learning.max_customers,
            )
            model = await asyncio.to_thread(
                learn, days, math.floor(until.timestamp() / DAY), values, rules.risk.horizon_days
            )
            if model.learned:
                await clickhouse.run(store_model, clickhouse, model)

        @app.timer(interval=max(60.0, settings.learning.every_seconds / 24))
        async def refresh_model() -> None:
            """Every worker takes the newest learned model, between two batches."""
            latest = await clickhouse.run(load_model, clickhouse)
            if latest.learned and latest.version != engine.model.version:
                log.info("risk model now %s (was %s)", latest.describe(), engine.model.version)
                engine.model = latest

    @app.on_partitions_assigned.connect  # type: ignore[misc,arg-type]
    async def _rebalanced(app: faust.App, assigned: Any, **kwargs: Any) -> None:
        engine.forget_members()
        rebuild.reset()
        resolver.reset()
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.topics.touchpoints)
        log.info("partitions of %s assigned: %s", settings.topics.touchpoints, mine)
        health.ready = True

    return app


# batches being written while the next is handled: more than one absorbs the
# ClickHouse insert's and the broker's uneven answers (the loop waited ~10 % of its time
# with two; ~5 % with three, +3-5 % events/s)
WRITES_IN_FLIGHT = 3
