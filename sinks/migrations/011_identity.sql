-- Identity resolution (docs/identity.md, streams/identity.py): which customer each identifier
-- and each merged-away id now is, every merge with what linked it, and every link a guard
-- refused with its reason. Written by the resolver (streams/runtime/resolver.py); a retried
-- insert collapses on the ORDER BY key (read with FINAL).
CREATE TABLE IF NOT EXISTS identity_map
(
    identifier      String,                   -- type:value (values pseudonymised: h1:...)
    kind            LowCardinality(String),   -- identifier | alias (a customer id merged away)
    customer_id     String,                   -- the customer it is now
    since           DateTime64(3, 'UTC'),     -- event time of the touchpoint that linked it
    version         UInt64                    -- the resolver's input offset: the latest wins
)
ENGINE = ReplacingMergeTree(version)
ORDER BY identifier;

CREATE TABLE IF NOT EXISTS identity_merges
(
    merge_id        String,
    survivor        String,
    absorbed        String,
    via             Array(String),            -- an identifier of each, seen together
    at              DateTime64(3, 'UTC'),
    event_id        String
)
ENGINE = ReplacingMergeTree
ORDER BY (survivor, merge_id);

CREATE TABLE IF NOT EXISTS identity_refusals
(
    refusal_id      String,
    reason          LowCardinality(String),   -- streams/identity.py REASONS
    identifier      String,
    customers       Array(String),
    at              DateTime64(3, 'UTC'),
    event_id        String
)
ENGINE = ReplacingMergeTree
ORDER BY (reason, refusal_id);

-- history under the customer each row's id is now: merged-away ids read as their survivor
CREATE VIEW IF NOT EXISTS touchpoints_resolved AS
SELECT t.* REPLACE (if(m.customer_id = '', t.customer_id, m.customer_id) AS customer_id)
FROM touchpoints AS t FINAL
LEFT JOIN (SELECT identifier, customer_id FROM identity_map FINAL WHERE kind = 'alias') AS m
    ON m.identifier = t.customer_id;

CREATE VIEW IF NOT EXISTS signals_resolved AS
SELECT s.* REPLACE (if(m.customer_id = '', s.customer_id, m.customer_id) AS customer_id)
FROM signals AS s FINAL
LEFT JOIN (SELECT identifier, customer_id FROM identity_map FINAL WHERE kind = 'alias') AS m
    ON m.identifier = s.customer_id;
