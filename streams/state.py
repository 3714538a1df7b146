"""Per-customer rolling state, updated in event time. Pure: no Faust, no I/O.

Decay without order: every decayed quantity is kept as an *anchored sum*
S = sum x_i * 2^((t_i - anchor) / h). Its value at time T is S * 2^(-(T - anchor) / h), and
ratios of two such sums need no factor at all. Adding an event is one multiply-add whatever
its position in time, so events that arrive out of order within the grace give exactly the
numbers they would have given in order, and a replay gives the live numbers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Final

from touchstream.schemas.decoder import Touchpoint
from touchstream.streams.assessment import (
    COMPANY_INITIATED,
    COMPLAINT,
    COMPLAINT_RESOLVED,
    FEEDBACK_KINDS,
    LEVEL_EXCEEDED,
    LEVEL_FAILED,
    LEVEL_MET,
    LEVEL_NONE,
    PURCHASE_KINDS,
    REFERRAL,
    REVIEW,
    Assessment,
    assess,
    miss_strength,
)
from touchstream.streams.customer_state import (
    MISS_BY_KEEP,
    OPEN_COMPLAINTS_KEEP,
    RECENT_KEEP,
    SEEN_KEEP,
    CustomerState,
)
from touchstream.streams.params import DAY, StateParams

BAD_REVIEW_SENTIMENT: Final = -0.3  # a review at or below this sentiment is a bad one
_REANCHOR_HALF_LIVES: Final = 100.0  # keep 2^(x / h) well inside float range (fast sums use h / 4)
CHANNELS: Final = (
    "web",
    "app",
    "email",
    "sms",
    "phone",
    "chat",
    "social",
    "store",
    "delivery",
    "mail",
)
CHANNEL_INDEX: Final = {name: i for i, name in enumerate(CHANNELS)}


_EVENT_KEY: Final = hashlib.blake2b(digest_size=8)  # copied: the keyword call costs more


def event_key(event_id: str) -> str:
    """Short stable digest of an event id, for the dedup set (saves state bytes)."""
    digest = _EVENT_KEY.copy()
    digest.update(event_id.encode())
    return digest.hexdigest()


@dataclass(slots=True, init=False)
class Applied:
    """What applying one event did: `status` is applied, duplicate or late."""

    status: str
    assessment: Assessment | None
    resolved_complaint_after: float | None  # seconds from complaint to resolution
    new_purchase_count: int | None

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self,
        status: str,
        assessment: Assessment | None = None,
        resolved_complaint_after: float | None = None,
        new_purchase_count: int | None = None,
    ) -> None:
        self.status, self.assessment = status, assessment
        self.resolved_complaint_after = resolved_complaint_after
        self.new_purchase_count = new_purchase_count


def _grow(h: float, t: float, anchor: float) -> float:
    return 2.0 ** ((t - anchor) / h)


def _reanchor(state: CustomerState, t: float, h: float) -> None:
    if state.anchor == 0.0:
        state.anchor = t
        return
    if (t - state.anchor) / h < _REANCHOR_HALF_LIVES:
        return
    state.reanchor_sums(2.0 ** (-(t - state.anchor) / h), 2.0 ** (-4.0 * (t - state.anchor) / h))
    state.anchor = t


def _remember(recent: list[tuple[float, int, bool]], t: float, level: int, initiated: bool) -> None:
    """Into the ring kept in time order, after entries of the same time (where a stable sort
    puts it); the oldest beyond RECENT_KEEP go. The ring is always in order, so this is the
    sort it replaces without its 17 key calls."""
    at = len(recent)
    while at > 0 and recent[at - 1][0] > t:
        at -= 1
    recent.insert(at, (t, level, initiated))
    if len(recent) > RECENT_KEEP:
        del recent[: len(recent) - RECENT_KEEP]


def _oldest(seen: dict[str, float]) -> float:
    """min(seen.values()) as a compiled loop (the builtin goes through generic calls)."""
    oldest = math.inf
    for t in seen.values():
        if t < oldest:
            oldest = t
    return oldest


def _forget_old_ids(state: CustomerState, params: StateParams) -> None:
    horizon = state.last_seen - params.grace_seconds
    seen = state.seen
    if len(seen) > SEEN_KEEP or (seen and _oldest(seen) < horizon):
        kept = sorted(
            ((k, t) for k, t in state.seen.items() if t >= horizon), key=lambda kv: kv[1]
        )[-SEEN_KEEP:]
        state.seen = dict(kept)


def dedup_horizon(state: CustomerState, params: StateParams) -> float:
    """Events before this time are late: their ids may have been forgotten."""
    horizon = state.last_seen - params.grace_seconds
    if len(state.seen) >= SEEN_KEEP:
        horizon = max(horizon, _oldest(state.seen))
    return horizon


def apply_event(state: CustomerState, event: Touchpoint, params: StateParams) -> Applied:
    """Fold one touchpoint into the state. Idempotent per event_id; late events are refused."""
    t = event.occurred_at.timestamp()
    key = event_key(event.event_id)
    if key in state.seen:
        return Applied("duplicate")
    if state.event_count and t < dedup_horizon(state, params):
        state.late_events += 1
        return Applied("late")

    h = params.half_life
    _reanchor(state, t, h)
    grow = _grow(h, t, state.anchor)
    grow_fast = _grow(h / 4.0, t, state.anchor)
    state.seen[key] = t
    state.event_count += 1
    state.first_seen = t if state.event_count == 1 else min(state.first_seen, t)
    state.last_seen = max(state.last_seen, t)
    kind = event.kind  # a struct field read generically: each once
    channel = CHANNEL_INDEX[event.channel]  # a StrEnum: hashes as its value
    state.channels_mask |= 1 << channel
    initiated = kind not in COMPANY_INITIATED

    result = assess(event, params.wow_margin)
    if result.quality is not None:
        q = result.quality
        state.w_judged += grow
        state.s_quality += grow * q
        state.s_quality_sq += grow * q * q
        pair = state.channel_quality.setdefault(channel, [0.0, 0.0])
        pair[0] += grow
        pair[1] += grow * q
        if result.level is LEVEL_FAILED:
            state.failed += grow
        elif result.level is LEVEL_EXCEEDED:
            state.exceeded += grow
        else:
            state.met += grow
        _remember(state.recent, t, int(result.level), initiated)
    team = event.team or ""
    if result.gap is not None:
        state.w_gap += grow
        state.s_gap += grow * result.gap
        state.worst_gap = min(state.worst_gap, result.gap * grow)
        broken = result.gap < -1.0
        weight = _importance(result, params)
        _count_promise(state, grow, weight, broken, result.miss)
        if broken:
            metric = min(result.gaps, key=lambda g: g.units).metric
            _blame(state, f"{metric}|{event.channel}|{team}", grow * weight)
    if result.rating is not None:
        state.w_rating += grow
        state.s_rating += grow * result.rating
        state.w_rating_fast += grow_fast
        state.s_rating_fast += grow_fast * result.rating
    if initiated:
        _count_active_day(state, t)
        if result.level is LEVEL_NONE:
            _remember(state.recent, t, 0, True)
    if kind in FEEDBACK_KINDS or event.rating is not None:
        state.feedback_given += 1
    if kind is REFERRAL:
        state.referrals += 1
    if result.promoter:
        state.promoter_moments += 1
    if kind is REVIEW and (
        result.detractor
        or result.level is LEVEL_FAILED
        or (event.sentiment is not None and event.sentiment <= BAD_REVIEW_SENTIMENT)
    ):
        state.bad_reviews += 1
    if event.case_id and (kind is COMPLAINT_RESOLVED or kind in COMPANY_INITIATED):
        state.feedback_answered += 1

    resolved_after = _track_complaints(state, event, t, result, channel, params)
    purchases = None
    if kind in PURCHASE_KINDS:
        state.purchases += 1
        purchases = state.purchases
        value = event.value
        if value is not None:
            state.spend += value.amount
    _forget_old_ids(state, params)
    return Applied("applied", result, resolved_after, purchases)


def _importance(result: Assessment, params: StateParams) -> float:
    """The weight of the touchpoint's promises: its most important metric's (default 1)."""
    if not params.importance:
        return 1.0
    table = dict(params.importance)
    return max(table.get(gap.metric, 1.0) for gap in result.gaps)


def _count_active_day(state: CustomerState, t: float) -> None:
    day = int(t // DAY)
    if state.active_days and (day == state.last_active_day or day in state.recent_days):
        state.last_active = max(state.last_active, t)
        return
    if state.active_days == 0:
        state.first_active_day = state.last_active_day = day
    else:
        state.first_active_day = min(state.first_active_day, day)
        state.last_active_day = max(state.last_active_day, day)
    state.active_days += 1
    state.last_active = max(state.last_active, t)
    state.recent_days.append(day)
    state.recent_days.sort()
    del state.recent_days[:-RECENT_KEEP]


def _track_complaints(
    state: CustomerState,
    event: Touchpoint,
    t: float,
    result: Assessment,
    channel: int,
    params: StateParams,
) -> float | None:
    """Open and close complaint cases; returns the resolution time when one closes.

    How the company handled it counts as a promise: a resolution slower than the recovery
    SLA, or a complaint reopened after it was resolved (the fix did not hold), is a broken
    promise (in `broken_promise_rate` and `consecutive_misses`), sized by how late it was."""
    kind = event.kind
    if kind is COMPLAINT:
        opened_case = event.case_id or event.event_id
        if opened_case in state.resolved_cases:
            state.reopened += 1
            state.resolved_cases.remove(opened_case)
            grow = _grow(params.half_life, t, state.anchor)
            _count_promise(state, grow, 1.0, True, 1.0)
            _blame(state, f"complaint_resolution|{event.channel}|{event.team or ''}", grow)
        state.open_complaints[opened_case] = [t, result.quality or -1.0, float(channel)]
        state.complaint_where[opened_case] = f"{event.channel}|{event.team or ''}"
        if len(state.open_complaints) > OPEN_COMPLAINTS_KEEP:
            oldest = min(state.open_complaints, key=lambda c: state.open_complaints[c][0])
            del state.open_complaints[oldest]
        for case in [c for c in state.complaint_where if c not in state.open_complaints]:
            del state.complaint_where[case]
        return None
    if kind is COMPLAINT_RESOLVED and state.open_complaints:
        case = event.case_id or ""
        if case not in state.open_complaints:
            case = min(state.open_complaints, key=lambda c: state.open_complaints[c][0])
        opened, quality, channel_of_complaint = state.open_complaints.pop(case)
        where = state.complaint_where.pop(case, "|")
        state.resolved_cases = [*state.resolved_cases[-(OPEN_COMPLAINTS_KEEP - 1) :], case]
        took = max(0.0, t - opened)
        sla = params.recovery_sla_days * DAY
        if took <= sla and result.level is not LEVEL_FAILED:
            _recover(state, opened, quality, int(channel_of_complaint), params)
        elif took > sla:
            state.slow_resolutions += 1
            grow = _grow(params.half_life, t, state.anchor)
            _count_promise(state, grow, 1.0, True, took / sla - 1.0)
            channel_name, _, team = where.partition("|")
            _blame(state, f"complaint_resolution|{channel_name}|{event.team or team}", grow)
        return took
    return None


def _blame(state: CustomerState, key: str, weight: float) -> None:
    """A broken promise, on the account of its metric, channel and team ("metric|channel|team"):
    the signal's reasons name the worst. The MISS_BY_KEEP heaviest are kept."""
    state.miss_by[key] = state.miss_by.get(key, 0.0) + weight
    if len(state.miss_by) > MISS_BY_KEEP:
        del state.miss_by[min(state.miss_by, key=lambda k: state.miss_by[k])]


def worst_miss_key(state: CustomerState) -> str | None:
    """The metric|channel|team with the most (recent-weighted) broken promises."""
    if not state.miss_by:
        return None
    return max(state.miss_by, key=lambda k: state.miss_by[k])


def _count_promise(
    state: CustomerState, grow: float, weight: float, broken: bool, miss: float
) -> None:
    """One promise of `weight`, kept or broken (a delivery's, or the company's own handling
    of a complaint). A broken one is counted and never netted against a kept one."""
    state.w_promises += grow * weight
    if broken:
        state.broken += grow * weight
        state.s_miss += grow * weight * miss_strength(miss)
        state.worst_miss = max(state.worst_miss, miss * grow)
        state.consecutive_misses += 1
    else:
        state.consecutive_misses = 0


def _recover(
    state: CustomerState, opened: float, quality: float, channel: int, params: StateParams
) -> None:
    """Service recovery: a complaint fixed in time counts as met with quality 0, not failed.

    Exact on the anchored sums: the complaint's contribution is taken out and put back.
    """
    grow = _grow(params.half_life, opened, state.anchor)
    state.failed = max(0.0, state.failed - grow)
    state.met += grow
    state.s_quality -= grow * quality
    state.s_quality_sq -= grow * quality * quality
    pair = state.channel_quality.get(channel)
    if pair is not None:
        pair[1] -= grow * quality
    state.recent = [
        (rt, int(LEVEL_MET), initiated)
        if rt == opened and level == LEVEL_FAILED
        else (rt, level, initiated)
        for rt, level, initiated in state.recent
    ]


# -- derived metrics --------------------------------------------------------------------------
def decay_to(state: CustomerState, now: float, h: float) -> float:
    """Factor turning an anchored sum into its decayed value at `now`."""
    return 2.0 ** (-(now - state.anchor) / h)


_NONE: Final = int(LEVEL_NONE)  # plain ints: IntEnum compares slowly
_FAILED: Final = int(LEVEL_FAILED)


def streak(state: CustomerState) -> int:
    """Met-or-better judged touchpoints since the last failure (capped by RECENT_KEEP)."""
    count = 0
    for _, level, _ in reversed(state.recent):
        if level == _FAILED:
            break
        if level != _NONE:
            count += 1
    return count


def silent_failures(state: CustomerState) -> int:
    """Failures since the customer last reached out: ~80 % of unhappy customers never do."""
    count = 0
    for _, level, initiated in reversed(state.recent):
        if initiated:
            break
        if level == _FAILED:
            count += 1
    return count


CHANNEL_PRIOR: Final = 2.0  # pseudo-touchpoints at the overall mean added to every channel


def channel_spread(state: CustomerState, now: float, h: float) -> float:
    """Weighted standard deviation of per-channel mean quality (0 = same on every channel).

    Each channel's mean is shrunk towards the customer's overall mean by CHANNEL_PRIOR
    touchpoints, so one bad call on a channel seen once is not yet "erratic across channels".
    """
    if len(state.channel_quality) < 2:
        return 0.0
    total = total_s = 0.0
    judged = 0
    for w, s in state.channel_quality.values():
        if w > 0:
            total += w
            total_s += s
            judged += 1
    if judged < 2 or total <= 0:
        return 0.0
    overall = total_s / total
    prior = CHANNEL_PRIOR / decay_to(state, now, h)  # CHANNEL_PRIOR touchpoints at `now`
    weights: list[float] = []
    means: list[float] = []
    weighted = 0.0
    for w, s in state.channel_quality.values():
        if w > 0:
            m = (s + prior * overall) / (w + prior)
            weights.append(w)
            means.append(m)
            weighted += w * m
    mean = weighted / total
    spread = 0.0
    for i in range(len(means)):
        spread += weights[i] * (means[i] - mean) ** 2
    return math.sqrt(max(0.0, spread / total))
