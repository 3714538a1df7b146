-- When a signal row was written (wall clock), so the webhook outbox can find the signals of
-- the last hours that a subscriber has no final delivery for (raised_at is event time).
ALTER TABLE signals ADD COLUMN IF NOT EXISTS stored_at DateTime64(3, 'UTC') DEFAULT now64(3);
