"""What an ops query may touch: our tables, built-in functions, nothing on the host or network.

`readonly=2` stops writes and DDL but not reads of the world around the engine: `file()`,
`url()`, `s3()`, `remote()`, `executable()`, dictionaries and `INTO OUTFILE` all pass it (and
chDB, being clickhouse-local, has no `user_files_path` fence). So every query is first parsed
by ClickHouse itself and checked:

1. `EXPLAIN AST` (a parse, nothing runs): one SELECT (UNION and WITH included), no table
   functions, no SETTINGS/FORMAT/INTO OUTFILE clause, no function on the deny list below.
2. `EXPLAIN QUERY TREE` (the analyzer resolves names, still nothing runs): every table read,
   in subqueries, CTEs, IN and JOINs included, is one of ours (or `system.one`, the table of
   a SELECT without FROM), and every function is a built-in one (`system.functions`,
   origin 'System': no executable user-defined functions).

Then it runs with limits ClickHouse enforces: time, memory, result rows and bytes, AST size.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

MAX_SQL_CHARS = 20_000

# Built-in functions that reach outside the tables or describe the host. Table functions
# (file, url, s3, remote, mysql, executable, numbers...) are refused as a class.
DENIED_FUNCTIONS = frozenset(
    {
        "file",
        "joinget",
        "joingetornull",
        "hascolumnintable",
        "catboostevaluate",
        "getsetting",
        "getsettingordefault",
        "getmacro",
        "hostname",
        "fqdn",
        "getoskernelversion",
        "filesystemavailable",
        "filesystemcapacity",
        "filesystemunreserved",
        "getserverport",
        "serveruuid",
        "getclienthttpheader",
        "sleep",
        "sleepeachrow",
        "addresstoline",
        "addresstolinewithinlines",
        "addresstosymbol",
        "demangle",
        "globalvariable",
        "currentprofiles",
        "currentroles",
        "enabledprofiles",
        "enabledroles",
        "defaultprofiles",
        "defaultroles",
        "initialqueryid",
        "zookeepersessionuptime",
    }
)
DENIED_PREFIXES = ("dict", "transactionid", "transactionlatest", "s3", "url")

# aggregate function combinators (countIf, uniqExactMerge, sumArrayIf...): the base is what
# system.functions lists
_COMBINATOR = re.compile(
    r"(If|Array|Map|State|Merge|MergeState|ForEach|OrDefault|OrNull|Resample|Distinct|"
    r"SimpleState|ArgMin|ArgMax)$"
)

_AST_LINE = re.compile(r"^(?P<indent> *)(?P<node>\w+)(?: (?P<arg>\S+))?")
_TREE_TABLE = re.compile(r"\bTABLE id: \d+.*?table_name: (?P<name>[^,\s]+)")
_TREE_FUNCTION = re.compile(r"\bFUNCTION id: \d+, function_name: (?P<name>[^,\s]+)")
_TREE_TABLE_FUNCTION = re.compile(r"\bTABLE_FUNCTION id: \d+.*?table_function_name: (?P<n>\S+)")


class QueryRefused(ValueError):
    """The query asks for something the ops surface does not do (HTTP 403)."""


def limits(timeout_seconds: float, max_rows: int, max_memory_bytes: int) -> dict[str, Any]:
    """The settings every ops query runs with; a user's query cannot change them (no
    SETTINGS clause passes the check, and `readonly` forbids changing `readonly`)."""
    return {
        "readonly": 2,
        "max_execution_time": timeout_seconds,
        "timeout_overflow_mode": "throw",
        "max_memory_usage": max_memory_bytes,
        "max_result_rows": max_rows + 1,
        "max_result_bytes": 64 * 1024 * 1024,
        "result_overflow_mode": "break",
        "max_ast_elements": 50_000,
        "max_expanded_ast_elements": 200_000,
        "max_query_size": MAX_SQL_CHARS * 4,
        "allow_ddl": 0,
        "allow_introspection_functions": 0,
    }


def _denied(function: str) -> bool:
    name = function.lower()
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


def _built_in(name: str, builtins: set[str]) -> bool:
    while name not in builtins:
        base = _COMBINATOR.sub("", name)
        if base == name or not base:
            return False
        name = base
    return True


def check_ast(lines: Iterable[str]) -> None:
    """Step 1, on `EXPLAIN AST` output (one node a line, indented by depth)."""
    nodes = [m for m in (_AST_LINE.match(line.rstrip()) for line in lines) if m]
    if not nodes or nodes[0]["node"] != "SelectWithUnionQuery":
        kind = nodes[0]["node"] if nodes else "nothing"
        raise QueryRefused(f"only SELECT queries are allowed (this is a {kind})")
    top = len(nodes[0]["indent"])
    children = [m for m in nodes[1:] if len(m["indent"]) == top + 1]
    # the client's own trailing `FORMAT Native` is the only clause allowed at the top
    extra = [m for m in children[1:] if (m["node"], m["arg"]) != ("Identifier", "Native")]
    if extra:
        raise QueryRefused("SETTINGS, FORMAT and INTO OUTFILE clauses are not allowed")
    for index, match in enumerate(nodes):
        node, arg = match["node"], match["arg"]
        if node in ("Set", "SetQuery"):
            raise QueryRefused("SETTINGS clauses are not allowed: the limits are fixed")
        if node == "TableFunction" or (
            node == "Function" and index and nodes[index - 1]["node"] == "TableExpression"
        ):
            raise QueryRefused(f"table functions are not allowed ({arg}): read our tables")
        if node == "Function" and arg and _denied(arg):
            raise QueryRefused(f"function {arg}() is not allowed on the ops query path")


def check_tree(text: str, tables: set[str], builtins: set[str]) -> None:
    """Step 2, on `EXPLAIN QUERY TREE` output: tables ours, functions built in."""
    table_function = _TREE_TABLE_FUNCTION.search(text)
    if table_function:
        raise QueryRefused(f"table functions are not allowed ({table_function['n']})")
    for match in _TREE_TABLE.finditer(text):
        name = match["name"]
        if name not in tables and name != "system.one":
            raise QueryRefused(f"table {name} is not readable here; readable: {sorted(tables)}")
    for match in _TREE_FUNCTION.finditer(text):
        name = match["name"]
        if _denied(name) or not _built_in(name, builtins):
            raise QueryRefused(f"function {name}() is not allowed on the ops query path")


def check_query(
    statement: str,
    explain: Callable[[str], list[str]],
    tables: set[str],
    builtins: set[str],
) -> None:
    """Refuse what the policy does not allow; `explain(sql)` returns EXPLAIN's lines."""
    if len(statement) > MAX_SQL_CHARS:
        raise QueryRefused(f"query longer than {MAX_SQL_CHARS} characters")
    check_ast(explain(f"EXPLAIN AST {statement}"))
    check_tree("\n".join(explain(f"EXPLAIN QUERY TREE {statement}")), tables, builtins)
