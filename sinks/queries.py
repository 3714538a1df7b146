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

# BG/NBD inputs, in days: distinct active days of customer-initiated touchpoints (the same
# definition as the stream's state), observed until {as_of}. Customers with the same
# (x, t_x, T) are one row with a weight, so the result stays small for any population.
RFM = """
SELECT x, t_x, greatest(T, t_x) AS T, count() AS customers
FROM (
    SELECT customer_id,
           uniqExact(toDate(occurred_at)) - 1 AS x,
           dateDiff('day', toDate(min(occurred_at)), toDate(max(occurred_at))) AS t_x,
           dateDiff('day', toDate(min(occurred_at)), toDate({as_of:DateTime64(3, 'UTC')})) AS T
    FROM touchpoints FINAL
    WHERE kind NOT IN ('delivery', 'notification')
      AND occurred_at <= {as_of:DateTime64(3, 'UTC')}
    GROUP BY customer_id
)
GROUP BY x, t_x, T
"""
