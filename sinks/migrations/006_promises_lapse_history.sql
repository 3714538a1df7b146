-- Loss-aware promise metrics and the lapse factor beside the others (docs/metrics.md).
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS promises Float32 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS broken_promise_rate Float32 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS consecutive_misses UInt16 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS worst_recent_miss Float32 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS lapse Float32 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS spend Float64 DEFAULT 0;

-- Each customer's metrics day by day (event time), the last snapshot of each day: risk
-- trends, "risk at the time of churn", cohorts (docs/queries.md). Fed by every snapshot
-- written to customer_metrics, event snapshots and the silence timer's alike.
CREATE TABLE IF NOT EXISTS customer_metrics_daily
(
    customer_id   String,
    day           Date,
    as_of         DateTime64(3, 'UTC'),
    event_count   UInt32,
    first_seen    DateTime64(3, 'UTC'),
    last_seen     DateTime64(3, 'UTC'),
    consistency   Float32,
    expectation_gap Float32,
    broken_promise_rate Float32,
    consecutive_misses UInt16,
    overdue_ratio Float32,
    p_alive       Float32,
    lapse         Float32,
    open_complaints UInt16,
    spend         Float64,
    risk_score    Float32,
    wow_score     Float32
)
ENGINE = ReplacingMergeTree(as_of)
ORDER BY (customer_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS customer_metrics_daily_mv TO customer_metrics_daily AS
SELECT customer_id, toDate(as_of) AS day, as_of, event_count, first_seen, last_seen,
       consistency, expectation_gap, broken_promise_rate, consecutive_misses, overdue_ratio,
       p_alive, lapse, open_complaints, spend, risk_score, wow_score
FROM customer_metrics;
