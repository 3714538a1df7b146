"""The processing step shared by the live worker and `touchstream replay`.

One `Engine` per process; state lives in any mapping (a Faust table live, a dict in a
replay), so both paths run exactly this code and raise exactly the same signals.

Event-time timer: each partition keeps a watermark (the latest `occurred_at` seen on it).
When an event moves the watermark past a multiple of `silence_check_days`, every customer of
that partition is checked for silence *at that boundary*, before the event is applied. The
checks therefore depend only on the order of the log, never on the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from mypy_extensions import mypyc_attr

from touchstream.schemas import FieldError, Signal, TouchpointRejected
from touchstream.schemas.decoder import Touchpoint
from touchstream.schemas.signal import Snapshot
from touchstream.streams.assessment import LEVEL_FAILED, Assessment
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import ABSORBED_KEEP, CustomerState
from touchstream.streams.evaluate import assess, evaluate
from touchstream.streams.measure import usual_gap_days
from touchstream.streams.merge import merge_states
from touchstream.streams.params import DAY
from touchstream.streams.partitioner import partition_for
from touchstream.streams.risk import silence_ceiling
from touchstream.streams.rules import Rules
from touchstream.streams.state import apply_event, dedup_horizon, event_key

SNAPSHOT_RISK_STEP: Final = 0.05  # a silence check writes a snapshot when risk moved this much
PARK_LIMIT = 1_000  # records a customer keeps waiting for a merge before going on without


@dataclass(init=False)
class StepResult:
    status: str  # applied | duplicate | late | tick | redirected | parked
    signals: list[Signal]
    snapshots: list[Snapshot]
    rejection: TouchpointRejected | None
    assessment: Assessment | None  # what the touchpoint said, when it was applied
    behind: float  # seconds behind its partition's event time, past one silence-check period
    redirect: str  # "redirected": the customer the event's key was merged into

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(self, status: str) -> None:
        self.status = status
        self.signals = []
        self.snapshots = []
        self.rejection = None
        self.assessment = None
        self.behind = 0.0
        self.redirect = ""


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled (touchstream/native/), still open
class Engine:
    def __init__(
        self,
        rules: Rules,
        model: RiskModel,
        states: MutableMapping[str, CustomerState],
        watermarks: MutableMapping[str, float],
        partitions: int,
        snapshots: bool = True,
    ) -> None:
        """`snapshots=False`: no metrics snapshot is built (a replay to files writes only
        the final ones); when one would be taken is still recorded in the state, so the
        signals and states are the same."""
        self.rules = rules
        self.snapshots = snapshots
        self.model = model
        self.states = states
        self.watermarks = watermarks
        self.partitions = partitions
        self._members: dict[int, set[str]] = {}
        # customers the timer cannot raise before their next event (exact bound, see below)
        self._timer_skip: set[str] = set()
        # customer -> when they become overdue; the timer need not read them before then
        # (exact: both sides of the comparison change only with the customer's own events)
        self._due: dict[str, float] = {}
        self.params = rules.state_params()
        self.scoring = rules.scoring  # read per event: a pydantic attribute read costs ~700
        self.period = rules.silence_check_days * DAY
        self.park_limit = PARK_LIMIT

    def members(self, partition: int) -> set[str]:
        """Customers of a partition; built from the state store the first time it is asked."""
        known = self._members.get(partition)
        if known is None:
            known = {key for key in self.states if partition_for(key, self.partitions) == partition}
            self._members[partition] = known
        return known

    def forget_members(self) -> None:
        """After a rebalance the store holds other partitions: rebuild lazily."""
        self._members.clear()
        self._timer_skip.clear()
        self._due.clear()

    def forget(self, customer_id: str, partition: int) -> None:
        """Right to be forgotten: the customer's state goes (a tombstone in the changelog)."""
        if self.states.get(customer_id) is not None:
            del self.states[customer_id]
        self.members(partition).discard(customer_id)
        self._timer_skip.discard(customer_id)
        self._due.pop(customer_id, None)

    def merge(self, survivor: str, absorbed: str) -> StepResult | None:
        """Two customers found to be one (streams/identity.py), both states in this process
        (a replay): one state of both, by the fields' merge rules, kept as the survivor's.
        None: the absorbed key had no state to bring."""
        other = self.absorb_out(absorbed, survivor, partition_for(absorbed, self.partitions))
        if other is None:
            return None
        return self.absorb_in(survivor, other, partition_for(survivor, self.partitions))

    def absorb_out(self, absorbed: str, survivor: str, partition: int) -> CustomerState | None:
        """A merge's first half, where the absorbed key lives: its state leaves (for the
        survivor's key) and the key becomes a redirect to the survivor. None: nothing to
        move, or moved before (a redelivery: the redirect is already there).

        The redirect keeps the event ids the state had: a touchpoint the resolver sends
        again after a crash (resolved anew from the graph it had persisted) is known here,
        where the survivor may have moved past the grace and forgotten its id."""
        state = self.states.get(absorbed)
        if state is not None and state.merged_into:
            return None
        self.forget(absorbed, partition)
        self.states[absorbed] = redirect(absorbed, survivor, state)
        return state

    def absorb_in(self, survivor: str, other: CustomerState, partition: int) -> StepResult:
        """A merge's second half, where the survivor lives: `other` joins its state by the
        fields' merge rules, once (a state remembers the ids it absorbed), and a snapshot
        shows the customer whole. "redirected": the survivor itself has since been merged
        into `redirect` (to go on); "duplicate": absorbed before. `other` without events
        (the absorbed key had no state) only marks the merge as arrived."""
        mine = self.states.get(survivor)
        if mine is not None and mine.merged_into:
            outcome = StepResult("redirected")
            outcome.redirect = mine.merged_into
            return outcome
        if mine is not None and other.customer_id in mine.absorbed:
            return StepResult("duplicate")
        if not other.event_count and not other.absorbed:
            if mine is not None:  # (it may have records waiting for this merge)
                mine.absorbed = [*mine.absorbed, other.customer_id][-ABSORBED_KEEP:]
                self.states[survivor] = mine
            return StepResult("absorbed")
        state = merge_states(mine or CustomerState(survivor), other, self.params)
        outcome = StepResult("absorbed")
        if state.event_count:
            standing = assess(state, state.last_seen, self.rules, self.model)
            state.last_snapshot_at = state.last_seen
            state.last_snapshot_risk = standing.risk_score
            outcome.snapshots.append(standing)
        self.states[survivor] = state
        self.members(partition).add(survivor)
        self._timer_skip.discard(survivor)
        self._due.pop(survivor, None)
        return outcome

    def park(
        self, customer_id: str, partition: int, offset: int, payload: bytes, at: float
    ) -> bool:
        """Keep a record of `customer_id`'s partition (a touchpoint of time `at`) until the
        merge it waits for arrives (streams/records.py releases it). False: parked before
        (a redelivery)."""
        state = self.states.get(customer_id) or CustomerState(customer_id)
        if any(entry[0] == offset for entry in state.parked):
            return False
        state.parked = [*state.parked, [offset, payload, at]]
        self.states[customer_id] = state
        self.members(partition).add(customer_id)
        return True

    def unpark(self, customer_id: str) -> list[list[Any]]:
        """The customer's parked records, in the order they came, no longer parked."""
        state = self.states.get(customer_id)
        if state is None or not state.parked:
            return []
        parked, state.parked = state.parked, []
        self.states[customer_id] = state
        return parked

    def step(self, event: Touchpoint, partition: int, offset: int | None = None) -> StepResult:
        """Apply one event. `offset` (live) lets a redelivery after a crash be recognised
        as such even when it is older than the grace."""
        t = event.occurred_at.timestamp()
        customer = event.customer_id
        assert customer is not None  # resolved before the keyed stage (streams/resolve.py)
        self.members(partition).add(customer)
        outcome = StepResult("applied")
        mark = self.watermarks.get(str(partition))
        if mark is not None and mark - t > self.period:
            # the silence checks of the time it belongs to have run without it
            outcome.behind = mark - t
        self.advance(partition, t, outcome)
        # after the checks the event's time passes (they judge the state before it): what the
        # timer remembers is then always derived from the state it has, as after a restart
        self._timer_skip.discard(customer)
        self._due.pop(customer, None)
        state = self.states.get(customer) or CustomerState(customer)
        if state.merged_into:  # an alias now: the event goes on to its customer's key
            if event_key(event.event_id) in state.seen:
                outcome.status = "duplicate"
                return outcome
            remembered = dedup_horizon(state, self.params) if state.last_seen else t
            if t < remembered:
                # its id may have been forgotten here before the merge: sent on, a copy the
                # resolver sends again after a crash would be stored under the survivor too
                state.late_events += 1
                self.states[customer] = state
                outcome.status = "late"
                outcome.rejection = late_rejection(event, remembered)
                return outcome
            outcome.status = "redirected"
            outcome.redirect = state.merged_into
            return outcome
        if state.parked:  # waiting for a merge: after the touchpoints that wait for it
            outcome.status = "parked"
            return outcome
        if offset is not None and offset <= state.last_offset:
            outcome.status = "duplicate"
            return outcome
        horizon = dedup_horizon(state, self.params) if state.event_count else None
        applied = apply_event(state, event, self.params)
        outcome.status = applied.status
        if offset is not None and applied.status != "duplicate":
            state.last_offset = offset
        if applied.status == "late":
            outcome.rejection = late_rejection(event, horizon or t)
            self.states[customer] = state  # keeps the late counter
            return outcome
        if applied.status == "duplicate":
            return outcome
        outcome.assessment = applied.assessment
        result = evaluate(state, t, self.rules, self.model, event, applied)
        if (
            not state.open_complaints
            and applied.assessment is not None
            and (applied.assessment.level is not LEVEL_FAILED)
        ):  # the record before any incident: what a recovery gesture is judged on
            state.pre_incident = result.metrics.consistency
        outcome.signals.extend(result.signals)
        every = self.scoring.snapshot_every
        if result.signals or state.event_count == 1 or t - state.last_snapshot_at >= every:
            state.last_snapshot_at = t
            state.last_snapshot_risk = result.risk.value
            if self.snapshots:
                outcome.snapshots.append(result.snapshot(state))
        self.states[customer] = state
        return outcome

    def advance(self, partition: int, t: float, into: StepResult) -> None:
        """Move the partition's watermark to `t`, running the silence checks it passes; their
        signals and snapshots go `into` the outcome."""
        key = str(partition)
        mark = self.watermarks.get(key)
        if mark is None:
            self.watermarks[key] = t
            return
        if t <= mark:
            return
        boundary = (math.floor(mark / self.period) + 1) * self.period
        while boundary <= t:
            self.silence_check(partition, boundary, into)
            boundary += self.period
        self.watermarks[key] = t

    def silence_check(self, partition: int, now: float, into: StepResult) -> None:
        """Judge the partition's silent customers at `now` (`_check`)."""
        for customer_id in sorted(self.members(partition) - self._timer_skip):
            self._check(customer_id, now, into)

    def catch_up(
        self, customer_id: str, partition: int, after: float, until: float, into: StepResult
    ) -> None:
        """The silence checks of one customer at the boundaries in (`after`, `until`] its
        partition has passed: those it sat out while its touchpoints waited for a merge."""
        mark = self.watermarks.get(str(partition))
        if mark is None:
            return
        boundary = (math.floor(after / self.period) + 1) * self.period
        while boundary <= min(until, mark):
            self._check(customer_id, boundary, into)
            boundary += self.period

    def _check(self, customer_id: str, now: float, into: StepResult) -> None:
        """Judge one customer's silence at `now`. A customer whose risk moved by
        SNAPSHOT_RISK_STEP since their last snapshot gets a new one, so the metrics keep up
        with silence. One who cannot reach the threshold by silence alone is looked at again
        one usual interval later (their snapshot only), not every day."""
        due = self._due
        if customer_id in self._timer_skip or due.get(customer_id, 0.0) > now:
            return
        state = self.states.get(customer_id)
        if state is None or not state.event_count or state.last_seen >= now or state.merged_into:
            return  # (no event yet: a customer whose first touchpoint waits for a merge)
        if state.parked and now > state.parked[0][2]:
            return  # not silent: a touchpoint of before `now` waits for its merge (catch_up)
        if state.signal_state.get("about_to_defect", [False])[0]:
            self._timer_skip.add(customer_id)  # raised; only an event can clear it
            return
        last = state.last_active or state.last_seen
        usual = usual_gap_days(state, self.scoring)
        if (now - last) / DAY <= usual:  # not overdue: the silence factor is zero
            # ...and not late (`risk.late`): a one-time buyer may be, sooner
            gap = self.model.one_time_gap(state.active_days - 1)
            late_after = min(usual, gap) if gap else usual
            wake = last + late_after * DAY - 1.0  # a second early: no float doubt
            if state.open_complaints:  # ...but a complaint's age grows all the same
                opened = min(case[0] for case in state.open_complaints.values())
                wake = min(wake, opened + self.scoring.complaint_sla_days * DAY)
            if wake > now:
                due[customer_id] = wake
                return
        ceiling, measured = silence_ceiling(state, now, self.rules, self.model)
        if ceiling < self.scoring.risk_trigger.raise_at:
            # silence alone cannot raise: looked at once per usual interval, on a grid
            # anchored at the last contact, so a restart (which loses `_due`) looks at
            # the very same boundaries (a restart once wrote a snapshot a day early)
            step, since = usual * DAY, now - last
            if since > usual * DAY:
                due[customer_id] = last + step * (math.floor(since / step) + 1)
                if not _first_or_on_grid(since, self.period, step):
                    return
        before = [list(v) for v in state.signal_state.values()]
        result = evaluate(state, now, self.rules, self.model, measured=measured)
        changed = before != [list(v) for v in state.signal_state.values()]
        if result.signals or abs(result.risk.value - state.last_snapshot_risk) >= (
            SNAPSHOT_RISK_STEP
        ):
            state.last_snapshot_at = now
            state.last_snapshot_risk = result.risk.value
            if self.snapshots:
                into.snapshots.append(result.snapshot(state))
            changed = True
        if changed:
            self.states[customer_id] = state
        into.signals.extend(result.signals)


def _first_or_on_grid(since: float, period: float, step: float) -> bool:
    """Whether the check at `since` after the last contact is the first one past the usual
    interval, or the first one past a later multiple of it."""
    before = since - period
    return before <= step or math.floor(since / step) > math.floor(before / step)


def redirect(absorbed: str, survivor: str, state: CustomerState | None) -> CustomerState:
    """What an absorbed key keeps once merged into `survivor`: the event ids its state
    remembered, and how far back it remembered them. A copy it knows is a duplicate there; one
    from before then may be one whose id it forgot, and is late there, as it would have been
    before the merge (`Engine.step`)."""
    kept = CustomerState(absorbed)
    kept.merged_into = survivor
    if state is not None:
        kept.seen = dict(state.seen)
        kept.last_seen = state.last_seen
    return kept


def late_rejection(event: Touchpoint, horizon: float) -> TouchpointRejected:
    when = datetime.fromtimestamp(horizon, UTC).isoformat()
    return TouchpointRejected(
        "late_event",
        [
            FieldError(
                loc="occurred_at",
                type="late_event",
                msg=f"arrived after the grace period: this customer's state has moved past "
                f"{when}; the event is kept here and not counted (or it was a duplicate whose "
                "id has been forgotten)",
                input=event.occurred_at.isoformat(),
            )
        ],
    )
