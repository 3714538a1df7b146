-- Aggregates for dashboards. Materialized views see every inserted block, including a
-- redelivered one, so they keep *sets* (uniqExactState) where an exact count matters.

CREATE TABLE IF NOT EXISTS signals_daily
(
    day      Date,
    kind     LowCardinality(String),
    channel  LowCardinality(String),
    signals  AggregateFunction(uniqExact, String),
    customers AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, kind, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS signals_daily_mv TO signals_daily AS
SELECT toDate(raised_at) AS day, kind, channel,
       uniqExactState(signal_id) AS signals, uniqExactState(customer_id) AS customers
FROM signals
GROUP BY day, kind, channel;

-- Per-channel consistency by week: counts of levels and quality moments. A touchpoint
-- redelivered after a crash lands twice here (exact numbers: FINAL over touchpoints,
-- see docs/queries.md); event ids are kept as a set so the true count is always known.
CREATE TABLE IF NOT EXISTS channel_quality_weekly
(
    week      Date,
    channel   LowCardinality(String),
    events    AggregateFunction(uniqExact, String),
    judged    SimpleAggregateFunction(sum, UInt64),
    met_or_better SimpleAggregateFunction(sum, UInt64),
    quality_sum SimpleAggregateFunction(sum, Float64),
    quality_sq_sum SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (week, channel);

CREATE MATERIALIZED VIEW IF NOT EXISTS channel_quality_weekly_mv TO channel_quality_weekly AS
SELECT toMonday(occurred_at) AS week, channel,
       uniqExactState(event_id) AS events,
       toUInt64(countIf(quality IS NOT NULL)) AS judged,
       toUInt64(countIf(level IN ('met', 'exceeded'))) AS met_or_better,
       sum(ifNull(toFloat64(quality), 0)) AS quality_sum,
       sum(ifNull(toFloat64(quality), 0) * ifNull(toFloat64(quality), 0)) AS quality_sq_sum
FROM touchpoints
GROUP BY week, channel;
