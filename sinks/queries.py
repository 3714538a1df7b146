"""The ops queries behind the CLI (and docs/queries.md), parameterised ClickHouse-style."""

from __future__ import annotations

# a signal's reasons in one line, "factor +0.42; other -0.07", leaving out those that
# round to nothing
WHY = (
    "arrayStringConcat(arrayMap((f, c) -> concat(f, if(c < 0, ' ', ' +'), "
    "toString(round(c, 2))), "
    "arrayFilter((f, c) -> abs(c) >= 0.005, reason_factors, reason_contributions), "
    "arrayFilter((c, f) -> abs(c) >= 0.005, reason_contributions, reason_factors)), '; ')"
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

# a customer's history is under their id and every id merged into it ({ids}: all of them)
CUSTOMER_TOUCHPOINTS = """
SELECT occurred_at, channel, kind, level, round(toFloat64(quality), 2) AS quality,
       round(toFloat64(gap), 2) AS gap, outcome, event_id
FROM touchpoints FINAL
WHERE customer_id IN {ids:Array(String)}
ORDER BY occurred_at DESC
LIMIT {limit:UInt32}
"""

CUSTOMER_SIGNALS = f"""
SELECT raised_at, kind, round(toFloat64(score), 3) AS score, severity, trigger, suggested_action,
       {WHY} AS why
FROM signals FINAL
WHERE customer_id IN {{ids:Array(String)}}
ORDER BY raised_at DESC
LIMIT {{limit:UInt32}}
"""

# the customer an identifier or a merged-away id now is
CUSTOMER_OF = """
SELECT customer_id, kind FROM identity_map FINAL WHERE identifier = {who:String} LIMIT 1
"""

# a customer's identifiers and aliases, and the merges that made them one
CUSTOMER_IDENTITY = """
SELECT kind, identifier, since FROM identity_map FINAL
WHERE customer_id = {customer_id:String}
ORDER BY kind DESC, since, identifier
LIMIT 200
"""

CUSTOMER_MERGES = """
SELECT at, absorbed, arrayStringConcat(via, ' + ') AS linked_by, event_id, merge_id
FROM identity_merges FINAL
WHERE survivor = {customer_id:String}
ORDER BY at
LIMIT 200
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


# The ops views (docs/queries.md shows each, verbatim; tests/sinks/test_docs_queries.py checks it)

PROMISE_BREAKS = """
-- params: {"weeks": 4}
WITH (SELECT max(occurred_at) FROM touchpoints) AS latest
SELECT metric, channel, team,
       count() AS promises,
       round(countIf(units < -1) / count(), 3) AS broken_share,
       round(ifNotFinite(quantileExactIf(0.5)(-ifNull(relative, 0), units < -1), 0), 2) AS miss_p50,
       round(ifNotFinite(quantileExactIf(0.9)(-ifNull(relative, 0), units < -1), 0), 2) AS miss_p90,
       countIf(occurred_at >= latest - toIntervalWeek({weeks:UInt32})) AS recent_promises,
       round(countIf(units < -1 AND occurred_at >= latest - toIntervalWeek({weeks:UInt32}))
             / greatest(1, recent_promises), 3) AS recent_broken_share
FROM touchpoints FINAL
ARRAY JOIN gap_metrics AS metric, gap_units AS units, gap_relative AS relative
GROUP BY metric, channel, team
ORDER BY broken_share DESC, promises DESC
"""

PROMISE_ALERTS = """
-- params: {}
SELECT window_start, metric, channel, team, promises, broken,
       round(broken_share, 3) AS broken_share, previous_share, customers_affected,
       round(miss_p50, 2) AS miss_p50, suggested_action
FROM promise_alerts FINAL
ORDER BY window_start DESC, broken_share DESC
"""

COMPLAINT_RESOLUTION = """
-- params: {"sla_hours": 48}
SELECT r.team AS resolved_by,
       c.team AS raised_with,
       count() AS complaints,
       round(avg(dateDiff('minute', c.opened, r.resolved)) / 60, 1) AS mean_hours,
       round(quantileExact(0.9)(dateDiff('minute', c.opened, r.resolved)) / 60, 1)
           AS p90_hours,
       countIf(dateDiff('minute', c.opened, r.resolved) > {sla_hours:UInt32} * 60)
           AS past_sla
FROM (SELECT customer_id, case_id, team, min(occurred_at) AS opened
      FROM touchpoints FINAL WHERE kind = 'complaint' AND case_id != ''
      GROUP BY customer_id, case_id, team) AS c
INNER JOIN (SELECT customer_id, case_id, team, min(occurred_at) AS resolved
            FROM touchpoints FINAL WHERE kind = 'complaint_resolved' AND case_id != ''
            GROUP BY customer_id, case_id, team) AS r
    ON c.customer_id = r.customer_id AND c.case_id = r.case_id
GROUP BY resolved_by, raised_with
ORDER BY mean_hours DESC
"""

REVENUE_AT_RISK = """
-- params: {"at_risk": 0.5}
SELECT if(s.worst_team = '', '(no team)', s.worst_team) AS team,
       count() AS customers_at_risk,
       round(sum(m.revenue_at_risk), 0) AS revenue_at_risk,
       round(avg(toFloat64(m.involvement)), 2) AS mean_involvement
FROM customer_metrics AS m FINAL
LEFT JOIN (SELECT customer_id, argMax(worst_team, raised_at) AS worst_team
           FROM signals FINAL WHERE kind = 'about_to_defect' GROUP BY customer_id) AS s
    ON m.customer_id = s.customer_id
WHERE m.risk_score >= {at_risk:Float64}
GROUP BY team WITH TOTALS
ORDER BY revenue_at_risk DESC
"""

SIGNAL_OUTCOMES = """
-- params: {"days": 30}
WITH (SELECT max(occurred_at) FROM touchpoints) AS latest
SELECT toStartOfWeek(s.raised_at) AS week,
       s.severity,
       count() AS signals,
       countIf(t.came_back) AS stayed,
       round(countIf(t.came_back) / count(), 3) AS stayed_share
FROM (SELECT signal_id, customer_id, raised_at, severity FROM signals FINAL
      WHERE kind = 'about_to_defect'
        AND raised_at <= latest - toIntervalDay({days:UInt32})) AS s
LEFT JOIN (SELECT sg.signal_id AS signal_id, count() > 0 AS came_back
           FROM signals AS sg FINAL
           INNER JOIN touchpoints AS tp FINAL ON tp.customer_id = sg.customer_id
           WHERE sg.kind = 'about_to_defect'
             AND tp.kind NOT IN ('delivery', 'notification')
             AND tp.occurred_at > sg.raised_at
             AND tp.occurred_at <= sg.raised_at + toIntervalDay({days:UInt32})
           GROUP BY sg.signal_id) AS t
    ON s.signal_id = t.signal_id
GROUP BY week, s.severity
ORDER BY week, s.severity
"""

COHORTS = """
-- params: {"at_risk": 0.5}
SELECT toStartOfMonth(first_seen) AS cohort,
       count() AS customers,
       round(avg(toFloat64(risk_score)), 2) AS mean_risk,
       countIf(risk_score >= {at_risk:Float64}) AS at_risk,
       round(avg(toFloat64(broken_promise_rate)), 3) AS broken_promise_rate,
       round(avg(spend), 0) AS mean_spend
FROM customer_metrics FINAL
GROUP BY cohort
ORDER BY cohort
"""

VIEWS = {
    "Where promises break": PROMISE_BREAKS,
    "Promise types the company over-commits": PROMISE_ALERTS,
    "Complaint resolution time per team": COMPLAINT_RESOLUTION,
    "Revenue at risk": REVENUE_AT_RISK,
    "Did acting on signals work? Customers who stayed": SIGNAL_OUTCOMES,
    "Cohorts by first-seen month": COHORTS,
}
