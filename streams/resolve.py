"""One record of the identify topic -> its touchpoint under its customer, and the merges.

The resolver's per-record step (streams/runtime/resolver.py runs it over batches of the
identify topic, one partition: the identity graph is one). The touchpoint goes on to the
touchpoints topic keyed by its customer; each merge it caused first asks the absorbed key's
partition to hand its state over (schemas/control.py). No I/O: what to publish and which
rows to write are returned.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from touchstream.schemas import (
    DeadLetter,
    FieldError,
    InputLimits,
    TouchpointRejected,
    dead_letter_for,
)
from touchstream.schemas.control import (
    FORGET_KEY,
    FORGET_PREFIX,
    after_merges,
    forget_marker,
    invalid_control,
    merge_request,
    parse_marker,
)
from touchstream.schemas.decoder import Touchpoint, decode_within
from touchstream.schemas.identifiers import IdentifierType
from touchstream.streams.identity import IdentityGraph, Merge, Refusal, Resolution, identity_key

log = logging.getLogger("touchstream.identity")

Record = tuple[str, bytes | None, bytes]  # output name, key, value
MapRow = tuple[str, str, str, float]  # identifier or alias, kind, customer, since


class Resolved(msgspec.Struct):
    """What one identify record asks for: records to publish, rows to write. A struct, not a
    dataclass: one is made per record, and a dataclass's default factories cost 0.9 µs where
    a struct copies its empty lists in 0.25."""

    records: list[Record] = []
    merges: list[Merge] = []
    refusals: list[Refusal] = []
    mapped: list[MapRow] = []  # rows of the identity map
    dead_letters: list[DeadLetter] = []
    outcome: str = "resolved"  # resolved | rejected | unresolved | forgotten

    def has_rows(self) -> bool:
        """Whether it writes any row (most records: a returning customer, none)."""
        return bool(self.mapped or self.merges or self.refusals or self.dead_letters)


def identity_keys(event: Touchpoint) -> list[str]:
    """The touchpoint's identity keys: its identifiers, and its customer_id if it has one."""
    keys = [identity_key(i.type, i.value, i.name or "") for i in event.identifiers]
    if event.customer_id is not None:
        keys.append(identity_key(IdentifierType.customer, event.customer_id))
    return keys


def merge_json(merge: Merge) -> bytes:
    """A merge as published on the identity topic."""
    return orjson.dumps(
        {
            "merge_id": merge.merge_id,
            "survivor": merge.survivor,
            "absorbed": merge.absorbed,
            "via": list(merge.via),
            "at": datetime.fromtimestamp(merge.at, UTC).isoformat(),
            "event_id": merge.event_id,
        }
    )


def unresolved(refusals: list[Refusal]) -> TouchpointRejected:
    """Why a touchpoint named no customer: its identifiers' refusals."""
    reasons = "; ".join(f"{r.reason} ({r.identifier})" for r in refusals)
    return TouchpointRejected(
        "unresolved_identity",
        [
            FieldError(
                loc="identifiers",
                type="unresolved_identity",
                msg=f"no identifier of this touchpoint can name a customer: {reasons}",
            )
        ],
    )


def resolve_record(
    graph: IdentityGraph,
    limits: InputLimits,
    key: bytes | None,
    raw: bytes | None,
    topic: str,
    partition: int,
    offset: int,
) -> Resolved:
    """One identify record -> what to publish and store. Never raises."""
    payload = raw or b""

    def reject(rejection: TouchpointRejected, outcome: str, out: Resolved) -> Resolved:
        letter = dead_letter_for(
            payload,
            rejection,
            source=topic,
            received_at=datetime.now(UTC),
            partition=partition,
            offset=offset,
        )
        out.dead_letters.append(letter)
        out.records.append(("dead_letters", key, letter.model_dump_json().encode()))
        out.outcome = outcome
        return out

    if key == FORGET_KEY or payload.startswith(FORGET_PREFIX):
        try:
            return forget_record(graph, parse_marker(payload))
        except (ValueError, KeyError, TypeError) as error:
            return reject(invalid_control(key, error), "rejected", Resolved())
    try:
        event = decode_within(payload, limits)
    except TouchpointRejected as rejected:
        return reject(rejected, "rejected", Resolved())
    out, named = resolve_event(graph, event)
    if named is None:
        return reject(unresolved(out.refusals), "unresolved", out)
    for merge in out.merges:
        request = merge_request(merge.absorbed, merge.survivor, merge.merge_id)
        out.records.append(("touchpoints", merge.absorbed.encode(), request))
        out.records.append(("identity", merge.merge_id.encode(), merge_json(merge)))
    customer = named.customer_id
    assert customer is not None
    value = named.to_wire()
    # the touchpoint that linked customers waits on its customer's partition until their
    # states have arrived there, so it is judged on the whole customer, as a replay does
    waits_for = [m.absorbed for m in out.merges if m.survivor == customer]
    if waits_for:
        value = after_merges(waits_for, value)
    out.records.append(("touchpoints", customer.encode(), value))
    return out


class Batch:
    """What a batch of identify records asks for, built record by record (`resolve_into`)."""

    def __init__(self, topic_of: dict[str, str], version_base: int) -> None:
        self.topic_of = topic_of  # output name -> topic
        self.version_base = version_base  # + offset: the version of a record's rows
        self.outgoing: list[tuple[str, int | None, bytes | None, bytes | None]] = []
        self.with_rows: list[tuple[Resolved, int]] = []  # most records write no row
        self.outcomes: dict[str, int] = {}


def resolve_into(
    batch: Batch, graph: IdentityGraph, limits: InputLimits, messages: list[Any], done: int
) -> None:
    """Resolve `messages` (records of the identify topic) into `batch`, skipping those at or
    below `done` (resolved, persisted and published before a crash). Compiled with the
    engine: interpreted, the loop cost ~3,000 instructions a record (docs/performance.md)."""
    topic_of, outgoing, outcomes = batch.topic_of, batch.outgoing, batch.outcomes
    for message in messages:
        offset: int = message.offset
        if offset <= done:
            continue
        resolved = resolve_record(
            graph, limits, message.key, message.value, message.topic, message.partition, offset
        )
        for name, key, value in resolved.records:
            outgoing.append((topic_of[name], None, key, value))
        outcomes[resolved.outcome] = outcomes.get(resolved.outcome, 0) + 1
        if resolved.has_rows():
            batch.with_rows.append((resolved, batch.version_base + offset))


def forget_record(graph: IdentityGraph, request: tuple[str, datetime, tuple[str, ...]]) -> Resolved:
    """A forget request for a customer or any identifier of theirs: the graph forgets the
    customer, every alias and identifier, and a marker goes to the keyed stage for the
    customer and each alias (state, and rows in every table). Unknown to the graph: the
    request is passed on for the id as given (a customer only ever named by customer_id)."""
    target, requested_at, _ = request
    out = Resolved(outcome="forgotten")
    customers, keys = [target], list[str]()
    found = graph.forget(target)
    if found is not None:
        customer, keys, aliases = found
        customers = [customer, *aliases]
    for customer in customers:
        marker = forget_marker(customer, requested_at, keys)
        out.records.append(("touchpoints", customer.encode(), marker))
    log.info(
        "forgetting %s: customers %s and %d identifiers (requested %s)",
        target,
        ", ".join(customers),
        len(keys),
        requested_at.isoformat(),
    )
    return out


def resolve_event(graph: IdentityGraph, event: Touchpoint) -> tuple[Resolved, Touchpoint | None]:
    """A decoded touchpoint's customer: the merges and refusals it caused, the identity map
    rows, and the touchpoint under its customer, without its identifiers (None: no
    identifier could name one; the refusals say why)."""
    keys = identity_keys(event)
    known = graph.returning(keys)
    if known is not None:  # most touchpoints: a returning customer, nothing else to say
        return Resolved(), _under(event, known)
    out = Resolved()
    at = event.occurred_at.timestamp()
    before = {k: graph.owner.get(k) for k in keys}
    resolution: Resolution = graph.resolve(keys, at, event.event_id)
    out.refusals, out.merges = resolution.refusals, resolution.merges
    customer = resolution.customer
    for merge in resolution.merges:
        out.mapped.extend((k, "identifier", merge.survivor, at) for k in merge.keys)
        out.mapped.extend(
            (a, "alias", merge.survivor, at) for a in (merge.absorbed, *merge.aliases)
        )
        log.info(
            "customers %s and %s are one (%s on %s): %s keeps its id",
            merge.survivor,
            merge.absorbed,
            " and ".join(dict.fromkeys(merge.via)),
            merge.event_id,
            merge.survivor,
        )
    for k, was in before.items():
        now = graph.owner.get(k)
        if was is None and now is not None:
            out.mapped.append((k, "identifier", graph.canonical(now), at))
        elif was is not None and now is None and k in graph.shared:  # it left its customer
            out.mapped.append((k, "shared", "", at))
    if customer is None:
        return out, None
    return out, _under(event, customer)


def _under(event: Touchpoint, customer: str) -> Touchpoint:
    """The touchpoint under its customer. Its identifiers stay on the identify topic: the
    keyed stage needs only the customer, and one topic fewer holds pseudonyms."""
    if event.customer_id != customer or event.identifiers:
        return msgspec.structs.replace(event, customer_id=customer, identifiers=[])
    return event
