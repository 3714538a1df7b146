"""Identity resolution against traffic whose truth is known.

    python -m bench.identity [--people N] [--months M] [--seed S]

The demo's generator writes each person's touchpoints under their true id. Here each
touchpoint instead carries only the identifiers its channel would know (`identify`): the web
and the app a device, and the person's e-mail when they log in (sometimes their CRM id too);
the store the loyalty card, or a phone or e-mail for the receipt, and at some visits a login
at a shared in-store kiosk (where others browse anonymously too); the call centre the phone,
and the CRM id when the agent looks it up; e-mail the address; a delivery the order of the
purchase it delivers. Some touchpoints carry a placeholder ("0", "test@example.com",
"undefined") as well. Values are pseudonymised with a secret as the SDK does.

Measured:

* pairs of identifiers put in one customer, against the people they belong to: precision,
  and recall of the linkable pairs (identifiers of one person connected by touchpoints that
  carried them together; kiosks and placeholders belong to no one). Orders are counted apart:
  every purchase makes one, so they would outnumber the identifiers of people;
* merges through a kiosk or a placeholder (must be none), refusals by reason;
* the engine run twice, on the true ids and on the resolved customers (merges applied as the
  declared merge rules say): for every person whose identifiers all end in one customer of
  their own, the signals raised from the moment their identifiers linked (the linking
  touchpoint's own included: live, it waits for the merged state as here), compared.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from touchstream.generator import generate
from touchstream.schemas import validate_touchpoint
from touchstream.schemas.decoder import Touchpoint
from touchstream.schemas.identifiers import IdentifierType, pseudonym
from touchstream.streams.churn import RiskModel
from touchstream.streams.engine import Engine, StepResult
from touchstream.streams.identity import IdentityGraph, Merge, denied_keys, identity_key, type_of
from touchstream.streams.rules import Rules

RESULTS = Path(__file__).parent / "results" / "identity"
SECRET = b"bench-identity"
PLACEHOLDERS = (
    (IdentifierType.phone, "0"),
    (IdentifierType.email, "test@example.com"),
    (IdentifierType.device, "undefined"),
)
NOBODY = "kiosk-visitor"  # the true id of anonymous kiosk browsing: belongs to no one
console = Console()


@dataclass
class Person:
    """The identifiers one person has (each with some probability)."""

    email: str | None
    phone: str | None
    card: str | None
    crm: str | None
    devices: list[str]


@dataclass
class Traffic:
    events: list[dict[str, Any]]  # the generator's events, true customer ids
    keys: list[list[str]]  # identity keys each event carries
    owner: dict[str, str]  # identity key -> person (kiosks and placeholders: none)
    kiosks: set[str] = field(default_factory=set)
    junk: set[str] = field(default_factory=set)


def _key(kind: IdentifierType, value: str) -> str:
    return identity_key(kind, pseudonym(kind, value, SECRET))


def _person(pid: str, rng: random.Random) -> Person:
    n = int(pid.rsplit("-", 1)[-1])
    return Person(
        email=f"person{n}@example.org" if rng.random() < 0.9 else None,
        phone=f"+3519{n:08d}" if rng.random() < 0.75 else None,
        card=f"card-{n}" if rng.random() < 0.5 else None,
        crm=f"crm-{n}" if rng.random() < 0.6 else None,
        devices=[f"dev-{n}-{i}" for i in range(rng.choice([0, 1, 1, 2]))],
    )


def identify(events: list[dict[str, Any]], seed: int, kiosks: int = 5) -> Traffic:
    """The identifiers each touchpoint's channel knows (module docstring)."""
    rng = random.Random(f"identity-{seed}")
    people: dict[str, Person] = {}
    last_order: dict[str, str] = {}
    traffic = Traffic([], [], {})
    kiosk_keys = [_key(IdentifierType.device, f"kiosk-{i}") for i in range(kiosks)]
    traffic.kiosks.update(kiosk_keys)
    for event in events:
        if event["channel"] == "store" and rng.random() < 0.3:  # someone browses at a kiosk
            kiosk = rng.choice(kiosk_keys)
            at = datetime.fromisoformat(event["occurred_at"]) - timedelta(minutes=3)
            traffic.events.append(
                {
                    "event_id": f"{event['event_id']}-kiosk",
                    "customer_id": NOBODY,
                    "occurred_at": at.isoformat(),
                    "channel": "store",
                    "kind": "inquiry",
                }
            )
            traffic.keys.append([kiosk])
        traffic.events.append(event)
        pid = event["customer_id"]
        person = people.get(pid) or people.setdefault(pid, _person(pid, rng))
        carried: list[tuple[IdentifierType, str]] = []
        channel, kind = event["channel"], event["kind"]
        email = [(IdentifierType.email, person.email)] if person.email else []
        phone = [(IdentifierType.phone, person.phone)] if person.phone else []
        crm = [(IdentifierType.crm_id, person.crm)] if person.crm else []
        if channel in ("web", "app"):
            if person.devices:
                carried.append((IdentifierType.device, rng.choice(person.devices)))
            if not carried or rng.random() < (0.9 if channel == "app" else 0.5):
                carried += email or phone
                if channel == "app" and rng.random() < 0.3:
                    carried += crm
        elif channel == "store":
            if person.card:
                carried.append((IdentifierType.loyalty_card, person.card))
            if not carried or rng.random() < 0.15:  # a receipt, or a login at a kiosk
                login = email or phone
                carried += login
                if login and rng.random() < 0.5:
                    carried.append((IdentifierType.device, f"kiosk-{rng.randrange(kiosks)}"))
        elif channel in ("phone", "sms"):
            carried += phone or email
            if rng.random() < 0.6:
                carried += crm
        elif channel == "delivery":
            if pid in last_order:
                carried.append((IdentifierType.order_id, last_order[pid]))
            else:
                carried += phone or email
        else:  # email, chat, social, mail
            carried += email or phone
            if channel == "chat" and rng.random() < 0.5:
                carried += crm
        if not carried:  # a person with no identifier this channel knows: a CRM id
            carried += crm or [(IdentifierType.customer, pid)]
        if kind in ("purchase", "order") and channel != "store":
            order = f"order-{event['event_id']}"
            last_order[pid] = order
            carried.append((IdentifierType.order_id, order))
        keys = [_key(k, v) for k, v in carried]
        for (_, value), key in zip(carried, keys, strict=True):
            if not value.startswith("kiosk-"):
                traffic.owner[key] = pid
        if rng.random() < 0.02:
            kind_of, value = rng.choice(PLACEHOLDERS)
            junk = _key(kind_of, value)
            traffic.junk.add(junk)
            keys.append(junk)
        traffic.keys.append(keys)
    return traffic


@dataclass
class Pairs:
    predicted: int = 0
    correct: int = 0
    linkable: int = 0
    found: int = 0

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.linkable if self.linkable else 1.0


def connected(traffic: Traffic) -> dict[str, str]:
    """Each person's identifier -> a representative of those the touchpoints connect it to."""
    parent: dict[str, str] = {}

    def find(k: str) -> str:
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for keys in traffic.keys:
        mine = [k for k in keys if k in traffic.owner]
        for a, b in itertools.pairwise(mine):
            parent[find(a)] = find(b)
    return {key: find(key) for key in traffic.owner}


def linkable_pairs(traffic: Traffic, orders: bool) -> set[frozenset[str]]:
    """Pairs of one person's identifiers connected by touchpoints that carried them together."""
    groups: dict[str, list[str]] = defaultdict(list)
    for key, root in connected(traffic).items():
        if orders or type_of(key) != "order_id":
            groups[root].append(key)
    return {frozenset(p) for g in groups.values() for p in itertools.combinations(g, 2)}


def pair_scores(graph: IdentityGraph, traffic: Traffic, orders: bool) -> Pairs:
    linkable = linkable_pairs(traffic, orders)
    scores = Pairs(linkable=len(linkable))
    for members in graph.members.values():
        keys = [k for k in members if orders or type_of(k) != "order_id"]
        for a, b in itertools.combinations(keys, 2):
            scores.predicted += 1
            same = a in traffic.owner and traffic.owner.get(a) == traffic.owner.get(b)
            scores.correct += same
            scores.found += frozenset((a, b)) in linkable
    return scores


Raised = dict[str, list[tuple[str, str]]]  # customer -> (raised at, kind) of its signals


def _touchpoint(event: dict[str, Any], customer: str) -> Touchpoint:
    return msgspec.structs.replace(
        Touchpoint.from_event(validate_touchpoint(event)), customer_id=customer
    )


def run(people: int, months: float, seed: int) -> dict[str, Any]:
    rules = Rules()
    traffic = identify(generate(people, months, seed)[1], seed)
    events = traffic.events
    graph = IdentityGraph(rules.identity, denied_keys(rules.identity, SECRET))
    model = RiskModel()
    truth_engine = Engine(rules, model, {}, {}, 1)
    resolved_engine = Engine(rules, model, {}, {}, 1)
    truth_signals: Raised = defaultdict(list)
    resolved_signals: Raised = defaultdict(list)
    merges: list[Merge] = []
    refusals: Counter[str] = Counter()
    customers_of: dict[str, set[str]] = defaultdict(set)  # person -> customers resolved to
    unresolved = 0
    misplaced = 0  # kiosk browsing put on a known customer (before the kiosk showed shared)

    def collect(outcome: StepResult, into: Raised) -> None:
        for signal in outcome.signals:
            into[signal.customer_id].append((signal.raised_at.isoformat(), signal.kind.value))

    for event, keys in zip(events, traffic.keys, strict=True):
        at = datetime.fromisoformat(event["occurred_at"]).timestamp()
        collect(truth_engine.step(_touchpoint(event, event["customer_id"]), 0), truth_signals)
        resolution = graph.resolve(keys, at, event["event_id"])
        refusals.update(r.reason for r in resolution.refusals)
        for merge in resolution.merges:
            merges.append(merge)
            resolved_engine.merge(merge.survivor, merge.absorbed)
        if resolution.customer is None:
            unresolved += event["customer_id"] != NOBODY  # kiosk browsing belongs to no one
            continue
        if event["customer_id"] != NOBODY:
            customers_of[event["customer_id"]].add(resolution.customer)
        elif graph.identified(resolution.customer):
            misplaced += 1
        step = resolved_engine.step(_touchpoint(event, resolution.customer), 0)
        collect(step, resolved_signals)
    return _report(
        graph,
        traffic,
        merges,
        refusals,
        customers_of,
        unresolved,
        misplaced,
        truth_signals,
        resolved_signals,
        people,
        months,
        seed,
    )


def _report(
    graph: IdentityGraph,
    traffic: Traffic,
    merges: list[Merge],
    refusals: Counter[str],
    customers_of: dict[str, set[str]],
    unresolved: int,
    misplaced: int,
    truth_signals: Raised,
    resolved_signals: Raised,
    people: int,
    months: float,
    seed: int,
) -> dict[str, Any]:
    persons = pair_scores(graph, traffic, orders=False)
    with_orders = pair_scores(graph, traffic, orders=True)
    bad = [m for m in merges if set(m.via) & (traffic.kiosks | traffic.junk)]
    # the moment each person's identifiers linked: their last merge
    linked_at: dict[str, str] = {}
    for merge in merges:
        for key in merge.via:
            person = traffic.owner.get(key)
            if person is not None:
                linked_at[person] = datetime.fromtimestamp(merge.at, UTC).isoformat()
    final_people: dict[str, set[str]] = defaultdict(set)
    for customer, members in graph.members.items():
        for key in members:
            if key in traffic.owner:
                final_people[customer].add(traffic.owner[key])
    compared = equal = 0
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)  # kind -> truth, alike, extra
    for person, customers in customers_of.items():
        finals = {graph.canonical(c) for c in customers}
        if len(finals) != 1:
            continue  # fragmented: their identifiers never linked
        (customer,) = finals
        if final_people[customer] - {person}:
            continue  # shares a customer with someone else
        since = linked_at.get(person, "")
        truth = [s for s in truth_signals.get(person, []) if s[0] >= since]
        mine = [s for s in resolved_signals.get(customer, []) if s[0] >= since]
        compared += 1
        equal += truth == mine
        for _, kind in truth:
            by_kind[kind]["truth"] += 1
        for _, kind in set(truth) & set(mine):
            by_kind[kind]["alike"] += 1
        for _, kind in set(mine) - set(truth):
            by_kind[kind]["extra"] += 1
    roots: dict[str, set[str]] = defaultdict(set)
    for key, root in connected(traffic).items():
        roots[traffic.owner[key]].add(root)
    linkable_people = [p for p in customers_of if len(roots[p]) == 1]
    whole = sum(
        1 for p in linkable_people if len({graph.canonical(c) for c in customers_of[p]}) == 1
    )
    return {
        "people": people,
        "months": months,
        "seed": seed,
        "events": len(traffic.events),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "pairs": {
            "precision": persons.precision,
            "recall": persons.recall,
            "predicted": persons.predicted,
            "linkable": persons.linkable,
        },
        "pairs_with_orders": {
            "precision": with_orders.precision,
            "recall": with_orders.recall,
            "predicted": with_orders.predicted,
            "linkable": with_orders.linkable,
        },
        "merges": len(merges),
        "merges_through_kiosk_or_placeholder": len(bad),
        "refusals": dict(sorted(refusals.items())),
        "unresolved_events": unresolved,
        "kiosk_browsing_put_on_a_person": misplaced,
        "people_seen": len(customers_of),
        "people_connected": len(linkable_people),
        "connected_people_in_one_customer": whole / len(linkable_people)
        if linkable_people
        else 1.0,
        "customers": len(graph.members),
        "signals": {
            "people_compared": compared,
            "people_with_equal_signals": equal,
            "by_kind": {kind: dict(counts) for kind, counts in sorted(by_kind.items())},
        },
    }


def main(
    people: int = typer.Option(2000, help="People in the generated world."),
    months: float = typer.Option(6.0, help="Months of traffic."),
    seed: int = typer.Option(7),
) -> None:
    result = run(people, months, seed)
    table = Table(title=f"identity resolution: {people:,} people, {result['events']:,} events")
    table.add_column("measure")
    table.add_column("value", justify="right")
    p, o = result["pairs"], result["pairs_with_orders"]
    s = result["signals"]
    for name, value in [
        ("pair precision (people's identifiers)", f"{p['precision']:.4f}"),
        ("pair recall of linkable pairs", f"{p['recall']:.4f}"),
        ("pair precision / recall with orders", f"{o['precision']:.4f} / {o['recall']:.4f}"),
        ("merges", f"{result['merges']:,}"),
        (
            "merges through a kiosk or placeholder",
            str(result["merges_through_kiosk_or_placeholder"]),
        ),
        (
            "people whose touchpoints connect all their identifiers",
            f"{result['people_connected']:,} of {result['people_seen']:,}",
        ),
        (
            "of them, resolved to one customer",
            f"{result['connected_people_in_one_customer']:.3f}",
        ),
        ("refusals", ", ".join(f"{k} {v}" for k, v in result["refusals"].items())),
        ("a person's events without a usable identifier", str(result["unresolved_events"])),
        ("kiosk browsing put on a person", str(result["kiosk_browsing_put_on_a_person"])),
        (
            "people with equal signals after linking",
            f"{s['people_with_equal_signals']} of {s['people_compared']}",
        ),
        *(
            (
                f"{kind} after linking: raised alike, extra",
                f"{c.get('alike', 0)} of {c.get('truth', 0)}, {c.get('extra', 0)}",
            )
            for kind, c in s["by_kind"].items()
        ),
    ]:
        table.add_row(name, value)
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y-%m-%dT%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2))
    console.print(f"written to {path}")


if __name__ == "__main__":
    typer.run(main)
