"""The fast decoder against the reference: pydantic decides every rejection, and whatever
msgspec accepts on its own pydantic accepts with the same values (schemas/decoder.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.factories import event_dict
from touchstream.generator import generate
from touchstream.publisher import encode
from touchstream.schemas import TouchpointEvent, TouchpointRejected, decoder, parse_touchpoint
from touchstream.schemas.decoder import _ENCODER, Touchpoint, _fast, decode_touchpoint
from touchstream.schemas.touchpoint import DEFAULT_MAX_FUTURE_SKEW, EARLIEST_OCCURRED_AT

NOW = datetime(2026, 6, 1, tzinfo=UTC)

# -- near-valid payloads: a valid event, then up to three fields made odd or wrong ------------
_text = st.text(st.characters(codec="utf-8"), max_size=12)
identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,8}", fullmatch=True)
amounts = st.one_of(
    st.integers(-5, 12), st.floats(-1e12, 1e12, allow_nan=False), st.sampled_from([0, -0.0, 1e12])
)
numbers = st.one_of(
    amounts,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e12 + 1, 1e300, 2**63, 2**64, 1e-7, True]),
)
anything = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    _text,
    st.sampled_from(["", "a\n", "a b", "é", "x" * 129, "null", [], {}, [1], {"a": 1}]),
)


valid_timestamps = st.builds(
    "{}T{}{}{}".format,
    st.sampled_from(["2026-03-01", "2026-05-31", "2000-02-29"]),
    st.sampled_from(["10:00:00", "00:00:01", "23:59:59"]),
    st.sampled_from(["", ".5", ".123", ".123456"]),
    st.sampled_from(["Z", "+01:00", "-00:00", "-05:30"]),
)
odd_timestamps = st.builds(
    "{}{}{}{}{}".format,
    st.sampled_from(["2026-03-01", "1969-12-31", "2026-13-01", "26-03-01"]),
    st.sampled_from(["T", "t", " ", "_"]),
    st.sampled_from(["10:00:00", "23:59:60", "24:00:00", "10:00"]),
    st.sampled_from(["", ".1234565", ".9999999", ",5", "."]),
    st.sampled_from(["Z", "z", "+0100", "+14:00", "+25:00", ""]),
)
timestamps = st.one_of(valid_timestamps, valid_timestamps, odd_timestamps)


tolerances = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from(["relative", "absolute"]),
        "value": st.sampled_from([0.1, 15, 1e9, 0, 2e9]),
    },
)
expectations = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(["delivery_days", "wait_minutes", "Bad", "a\n"]),
        "unit": st.sampled_from(["days", "min", "", "u" * 33]),
        "promised": amounts,
        "actual": amounts,
        "direction": st.sampled_from(["lower_is_better", "higher_is_better"]),
    },
    optional={"tolerance": tolerances},
)
ratings = st.fixed_dictionaries(
    {
        "scale": st.sampled_from(["csat_5", "nps_10", "ces_7", "stars_5"]),
        "value": st.one_of(st.integers(0, 11), st.floats(0, 10), amounts),
    }
)
attributes = st.dictionaries(
    st.sampled_from(["region", "vip", "n", "bad key"]),
    st.one_of(_text, st.booleans(), numbers, st.sampled_from(["x" * 257, None, [1]])),
    max_size=3,
)
events = st.fixed_dictionaries(
    {
        "event_id": identifiers,
        "customer_id": identifiers,
        "occurred_at": timestamps,
        "channel": st.sampled_from(["web", "store", "delivery"]),
        "kind": st.sampled_from(["purchase", "delivery", "complaint", "return"]),
    },
    optional={
        "expectations": st.lists(expectations, max_size=3),
        "rating": st.one_of(ratings, st.none()),
        "outcome": st.sampled_from(["success", "failure", "partial", None]),
        "sentiment": st.one_of(st.floats(-1, 1), st.none()),
        "value": st.fixed_dictionaries(
            {"amount": amounts, "currency": st.sampled_from(["EUR", "USD", "eur"])}
        ),
        "case_id": st.one_of(identifiers, st.none()),
        "source": st.sampled_from(["crm", "unknown", ""]),
        "team": st.one_of(identifiers, st.none()),
        "schema_version": st.sampled_from([1, 1, 2, 1.0]),
        "attributes": attributes,
    },
)
_FIELDS = [*TouchpointEvent.model_fields, "surprise"]  # what a payload may get wrong


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A near-valid event as JSON text, laid out as publishers do, now and then with a key
    written twice or with escapes."""
    event = draw(events)
    for name in draw(st.lists(st.sampled_from(_FIELDS), max_size=3)):
        if draw(st.booleans()) and name in event:
            del event[name]
        else:
            event[name] = draw(anything)
    text = json.dumps(
        event,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])),
        indent=draw(st.sampled_from([None, 2])),
    )
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(event)))
        again = json.dumps({key: draw(st.one_of(anything, st.just(event[key])))})[1:-1]
        text = text[:-1] + ", " + again + "}"
    return text.encode()


def _reference(raw: bytes) -> Touchpoint | TouchpointRejected:
    try:
        return Touchpoint.from_event(parse_touchpoint(raw, now=NOW))
    except TouchpointRejected as rejected:
        return rejected


def _agrees(raw: bytes) -> bool:
    """Asserts the contract on one payload; True when the fast path decided alone."""
    reference = _reference(raw)
    fast = _fast(raw, NOW, DEFAULT_MAX_FUTURE_SKEW, EARLIEST_OCCURRED_AT)
    if fast is not None:
        assert isinstance(reference, Touchpoint), (
            f"msgspec accepted what pydantic refuses: {reference}"
        )
        assert fast == reference
        assert fast.to_json() == reference.to_json()  # every value, to the digit and zone
    try:
        decoded = decode_touchpoint(raw, now=NOW)
    except TouchpointRejected as rejected:
        assert isinstance(reference, TouchpointRejected)
        assert (rejected.kind, rejected.errors) == (reference.kind, reference.errors)
    else:
        assert decoded == reference
    return fast is not None


@settings(max_examples=600)
@given(payloads())
@example(json.dumps(event_dict(event_id="evt-1\n")).encode())
@example(json.dumps(event_dict(occurred_at="2026-03-01T10:00:00.9999999Z")).encode())
@example(json.dumps(event_dict(occurred_at="2026-03-01t10:00:00z")).encode())
@example(
    b'{"attributes":{"occurred_at":"x"},"event_id":"e","customer_id":"c","channel":"web",'
    b'"kind":"visit","occurred_at" : "2026-03-01T10:00:00.1234567+01:00"}'
)
@example(json.dumps(event_dict(attributes={"occurred_at": "10:00:00.1234567"})).encode())
@example(json.dumps(event_dict(attributes={"n": 2**64})).encode())
@example(
    b'{"event_id":"e","event_id":"f","customer_id":"c","occurred_at":"2026-03-01T10:00:00Z","channel":"web","kind":"visit"}'
)
@example(json.dumps(event_dict(rating=None, expectations=[], source="unknown")).encode())
def test_the_fast_path_accepts_only_what_pydantic_accepts_with_its_values(raw: bytes) -> None:
    _agrees(raw)


@settings(max_examples=300)
@given(payloads())
@example(json.dumps(event_dict(occurred_at="2026-03-01T10:00:00.123456+02:00")).encode())
@example(json.dumps(event_dict(event_id="evt-1", attributes={"note": 'a "b"\n'})).encode())
def test_the_resolvers_output_is_decided_as_pydantic_decides_it(raw: bytes) -> None:
    """The resolver re-encodes what it accepted (`to_wire`); as the encoder writes it, the
    repeated-key and long-fraction checks are skipped. Such a payload is still accepted by
    pydantic with the same values, and by the fast path itself."""
    fast = _fast(raw, NOW, DEFAULT_MAX_FUTURE_SKEW, EARLIEST_OCCURRED_AT)
    if fast is None:
        return
    wire = fast.to_wire()
    assert _agrees(wire)


def test_the_usual_payloads_take_the_fast_path() -> None:
    """Generated traffic, the SDK's output and payloads with every field written out are
    decided by the fast path: it is the one that runs, not a formality. The SDK leaves out
    the defaults, so its payloads need no exact repeated-key check either."""
    _, generated = generate(customers=100, months=2, start=datetime(2026, 1, 1, tzinfo=UTC))
    sample = [json.dumps(event, default=str).encode() for event in generated[:2000]]
    sdk = parse_touchpoint(json.dumps(event_dict(rating=None)), now=NOW)
    sample.append(encode(sdk)[1])  # what the SDK and the HTTP ingest publish
    compact = encode(sdk)[1]
    assert b"null" not in compact
    assert compact.count(b'"') == _ENCODER.encode(decode_touchpoint(compact, now=NOW)).count(b'"')
    sample.append(sdk.model_dump_json().encode())  # every field, nulls included
    sample.append(json.dumps(event_dict(occurred_at="2026-03-01T10:00:00.123+02:00")).encode())
    assert all(_agrees(raw) for raw in sample)


def test_a_stored_payload_is_written_as_pydantic_writes_it() -> None:
    event = parse_touchpoint(json.dumps(event_dict()), now=NOW)
    assert Touchpoint.from_event(event).to_json() == event.model_dump_json().encode()


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({"event_id": "evt 1"}, "invalid_event"),
        ({"occurred_at": (NOW + timedelta(hours=1)).isoformat()}, "future_timestamp"),
        ({"channel": "fax"}, "invalid_event"),
        (
            {
                "expectations": [
                    {
                        "metric": "d",
                        "unit": "d",
                        "promised": 0,
                        "actual": 1,
                        "direction": "lower_is_better",
                    }
                ]
            },
            "invalid_event",
        ),
    ],
)
def test_rejections_are_pydantics(change: dict[str, Any], kind: str) -> None:
    raw = json.dumps(event_dict(**change)).encode()
    with pytest.raises(TouchpointRejected) as decoded:
        decode_touchpoint(raw, now=NOW)
    with pytest.raises(TouchpointRejected) as reference:
        parse_touchpoint(raw, now=NOW)
    assert decoded.value.kind == kind
    assert decoded.value.errors == reference.value.errors


def test_the_structs_have_the_models_fields_in_their_order() -> None:
    """A field added to a wire model and not here would send every payload carrying it to
    the slow path, and the engine would never see it."""
    from touchstream.schemas import touchpoint

    for name in ("Tolerance", "Expectation", "Rating", "Money"):
        fast, model = getattr(decoder, name), getattr(touchpoint, name)
        assert fast.__struct_fields__ == tuple(model.model_fields), name
    assert Touchpoint.__struct_fields__ == tuple(TouchpointEvent.model_fields)


_spellings = st.text(
    st.one_of(
        st.sampled_from("aZ09_.:@/-\n é\t\x00ßK"),  # every class of the patterns, and others
        st.characters(codec="utf-8"),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=2000)
@given(_spellings)
@example("a\n")
@example("é")
@example("K")  # the Kelvin sign: a letter to `str.isalnum`, not to the patterns
@example("EUR")
@example("EUé")
def test_the_spelling_checks_are_the_models_patterns(text: str) -> None:
    """The structs check lengths only; the decoder checks the patterns without `re`
    (schemas/wire.py says why). On a string of a length the model takes, each check says
    what the model's own pattern says."""
    from touchstream.schemas import touchpoint

    def constraint(annotated: Any) -> Any:
        return next(m for m in annotated.__metadata__ if getattr(m, "pattern", None))

    currency = next(
        m for m in touchpoint.Money.model_fields["currency"].metadata if getattr(m, "pattern", None)
    )
    checks = [
        (decoder._identifier, constraint(touchpoint.Identifier)),
        (decoder._slug, constraint(touchpoint.Slug)),
        (
            partial(decoder._only, allowed=decoder._ATTRIBUTE_KEY),
            constraint(touchpoint.AttributeKey),
        ),
        (partial(decoder._only, allowed=decoder._CURRENCY), currency),
    ]
    for check, model in checks:
        lengths = (model.min_length or 3, model.max_length or 3)  # the currency: 3 letters
        if lengths[0] <= len(text) <= lengths[1]:
            expected = re.fullmatch(model.pattern, text) is not None
            assert check(text) == expected, (model.pattern, text)
