"""Which customer a touchpoint belongs to, from the identifiers seen with it. Pure: no I/O.

Identifiers seen together on one touchpoint belong to one customer. `IdentityGraph.resolve`
takes a touchpoint's identity keys (`identity_key` below) in event-time
order and answers the customer it belongs to, the merges it causes and the links it refused:

* an identifier never seen before attaches to the touchpoint's customer (a new one when none
  of its identifiers is known);
* identifiers of two known customers merge them. The survivor keeps its id and the other
  becomes its alias: a customer known by a strong identifier wins over an anonymous one, then
  the earlier first contact, then the smaller id (deterministic);
* guards (`rules.identity`): a placeholder value ("null", "0"...) never links; a weak
  identifier (device, card, order) never merges two customers who both have a strong one, and
  once seen with more than `shared_after` such customers it is shared and stops linking; a
  customer has at most `limits[type]` identifiers of a type, so two CRM ids never merge.
  Each refusal is a `Refusal` with its reason, for a queryable row.

The merges and refusals depend only on the order of the touchpoints given: the same history
in the same order gives the same customers, ids and merges.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import orjson

from touchstream.schemas.identifiers import IdentifierType, pseudonym
from touchstream.streams.rules import IdentityRules

_EXTERNAL: Final = IdentifierType.external


def identity_key(kind: IdentifierType, value: str, name: str = "") -> str:
    """The one string an identifier is known by in the identity graph."""
    if kind is _EXTERNAL:
        return f"external:{name}:{value}"
    return kind + ":" + value  # a StrEnum member is its value (`.value` costs ~0.3 µs)


def value_of(key: str) -> str:
    """The value of an identity key (its pseudonym, as the touchpoints carry it)."""
    return key[len(type_of(key)) + 1 :]


def type_of(key: str) -> str:
    """The type of an identity key, `external:<name>` for external ids."""
    kind, _, rest = key.partition(":")
    if kind == _EXTERNAL:
        return f"{kind}:{rest.partition(':')[0]}"
    return kind


# which identifier names the touchpoint's customer when its customers stay apart
_PRIORITY = ("customer", "crm_id", "external", "email", "phone", "order_id", "loyalty_card")


# weak types that are the touchpoint's own transaction: they go with whoever it is put on
TRANSACTION_TYPES = frozenset({"order_id"})


def _rank(key: str) -> int:
    kind = type_of(key).split(":")[0]
    return _PRIORITY.index(kind) if kind in _PRIORITY else len(_PRIORITY)


@dataclass(frozen=True, slots=True)
class Merge:
    """`absorbed` is now `survivor`: its history and state join the survivor's."""

    survivor: str
    absorbed: str
    via: tuple[str, str]  # an identifier of each that the touchpoint carried together
    at: float  # event time of the touchpoint that linked them
    event_id: str
    keys: tuple[str, ...] = ()  # the absorbed customer's identifiers, now the survivor's
    aliases: tuple[str, ...] = ()  # the absorbed customer's own aliases, now the survivor's

    @property
    def merge_id(self) -> str:
        """Deterministic: the same history gives the same merges and ids."""
        text = f"{self.survivor}\x1f{self.absorbed}\x1f{self.event_id}"
        return "m-" + hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


@dataclass(frozen=True, slots=True)
class Refusal:
    """A link a guard refused: `reason` is one of REASONS."""

    reason: str
    identifier: str
    customers: tuple[str, ...]
    at: float
    event_id: str


DENIED, SHARED, WEAK_LINK, LIMIT, NO_IDENTIFIER, LOOP = (
    "denied_identifier",
    "shared_identifier",
    "weak_link_between_known_customers",
    "identifier_limit",
    "no_usable_identifier",
    "merge_loop",
)
REASONS = (DENIED, SHARED, WEAK_LINK, LIMIT, NO_IDENTIFIER, LOOP)


@dataclass(slots=True)
class Resolution:
    customer: str | None  # None: no usable identifier (a Refusal says why)
    merges: list[Merge] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def denied_keys(rules: IdentityRules, secret: bytes | None) -> frozenset[str]:
    """The identity keys of the placeholder values, raw and pseudonymised, of every type."""
    keys: set[str] = set()
    for kind in IdentifierType:
        if kind is IdentifierType.external:
            continue
        for value in rules.denied:
            keys.add(identity_key(kind, value))
            if secret is not None:
                keys.add(identity_key(kind, pseudonym(kind, value, secret)))
    return frozenset(keys)


class IdentityGraph:
    """The identifiers of every customer, their aliases and the shared identifiers."""

    def __init__(self, rules: IdentityRules, denied: frozenset[str] = frozenset()) -> None:
        self.rules = rules
        self.weak = frozenset(rules.weak_types)
        self.denied = denied or denied_keys(rules, None)
        self.owner: dict[str, str] = {}  # identity key -> customer
        self.members: dict[str, list[str]] = {}  # customer -> identity keys, in arrival order
        self.first_seen: dict[str, float] = {}  # customer -> first contact
        self.alias: dict[str, str] = {}  # absorbed customer -> the one it merged into
        self.aliases: dict[str, list[str]] = {}  # customer -> every id merged into it
        self.shared: set[str] = set()  # weak identifiers that stopped linking
        self.seen_with: dict[str, set[str]] = {}  # weak identifier -> known customers met
        self.pending: dict[str, tuple[str, int]] = {}  # device -> (customer, day) seen with
        self.confirmed: set[str] = set()  # devices sure to be their customer's
        self.confirm = frozenset(rules.confirm_types)
        self.dirty: set[str] = set()  # entries (`entry_name`) changed since `take_changes`
        self.resolved_through = -1  # the last input offset resolved (the runtime's)
        self.version_base = 0  # rows' versions are this + the input offset (see `restore`)

    # -- reading ------------------------------------------------------------------------------
    def customer_of(self, key_or_customer: str) -> str | None:
        """The live customer of an identity key, or of a customer id (an alias followed)."""
        customer = self.owner.get(key_or_customer, key_or_customer)
        if customer not in self.members and customer not in self.alias:
            return None
        return self.canonical(customer)

    def canonical(self, customer: str) -> str:
        """The customer an id now is (aliases followed, paths shortened)."""
        path = []
        while customer in self.alias:
            path.append(customer)
            customer = self.alias[customer]
            if len(path) > len(self.alias):
                raise RuntimeError(f"merge loop through {path[0]}")
        for step in path[:-1]:
            self.alias[step] = customer
        return customer

    def aliases_of(self, customer: str) -> list[str]:
        return sorted(self.aliases.get(customer, ()))

    def identified(self, customer: str) -> bool:
        """Known by a strong identifier."""
        return any(not self._weak(key) for key in self.members[customer])

    # -- resolving ----------------------------------------------------------------------------
    def resolve(self, keys: list[str], at: float, event_id: str = "") -> Resolution:
        """The customer of a touchpoint carrying `keys`, at event time `at`."""
        known = self.returning(keys)
        if known is not None:
            return Resolution(known)
        result = Resolution(None)
        strong: list[str] = []
        weak: list[str] = []
        for key in dict.fromkeys(keys):
            if key in self.denied:
                result.refusals.append(Refusal(DENIED, key, (), at, event_id))
            elif key in self.shared:
                result.refusals.append(Refusal(SHARED, key, (), at, event_id))
            else:
                (weak if self._weak(key) else strong).append(key)
        if not strong and not weak:
            result.refusals.append(Refusal(NO_IDENTIFIER, ",".join(keys), (), at, event_id))
            return result
        try:
            if strong:
                customer = self._strong(strong, at, event_id, result)
                for key in sorted(weak, key=_rank):
                    self._weak_beside(customer, key, at, event_id, result)
            else:
                customer = self._anonymous(weak, at, event_id, result)
        except RuntimeError as loop:
            result.refusals.append(Refusal(LOOP, str(loop), (), at, event_id))
            return result
        result.customer = customer
        return result

    def returning(self, keys: list[str]) -> str | None:
        """The customer every key already belongs to, when that is all there is to say (most
        touchpoints: a returning customer's identifiers): no link to make, no guard to ask.
        A device not yet sure is left to the full path (`resolve`): each touchpoint moves its
        confirmation; so is a merge loop (the full path says so)."""
        try:
            return self._returning(keys)
        except RuntimeError:
            return None

    def _returning(self, keys: list[str]) -> str | None:
        owner = self.owner
        first = owner.get(keys[0]) if keys else None
        if first is None:
            return None
        customer = self.canonical(first)
        for key in keys:
            other = owner.get(key)
            if other is None or (other != first and self.canonical(other) != customer):
                return None
            if key not in self.confirmed and key.partition(":")[0] in self.confirm:
                return None
        return customer

    def _weak(self, key: str) -> bool:
        return type_of(key) in self.weak

    def _owner(self, key: str) -> str | None:
        owner = self.owner.get(key)
        return None if owner is None else self.canonical(owner)

    def _strong(self, keys: list[str], at: float, event_id: str, result: Resolution) -> str:
        """Strong identifiers seen together: their customers merge (limits allowing); the
        touchpoint's customer is the survivor of its highest-priority identifier's."""
        known = list(dict.fromkeys(o for k in keys if (o := self._owner(k)) is not None))
        if not known:
            customer = self._new_customer(keys, at)
        else:
            by_age = sorted(known, key=lambda c: (self.first_seen[c], c))
            customer = by_age[0]
            for other in by_age[1:]:
                self._merge_if_allowed(customer, other, keys, at, event_id, result)
            customer = self._owner(min((k for k in keys if k in self.owner), key=_rank)) or customer
        for key in keys:
            if key not in self.owner:
                self._attach(customer, key, at, event_id, result)
        return customer

    def _merge_if_allowed(
        self,
        survivor: str,
        other: str,
        keys: list[str],
        at: float,
        event_id: str,
        result: Resolution,
    ) -> None:
        counts: dict[str, int] = {}
        for key in (*self.members[survivor], *self.members[other]):
            kind = type_of(key)
            counts[kind] = counts.get(kind, 0) + 1
            if counts[kind] > self._limit(kind):
                result.refusals.append(Refusal(LIMIT, kind, (survivor, other), at, event_id))
                return
        via = (
            next(k for k in keys if self._owner(k) == survivor),
            next(k for k in keys if self._owner(k) == other),
        )
        moved, aliases = self._merge(survivor, other)
        result.merges.append(Merge(survivor, other, via, at, event_id, moved, aliases))

    def _weak_beside(
        self, customer: str, key: str, at: float, event_id: str, result: Resolution
    ) -> None:
        """A weak identifier on a touchpoint of a known customer. A new one attaches at once;
        one that is someone else's (known customer) is refused, and counted towards shared;
        one with an anonymous history brings it in (a device only once it is sure)."""
        owner = self._owner(key)
        if owner is not None and owner != customer and self.identified(owner):
            self.pending.pop(key, None)
            self.dirty.add(_KEY + key)
            self._met(key, (owner, customer))
            result.refusals.append(Refusal(WEAK_LINK, key, (owner, customer), at, event_id))
            return
        sure = True
        if type_of(key) in self.confirm:
            sure = self._sure(key, customer, at, result, event_id)
        if owner is None:
            self._attach(customer, key, at, event_id, result)
        elif owner != customer and sure:  # its anonymous history joins the customer
            keys, aliases = self._merge(customer, owner)
            result.merges.append(Merge(customer, owner, (key, key), at, event_id, keys, aliases))

    def _sure(self, key: str, customer: str, at: float, result: Resolution, event_id: str) -> bool:
        """A device is sure to be `customer`'s once seen with them on two different days,
        with no one else's touchpoint in between."""
        if key in self.confirmed:
            return True
        day = int(at // 86_400)
        self.dirty.add(_KEY + key)
        candidate = self.pending.get(key)
        if candidate is not None:
            was, on = candidate
            was = self.canonical(was)
            if was == customer and day != on:
                del self.pending[key]
                self.confirmed.add(key)
                return True
            if was == customer:
                return False
            self._met(key, (was, customer))
            result.refusals.append(Refusal(WEAK_LINK, key, (was, customer), at, event_id))
            if key in self.shared:
                return False
        self.pending[key] = (customer, day)
        return False

    def _anonymous(self, keys: list[str], at: float, event_id: str, result: Resolution) -> str:
        """Weak identifiers alone: the customer of the first known one (by priority), or a
        new anonymous customer. Unknown ones join it when it is anonymous, or when a sure
        identifier (an order, a card, a sure device) names it; a device joins a known
        customer only beside a strong identifier. An order always goes with its touchpoint."""
        known = [k for k in sorted(keys, key=_rank) if k in self.owner]
        customer = self._owner(known[0]) if known else self._new_customer(keys, at)
        assert customer is not None
        anonymous = not self.identified(customer)
        sure = anonymous or type_of(known[0]) not in self.confirm or known[0] in self.confirmed
        for key in keys:
            kind = type_of(key)
            if key in self.owner or not (sure or kind in TRANSACTION_TYPES):
                continue
            if anonymous or kind not in self.confirm:
                self._attach(customer, key, at, event_id, result)
        return customer

    def _new_customer(self, keys: list[str], at: float) -> str:
        given = [k for k in keys if type_of(k) == IdentifierType.customer.value]
        if given:
            customer = given[0].partition(":")[2]
        else:
            digest = hashlib.blake2b(min(keys).encode(), digest_size=8).hexdigest()
            customer = f"c-{digest}"
        base, n = customer, 1
        while customer in self.members or customer in self.alias:  # an id taken: keep apart
            n += 1
            customer = f"{base}~{n}"
        self.members[customer] = []
        self.first_seen[customer] = at
        self.dirty.add(_CUSTOMER + customer)
        return customer

    def _limit(self, kind: str) -> float:
        if kind.startswith("external:"):
            return self.rules.limits.get(kind, 1)
        return self.rules.limits.get(kind, float("inf"))

    def _met(self, key: str, customers: tuple[str, ...]) -> None:
        """A weak identifier between known customers: shared once it met too many."""
        met = self.seen_with.setdefault(key, set())
        met.update(customers)
        if len({self.canonical(c) for c in met}) > self.rules.shared_after:
            self.shared.add(key)
            self.pending.pop(key, None)
            self.confirmed.discard(key)
            owner = self._owner(key)
            if owner is not None:
                del self.owner[key]
                self.members[owner].remove(key)
                self.dirty.add(_CUSTOMER + owner)
            del self.seen_with[key]
        self.dirty.add(_KEY + key)

    def _merge(self, survivor: str, other: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """`other` into `survivor`; returns the identifiers and aliases that moved."""
        self.dirty.update((_CUSTOMER + survivor, _CUSTOMER + other))
        keys = self.members.pop(other)
        for key in keys:
            self.owner[key] = survivor
            self.members[survivor].append(key)
        aliases = self.aliases.pop(other, [])
        self.aliases.setdefault(survivor, []).extend([other, *aliases])
        self.first_seen[survivor] = min(self.first_seen[survivor], self.first_seen.pop(other))
        self.alias[other] = survivor
        return tuple(keys), tuple(aliases)

    def _attach(
        self, customer: str, key: str, at: float, event_id: str, result: Resolution
    ) -> None:
        kind = type_of(key)
        has = sum(1 for k in self.members[customer] if type_of(k) == kind)
        if has >= self._limit(kind):
            result.refusals.append(Refusal(LIMIT, key, (customer,), at, event_id))
            return
        self.owner[key] = customer
        self.members[customer].append(key)
        self.dirty.add(_CUSTOMER + customer)

    # -- forgetting ---------------------------------------------------------------------------
    def forget(self, key_or_customer: str) -> tuple[str, list[str], list[str]] | None:
        """Forget the customer of an identifier (or id): every identifier and alias of it.
        Returns (customer, its identifiers, its aliases), None if unknown."""
        customer = self.customer_of(key_or_customer)
        if customer is None:
            return None
        aliases = self.aliases_of(customer)
        keys = self.members.pop(customer)
        self.dirty.update(_CUSTOMER + c for c in (customer, *aliases))
        self.dirty.update(_KEY + key for key in keys)
        for key in keys:
            self.owner.pop(key, None)
            self.seen_with.pop(key, None)
            self.pending.pop(key, None)
            self.confirmed.discard(key)
        for alias in aliases:
            del self.alias[alias]
        self.aliases.pop(customer, None)
        self.first_seen.pop(customer, None)
        for key, met in self.seen_with.items():
            if not met.isdisjoint({customer, *aliases}):
                met.difference_update({customer, *aliases})
                self.dirty.add(_KEY + key)
        return customer, keys, aliases

    # -- persisting ---------------------------------------------------------------------------
    def resolved(self, offset: int) -> None:
        """Input up to `offset` is resolved: persisted with the changes it made, so input
        redelivered after they were persisted (and so after its outputs were) is skipped."""
        self.resolved_through = offset
        self.dirty.add(_OFFSET)

    def take_changes(self) -> list[tuple[str, bytes | None]]:
        """The entries changed since the last call, as (name, value or None: gone): a
        changelog of the graph, one entry per customer and per weak identifier."""
        changes = [(name, self._entry(name)) for name in sorted(self.dirty)]
        self.dirty.clear()
        return changes

    def _entry(self, name: str) -> bytes | None:
        kind, what = name[:2], name[2:]
        entry: dict[str, object] = {}
        if kind == _OFFSET:
            return orjson.dumps([self.resolved_through, self.version_base])
        if kind == _CUSTOMER:
            if what in self.members:
                entry.update(keys=self.members[what], first=self.first_seen[what])
                if what in self.aliases:
                    entry["aliases"] = self.aliases[what]
                return orjson.dumps(entry)
            if what in self.alias:
                return orjson.dumps({"alias": self.alias[what]})
            return None
        if what in self.shared:
            entry["shared"] = True
        if what in self.seen_with:
            entry["met"] = sorted(self.seen_with[what])
        if what in self.pending:
            entry["pending"] = list(self.pending[what])
        if what in self.confirmed:
            entry["confirmed"] = True
        return orjson.dumps(entry) if entry else None

    def load(self, entries: Iterable[tuple[str, bytes]]) -> None:
        """The graph from its changelog's latest entries (`take_changes`)."""
        for name, raw in entries:
            kind, what = name[:2], name[2:]
            data = orjson.loads(raw)
            if kind == _OFFSET:
                through, base = data if isinstance(data, list) else (data, 0)
                self.resolved_through, self.version_base = int(through), int(base)
            elif kind == _CUSTOMER and "alias" in data:
                self.alias[what] = data["alias"]
            elif kind == _CUSTOMER:
                self.members[what] = list(data["keys"])
                self.first_seen[what] = float(data["first"])
                if "aliases" in data:
                    self.aliases[what] = list(data["aliases"])
                for key in self.members[what]:
                    self.owner[key] = what
            else:
                if data.get("shared"):
                    self.shared.add(what)
                if "met" in data:
                    self.seen_with[what] = set(data["met"])
                if "pending" in data:
                    customer, day = data["pending"]
                    self.pending[what] = (str(customer), int(day))
                if data.get("confirmed"):
                    self.confirmed.add(what)

    def restore(self, entries: Iterable[tuple[str, bytes | None]], version_base: int) -> int:
        """The graph from a copy of its entries kept elsewhere (ClickHouse), for a log that
        starts afresh: its offsets begin again, so none counts as resolved, and rows are
        versioned from `version_base` (above every row written before) so they win over
        the old ones. Every entry is written again to the new changelog. Returns how many
        entries were restored."""
        kept = [(name, raw) for name, raw in entries if name != _OFFSET and raw is not None]
        self.load(kept)
        self.resolved_through, self.version_base = -1, version_base
        self.rewrite()
        return len(kept)

    def rewrite(self) -> None:
        """Every entry counts as changed: `take_changes` gives them all (a new changelog, or
        a first copy in ClickHouse)."""
        self.dirty.update(_CUSTOMER + c for c in (*self.members, *self.alias))
        weak = (*self.shared, *self.seen_with, *self.pending, *self.confirmed)
        self.dirty.update(_KEY + key for key in weak)
        self.dirty.add(_OFFSET)


# entry names: a customer's identifiers, a weak identifier's guard, the input resolved
_CUSTOMER, _KEY, _OFFSET = "c:", "k:", "o:"
