-- The touchpoint as received (JSON), beside its derived columns: a customer's state can then
-- be rebuilt from ClickHouse by the same engine when its changelog is gone (the embedded
-- broker keeps nothing across a restart). Rows written before this migration have ''.
ALTER TABLE touchpoints ADD COLUMN IF NOT EXISTS payload String DEFAULT '' CODEC(ZSTD(1));
