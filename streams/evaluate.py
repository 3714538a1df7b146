"""From a customer's state to metrics, scores and signals, at one moment of event time."""

from __future__ import annotations

from dataclasses import dataclass

from touchstream.schemas import MetricsSnapshot, Signal, SignalKind
from touchstream.schemas.decoder import Touchpoint
from touchstream.schemas.signal import Snapshot
from touchstream.streams.attribution import attribution, named_reasons
from touchstream.streams.churn import RiskModel
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.measure import Metrics, as_datetime, measure
from touchstream.streams.params import ScoringParams
from touchstream.streams.risk import at_stake, raisable, risk, risk_action, usual_channel
from touchstream.streams.rules import Rules
from touchstream.streams.scoring import (
    RISK_KEY,
    WOW_KEY,
    Score,
    decide,
    severity,
    signal_id,
    wow_severity,
)
from touchstream.streams.snapshot import snapshot
from touchstream.streams.state import Applied
from touchstream.streams.wow import (
    NO_MOMENT,
    Moment,
    moment_of,
    offer_value,
    wow,
    wow_action,
    wow_allowed,
)


@dataclass(slots=True, init=False)
class Evaluation:
    metrics: Metrics
    risk: Score
    wow: Score
    signals: tuple[Signal, ...]

    # explicit, so mypyc compiles it: a dataclass's generated one stays interpreted (4x slower)
    def __init__(
        self, metrics: Metrics, risk: Score, wow: Score, signals: tuple[Signal, ...]
    ) -> None:
        self.metrics, self.risk, self.wow, self.signals = metrics, risk, wow, signals

    def snapshot(self, state: CustomerState) -> Snapshot:
        return snapshot(state, self.metrics, self.risk.value, self.wow.value)


def evaluate(
    state: CustomerState,
    now: float,
    rules: Rules,
    model: RiskModel,
    event: Touchpoint | None = None,
    applied: Applied | None = None,
    measured: Metrics | None = None,
) -> Evaluation:
    """Score the customer at `now` and raise signals. The scores are pure; the signal
    bookkeeping changes in `record_raised` only.

    Without an event this is the silence check of the event-time timer, which looks for
    risk only. `measured`: the customer's metrics at `now`, when the caller has them.
    """
    p = rules.scoring
    m = measure(state, now, rules, model) if measured is None else measured
    risk_score = risk(m, p, model)
    moment = moment_of(event, applied, p, m) if event is not None and applied else NO_MOMENT
    # the service's part, not P(leave): in a business where most buy once, everyone's
    # P(leave) is high, and a steady customer's next moment must still get its wow
    wow_score = wow(m, risk_score.service, moment, p, state.pre_incident)
    raised = record_raised(
        state.signal_state,
        now,
        raisable(m, risk_score, p, model),
        risk_score,
        wow_score,
        moment[1],
        p,
    )
    if not raised:
        return Evaluation(m, risk_score, wow_score, ())
    metrics = snapshot(state, m, risk_score.value, wow_score.value).model()
    signals = tuple(
        _signal(score, state, m, metrics, moment, now, rules, model, event) for score in raised
    )
    return Evaluation(m, risk_score, wow_score, signals)


def assess(state: CustomerState, now: float, rules: Rules, model: RiskModel) -> Snapshot:
    """The customer's metrics and scores at `now`, raising nothing: after a merge the
    signals come with the next event or silence check, as for any other change of state."""
    m = measure(state, now, rules, model)
    risk_score = risk(m, rules.scoring, model)
    wow_score = wow(m, risk_score.service, NO_MOMENT, rules.scoring, state.pre_incident)
    return snapshot(state, m, risk_score.value, wow_score.value)


def record_raised(
    signal_state: dict[str, list],
    now: float,
    trigger_value: float,
    risk_score: Score,
    wow_score: Score,
    moment: str,
    p: ScoringParams,
) -> list[Score]:
    """The one place the signal bookkeeping changes: which scores are raised now.

    Risk: raised on crossing `raise_at` (on `trigger_value`, see `risk.raisable`), re-armed
    below `clear_below`, with a cooldown. Wow: raised by the event's moment itself, once per
    moment kind per its cooldown and once per customer per `budget_days` (recovery
    excepted)."""
    raised: list[Score] = []
    active, last_raised = signal_state.get(RISK_KEY, [False, None])
    decision = decide(active, last_raised, trigger_value, now, p.risk_trigger)
    if decision == "clear":
        signal_state[RISK_KEY] = [False, last_raised]
    elif decision == "raise":
        signal_state[RISK_KEY] = [True, now]
        raised.append(risk_score)
    if (
        moment != "none"
        and wow_score.value >= p.wow_raise_at
        and wow_allowed(signal_state, moment, now, p)
    ):
        signal_state["wow:" + moment] = [False, now]
        signal_state[WOW_KEY] = [False, now]
        raised.append(wow_score)
    return raised


def _signal(
    score: Score,
    state: CustomerState,
    m: Metrics,
    metrics: MetricsSnapshot,
    moment: Moment,
    now: float,
    rules: Rules,
    model: RiskModel,
    event: Touchpoint | None,
) -> Signal:
    """A raised score as the signal published: why, what to do, who owns it, its id."""
    is_risk = score.kind is SignalKind.about_to_defect
    if is_risk:
        action, team, value = risk_action(score, state, event, rules), None, 0.0
    else:
        value = offer_value(m, model)
        channel = usual_channel(state) or (event.channel.value if event else "")
        action = wow_action(moment, value, channel, rules, model)
        team, value = rules.wow.owner(moment[1]), value * score.value
    version = f"{rules.version}|{model.version}" if is_risk else rules.version
    return Signal(
        signal_id=signal_id(state.customer_id, score.kind, now, version),
        kind=score.kind,
        customer_id=state.customer_id,
        score=score.value,
        severity=severity(score.value + at_stake(m, rules, model))
        if is_risk
        else wow_severity(score.value),
        raised_at=as_datetime(now),
        trigger="event" if event is not None else "timer",
        trigger_event_id=event.event_id if event is not None else None,
        channel=event.channel.value if event is not None else None,
        reasons=named_reasons(score, state) if is_risk else score.reasons,
        suggested_action=action,
        team=team,
        expected_value=value,
        metrics=metrics,
        rules_version=rules.version,
        attribution=attribution(state) if is_risk else None,
        revenue_at_risk=m.revenue_at_risk,
        expected_loss=m.revenue_at_risk * score.value if is_risk else 0.0,
        horizon_days=rules.risk.horizon_days,
        risk_model=model.version,
    )
