-- Who delivered a touchpoint (optional fields of the event since 0.2): the organisation's
-- view of which team, agent or site kept or broke a promise. Rows before this have ''.
ALTER TABLE touchpoints ADD COLUMN IF NOT EXISTS team LowCardinality(String) DEFAULT '';
ALTER TABLE touchpoints ADD COLUMN IF NOT EXISTS agent String DEFAULT '';
ALTER TABLE touchpoints ADD COLUMN IF NOT EXISTS site LowCardinality(String) DEFAULT '';
