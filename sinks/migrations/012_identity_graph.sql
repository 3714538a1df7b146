-- The identity graph's own entries (streams/identity.py `take_changes`), beside its
-- changelog: after the embedded broker forgets everything, the resolver loads the graph from
-- here, as the customer states are rebuilt from touchpoints (touchstream/rebuild.py). An
-- entry goes with its customer (a forget deletes its rows). What ops query is identity_map.
CREATE TABLE IF NOT EXISTS identity_graph
(
    name            String,                   -- c:<customer> | k:<identity key> | o:
    value           String,                   -- the entry as JSON
    version         UInt64                    -- the resolver's row version: the latest wins
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;
