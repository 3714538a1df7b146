-- Every webhook attempt: what was tried, when, and how it ended.
CREATE TABLE IF NOT EXISTS alert_deliveries
(
    delivery_id   String,                          -- signal_id:endpoint, the idempotency key
    signal_id     String,
    endpoint      LowCardinality(String),
    attempt       UInt16,
    attempted_at  DateTime64(3, 'UTC'),
    status_code   UInt16,
    outcome       LowCardinality(String),          -- delivered/retry/failed/dead_lettered/circuit_open
    error         String,
    duration_ms   Float32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(attempted_at)
ORDER BY (endpoint, signal_id, attempt, outcome, attempted_at);
