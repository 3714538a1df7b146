"""The ops queries behind the CLI (and docs/queries.md), parameterised ClickHouse-style."""

from __future__ import annotations

WHY = (
    "arrayStringConcat(arrayMap((f, c) -> concat(f, ' +', toString(round(c, 2))), "
    "reason_factors, reason_contributions), '; ')"
)

SIGNALS = f"""
SELECT raised_at, kind, customer_id, round(toFloat64(score), 3) AS score, severity, trigger,
       suggested_action, {WHY} AS why, signal_id
FROM signals FINAL
WHERE ({{kind:String}} = '' OR kind = {{kind:String}})
  AND raised_at >= {{since:DateTime64(3, 'UTC')}}
  AND score >= {{min_score:Float64}}
ORDER BY raised_at DESC
LIMIT {{limit:UInt32}}
"""

CUSTOMER_METRICS = """
SELECT * FROM customer_metrics FINAL WHERE customer_id = {customer_id:String}
"""

CUSTOMER_TOUCHPOINTS = """
SELECT occurred_at, channel, kind, level, round(toFloat64(quality), 2) AS quality,
       round(toFloat64(gap), 2) AS gap, outcome, event_id
FROM touchpoints FINAL
WHERE customer_id = {customer_id:String}
ORDER BY occurred_at DESC
LIMIT {limit:UInt32}
"""

CUSTOMER_SIGNALS = f"""
SELECT raised_at, kind, round(toFloat64(score), 3) AS score, severity, trigger, suggested_action,
       {WHY} AS why
FROM signals FINAL
WHERE customer_id = {{customer_id:String}}
ORDER BY raised_at DESC
LIMIT {{limit:UInt32}}
"""
