"""Queries an attacker (or a careless operator) sends to the ops query path.

Each must be refused, or run bounded by the fixed limits, and never touch the host or the
network. `{port}` is a listener of the test's own that counts connections (must stay 0);
`{out}` a path that must not be created. Used by the unit test (chDB directly) and by the
end-to-end test (the real endpoint of a running worker).
"""

from __future__ import annotations

# (name, sql): refused by the policy (403 on the endpoint) or by ClickHouse (400)
HOSTILE = [
    ("file table function", "SELECT * FROM file('/etc/passwd', 'LineAsString')"),
    ("file function", "SELECT file('/etc/passwd')"),
    ("file, backquoted", "SELECT * FROM `file`('/etc/passwd', 'LineAsString')"),
    ("file, mixed case", "SELECT * FROM FiLe('/etc/passwd', 'LineAsString')"),
    ("file, newlines", "SELECT\n*\nFROM\n  file ( '/etc/passwd' , 'LineAsString' )"),
    (
        "file in a subquery",
        "SELECT count() FROM touchpoints WHERE event_id IN "
        "(SELECT * FROM file('/etc/passwd', 'LineAsString'))",
    ),
    (
        "file in a scalar subquery",
        "SELECT (SELECT any(line) FROM file('/etc/passwd', 'LineAsString', 'line String'))",
    ),
    ("url", "SELECT * FROM url('http://127.0.0.1:{port}/x', 'LineAsString')"),
    (
        "url in a CTE",
        "WITH x AS (SELECT * FROM url('http://127.0.0.1:{port}/', 'LineAsString')) SELECT * FROM x",
    ),
    ("s3", "SELECT * FROM s3('http://127.0.0.1:{port}/bucket/key', 'CSV')"),
    ("remote", "SELECT * FROM remote('127.0.0.1:{port}', system.one)"),
    ("mysql", "SELECT * FROM mysql('127.0.0.1:{port}', 'db', 't', 'user', 'pw')"),
    ("postgresql", "SELECT * FROM postgresql('127.0.0.1:{port}', 'db', 't', 'user', 'pw')"),
    ("executable", "SELECT * FROM executable('id', 'TSV', 'x String')"),
    ("view over file", "SELECT * FROM view(SELECT * FROM file('/etc/passwd', 'LineAsString'))"),
    ("merge over databases", "SELECT * FROM merge(currentDatabase(), '.*')"),
    ("dictGet", "SELECT dictGet('d', 'a', toUInt64(1))"),
    ("dictionary", "SELECT * FROM dictionary('d')"),
    ("joinGet", "SELECT joinGet('default.touchpoints', 'event_id', 'x')"),
    ("system table", "SELECT * FROM system.users"),
    ("system processes", "SELECT query FROM system.processes"),
    ("information_schema", "SELECT * FROM information_schema.tables"),
    ("host name", "SELECT hostName()"),
    ("sleepEachRow", "SELECT sleepEachRow(3) FROM touchpoints"),
    ("SETTINGS override", "SELECT count() FROM touchpoints SETTINGS max_memory_usage = 0"),
    ("SETTINGS readonly", "SELECT count() FROM touchpoints SETTINGS readonly = 0"),
    (
        "SETTINGS in a subquery",
        "SELECT * FROM (SELECT count() FROM touchpoints SETTINGS max_execution_time = 100000)",
    ),
    ("SET statement", "SET readonly = 0"),
    ("INTO OUTFILE", "SELECT 1 INTO OUTFILE '{out}'"),
    ("FORMAT clause", "SELECT 1 FORMAT TSV"),
    ("second statement", "SELECT 1; DROP TABLE touchpoints"),
    ("second statement after a comment", "SELECT 1 /* ; */ ; DROP TABLE touchpoints"),
    ("semicolon in a string, then one outside", "SELECT ';' ; DROP TABLE touchpoints"),
    ("DROP", "DROP TABLE touchpoints"),
    ("INSERT", "INSERT INTO signals (signal_id) VALUES ('x')"),
    ("ALTER DELETE", "ALTER TABLE touchpoints DELETE WHERE 1"),
    ("SHOW", "SHOW TABLES"),
    ("EXPLAIN", "EXPLAIN SELECT 1"),
    ("numbers memory bomb", "SELECT length(groupArray(number)) FROM numbers(300000000)"),
    ("memory bomb on our table", "SELECT groupArray(range(100000)) FROM touchpoints"),
    ("slow cross join", "SELECT count() FROM touchpoints a, touchpoints b, touchpoints c"),
]

# legitimate queries that must keep working
ALLOWED = [
    "SELECT count() FROM touchpoints",
    "SELECT kind, countIf(level = 'failed') AS failed FROM touchpoints FINAL GROUP BY kind",
    "WITH recent AS (SELECT customer_id FROM touchpoints) SELECT count() FROM recent",
    "SELECT (SELECT count() FROM touchpoints) AS n, 1 + 1",
    "SELECT customer_id FROM touchpoints WHERE customer_id IN "
    "(SELECT customer_id FROM touchpoints WHERE level = 'met') LIMIT 5",
    "SELECT arrayMap(x -> x * 2, [1, 2, 3]) AS doubled",
    "SELECT * FROM default.touchpoints ORDER BY occurred_at LIMIT 3",
]
