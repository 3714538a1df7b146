-- Wow offers within the teams' capacity (docs/metrics.md, streams/offers.py): every wow
-- opportunity the engine raises is kept here, pending until its day is decided; then
-- `published` (also in `signals`, on the signals topic and to the webhooks) or
-- `over_capacity`, with its rank among the team's offers of the day. The decided row
-- replaces the pending one (ReplacingMergeTree on `decided`; read with FINAL).
CREATE TABLE IF NOT EXISTS wow_offers
(
    signal_id       String,
    customer_id     String,
    raised_at       DateTime64(3, 'UTC'),
    day             Date,
    team            LowCardinality(String),
    moment          LowCardinality(String),
    score           Float32,
    expected_value  Float64,
    suggested_action String,
    decision        LowCardinality(String),   -- pending | published | over_capacity
    rank            UInt32,                   -- 1 = the team's most valuable of the day
    capacity        UInt32,
    decided         UInt8,
    decided_at      Nullable(DateTime64(3, 'UTC')),
    signal          String CODEC(ZSTD(3))     -- the Signal, as JSON
)
ENGINE = ReplacingMergeTree(decided)
PARTITION BY toYYYYMM(day)
ORDER BY (day, team, signal_id);

ALTER TABLE signals ADD COLUMN IF NOT EXISTS team LowCardinality(String) DEFAULT '';
ALTER TABLE signals ADD COLUMN IF NOT EXISTS expected_value Float64 DEFAULT 0;
