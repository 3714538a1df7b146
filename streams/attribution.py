"""Who and what is behind a risk: the worst metric, channel and team, named in its reasons."""

from __future__ import annotations

from touchstream.schemas import Attribution, Reason
from touchstream.streams.customer_state import CustomerState
from touchstream.streams.scoring import Score
from touchstream.streams.state import worst_miss_key


def _split_account(account: str) -> tuple[str, str, str]:
    """ "metric|channel|team" -> its three parts ("" where missing)."""
    metric, _, rest = account.partition("|")
    channel, _, team = rest.partition("|")
    return metric, channel, team


def _account_text(account: str) -> str:
    """ "metric|channel|team" -> words for a reason's detail."""
    if not account:
        return "none"
    metric, channel, team = _split_account(account)
    where = f"{metric} on {channel}" if channel else metric
    return f"{where} (team {team})" if team else where


def attribution(state: CustomerState) -> Attribution | None:
    """The worst metric, channel and team behind a risk: the account with the most broken
    promises, else the oldest open complaint's."""
    worst = worst_miss_key(state)
    if worst:
        metric, channel, team = _split_account(worst)
        return Attribution(metric=metric, channel=channel, team=team)
    complaint = _complaint_account(state)
    if complaint:
        channel, _, team = complaint.partition("|")
        return Attribution(metric="complaint", channel=channel, team=team)
    return None


def named_reasons(score: Score, state: CustomerState) -> list[Reason]:
    """A risk's reasons, the broken promises and the open complaints named by their metric,
    channel and team: looked up only when a signal is raised, not for every event."""
    reasons = score.reasons
    for i, reason in enumerate(reasons):
        if reason.factor == "broken_promises":
            where = _account_text(worst_miss_key(state) or "")
            reasons[i] = reason.model_copy(
                update={"detail": f"{reason.detail}; most broken: {where}"}
            )
        elif reason.factor == "open_complaints":
            where = _account_text("complaint|" + _complaint_account(state))
            reasons[i] = reason.model_copy(update={"detail": f"{reason.detail}, raised {where}"})
    return reasons


def _complaint_account(state: CustomerState) -> str:
    if not state.open_complaints:
        return ""
    oldest = min(state.open_complaints, key=lambda c: state.open_complaints[c][0])
    return state.complaint_where.get(oldest, "")
