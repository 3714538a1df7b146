"""The engine over planted stories, without any broker (the same code the worker runs)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import orjson
import pytest

from tests import scenarios
from tests.factories import event_dict
from tests.factories import snapshot as metrics_of
from tests.streams.builders import event_of
from touchstream.schemas import InputLimits
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine, StepResult, partition_for
from touchstream.streams.records import process_records
from touchstream.streams.rules import Rules
from touchstream.streams.runtime.telemetry import Progress, Telemetry
from touchstream.streams.snapshot import snapshot_json

PARTITIONS = 4


def run(events: list[dict]) -> tuple[Engine, list]:
    engine = Engine(Rules(), RiskModel(), {}, {}, PARTITIONS)
    signals = []
    for data in events:
        event = event_of(data)
        signals.extend(engine.step(event, partition_for(event.customer_id, PARTITIONS)).signals)
    return engine, signals


@pytest.fixture(scope="module")
def story_run():
    return run(scenarios.story())


def test_slipping_customer_is_flagged_at_the_third_broken_promise_in_a_row(story_run) -> None:
    _, signals = story_run
    defect = [
        s
        for s in signals
        if s.customer_id == scenarios.SLIPPER and s.kind.value == "about_to_defect"
    ]
    assert len(defect) == 1  # held afterwards (hysteresis): the silence that follows adds none
    signal = defect[0]
    assert signal.trigger == "event" and signal.trigger_event_id == f"{scenarios.SLIPPER}-0021"
    assert signal.reasons[0].factor == "broken_promises"
    assert signal.metrics.consecutive_misses == 3 and signal.metrics.expectation_gap < -1


def test_consistent_customer_with_fast_resolution_gets_recovery_wow(story_run) -> None:
    _, signals = story_run
    wows = [
        s
        for s in signals
        if s.customer_id == scenarios.RECOVERED and s.kind.value == "wow_opportunity"
    ]
    recovery = [s for s in wows if s.suggested_action and "recovery" in s.suggested_action]
    assert len(recovery) == 1
    assert recovery[0].trigger_event_id == f"{scenarios.RECOVERED}-0017"
    assert any(r.factor == "moment:service_recovery" for r in recovery[0].reasons)


def test_erratic_across_channels_is_less_consistent_than_steady(story_run) -> None:
    engine, _ = story_run
    from touchstream.streams.measure import measure

    now = max(s.last_seen for s in engine.states.values())
    erratic = measure(engine.states[scenarios.ERRATIC], now, engine.rules, engine.model)
    steady = measure(engine.states[scenarios.STEADY], now, engine.rules, engine.model)
    assert erratic.quality_mean == pytest.approx(steady.quality_mean, abs=0.02)
    assert erratic.consistency < steady.consistency - 0.2
    assert erratic.channel_spread > steady.channel_spread


def test_duplicates_and_a_fresh_replay_give_identical_state_and_ids(story_run) -> None:
    engine, signals = story_run
    doubled = [e for event in scenarios.story() for e in (event, dict(event))]
    again, again_signals = run(doubled)
    assert [s.signal_id for s in again_signals] == [s.signal_id for s in signals]
    assert again.states == engine.states
    fresh, fresh_signals = run(scenarios.story())
    assert fresh.states == engine.states
    assert [s.model_dump() for s in fresh_signals] == [s.model_dump() for s in signals]


def test_late_event_is_rejected_with_reason_and_not_counted() -> None:
    engine, _ = run(scenarios.story())
    before = engine.states[scenarios.STEADY].event_count
    late = event_of({**scenarios.story()[0], "event_id": "late-1", "customer_id": scenarios.STEADY})
    outcome = engine.step(late, partition_for(scenarios.STEADY, PARTITIONS))
    assert outcome.status == "late" and outcome.rejection is not None
    assert outcome.rejection.errors[0].loc == "occurred_at"
    assert engine.states[scenarios.STEADY].event_count == before


class UnskippingEngine(Engine):
    """The timer without its shortcuts: every member is read and scored at every check."""

    def silence_check(self, partition: int, now: float, into: StepResult) -> None:
        self._timer_skip.clear()
        self._due.clear()
        super().silence_check(partition, now, into)


def test_the_timer_shortcuts_change_no_signal() -> None:
    """Skipping customers that cannot be raised yet (already raised, below the ceiling, not
    overdue) is an optimisation only: the signals are those of reading everyone every time."""
    from touchstream.generator import generate

    _, events = generate(customers=300, months=5, seed=21)
    fast, fast_signals = run(events)
    slow = UnskippingEngine(Rules(), RiskModel(), {}, {}, PARTITIONS)
    slow_signals = []
    for data in events:
        event = event_of(data)
        slow_signals.extend(slow.step(event, partition_for(event.customer_id, PARTITIONS)).signals)
    timer = [s for s in slow_signals if s.trigger == "timer"]
    assert timer, "the run must exercise the timer"
    assert [s.signal_id for s in fast_signals] == [s.signal_id for s in slow_signals]
    assert fast._due, "the not-yet-overdue shortcut must have been used"


def test_every_snapshot_the_engine_builds_is_valid() -> None:
    """Snapshots are built without validation on the hot path (`Snapshot`, its JSON by
    msgspec): every one of a generated population's must still pass it, be the JSON pydantic
    would write, and survive the wire unchanged."""
    from touchstream.generator import generate
    from touchstream.schemas import MetricsSnapshot
    from touchstream.schemas.signal import Snapshot

    _, events = generate(customers=150, months=4.0, seed=3)
    engine = Engine(Rules(), RiskModel(), {}, {}, PARTITIONS)
    snapshots = []
    for offset, data in enumerate(events):
        event = event_of(data)
        outcome = engine.step(event, partition_for(event.customer_id, PARTITIONS), offset)
        for fast in outcome.snapshots:
            assert snapshot_json(fast) == fast.model().model_dump_json().encode()
            assert MetricsSnapshot.model_validate_json(snapshot_json(fast)) == fast.model()
            snapshots.append(fast.model())
        snapshots.extend(signal.metrics for signal in outcome.signals)
    assert len(snapshots) > 1000
    assert Snapshot._fields == tuple(MetricsSnapshot.model_fields)
    for snapshot in snapshots:
        wire = snapshot.model_dump_json()
        again = MetricsSnapshot.model_validate_json(wire)
        assert again == snapshot
        assert again.model_dump_json() == wire
        assert list(snapshot.model_dump()) == list(MetricsSnapshot.model_fields)


def test_a_snapshot_s_json_has_the_model_s_values_at_the_extremes() -> None:
    """Byte for byte the model's JSON but for the exponent of floats from 1e16 (`1e16` where
    pydantic writes `1e+16`): the same number, parsed."""
    from touchstream.schemas import MetricsSnapshot
    from touchstream.schemas.signal import Snapshot

    for spend in (0.0, 1e-7, 123456.789, 9.99e15, 1e16, 1.5e300):
        as_of = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
        model = metrics_of("c", as_of, spend=spend, revenue_at_risk=spend, rating=None)
        fast = Snapshot(*(getattr(model, name) for name in Snapshot._fields))
        ours, theirs = snapshot_json(fast), model.model_dump_json().encode()
        assert orjson.loads(ours) == orjson.loads(theirs)
        assert MetricsSnapshot.model_validate_json(ours) == model
        assert (ours == theirs) is (spend < 1e16)


def test_the_metrics_record_is_one_list_in_every_place(tmp_path) -> None:
    """Adding a metric: the model (MetricsSnapshot) is the list; the engine's snapshot tuple,
    the ClickHouse columns and the engine's measures must follow it (this test says where)."""
    from dataclasses import fields

    from touchstream.schemas import MetricsSnapshot
    from touchstream.schemas.signal import Snapshot
    from touchstream.sinks.clickhouse import ClickHouse
    from touchstream.streams.measure import Metrics
    from touchstream.streams.rows import METRIC_COLUMNS

    listed = list(MetricsSnapshot.model_fields)
    assert list(Snapshot._fields) == listed, "schemas/signal.py: Snapshot"
    assert list(METRIC_COLUMNS) == listed
    from_state = {"customer_id", "as_of", "event_count", "first_seen", "last_seen"}
    from_state |= {"feedback_given", "referrals", "risk_score", "wow_score"}
    from_state |= {"expected_loss", "risk_model"}  # the risk x value; the model's version
    measured = {f.name for f in fields(Metrics)}
    assert set(listed) - from_state <= measured, "streams/measure.py: Metrics and measure()"
    clickhouse = ClickHouse(f"chdb://{tmp_path / 'ch'}")
    try:
        _, rows = clickhouse.query(
            "SELECT name FROM system.columns WHERE table = 'customer_metrics'"
        )
    finally:
        clickhouse.close()
    assert set(listed) <= {r[0] for r in rows}, "sinks/migrations: a column per metric"


def test_an_event_far_behind_its_partition_is_counted_and_logged(caplog) -> None:
    """Its silence checks ran without it: the operator learns of it (README: Backfill)."""
    engine = Engine(Rules(), RiskModel(), {}, {}, 1)
    events = [
        event_dict(event_id="now", customer_id="a", occurred_at="2026-03-10T10:00:00Z"),
        event_dict(event_id="hour", customer_id="b", occurred_at="2026-03-10T09:00:00Z"),
        event_dict(event_id="week", customer_id="c", occurred_at="2026-03-03T10:00:00Z"),
    ]
    messages = [
        SimpleNamespace(
            key=e["customer_id"].encode(), value=orjson.dumps(e), topic="in", partition=0, offset=i
        )
        for i, e in enumerate(events)
    ]
    batch: list = []
    process_records(engine, InputLimits(), messages, (), batch)
    assert [round(h.behind / 86_400, 3) for h, _, _ in batch] == [0.0, 0.0, 7.0]
    assert [h.outcome for h, _, _ in batch] == ["applied"] * 3  # still counted
    telemetry = Telemetry()
    progress = Progress(telemetry)
    progress.window_start -= 60  # a log line is due
    with caplog.at_level("WARNING", logger="touchstream.worker"):
        progress.add(batch, [])
    assert telemetry.behind._value.get() == 1
    assert "1 events arrived more than a silence-check period behind" in caplog.text
    assert "up to 7.0 days" in caplog.text
    text, _ = telemetry.render()
    assert b"touchstream_events_behind_watermark_total 1.0" in text


def test_the_snapshot_is_built_in_the_order_of_its_fields() -> None:
    """streams/snapshot.py builds the tuple positionally (for speed): element i must be the
    value of field i, which its expression names (`m.consistency` for `consistency`)."""
    import ast
    from pathlib import Path

    from touchstream.schemas.signal import Snapshot

    source = (Path(__file__).resolve().parents[2] / "streams" / "snapshot.py").read_text()
    built = next(
        node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Tuple) and len(node.elts) == len(Snapshot._fields)
    )
    # the snapshot's name for what the measure calls otherwise
    named = {"as_of": "now", "expected_loss": "revenue_at_risk * risk_score"}
    named["risk_model"] = "model_version"
    wrong = [
        (field, ast.unparse(value))
        for field, value in zip(Snapshot._fields, built.elts, strict=True)
        if named.get(field, field) not in ast.unparse(value)
    ]
    assert wrong == []


def test_an_engine_without_snapshots_raises_the_same_signals_and_keeps_the_same_states() -> None:
    """A replay to files asks for no snapshot along the way: nothing else may change."""
    from touchstream.generator import generate

    _, events = generate(customers=80, months=4, seed=5)
    runs = []
    for snapshots in (True, False):
        engine = Engine(Rules(), RiskModel(), {}, {}, PARTITIONS, snapshots=snapshots)
        signals, taken = [], 0
        for data in events:
            event = event_of(data)
            outcome = engine.step(event, partition_for(event.customer_id, PARTITIONS))
            signals += [s.model_dump_json() for s in outcome.signals]
            taken += len(outcome.snapshots)
        states = {k: v.encode() for k, v in sorted(engine.states.items())}
        runs.append((signals, states, taken))
    (signals, states, taken), (signals_off, states_off, taken_off) = runs
    assert taken > len(events) / 2 and taken_off == 0
    assert len(signals) > 20 and signals_off == signals
    assert states_off == states
