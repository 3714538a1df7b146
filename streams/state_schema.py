"""The customer state, declared once: each field's name, type, default, how it decays and
how two states of one customer merge.

Everything else about the state is derived from this list by `render()`, which writes
streams/customer_state.py (`python -m touchstream.streams.state_schema`, or `make schemas`;
tests/streams/test_state_schema.py fails when the file is not what this list gives):

* the class with typed attributes and their defaults, which mypyc compiles to a C struct
  (the engine reads the state ~150 times an event; a compiled attribute is ~20x cheaper
  than a generic one, tests measured it on msgspec structs and pydantic models);
* the positional row and the changelog codec (msgpack: an appended field is read from an
  older row as its default, so a new field needs no migration of stored states);
* the re-anchoring of the decayed sums (streams/state.py explains the anchored sums).

Merging (streams/merge.py) reads the declaration's `merge` rule of each field at run time:
merges are rare (two keys found to be one customer), so they need no generated code.

Adding a field: append it here with its merge rule (never in the middle: rows are
positional), run `make schemas`, and update it where the touchpoint changes it
(streams/state.py `apply_event`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# ring sizes: how much of each kind of history a state keeps
RINGS = {
    "RECENT_KEEP": (16, "recent judged touchpoints kept for streak and silent failures"),
    "SEEN_KEEP": (64, "event ids kept for dedup within the grace"),
    "OPEN_COMPLAINTS_KEEP": (8, "open complaint cases kept (and resolved ones remembered)"),
    "MISS_BY_KEEP": (6, "metric|channel|team accounts of broken promises kept"),
    "ABSORBED_KEEP": (64, "ids merged into a customer, remembered so a merge counts once"),
}

# how two states of one customer combine (streams/merge.py does it): every field names one.
# Exact: the merged field equals the one a single state of all the events would hold.
SURVIVOR = "survivor"  # the surviving state's own (its key, its anchor, its input offsets)
SUM = "sum"  # counts and anchored sums (both re-anchored to one anchor first)
SUM_PAIRS = "sum pairs"  # a dict of [weight, sum] pairs, added key by key
SUM_VALUES = "sum values"  # a dict of sums added key by key, the heaviest MISS_BY_KEEP kept
MIN = "min"  # the most negative anchored value kept (worst_gap)
MAX = "max"  # the largest anchored value kept (worst_miss)
BITS = "bits"  # a bit set: or
EARLIEST = "earliest"  # a time of the first event
LATEST_TIME = "latest time"  # a time of the last something
EARLIEST_DAY = "earliest day"  # the first active day, of states that have one
LATEST_DAY = "latest day"  # the last active day, of states that have one
RING_BY_TIME = "ring by time"  # (t, ...) tuples: both in time order, the RECENT_KEEP latest
DAYS_RING = "days ring"  # distinct days in order, the RECENT_KEEP latest
SEEN_IDS = "seen ids"  # event id -> time: both, the SEEN_KEEP latest
SIGNALS = "signals"  # kind -> [active, last raised at]: active in either, the later raise
# bookkeeping of merges, not of events: the ids merged in (both states', and the other's own
# id), the ABSORBED_KEEP latest
ABSORBED = "absorbed"
# Exact while the rings hold the overlap: a day active in both (a purchase and its review
# under two keys) counts once when it is still in both rings of recent days, twice if older.
DISTINCT_DAYS = "distinct days"
# Exact when a case's events are all on one state (a case lives in the system that opened it):
OPEN_CASES = "open cases"  # case -> [opened at, ...]: both, the OPEN_COMPLAINTS_KEEP newest
CASES_RING = "cases ring"  # resolved cases of both (in which order is lost: exact until full)
CASE_PLACES = "case places"  # open case -> where raised: of the cases still open
# Not exact: depends on the order of all events, which neither state saw; the state whose
# last event is later gives it (its value describes the customer's latest moment).
FROM_LATER = "from later"
EXACT_MERGES = frozenset(
    {SUM, SUM_PAIRS, SUM_VALUES, MIN, MAX, BITS, EARLIEST, LATEST_TIME, EARLIEST_DAY}
    | {LATEST_DAY, RING_BY_TIME, DAYS_RING, SEEN_IDS, SIGNALS}
)

SLOW = "slow"  # an anchored sum with the half-life h
FAST = "fast"  # an anchored sum with h / 4 (the rating's trend)
SLOW_PAIRS = "slow pairs"  # a dict of [anchored weight, anchored sum] pairs
SLOW_VALUES = "slow values"  # a dict of anchored sums


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # the annotation, as written in the generated class
    default: str  # a Python expression, evaluated for each new state (in `__init__`)
    doc: str = ""
    decay: str = ""  # SLOW, FAST, SLOW_PAIRS, SLOW_VALUES or "" (kept as is)
    load: str = ""  # turns a decoded row value, VALUE, into the field's type ("": as decoded)
    merge: str = ""  # how two states of one customer combine it (SUM, RING_BY_TIME...)


FIELDS: tuple[Field, ...] = (
    Field("customer_id", "str", "", "the key; set by the constructor", merge=SURVIVOR),
    Field("anchor", "float", "0.0", "epoch seconds the anchored sums refer to", merge=SURVIVOR),
    Field("first_seen", "float", "0.0", merge=EARLIEST),
    Field("last_seen", "float", "0.0", merge=LATEST_TIME),
    Field("event_count", "int", "0", merge=SUM),
    Field("late_events", "int", "0", merge=SUM),
    Field("w_judged", "float", "0.0", "weight of judged touchpoints", SLOW, merge=SUM),
    Field("s_quality", "float", "0.0", "their quality", SLOW, merge=SUM),
    Field("s_quality_sq", "float", "0.0", "their quality squared", SLOW, merge=SUM),
    Field("w_gap", "float", "0.0", "weight of touchpoints with a promise", SLOW, merge=SUM),
    Field("s_gap", "float", "0.0", "their gaps", SLOW, merge=SUM),
    Field("worst_gap", "float", "0.0", "gap * growth, the most negative kept", SLOW, merge=MIN),
    Field("w_rating", "float", "0.0", "weight of ratings", SLOW, merge=SUM),
    Field("s_rating", "float", "0.0", "the ratings", SLOW, merge=SUM),
    Field("w_rating_fast", "float", "0.0", "weight of ratings, for the trend", FAST, merge=SUM),
    Field("s_rating_fast", "float", "0.0", "the ratings, for the trend", FAST, merge=SUM),
    Field("failed", "float", "0.0", "weight of failed touchpoints", SLOW, merge=SUM),
    Field("met", "float", "0.0", "weight of met touchpoints", SLOW, merge=SUM),
    Field("exceeded", "float", "0.0", "weight of touchpoints beyond the promise", SLOW, merge=SUM),
    Field(
        "channel_quality",
        "dict[int, list[float]]",
        "{}",
        "channel index -> [anchored weight, anchored quality sum]",
        SLOW_PAIRS,
        "{int(k): list(pair) for k, pair in VALUE.items()}",
        merge=SUM_PAIRS,
    ),
    Field("channels_mask", "int", "0", "bit i: channel i seen", merge=BITS),
    Field(
        "active_days",
        "int",
        "0",
        "distinct customer-initiated days (BG/NBD's x + 1)",
        merge=DISTINCT_DAYS,
    ),
    Field("first_active_day", "int", "0", merge=EARLIEST_DAY),
    Field("last_active_day", "int", "0", merge=LATEST_DAY),
    Field("last_active", "float", "0.0", merge=LATEST_TIME),
    Field(
        "recent",
        "list[tuple[float, int, bool]]",
        "[]",
        "recent judged touchpoints (t, level, customer initiated), by t (RECENT_KEEP)",
        load="[(float(t), int(level), bool(mine)) for t, level, mine in VALUE]",
        merge=RING_BY_TIME,
    ),
    Field("recent_days", "list[int]", "[]", "recent active days (RECENT_KEEP)", merge=DAYS_RING),
    Field(
        "open_complaints",
        "dict[str, list[float]]",
        "{}",
        "case -> [opened at, quality, channel index] until resolved (OPEN_COMPLAINTS_KEEP)",
        merge=OPEN_CASES,
    ),
    Field("feedback_given", "int", "0", merge=SUM),
    Field("referrals", "int", "0", merge=SUM),
    Field("purchases", "int", "0", merge=SUM),
    Field(
        "seen",
        "dict[str, float]",
        "{}",
        "event id digest -> event time (SEEN_KEEP)",
        merge=SEEN_IDS,
    ),
    Field(
        "signal_state",
        "dict[str, list[Any]]",
        "{}",
        "kind -> [active, last raised at]",
        merge=SIGNALS,
    ),
    Field("last_snapshot_at", "float", "0.0", merge=LATEST_TIME),
    Field(
        "last_offset",
        "int",
        "-1",
        "highest input offset applied (live): redeliveries",
        merge=SURVIVOR,
    ),
    Field(
        "w_promises",
        "float",
        "0.0",
        "weight of touchpoints that carried a promise",
        SLOW,
        merge=SUM,
    ),
    Field("broken", "float", "0.0", "weight of those that broke one", SLOW, merge=SUM),
    Field("s_miss", "float", "0.0", "the broken ones' miss strengths", SLOW, merge=SUM),
    Field(
        "worst_miss",
        "float",
        "0.0",
        "the largest recent miss (multiples of the promise)",
        SLOW,
        merge=MAX,
    ),
    Field("consecutive_misses", "int", "0", "promises broken in a row", merge=FROM_LATER),
    Field("spend", "float", "0.0", "sum of value.amount over purchases and orders", merge=SUM),
    Field(
        "pre_incident",
        "float",
        "-1.0",
        "consistency at the last good touchpoint, -1 none",
        merge=FROM_LATER,
    ),
    Field(
        "last_snapshot_risk",
        "float",
        "0.0",
        "risk in the last snapshot (timer throttle)",
        merge=FROM_LATER,
    ),
    Field(
        "resolved_cases",
        "list[str]",
        "[]",
        "complaint cases resolved lately (reopenings)",
        merge=CASES_RING,
    ),
    Field("slow_resolutions", "int", "0", "complaints resolved after the recovery SLA", merge=SUM),
    Field("reopened", "int", "0", "complaints opened again after being resolved", merge=SUM),
    Field(
        "miss_by",
        "dict[str, float]",
        "{}",
        "metric|channel|team -> weight of its broken promises (MISS_BY_KEEP)",
        SLOW_VALUES,
        merge=SUM_VALUES,
    ),
    Field(
        "complaint_where",
        "dict[str, str]",
        "{}",
        "open case -> channel|team raised with",
        merge=CASE_PLACES,
    ),
    Field("feedback_answered", "int", "0", "the customer's voice answered", merge=SUM),
    Field("bad_reviews", "int", "0", "public reviews with a bad rating or sentiment", merge=SUM),
    Field("promoter_moments", "int", "0", "promoter ratings given", merge=SUM),
    Field(
        "merged_into",
        "str",
        '""',
        "set: this key was merged into that customer, and the state only redirects there",
        merge=SURVIVOR,
    ),
    Field("absorbed", "list[str]", "[]", "ids merged into this customer", merge=ABSORBED),
    Field(
        "parked",
        "list[list[Any]]",
        "[]",
        "[offset, payload, event time] of records waiting for a merge (streams/records.py)",
        merge=SURVIVOR,  # the absorbed key's own were sent on before its state left
    ),
)

TARGET = Path(__file__).with_name("customer_state.py")


def render() -> str:
    """The source of streams/customer_state.py."""
    names = [field.name for field in FIELDS]
    out = [
        '"""The customer state: GENERATED from streams/state_schema.py by `make schemas`.',
        "",
        "Do not edit: change the declaration and regenerate. What the fields mean and how",
        'they change: streams/state.py."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Final",
        "",
        "import msgspec",
        "",
    ]
    for name, (size, doc) in RINGS.items():
        out.append(f"{name}: Final = {size}  # {doc}")
    out += [
        "STATE_FIELDS: Final = (",
        *(f'    "{name}",' for name in names),
        ")",
        "",
        "_ENCODER: Final = msgspec.msgpack.Encoder()",
        "_DECODER: Final = msgspec.msgpack.Decoder()",
        "",
        "",
        "class CustomerState:",
        '    """Everything we remember about one customer."""',
        "",
    ]
    for field in FIELDS:
        line = f"    {field.name}: {field.type}"
        if field.doc and len(line) + len(field.doc) + 4 <= 100:
            line += f"  # {field.doc}"
        elif field.doc:
            out.append(f"    # {field.doc}")
        out.append(line)
    out += [
        "",
        "    def __init__(self, customer_id: str) -> None:",
        "        self.customer_id = customer_id",
        *(f"        self.{field.name} = {field.default}" for field in FIELDS[1:]),
        "",
        "    def __eq__(self, other: object) -> bool:",
        "        return isinstance(other, CustomerState) and self.to_row() == other.to_row()",
        "",
        "    def __repr__(self) -> str:",
        '        return f"CustomerState({self.to_row()!r})"',
        "",
        "    def to_row(self) -> list[Any]:",
        '        """The fields in declaration order (shares the containers: copy with',
        '        `decode(encode())`)."""',
        "        return [",
        *(f"            self.{name}," for name in names),
        "        ]",
        "",
        "    @staticmethod",
        "    def from_row(row: list[Any]) -> CustomerState:",
        '        """A row of any earlier version: fields it lacks keep their defaults."""',
        "        state = CustomerState(row[0])",
        "        n = len(row)",
    ]
    for i, field in enumerate(FIELDS[1:], start=1):
        value = field.load.replace("VALUE", f"row[{i}]") if field.load else f"row[{i}]"
        out.append(f"        if n > {i}:")
        out.append(f"            state.{field.name} = {value}")
    out += [
        "        return state",
        "",
        "    @staticmethod",
        "    def from_dict(data: dict[str, Any]) -> CustomerState:",
        '        """The JSON object form written before rows (0.1)."""',
        "        row: list[Any] = []",
        "        for name in STATE_FIELDS:",
        "            if name not in data:",
        "                break",
        "            row.append(data[name])",
        "        return CustomerState.from_row(row)",
        "",
        "    def encode(self) -> bytes:",
        '        """The changelog value: the row as msgpack. Copied: the encoder\'s result',
        '        keeps spare capacity, ~250 bytes a state the table would keep."""',
        "        return memoryview(_ENCODER.encode(self.to_row())).tobytes()",
        "",
        "    @staticmethod",
        "    def decode(raw: bytes) -> CustomerState:",
        '        """A changelog value of any version: msgpack rows, and the JSON rows and',
        '        objects written before them."""',
        '        if raw[:1] in (b"[", b"{"):',
        "            data = msgspec.json.decode(raw)",
        "            if isinstance(data, dict):",
        "                return CustomerState.from_dict(data)",
        "            return CustomerState.from_row(data)",
        "        return CustomerState.from_row(_DECODER.decode(raw))",
        "",
        "    def reanchor_sums(self, slow: float, fast: float) -> None:",
        '        """Multiplies every anchored sum by its decay since the old anchor."""',
    ]
    for field in FIELDS:
        if field.decay == SLOW:
            out.append(f"        self.{field.name} *= slow")
        elif field.decay == FAST:
            out.append(f"        self.{field.name} *= fast")
        elif field.decay == SLOW_PAIRS:
            out += [
                f"        for pair in self.{field.name}.values():",
                "            pair[0] *= slow",
                "            pair[1] *= slow",
            ]
        elif field.decay == SLOW_VALUES:
            out += [
                f"        for key in self.{field.name}:",
                f"            self.{field.name}[key] *= slow",
            ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    print(f"wrote {TARGET}")
