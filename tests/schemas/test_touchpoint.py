from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.factories import event_dict, snapshot
from touchstream.schemas import (
    DeadLetter,
    MetricsSnapshot,
    Rating,
    RatingScale,
    Reason,
    Signal,
    TouchpointEvent,
    TouchpointRejected,
    dead_letter_for,
    parse_touchpoint,
    validate_touchpoint,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def rejected(data: dict | bytes | str, **kwargs) -> TouchpointRejected:
    raw = data if isinstance(data, bytes | str) else json.dumps(data)
    with pytest.raises(TouchpointRejected) as info:
        parse_touchpoint(raw, now=NOW, **kwargs)
    return info.value


def locs(error: TouchpointRejected) -> set[str]:
    return {e.loc for e in error.errors}


def test_valid_event_is_normalised_to_utc() -> None:
    event = parse_touchpoint(json.dumps(event_dict()), now=NOW)
    assert event.occurred_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    assert event.expectations[0].tolerance.kind == "relative"
    assert event.expectations[0].tolerance.value == pytest.approx(0.1)


@pytest.mark.parametrize("field", ["event_id", "occurred_at", "channel", "kind"])
def test_required_fields(field: str) -> None:
    data = event_dict()
    del data[field]
    error = rejected(data)
    assert error.errors[0].loc == field
    assert error.errors[0].type == "missing"


def test_a_customer_is_named_by_id_or_identifiers() -> None:
    data = event_dict()
    del data["customer_id"]
    error = rejected(data)
    assert "give customer_id, identifiers or both" in error.reason
    data["identifiers"] = [{"type": "email", "value": "h1:" + "ab" * 16}]
    event = parse_touchpoint(json.dumps(data), now=NOW)
    assert event.customer_id is None and event.identifiers[0].type == "email"


def test_identifiers_are_checked() -> None:
    for bad, loc in (
        ({"type": "fax", "value": "1"}, "identifiers.0.type"),
        ({"type": "email", "value": "x" * 257}, "identifiers.0.value"),
        ({"type": "external", "value": "1"}, "identifiers.0"),
        ({"type": "email", "value": "a@b.cz", "name": "shop"}, "identifiers.0"),
    ):
        error = rejected(event_dict(identifiers=[bad]))
        assert error.errors[0].loc == loc, bad
    too_many = [{"type": "device", "value": f"d{i}"} for i in range(9)]
    assert rejected(event_dict(identifiers=too_many)).errors[0].loc == "identifiers"


def test_invalid_json_is_named() -> None:
    error = rejected(b'{"event_id": "x", ')
    assert error.kind == "invalid_json"
    assert "Invalid JSON" in error.reason


def test_non_object_payload() -> None:
    assert rejected(b"[1, 2]").kind == "not_an_object"


def test_wrong_type_names_field_and_value() -> None:
    error = rejected(event_dict(customer_id=12345))
    assert locs(error) == {"customer_id"}
    assert "12345" in error.reason


def test_unknown_channel_lists_allowed_values() -> None:
    error = rejected(event_dict(channel="carrier-pigeon"))
    assert locs(error) == {"channel"}
    assert "'web'" in error.reason and "carrier-pigeon" in error.reason


def test_unknown_field_is_rejected() -> None:
    assert locs(rejected(event_dict(surprise=1))) == {"surprise"}


def test_naive_timestamp_is_rejected() -> None:
    error = rejected(event_dict(occurred_at="2026-03-01T10:00:00"))
    assert locs(error) == {"occurred_at"}
    assert "timezone" in error.reason


def test_future_timestamp_respects_configured_skew() -> None:
    ahead = (NOW + timedelta(minutes=10)).isoformat()
    error = rejected(event_dict(occurred_at=ahead))
    assert error.kind == "future_timestamp"
    assert "occurred_at" in locs(error)
    event = parse_touchpoint(
        json.dumps(event_dict(occurred_at=ahead)), now=NOW, max_future_skew=timedelta(hours=1)
    )
    assert event.occurred_at == NOW + timedelta(minutes=10)


def test_oversized_payload_rejected_before_parsing() -> None:
    data = json.dumps(event_dict(attributes={"blob": "x" * 200}))
    error = rejected(data, max_bytes=100)
    assert error.kind == "payload_too_large"
    assert str(len(data)) in error.reason


@pytest.mark.parametrize("bad_id", ["", " leading-space", "a" * 129, "semi;colon", "new\nline"])
def test_identifier_rules(bad_id: str) -> None:
    assert "event_id" in locs(rejected(event_dict(event_id=bad_id)))


def test_attribute_limits() -> None:
    too_many = {f"k{i}": i for i in range(33)}
    assert "attributes" in locs(rejected(event_dict(attributes=too_many)))
    long_text = rejected(event_dict(attributes={"note": "x" * 257}))
    assert locs(long_text) == {"attributes"} and "'note'" in long_text.reason
    nested = rejected(event_dict(attributes={"deep": {"a": 1}}))
    assert locs(nested) == {"attributes"} and "'deep'" in nested.reason
    huge = rejected(event_dict(attributes={"n": 2**70}))
    assert "'n'" in huge.reason
    bad_key = rejected(event_dict(attributes={"white space": 1}))
    assert any(e.loc.startswith("attributes") for e in bad_key.errors)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_rejected(value: float) -> None:
    data = event_dict()
    data["expectations"][0]["promised"] = value
    raw = json.dumps(data)  # emits NaN / Infinity, which is not JSON
    assert rejected(raw).errors


def test_zero_promise_needs_absolute_tolerance() -> None:
    data = event_dict()
    data["expectations"][0].update(promised=0, actual=10)
    error = rejected(data)
    assert "absolute tolerance" in error.reason
    data["expectations"][0]["tolerance"] = {"kind": "absolute", "value": 15}
    assert parse_touchpoint(json.dumps(data), now=NOW).expectations[0].promised == 0


def test_tolerance_must_be_positive() -> None:
    data = event_dict()
    data["expectations"][0]["tolerance"] = {"kind": "absolute", "value": 0}
    assert any("tolerance" in e.loc for e in rejected(data).errors)


def test_direction_is_required() -> None:
    data = event_dict()
    del data["expectations"][0]["direction"]
    assert "expectations.0.direction" in locs(rejected(data))


@pytest.mark.parametrize(
    ("scale", "good", "bad"),
    [("csat_5", 5, 6), ("nps_10", 0, 11), ("ces_7", 7, 0), ("stars_5", 1, 0)],
)
def test_rating_bounds_per_scale(scale: str, good: float, bad: float) -> None:
    assert parse_touchpoint(
        json.dumps(event_dict(rating={"scale": scale, "value": good})), now=NOW
    ).rating
    error = rejected(event_dict(rating={"scale": scale, "value": bad}))
    assert "rating" in locs(error) and scale in error.reason


def test_rating_normalisation_inverts_effort() -> None:
    assert Rating(scale=RatingScale.csat_5, value=5).normalised == 1.0
    assert Rating(scale=RatingScale.nps_10, value=0).normalised == 0.0
    assert Rating(scale=RatingScale.ces_7, value=1).normalised == 1.0


def test_sentiment_bounds_and_currency() -> None:
    assert "sentiment" in locs(rejected(event_dict(sentiment=1.5)))
    assert "value.currency" in locs(rejected(event_dict(value={"amount": 1, "currency": "eur"})))


def test_schema_version_is_pinned() -> None:
    assert "schema_version" in locs(rejected(event_dict(schema_version=2)))


def test_validate_mapping_coerces_csv_strings() -> None:
    data = event_dict()
    data["expectations"][0].update(promised="2", actual="3.5")
    event = validate_touchpoint(data, now=NOW)
    assert event.expectations[0].actual == 3.5


def test_every_error_names_a_field_or_the_payload() -> None:
    error = rejected(event_dict(channel="x", kind="y", sentiment=9))
    assert locs(error) == {"channel", "kind", "sentiment"}
    assert all(e.msg and e.type for e in error.errors)


def _snapshot() -> MetricsSnapshot:
    return snapshot("cust-1", NOW)


def test_every_wire_model_round_trips_through_json() -> None:
    event = parse_touchpoint(json.dumps(event_dict()), now=NOW)
    snapshot = _snapshot()
    signal = Signal(
        signal_id="0123456789abcdef",
        kind="about_to_defect",
        customer_id="cust-1",
        score=0.7,
        severity="high",
        raised_at=NOW,
        trigger="timer",
        reasons=[Reason(factor="silence", value=3.2, contribution=0.4, detail="overdue")],
        metrics=snapshot,
    )
    dead = dead_letter_for(
        b"{oops", rejected(b"{oops"), source="touchpoints", received_at=NOW, partition=1, offset=9
    )
    for model in (event, snapshot, signal, dead):
        again = type(model).model_validate_json(model.model_dump_json())
        assert again == model


def test_dead_letter_keeps_position_reason_and_stable_id() -> None:
    error = rejected(event_dict(channel="fax"))
    raw = json.dumps(event_dict(channel="fax"))
    first = dead_letter_for(raw, error, source="tp", received_at=NOW, partition=2, offset=7)
    second = dead_letter_for(raw, error, source="tp", received_at=NOW, partition=2, offset=7)
    other = dead_letter_for(raw, error, source="tp", received_at=NOW, partition=2, offset=8)
    assert first.dead_letter_id == second.dead_letter_id != other.dead_letter_id
    assert "channel" in first.reason
    assert isinstance(DeadLetter.model_validate_json(first.model_dump_json()), DeadLetter)


def test_dead_letter_truncates_huge_payloads() -> None:
    raw = b"x" * 100_000
    error = rejected(raw)
    dead = dead_letter_for(raw, error, source="tp", received_at=NOW)
    assert dead.truncated and dead.payload_bytes == 100_000 and len(dead.payload) < 100_000


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_ever_raise_rejections(raw: bytes) -> None:
    try:
        event = parse_touchpoint(raw, now=NOW)
    except TouchpointRejected as error:
        assert error.errors and error.kind
    else:
        assert isinstance(event, TouchpointEvent)


@given(st.dictionaries(st.sampled_from(list(event_dict())), st.none() | st.integers() | st.text()))
def test_arbitrary_field_values_only_ever_raise_rejections(overrides: dict) -> None:
    try:
        parse_touchpoint(json.dumps(event_dict(**overrides)), now=NOW)
    except TouchpointRejected as error:
        assert all(e.loc or e.type for e in error.errors)


def test_a_key_given_twice_is_refused_and_named() -> None:
    raw = orjson.dumps(event_dict())
    for doubled in (
        raw[:-1] + b', "event_id": "other"}',
        raw.replace(b'"amount":49.9', b'"amount":49.9,"amount":1'),
    ):
        with pytest.raises(TouchpointRejected) as caught:
            parse_touchpoint(doubled)
        assert caught.value.errors[0].type == "duplicate_key"
        assert caught.value.errors[0].loc in ("event_id", "amount")


@pytest.mark.parametrize("when", ["1970-01-01T00:00:00Z", "1900-01-01T00:00:00+00:00"])
def test_a_zeroed_clock_is_refused(when: str) -> None:
    with pytest.raises(TouchpointRejected) as caught:
        parse_touchpoint(orjson.dumps(event_dict(occurred_at=when)))
    assert caught.value.errors[0].loc == "occurred_at"
    assert "before 1970-01-02" in caught.value.errors[0].msg
    assert "zeroed" in caught.value.errors[0].msg


@pytest.mark.parametrize("when", ["1997-01-01T00:00:00Z", "1970-01-02T00:00:00Z"])
def test_real_history_is_kept_as_given(when: str) -> None:
    event = parse_touchpoint(orjson.dumps(event_dict(occurred_at=when)))
    assert event.occurred_at == datetime.fromisoformat(when)


def test_the_floor_is_configurable() -> None:
    floor = datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(TouchpointRejected) as caught:
        parse_touchpoint(
            orjson.dumps(event_dict(occurred_at="2019-12-31T23:59:59Z")), earliest=floor
        )
    assert "before 2020-01-01" in caught.value.errors[0].msg
    assert parse_touchpoint(
        orjson.dumps(event_dict(occurred_at="2020-01-01T00:00:00Z")), earliest=floor
    )


def _object_text(draw: st.DrawFn, depth: int) -> str:
    """A JSON object written by hand, so keys may repeat (a dict could not hold them)."""
    pairs = draw(st.lists(st.sampled_from(["a", "b", "é", 'q"', "c\\\\"]), max_size=4))
    parts = []
    for key in pairs:
        value = (
            _object_text(draw, depth - 1)
            if depth and draw(st.booleans())
            else json.dumps(
                draw(
                    st.none()
                    | st.integers()
                    | st.text(max_size=3)
                    | st.lists(st.text(max_size=2), max_size=2)
                ),
                ensure_ascii=draw(st.booleans()),
            )
        )
        parts.append(f"{json.dumps(key, ensure_ascii=draw(st.booleans()))}:{value}")
    return "{" + ",".join(parts) + "}"


def _has_repeated_key(text: str) -> bool:
    def pairs_hook(pairs: list) -> dict:
        if len({k for k, _ in pairs}) != len(pairs):
            raise KeyError
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=pairs_hook)
    except KeyError:
        return True
    return False


@given(st.composite(lambda draw: _object_text(draw, 2))())
def test_the_fast_duplicate_check_never_passes_a_repeated_key(text: str) -> None:
    from touchstream.schemas.validation import surely_unique_keys

    if _has_repeated_key(text):
        assert not surely_unique_keys(text)
        assert not surely_unique_keys(text.encode())
    elif "\\" not in text:
        assert surely_unique_keys(text)  # the fast path is taken for the usual payload


def test_who_delivered_it_is_optional_and_checked() -> None:
    """team, agent and site: the organisation's view of a touchpoint (ids, not free text)."""
    event = parse_touchpoint(
        json.dumps(event_dict(team="courier-north", agent="agent-07", site="store-3")), now=NOW
    )
    assert (event.team, event.agent, event.site) == ("courier-north", "agent-07", "store-3")
    assert parse_touchpoint(json.dumps(event_dict()), now=NOW).team is None
    with pytest.raises(TouchpointRejected) as refused:
        parse_touchpoint(json.dumps(event_dict(team="Jane Doe, night shift")), now=NOW)
    assert refused.value.errors[0].loc == "team"
    schema = json.loads(
        (Path(__file__).resolve().parents[2] / "schemas/json/touchpoint.schema.json").read_text()
    )
    assert {"team", "agent", "site"} <= set(schema["properties"])
