-- Loyalty beyond satisfaction (involvement, affinity) and the revenue at stake, per customer
-- and per signal; the worst metric, channel and team behind a signal; and the company-level
-- promise_overcommitted alerts (docs/metrics.md). Rows before this have the defaults.
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS involvement Float32 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS affinity Float32 DEFAULT 0.5;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS revenue_at_risk Float64 DEFAULT 0;

ALTER TABLE signals ADD COLUMN IF NOT EXISTS worst_metric LowCardinality(String) DEFAULT '';
ALTER TABLE signals ADD COLUMN IF NOT EXISTS worst_channel LowCardinality(String) DEFAULT '';
ALTER TABLE signals ADD COLUMN IF NOT EXISTS worst_team LowCardinality(String) DEFAULT '';
ALTER TABLE signals ADD COLUMN IF NOT EXISTS revenue_at_risk Float64 DEFAULT 0;

CREATE TABLE IF NOT EXISTS promise_alerts
(
    alert_id      String,
    kind          LowCardinality(String),
    metric        LowCardinality(String),
    channel       LowCardinality(String),
    team          LowCardinality(String),
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    promises      UInt32,
    broken        UInt32,
    broken_share  Float32,
    threshold     Float32,
    customers     UInt32,
    customers_affected UInt32,
    miss_p50      Float32,
    miss_p90      Float32,
    previous_share Nullable(Float32),
    reason_factors Array(LowCardinality(String)),
    reason_details Array(String),
    suggested_action String,
    rules_version LowCardinality(String),
    stored_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY (window_start, alert_id);
