-- Core tables. ReplacingMergeTree everywhere: the writer is at-least-once, so a redelivered
-- row must collapse with its first copy. Queries that must be exact use FINAL (or argMax).
-- No insert deduplication (tokens or block hashes): a retried batch must never be dropped
-- because of a dedup record whose data did not survive a crash; repeats collapse by key.

CREATE TABLE IF NOT EXISTS touchpoints
(
    event_id      String,
    customer_id   String,
    occurred_at   DateTime64(3, 'UTC'),
    channel       LowCardinality(String),
    kind          LowCardinality(String),
    level         LowCardinality(String),           -- failed / met / exceeded / none
    quality       Nullable(Float32),
    gap           Nullable(Float32),                -- worst gap, tolerance units
    gap_metrics   Array(LowCardinality(String)),
    gap_units     Array(Float32),
    gap_relative  Array(Nullable(Float32)),
    rating_scale  LowCardinality(String),           -- '' when there is no rating
    rating_value  Nullable(Float32),
    outcome       LowCardinality(String),
    sentiment     Nullable(Float32),
    amount        Nullable(Float64),
    currency      LowCardinality(String),
    case_id       String,
    source        LowCardinality(String),
    attributes    Map(String, String),
    kafka_partition UInt16,
    kafka_offset  UInt64,
    ingested_at   DateTime64(3, 'UTC') CODEC(Delta, ZSTD)
)
ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (customer_id, occurred_at, event_id)
{touchpoints_ttl};  -- TOUCHSTREAM_TOUCHPOINTS_TTL_DAYS (0: none), kept in step at start

CREATE TABLE IF NOT EXISTS customer_metrics
(
    customer_id   String,
    as_of         DateTime64(3, 'UTC'),
    event_count   UInt32,
    first_seen    DateTime64(3, 'UTC'),
    last_seen     DateTime64(3, 'UTC'),
    expectation_gap Float32,
    worst_recent_gap Float32,
    failed        Float32,
    met           Float32,
    exceeded      Float32,
    consistency   Float32,
    quality_mean  Float32,
    quality_stddev Float32,
    met_or_better_share Float32,
    channel_spread Float32,
    streak        UInt16,
    mean_interarrival_days Nullable(Float32),
    overdue_ratio Float32,
    p_alive       Float32,
    rating        Nullable(Float32),
    rating_trend  Float32,
    open_complaints UInt16,
    oldest_open_complaint_days Float32,
    silent_failures UInt16,
    channels      UInt8,
    feedback_given UInt32,
    referrals     UInt32,
    risk_score    Float32,
    wow_score     Float32
)
ENGINE = ReplacingMergeTree(as_of)
ORDER BY customer_id;

CREATE TABLE IF NOT EXISTS signals
(
    signal_id     String,
    kind          LowCardinality(String),
    customer_id   String,
    score         Float32,
    severity      LowCardinality(String),
    raised_at     DateTime64(3, 'UTC'),
    trigger       LowCardinality(String),
    trigger_event_id String,
    channel       LowCardinality(String),
    suggested_action LowCardinality(String),
    reason_factors Array(LowCardinality(String)),
    reason_values Array(Float64),
    reason_contributions Array(Float64),
    reason_details Array(String),
    consistency   Float32,
    expectation_gap Float32,
    p_alive       Float32,
    overdue_ratio Float32,
    metrics_json  String CODEC(ZSTD(3)),
    rules_version LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(raised_at)
ORDER BY (kind, raised_at, signal_id);

CREATE TABLE IF NOT EXISTS dead_letters
(
    dead_letter_id String,
    received_at   DateTime64(3, 'UTC'),
    source        LowCardinality(String),
    kafka_partition Nullable(UInt16),
    kafka_offset  Nullable(UInt64),
    error_kind    LowCardinality(String),
    error_fields  Array(String),
    error_types   Array(LowCardinality(String)),
    reason        String,
    payload       String CODEC(ZSTD(3)),
    payload_bytes UInt32,
    truncated     Bool
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (error_kind, dead_letter_id);

-- Right to be forgotten: one row per customer and table, written when the rows were removed.
CREATE TABLE IF NOT EXISTS forgotten_customers
(
    customer_id   String,
    requested_at  DateTime64(3, 'UTC'),
    table_name    LowCardinality(String),
    rows_removed  UInt64,
    done_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(done_at)
ORDER BY (customer_id, requested_at, table_name);
