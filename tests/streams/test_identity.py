"""Identity resolution on hand-made histories: links, merges, and every guard."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from touchstream.schemas import InputLimits
from touchstream.schemas.identifiers import (
    IdentifierRefused,
    IdentifierType,
    normalise,
    pseudonym,
)
from touchstream.streams.identity import (
    DENIED,
    LIMIT,
    LOOP,
    NO_IDENTIFIER,
    SHARED,
    WEAK_LINK,
    IdentityGraph,
    denied_keys,
    identity_key,
    type_of,
)
from touchstream.streams.rules import IdentityRules
from touchstream.streams.runtime.resolver import Resolver

DAY = 86_400.0
RULES = IdentityRules()


def graph() -> IdentityGraph:
    return IdentityGraph(RULES)


def test_values_are_normalised_before_they_are_compared() -> None:
    assert normalise(IdentifierType.email, "  Ana.Silva@Example.COM ") == "ana.silva@example.com"
    assert normalise(IdentifierType.phone, "0171 234 5678", "DE") == "+491712345678"
    assert normalise(IdentifierType.phone, "+49 (171) 234-5678") == "+491712345678"
    assert normalise(IdentifierType.loyalty_card, " 1234 5678 ") == "12345678"
    for kind, value in [
        (IdentifierType.email, "not-an-address"),
        (IdentifierType.phone, "12"),
        (IdentifierType.device, "   "),
        (IdentifierType.crm_id, "x" * 300),
    ]:
        with pytest.raises(IdentifierRefused):
            normalise(kind, value, "DE")


def test_pseudonyms_keep_equal_values_equal_and_types_apart() -> None:
    secret = b"s3cret"
    email = pseudonym(IdentifierType.email, "ana@example.com", secret)
    assert email == pseudonym(IdentifierType.email, "ana@example.com", secret)
    assert email.startswith("h1:") and "ana" not in email and len(email) == 35
    assert email != pseudonym(IdentifierType.email, "ana@example.com", b"other")
    assert pseudonym(IdentifierType.crm_id, "42", secret) != pseudonym(
        IdentifierType.loyalty_card, "42", secret
    )
    assert pseudonym(IdentifierType.email, email, secret) == email  # not hashed twice
    assert type_of(identity_key(IdentifierType.external, "9", "shop")) == "external:shop"


def test_strong_identifiers_seen_together_merge_into_the_earlier_customer() -> None:
    g = graph()
    first = g.resolve(["email:a@x.com"], 1 * DAY).customer
    assert first and first.startswith("c-")
    assert g.resolve(["email:a@x.com"], 2 * DAY).customer == first
    phone = g.resolve(["phone:+4911"], 3 * DAY).customer
    email = g.owner["email:a@x.com"]
    linked = g.resolve(["email:a@x.com", "phone:+4911"], 4 * DAY, "e9")
    assert [(m.survivor, m.absorbed, m.event_id) for m in linked.merges] == [(email, phone, "e9")]
    assert linked.customer == email and g.customer_of("phone:+4911") == email
    assert g.customer_of(phone) == email and g.aliases_of(email) == [phone]


def test_a_given_customer_id_names_the_customer() -> None:
    g = graph()
    assert g.resolve(["customer:C-7", "email:a@x.com"], 0.0).customer == "C-7"
    assert g.resolve(["email:a@x.com"], DAY).customer == "C-7"


def test_two_crm_ids_never_merge_and_the_refusal_says_so() -> None:
    g = graph()
    first = g.resolve(["crm_id:1", "email:a@x.com"], 0.0).customer
    second = g.resolve(["crm_id:2", "phone:+4911"], DAY).customer
    clash = g.resolve(["email:a@x.com", "phone:+4911"], 2 * DAY, "e3")
    assert clash.merges == []
    assert [(r.reason, r.identifier, r.customers) for r in clash.refusals] == [
        (LIMIT, "crm_id", (first, second))
    ]
    assert g.customer_of("crm_id:1") != g.customer_of("crm_id:2")
    # a second CRM id on a touchpoint of a customer who has one is not attached either
    again = g.resolve(["email:a@x.com", "crm_id:3"], 3 * DAY)
    assert [r.reason for r in again.refusals] == [LIMIT] and "crm_id:3" not in g.owner


def test_a_merge_loop_is_refused_with_its_reason_not_followed_forever() -> None:
    """Only a damaged graph holds one (aliases in a circle, as a hand-edited changelog
    could): the touchpoint is then unresolved, with the reason, and nothing else moves."""
    g = graph()
    g.load(
        [
            ("c:a", b'{"alias": "b"}'),
            ("c:b", b'{"alias": "a"}'),
            ("c:c", b'{"keys": ["email:x"], "first": 0.0}'),
        ]
    )
    g.owner["email:x"] = "a"  # an identifier of the circle
    looped = g.resolve(["email:x"], DAY, "e1")
    assert looped.customer is None
    assert [r.reason for r in looped.refusals] == [LOOP]
    assert "merge loop" in looped.refusals[0].identifier
    assert g.resolve(["email:y"], DAY).customer is not None  # the rest resolves as before


def test_placeholders_never_link_raw_or_pseudonymised() -> None:
    secret = b"k"
    g = IdentityGraph(RULES, denied_keys(RULES, secret))
    junk = identity_key(
        IdentifierType.email, pseudonym(IdentifierType.email, "test@example.com", secret)
    )
    a = g.resolve(["email:a@x.com", "phone:0"], 0.0)
    b = g.resolve(["email:b@x.com", junk], 0.0)
    assert [r.reason for r in (*a.refusals, *b.refusals)] == [DENIED, DENIED]
    assert a.customer != b.customer and "phone:0" not in g.owner
    alone = g.resolve(["device:undefined"], 0.0)
    assert alone.customer is None and [r.reason for r in alone.refusals] == [DENIED, NO_IDENTIFIER]


def test_a_device_joins_a_customer_once_seen_with_them_on_two_days() -> None:
    g = graph()
    browsing = g.resolve(["device:d1"], 0.0).customer  # anonymous history first
    login = g.resolve(["email:a@x.com", "device:d1"], DAY)
    assert login.merges == [] and g.customer_of("device:d1") == browsing
    assert g.resolve(["email:a@x.com", "device:d1"], DAY + 3600).merges == []  # same day
    confirmed = g.resolve(["email:a@x.com", "device:d1"], 3 * DAY, "e5")
    assert [(m.survivor, m.absorbed) for m in confirmed.merges] == [(login.customer, browsing)]
    assert g.resolve(["device:d1"], 4 * DAY).customer == login.customer


def test_an_order_brings_its_delivery_to_the_buyer_at_once() -> None:
    g = graph()
    buyer = g.resolve(["email:a@x.com", "order_id:o1"], 0.0).customer
    assert g.resolve(["order_id:o1"], 2 * DAY).customer == buyer


def test_a_kiosk_links_no_one_and_becomes_shared() -> None:
    g = graph()
    kiosk = "device:kiosk-1"
    people = [f"email:p{i}@x.com" for i in range(6)]
    merges, reasons = [], []
    for day, person in enumerate(people * 2):
        result = g.resolve([person, kiosk], day * DAY)
        merges += result.merges
        reasons += [r.reason for r in result.refusals]
    assert merges == []
    assert kiosk in g.shared and kiosk not in g.owner
    assert WEAK_LINK in reasons and SHARED in reasons
    assert len({g.customer_of(p) for p in people}) == len(people)
    assert g.resolve([kiosk], 20 * DAY).customer is None


def test_a_device_of_one_known_customer_does_not_merge_another() -> None:
    g = graph()
    a = g.resolve(["email:a@x.com", "device:d"], 0.0).customer
    g.resolve(["email:a@x.com", "device:d"], DAY)  # confirmed: d is a's
    b = g.resolve(["email:b@x.com"], 2 * DAY).customer
    result = g.resolve(["email:b@x.com", "device:d"], 3 * DAY)
    assert result.merges == [] and result.customer == b
    assert [(r.reason, r.customers) for r in result.refusals] == [(WEAK_LINK, (a, b))]


def test_the_same_history_gives_the_same_customers_and_merges() -> None:
    history = [
        (["device:d"], 0.0),
        (["email:a@x.com", "device:d"], DAY),
        (["phone:+4911", "crm_id:9"], DAY),
        (["email:a@x.com", "device:d"], 2 * DAY),
        (["email:a@x.com", "phone:+4911"], 3 * DAY),
        (["order_id:o", "email:a@x.com"], 4 * DAY),
    ]

    def run() -> tuple[list, dict]:
        g = graph()
        out = [g.resolve(keys, at, f"e{i}") for i, (keys, at) in enumerate(history)]
        return [(r.customer, r.merges, r.refusals) for r in out], dict(g.owner)

    assert run() == run()
    _, owner = run()
    assert len(set(owner.values())) == 1  # all one customer in the end


def test_forgetting_any_identifier_forgets_the_customer_and_every_alias() -> None:
    g = graph()
    g.resolve(["email:a@x.com"], 0.0)
    g.resolve(["phone:+4911"], DAY)
    g.resolve(["email:a@x.com", "phone:+4911"], 2 * DAY)
    survivor = g.customer_of("email:a@x.com")
    assert survivor is not None
    customer, keys, aliases = g.forget("phone:+4911") or ("", [], [])
    assert customer == survivor and sorted(keys) == ["email:a@x.com", "phone:+4911"]
    assert len(aliases) == 1 and g.customer_of(aliases[0]) is None
    assert g.owner == {} and g.members == {} and g.alias == {}
    assert g.forget("email:a@x.com") is None


def test_on_generated_traffic_with_known_truth_links_are_right_and_kiosks_merge_nothing() -> None:
    """bench/identity.py's world, small: people known by one to five identifiers across
    channels, shared kiosks, placeholders (`make bench-identity` runs it at 2,000 people)."""
    from bench.identity import run

    result = run(people=300, months=4, seed=3)
    assert result["pairs"]["linkable"] > 300 and result["merges"] > 50
    assert result["pairs"]["precision"] >= 0.99
    assert result["pairs"]["recall"] >= 0.95
    assert result["merges_through_kiosk_or_placeholder"] == 0
    assert (
        result["refusals"]["shared_identifier"] > 0 and result["refusals"]["denied_identifier"] > 0
    )
    assert result["unresolved_events"] == 0  # only kiosk browsing has no usable identifier
    assert result["connected_people_in_one_customer"] >= 0.95
    defects = result["signals"]["by_kind"]["about_to_defect"]
    assert defects["truth"] >= 10 and defects["alike"] >= 0.9 * defects["truth"]


def test_the_example_in_the_identity_doc_runs() -> None:
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "identity.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/identity.md", "exec"), {})


def test_the_returning_customer_shortcut_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """`_returning` skips the full path for touchpoints whose identifiers all belong to one
    customer already: on traffic with kiosks, devices and placeholders, the same answers."""
    from bench.identity import SECRET, generate, identify

    traffic = identify(generate(150, 3, 5)[1], 5)

    def answers() -> list[tuple]:
        g = IdentityGraph(RULES, denied_keys(RULES, SECRET))
        out = []
        for event, keys in zip(traffic.events, traffic.keys, strict=True):
            r = g.resolve(keys, len(out) * 600.0, event["event_id"])
            out.append((r.customer, r.merges, [(x.reason, x.identifier) for x in r.refusals]))
        return [*out, (sorted(g.owner.items()), sorted(g.pending.items()), sorted(g.confirmed))]

    fast = answers()
    monkeypatch.setattr(IdentityGraph, "_returning", lambda self, keys: None)
    assert answers() == fast
    assert sum(1 for customer, merges, _ in fast[:-1] if customer and not merges) > 1000


def test_a_graph_restored_from_its_entries_resolves_as_the_one_it_was_copied_from() -> None:
    """The copy in ClickHouse (every entry `take_changes` gave) makes the same graph: merges,
    aliases, a device pending and one confirmed, a shared kiosk. The log starts afresh:
    nothing counts as resolved, and rows are versioned above the old ones."""
    history = [
        (["email:a@x.com"], 0.0),
        (["phone:+4911"], DAY),
        (["email:a@x.com", "phone:+4911"], 2 * DAY),  # a merge
        (["email:a@x.com", "device:d"], 2 * DAY),
        (["email:a@x.com", "device:d"], 3 * DAY),  # d is a's now
        (["email:b@x.com", "device:p"], 3 * DAY),  # p pending
        *[([f"email:k{i}@x.com", "device:kiosk"], 4 * DAY + i) for i in range(6)],
    ]
    original, entries = graph(), dict[str, bytes | None]()
    for i, (keys, at) in enumerate(history):
        original.resolve(keys, at, f"e{i}")
        original.resolved(i)
        entries.update(original.take_changes())  # what ClickHouse keeps, the latest of each
    assert "device:kiosk" in original.shared and "device:p" in original.pending

    copy = graph()
    assert copy.restore(entries.items(), version_base=1_000) == len(entries) - 1  # not o:
    assert copy.resolved_through == -1 and copy.version_base == 1_000
    for field in ("owner", "members", "first_seen", "alias", "aliases", "shared", "seen_with"):
        assert getattr(copy, field) == getattr(original, field), field
    assert (copy.pending, copy.confirmed) == (original.pending, original.confirmed)
    assert dict(copy.take_changes()) == {  # all written again to the new changelog
        **{k: v for k, v in entries.items() if k != "o:"},
        "o:": b"[-1,1000]",
    }
    later = [(["phone:+4911", "device:p"], 5 * DAY), (["email:b@x.com", "device:p"], 6 * DAY)]
    for keys, at in later:
        assert copy.resolve(keys, at, "n") == original.resolve(keys, at, "n")


def test_a_graph_persisted_before_row_versions_loads_with_none() -> None:
    g = graph()
    g.load([("o:", b"41")])
    assert (g.resolved_through, g.version_base) == (41, 0)


class _Table:
    """A one-partition Faust table as the resolver reads it at load: its store's dict."""

    def __init__(self, data: dict[str, bytes]) -> None:
        self.data = data


class _Copy:
    def __init__(self, entries: list[tuple[str, bytes | None]]) -> None:
        self.entries, self.loads = entries, 0

    async def load(self) -> tuple[list[tuple[str, bytes | None]], int]:
        self.loads += 1
        return self.entries, 500

    async def empty(self) -> bool:
        return not self.entries


def _loaded(changelog: dict[str, bytes], copy: _Copy) -> IdentityGraph:
    table = SimpleNamespace(table=_Table(changelog))
    resolver = Resolver(graph, InputLimits(), table, None, {}, None, copy=copy)  # type: ignore[arg-type]
    return asyncio.run(resolver._loaded())


def test_the_resolver_restores_a_lost_changelog_and_copies_one_never_copied() -> None:
    """Changelog empty, copy kept: the graph is the copy's, read as a new log. Changelog
    kept, copy empty (a graph from before the copy existed): every entry is written with
    the next batch, so the copy is whole from then on. Both kept: nothing to do."""
    original = graph()
    original.resolve(["email:a@x.com"], 0.0)
    original.resolve(["phone:+4911"], DAY)
    original.resolve(["email:a@x.com", "phone:+4911"], 2 * DAY)
    original.resolved(7)
    entries = original.take_changes()
    stored = {name: value for name, value in entries if value is not None}

    restored = _loaded({}, _Copy(entries))
    assert restored.owner == original.owner and restored.alias == original.alias
    assert (restored.resolved_through, restored.version_base) == (-1, 500)

    copied = _loaded(dict(stored), _Copy([]))
    assert copied.resolved_through == 7 and dict(copied.take_changes()) == stored

    both = _Copy(entries)
    kept = _loaded(dict(stored), both)
    assert kept.take_changes() == [] and both.loads == 0
