-- Risk as a probability learned from the business's own history (docs/metrics.md): the
-- fitted models with their quality and version, and per snapshot and signal the expected
-- loss, the horizon and the model's version. Rows before this have the defaults.
CREATE TABLE IF NOT EXISTS risk_models
(
    version       String,
    fitted_at     DateTime64(3, 'UTC'),
    fitted_until  Date,
    learned       UInt8,
    customers     UInt32,
    examples      UInt32,
    model         String,          -- streams.churn.RiskModel.to_json()
    quality       String           -- JSON: customers, examples, log-likelihood, fallback
)
ENGINE = ReplacingMergeTree(fitted_at)
ORDER BY version;

ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS expected_loss Float64 DEFAULT 0;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS horizon_days Float32 DEFAULT 90;
ALTER TABLE customer_metrics ADD COLUMN IF NOT EXISTS risk_model LowCardinality(String) DEFAULT 'default';

ALTER TABLE signals ADD COLUMN IF NOT EXISTS expected_loss Float64 DEFAULT 0;
ALTER TABLE signals ADD COLUMN IF NOT EXISTS horizon_days Float32 DEFAULT 90;
ALTER TABLE signals ADD COLUMN IF NOT EXISTS risk_model LowCardinality(String) DEFAULT 'default';
