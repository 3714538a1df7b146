"""The customer state: GENERATED from streams/state_schema.py by `make schemas`.

Do not edit: change the declaration and regenerate. What the fields mean and how
they change: streams/state.py."""

from __future__ import annotations

from typing import Any, Final

import msgspec

RECENT_KEEP: Final = 16  # recent judged touchpoints kept for streak and silent failures
SEEN_KEEP: Final = 64  # event ids kept for dedup within the grace
OPEN_COMPLAINTS_KEEP: Final = 8  # open complaint cases kept (and resolved ones remembered)
MISS_BY_KEEP: Final = 6  # metric|channel|team accounts of broken promises kept
ABSORBED_KEEP: Final = 64  # ids merged into a customer, remembered so a merge counts once
STATE_FIELDS: Final = (
    "customer_id",
    "anchor",
    "first_seen",
    "last_seen",
    "event_count",
    "late_events",
    "w_judged",
    "s_quality",
    "s_quality_sq",
    "w_gap",
    "s_gap",
    "worst_gap",
    "w_rating",
    "s_rating",
    "w_rating_fast",
    "s_rating_fast",
    "failed",
    "met",
    "exceeded",
    "channel_quality",
    "channels_mask",
    "active_days",
    "first_active_day",
    "last_active_day",
    "last_active",
    "recent",
    "recent_days",
    "open_complaints",
    "feedback_given",
    "referrals",
    "purchases",
    "seen",
    "signal_state",
    "last_snapshot_at",
    "last_offset",
    "w_promises",
    "broken",
    "s_miss",
    "worst_miss",
    "consecutive_misses",
    "spend",
    "pre_incident",
    "last_snapshot_risk",
    "resolved_cases",
    "slow_resolutions",
    "reopened",
    "miss_by",
    "complaint_where",
    "feedback_answered",
    "bad_reviews",
    "promoter_moments",
    "merged_into",
    "absorbed",
    "parked",
)

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder()


class CustomerState:
    """Everything we remember about one customer."""

    customer_id: str  # the key; set by the constructor
    anchor: float  # epoch seconds the anchored sums refer to
    first_seen: float
    last_seen: float
    event_count: int
    late_events: int
    w_judged: float  # weight of judged touchpoints
    s_quality: float  # their quality
    s_quality_sq: float  # their quality squared
    w_gap: float  # weight of touchpoints with a promise
    s_gap: float  # their gaps
    worst_gap: float  # gap * growth, the most negative kept
    w_rating: float  # weight of ratings
    s_rating: float  # the ratings
    w_rating_fast: float  # weight of ratings, for the trend
    s_rating_fast: float  # the ratings, for the trend
    failed: float  # weight of failed touchpoints
    met: float  # weight of met touchpoints
    exceeded: float  # weight of touchpoints beyond the promise
    # channel index -> [anchored weight, anchored quality sum]
    channel_quality: dict[int, list[float]]
    channels_mask: int  # bit i: channel i seen
    active_days: int  # distinct customer-initiated days (BG/NBD's x + 1)
    first_active_day: int
    last_active_day: int
    last_active: float
    # recent judged touchpoints (t, level, customer initiated), by t (RECENT_KEEP)
    recent: list[tuple[float, int, bool]]
    recent_days: list[int]  # recent active days (RECENT_KEEP)
    # case -> [opened at, quality, channel index] until resolved (OPEN_COMPLAINTS_KEEP)
    open_complaints: dict[str, list[float]]
    feedback_given: int
    referrals: int
    purchases: int
    seen: dict[str, float]  # event id digest -> event time (SEEN_KEEP)
    signal_state: dict[str, list[Any]]  # kind -> [active, last raised at]
    last_snapshot_at: float
    last_offset: int  # highest input offset applied (live): redeliveries
    w_promises: float  # weight of touchpoints that carried a promise
    broken: float  # weight of those that broke one
    s_miss: float  # the broken ones' miss strengths
    worst_miss: float  # the largest recent miss (multiples of the promise)
    consecutive_misses: int  # promises broken in a row
    spend: float  # sum of value.amount over purchases and orders
    pre_incident: float  # consistency at the last good touchpoint, -1 none
    last_snapshot_risk: float  # risk in the last snapshot (timer throttle)
    resolved_cases: list[str]  # complaint cases resolved lately (reopenings)
    slow_resolutions: int  # complaints resolved after the recovery SLA
    reopened: int  # complaints opened again after being resolved
    miss_by: dict[str, float]  # metric|channel|team -> weight of its broken promises (MISS_BY_KEEP)
    complaint_where: dict[str, str]  # open case -> channel|team raised with
    feedback_answered: int  # the customer's voice answered
    bad_reviews: int  # public reviews with a bad rating or sentiment
    promoter_moments: int  # promoter ratings given
    # set: this key was merged into that customer, and the state only redirects there
    merged_into: str
    absorbed: list[str]  # ids merged into this customer
    # [offset, payload, event time] of records waiting for a merge (streams/records.py)
    parked: list[list[Any]]

    def __init__(self, customer_id: str) -> None:
        self.customer_id = customer_id
        self.anchor = 0.0
        self.first_seen = 0.0
        self.last_seen = 0.0
        self.event_count = 0
        self.late_events = 0
        self.w_judged = 0.0
        self.s_quality = 0.0
        self.s_quality_sq = 0.0
        self.w_gap = 0.0
        self.s_gap = 0.0
        self.worst_gap = 0.0
        self.w_rating = 0.0
        self.s_rating = 0.0
        self.w_rating_fast = 0.0
        self.s_rating_fast = 0.0
        self.failed = 0.0
        self.met = 0.0
        self.exceeded = 0.0
        self.channel_quality = {}
        self.channels_mask = 0
        self.active_days = 0
        self.first_active_day = 0
        self.last_active_day = 0
        self.last_active = 0.0
        self.recent = []
        self.recent_days = []
        self.open_complaints = {}
        self.feedback_given = 0
        self.referrals = 0
        self.purchases = 0
        self.seen = {}
        self.signal_state = {}
        self.last_snapshot_at = 0.0
        self.last_offset = -1
        self.w_promises = 0.0
        self.broken = 0.0
        self.s_miss = 0.0
        self.worst_miss = 0.0
        self.consecutive_misses = 0
        self.spend = 0.0
        self.pre_incident = -1.0
        self.last_snapshot_risk = 0.0
        self.resolved_cases = []
        self.slow_resolutions = 0
        self.reopened = 0
        self.miss_by = {}
        self.complaint_where = {}
        self.feedback_answered = 0
        self.bad_reviews = 0
        self.promoter_moments = 0
        self.merged_into = ""
        self.absorbed = []
        self.parked = []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CustomerState) and self.to_row() == other.to_row()

    def __repr__(self) -> str:
        return f"CustomerState({self.to_row()!r})"

    def to_row(self) -> list[Any]:
        """The fields in declaration order (shares the containers: copy with
        `decode(encode())`)."""
        return [
            self.customer_id,
            self.anchor,
            self.first_seen,
            self.last_seen,
            self.event_count,
            self.late_events,
            self.w_judged,
            self.s_quality,
            self.s_quality_sq,
            self.w_gap,
            self.s_gap,
            self.worst_gap,
            self.w_rating,
            self.s_rating,
            self.w_rating_fast,
            self.s_rating_fast,
            self.failed,
            self.met,
            self.exceeded,
            self.channel_quality,
            self.channels_mask,
            self.active_days,
            self.first_active_day,
            self.last_active_day,
            self.last_active,
            self.recent,
            self.recent_days,
            self.open_complaints,
            self.feedback_given,
            self.referrals,
            self.purchases,
            self.seen,
            self.signal_state,
            self.last_snapshot_at,
            self.last_offset,
            self.w_promises,
            self.broken,
            self.s_miss,
            self.worst_miss,
            self.consecutive_misses,
            self.spend,
            self.pre_incident,
            self.last_snapshot_risk,
            self.resolved_cases,
            self.slow_resolutions,
            self.reopened,
            self.miss_by,
            self.complaint_where,
            self.feedback_answered,
            self.bad_reviews,
            self.promoter_moments,
            self.merged_into,
            self.absorbed,
            self.parked,
        ]

    @staticmethod
    def from_row(row: list[Any]) -> CustomerState:
        """A row of any earlier version: fields it lacks keep their defaults."""
        state = CustomerState(row[0])
        n = len(row)
        if n > 1:
            state.anchor = row[1]
        if n > 2:
            state.first_seen = row[2]
        if n > 3:
            state.last_seen = row[3]
        if n > 4:
            state.event_count = row[4]
        if n > 5:
            state.late_events = row[5]
        if n > 6:
            state.w_judged = row[6]
        if n > 7:
            state.s_quality = row[7]
        if n > 8:
            state.s_quality_sq = row[8]
        if n > 9:
            state.w_gap = row[9]
        if n > 10:
            state.s_gap = row[10]
        if n > 11:
            state.worst_gap = row[11]
        if n > 12:
            state.w_rating = row[12]
        if n > 13:
            state.s_rating = row[13]
        if n > 14:
            state.w_rating_fast = row[14]
        if n > 15:
            state.s_rating_fast = row[15]
        if n > 16:
            state.failed = row[16]
        if n > 17:
            state.met = row[17]
        if n > 18:
            state.exceeded = row[18]
        if n > 19:
            state.channel_quality = {int(k): list(pair) for k, pair in row[19].items()}
        if n > 20:
            state.channels_mask = row[20]
        if n > 21:
            state.active_days = row[21]
        if n > 22:
            state.first_active_day = row[22]
        if n > 23:
            state.last_active_day = row[23]
        if n > 24:
            state.last_active = row[24]
        if n > 25:
            state.recent = [(float(t), int(level), bool(mine)) for t, level, mine in row[25]]
        if n > 26:
            state.recent_days = row[26]
        if n > 27:
            state.open_complaints = row[27]
        if n > 28:
            state.feedback_given = row[28]
        if n > 29:
            state.referrals = row[29]
        if n > 30:
            state.purchases = row[30]
        if n > 31:
            state.seen = row[31]
        if n > 32:
            state.signal_state = row[32]
        if n > 33:
            state.last_snapshot_at = row[33]
        if n > 34:
            state.last_offset = row[34]
        if n > 35:
            state.w_promises = row[35]
        if n > 36:
            state.broken = row[36]
        if n > 37:
            state.s_miss = row[37]
        if n > 38:
            state.worst_miss = row[38]
        if n > 39:
            state.consecutive_misses = row[39]
        if n > 40:
            state.spend = row[40]
        if n > 41:
            state.pre_incident = row[41]
        if n > 42:
            state.last_snapshot_risk = row[42]
        if n > 43:
            state.resolved_cases = row[43]
        if n > 44:
            state.slow_resolutions = row[44]
        if n > 45:
            state.reopened = row[45]
        if n > 46:
            state.miss_by = row[46]
        if n > 47:
            state.complaint_where = row[47]
        if n > 48:
            state.feedback_answered = row[48]
        if n > 49:
            state.bad_reviews = row[49]
        if n > 50:
            state.promoter_moments = row[50]
        if n > 51:
            state.merged_into = row[51]
        if n > 52:
            state.absorbed = row[52]
        if n > 53:
            state.parked = row[53]
        return state

    @staticmethod
    def from_dict(data: dict[str, Any]) -> CustomerState:
        """The JSON object form written before rows (0.1)."""
        row: list[Any] = []
        for name in STATE_FIELDS:
            if name not in data:
                break
            row.append(data[name])
        return CustomerState.from_row(row)

    def encode(self) -> bytes:
        """The changelog value: the row as msgpack. Copied: the encoder's result
        keeps spare capacity, ~250 bytes a state the table would keep."""
        return memoryview(_ENCODER.encode(self.to_row())).tobytes()

    @staticmethod
    def decode(raw: bytes) -> CustomerState:
        """A changelog value of any version: msgpack rows, and the JSON rows and
        objects written before them."""
        if raw[:1] in (b"[", b"{"):
            data = msgspec.json.decode(raw)
            if isinstance(data, dict):
                return CustomerState.from_dict(data)
            return CustomerState.from_row(data)
        return CustomerState.from_row(_DECODER.decode(raw))

    def reanchor_sums(self, slow: float, fast: float) -> None:
        """Multiplies every anchored sum by its decay since the old anchor."""
        self.w_judged *= slow
        self.s_quality *= slow
        self.s_quality_sq *= slow
        self.w_gap *= slow
        self.s_gap *= slow
        self.worst_gap *= slow
        self.w_rating *= slow
        self.s_rating *= slow
        self.w_rating_fast *= fast
        self.s_rating_fast *= fast
        self.failed *= slow
        self.met *= slow
        self.exceeded *= slow
        for pair in self.channel_quality.values():
            pair[0] *= slow
            pair[1] *= slow
        self.w_promises *= slow
        self.broken *= slow
        self.s_miss *= slow
        self.worst_miss *= slow
        for key in self.miss_by:
            self.miss_by[key] *= slow
