"""Where the risk model learns from and where it is kept: the business's history (the
touchpoints table, or a file being replayed) in, a row of `risk_models` out.

The learning itself is pure (`streams.learning`); this module reads and writes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

import orjson

from touchstream.schemas.decoder import Touchpoint
from touchstream.sinks.clickhouse import ClickHouse
from touchstream.streams.assessment import COMPANY_INITIATED, PURCHASE_KINDS
from touchstream.streams.churn import FEATURES, RiskModel
from touchstream.streams.learning import learn
from touchstream.streams.measure import yearly_value
from touchstream.streams.params import DAY
from touchstream.streams.rules import Rules

log = logging.getLogger("touchstream.learner")

# what the engine counts as a customer's contact (state.py): not what the company sends
_COMPANY = ", ".join(f"'{kind.value}'" for kind in sorted(COMPANY_INITIATED))
_VALUE_KINDS = ", ".join(f"'{kind.value}'" for kind in sorted(PURCHASE_KINDS))

# per customer: the days they made contact (epoch days), their spend and how long they have
# been known, all before {until}; a stable sample of at most {limit} customers by id
HISTORY = f"""
SELECT customer_id,
       arraySort(groupUniqArrayIf(toUInt32(toDate(occurred_at)), kind NOT IN ({_COMPANY}))) AS days,
       sumIf(ifNull(amount, 0), kind IN ({_VALUE_KINDS})) AS spend,
       dateDiff('second', min(occurred_at), max(occurred_at)) / 86400 AS known_days
FROM touchpoints FINAL
WHERE occurred_at < {{until:DateTime64(3, 'UTC')}}
GROUP BY customer_id
HAVING length(days) > 0
ORDER BY cityHash64(customer_id)
LIMIT {{limit:UInt32}}
"""


def history_from_events(
    events: Iterable[Touchpoint], until: float, pace_min_days: float
) -> tuple[dict[str, list[int]], dict[str, float]]:
    """Active days and yearly values from events (a replayed file) before `until`."""
    days: dict[str, set[int]] = {}
    spend: dict[str, float] = {}
    seen: dict[str, list[float]] = {}
    for event in events:
        t = event.occurred_at.timestamp()
        if t >= until:
            continue
        customer = event.customer_id
        if customer is None:  # not resolved (a replay resolves before it learns)
            continue
        span = seen.setdefault(customer, [t, t])
        span[0], span[1] = min(span[0], t), max(span[1], t)
        if event.kind not in COMPANY_INITIATED:
            days.setdefault(customer, set()).add(int(t // DAY))
        if event.value is not None and event.kind in PURCHASE_KINDS:
            spend[customer] = spend.get(customer, 0.0) + event.value.amount
    values = {
        c: yearly_value(spend.get(c, 0.0), (seen[c][1] - seen[c][0]) / DAY, pace_min_days)
        for c in days
    }
    return {c: sorted(v) for c, v in days.items()}, values


def learn_from_events(events: Iterable[Touchpoint], until: float, rules: Rules) -> RiskModel:
    """The risk model from events (a file, the demo's traffic) before `until` (epoch s)."""
    days, values = history_from_events(events, until, rules.loyalty.pace_min_days)
    return learn(days, math.floor(until / DAY), values, rules.risk.horizon_days)


def history_from_clickhouse(
    clickhouse: ClickHouse, until: datetime, pace_min_days: float, limit: int
) -> tuple[dict[str, list[int]], dict[str, float]]:
    params = {"until": until.astimezone(UTC).replace(tzinfo=None), "limit": limit}
    rows = clickhouse.call(lambda client: client.query(HISTORY, parameters=params).result_rows)
    days = {row[0]: [int(d) for d in row[1]] for row in rows}
    values = {row[0]: yearly_value(float(row[2]), float(row[3]), pace_min_days) for row in rows}
    return days, values


def store_model(clickhouse: ClickHouse, model: RiskModel) -> None:
    fitted_until = (
        date.fromisoformat(model.fitted_until) if model.fitted_until else date(1970, 1, 1)
    )
    row = [
        model.version,
        datetime.now(UTC),
        fitted_until,
        int(model.learned),
        int(model.quality.get("customers", 0)),
        int(model.quality.get("examples", 0)),
        model.to_json(),
        orjson.dumps(model.quality).decode(),
    ]
    columns = [
        "version",
        "fitted_at",
        "fitted_until",
        "learned",
        "customers",
        "examples",
        "model",
        "quality",
    ]
    clickhouse.call(lambda client: client.insert("risk_models", [row], column_names=columns))


LATEST = """
SELECT model, fitted_at FROM risk_models FINAL
WHERE learned = 1
ORDER BY fitted_at DESC
LIMIT 1
"""


def load_model(clickhouse: ClickHouse) -> RiskModel:
    """The latest learned model; the default one (with a log line saying why) when there is
    none, or the row cannot be read, or it was learned over other features than this
    version's."""
    rows = clickhouse.call(lambda client: client.query(LATEST).result_rows)
    if not rows:
        log.info("no learned risk model yet: the default model (run `touchstream learn`)")
        return RiskModel(quality={"fallback": "no model learned yet"})
    return parse_model(rows[0][0], f"risk_models row of {rows[0][1]}")


def parse_model(text: str, where: str) -> RiskModel:
    try:
        data: Any = orjson.loads(text)
        if data.get("features", list(FEATURES)) != list(FEATURES):
            raise ValueError("learned over other features than this version's (stale)")
        return RiskModel.from_json(text)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        log.error("the risk model in %s is unusable (%s): the default model instead", where, error)
        return RiskModel(quality={"fallback": f"stored model unusable: {error}"})
