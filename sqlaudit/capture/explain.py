"""EXPLAIN in development: the plans of a request's slow and N+1 statements, after the request.

Off by default; the middlewares' ``explain=True`` (with their development page) turns it on.

1. While the request runs, ``Samples.keep`` (called from ``statements.record`` for SELECTs
   only when the unit carries ``Scope.explain``) keeps one set of bind values per distinct SQL
   text, at most ``MAX_SAMPLES`` texts, and a weak reference to the engine that ran it. The
   values are held in memory for this purpose only: never in a record, a report, a span or a
   log line, and dropped (``Samples.clear``) as soon as the plans were asked for.
2. After the request, ``plans`` asks the database for the plan of each SELECT named by a
   ``slow_query``, ``n_plus_one``, ``repeated_query`` or ``column_reload`` finding (one per
   shape, at most ``MAX_PLANS``), each on a connection of its own from the same engine, in a
   transaction rolled back at once, outside every audit: SQLite ``EXPLAIN QUERY PLAN``,
   MariaDB/MySQL ``EXPLAIN``, PostgreSQL ``EXPLAIN (FORMAT JSON)``. Nothing is executed
   (no ``ANALYZE``). The WSGI middleware asks when the request's audit closes (after the
   response was sent); the ASGI middleware after the response, from the request's task, in a
   greenlet (``plans_async``), so that async drivers can answer too.
3. A ``Plan`` keeps only what names the access path: node or step kinds, tables, indexes, row
   estimates, costs. Conditions are left out: PostgreSQL writes the bound values into them
   (``Index Cond: (id = 42)``). ``full_scans`` names the tables read in full (SQLite ``SCAN t``
   without an index, MariaDB ``type=ALL``, PostgreSQL ``Seq Scan``).

Errors (a driver refusing the statement, an async engine, which cannot run it from here) are
logged on logger ``sqlaudit`` at warning level by exception class only (a driver's message may
quote a bound value), shown on the page, and never raised.
"""

from __future__ import annotations

import json
import logging
import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlaudit.capture.scope import CURRENT
from sqlaudit.model.records import StatementKind
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Engine

    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import QueryRecord

__all__ = [
    "EXPLAINED_KINDS",
    "MAX_PLANS",
    "MAX_SAMPLES",
    "Plan",
    "Samples",
    "explain",
    "plans",
    "plans_async",
]

logger = logging.getLogger("sqlaudit")

#: Distinct SQL texts whose bind values a request keeps for EXPLAIN, at most.
MAX_SAMPLES = 64
#: Plans asked for per request, at most.
MAX_PLANS = 8
#: The findings whose statements are explained.
EXPLAINED_KINDS = frozenset({"slow_query", "n_plus_one", "repeated_query", "column_reload"})
#: Lines of a plan kept, at most.
_MAX_LINES = 40

_SELECT = StatementKind.SELECT
_PREFIX = {
    "sqlite": "EXPLAIN QUERY PLAN ",
    "mysql": "EXPLAIN ",
    "mariadb": "EXPLAIN ",
    "postgresql": "EXPLAIN (FORMAT JSON) ",
}
# SQLite 3.36+ writes "SCAN t", older versions "SCAN TABLE t"; "USING (COVERING) INDEX" after
# the name means an index is read instead.
_SQLITE_SCAN = re.compile(r"SCAN (?:TABLE )?(\S+)(.*)", re.DOTALL)


class Samples:
    """One set of bind values per distinct SELECT text of a request, for EXPLAIN only."""

    __slots__ = ("by_sql",)

    def __init__(self) -> None:
        self.by_sql: dict[str, tuple[weakref.ref[Engine], Any]] = {}

    def keep(self, sql: str, parameters: Any, context: Any) -> None:
        """Keep ``parameters`` for ``sql`` (the first execution's only; bounded)."""
        by_sql = self.by_sql
        if sql in by_sql or len(by_sql) >= MAX_SAMPLES:
            return
        if isinstance(parameters, dict):
            parameters = dict(parameters)
        elif isinstance(parameters, (list, tuple)):
            parameters = tuple(parameters)
        else:
            return
        by_sql[sql] = (weakref.ref(context.root_connection.engine), parameters)

    def clear(self) -> None:
        """Drop every value kept."""
        self.by_sql.clear()


@dataclass(frozen=True, slots=True)
class Plan:
    """What the database said it would do for one statement shape (no values)."""

    #: The dialect asked (``sqlite``, ``mysql``, ``postgresql``).
    dialect: str
    #: The command sent before the statement, e.g. ``"EXPLAIN QUERY PLAN"``.
    command: str
    #: The plan, one step per line, indented by depth.
    lines: tuple[str, ...]
    #: Tables read in full, with the estimated rows when the database gives them.
    full_scans: tuple[str, ...] = ()
    #: Why there is no plan (the error's class and message), or "".
    error: str = ""


def plans(
    statements: Sequence[QueryRecord], findings: Sequence[Finding], samples: Samples
) -> dict[str, Plan]:
    """The plans of the SELECTs the findings name, by fingerprint (at most ``MAX_PLANS``)."""
    wanted: dict[str, QueryRecord] = {}
    for finding in findings:
        if finding.kind not in EXPLAINED_KINDS:
            continue
        for index in finding.statements:
            if not 0 <= index < len(statements):
                continue
            record = statements[index]
            if record.kind != _SELECT or record.sql not in samples.by_sql:
                continue
            wanted.setdefault(fingerprint(record.sql, record.dialect), record)
            break  # one statement per finding: they share one shape
    found: dict[str, Plan] = {}
    # No audit is current while the plans are asked for: an EXPLAIN is nobody's statement
    # (not the request's, which closed, nor an enclosing test's).
    token = CURRENT.set(None)
    try:
        for shape, record in list(wanted.items())[:MAX_PLANS]:
            engine_ref, parameters = samples.by_sql[record.sql]
            engine = engine_ref()
            if engine is not None:
                found[shape] = explain(engine, record.sql, parameters)
    finally:
        CURRENT.reset(token)
    return found


async def plans_async(
    statements: Sequence[QueryRecord], findings: Sequence[Finding], samples: Samples
) -> dict[str, Plan]:
    """``plans`` from a coroutine (the ASGI middleware): run in a greenlet by SQLAlchemy's
    ``greenlet_spawn``, as ``AsyncConnection`` runs its sync core, so that engines whose
    driver is async (aiosqlite, asyncpg, psycopg async, aiomysql) can answer; a sync driver
    blocks the event loop for the plans' round trips (development only)."""
    from sqlalchemy.util import greenlet_spawn

    return await greenlet_spawn(plans, statements, findings, samples)


def explain(engine: Engine, sql: str, parameters: Any) -> Plan:
    """Ask ``engine``'s database for the plan of ``sql`` with ``parameters``; never raises."""
    dialect = engine.dialect.name
    prefix = _PREFIX.get(dialect)
    if prefix is None:
        return Plan(dialect, "", (), error=f"EXPLAIN is not supported for {dialect}")
    try:
        with engine.connect() as connection:
            try:
                result = connection.exec_driver_sql(prefix + sql, parameters)
                rows = [dict(row) for row in result.mappings()]
            finally:
                connection.rollback()
        lines, scans = _READERS[dialect](rows)
    except Exception as exc:
        # The class name only: a driver's message may quote a bound value ("invalid input
        # syntax for type integer: ...") and SQLAlchemy's appends "[parameters: ...]".
        error = type(exc).__name__
        logger.warning("sqlaudit: EXPLAIN failed on %s (%s); no plan shown", dialect, error)
        return Plan(dialect, prefix.strip(), (), error=error)
    return Plan(dialect, prefix.strip(), tuple(lines[:_MAX_LINES]), tuple(scans))


def _sqlite(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    depth: dict[Any, int] = {0: -1}
    lines, scans = [], []
    for row in rows:
        level = depth.get(row.get("parent"), -1) + 1
        depth[row.get("id")] = level
        detail = str(row.get("detail", ""))
        lines.append("  " * level + detail)
        scan = _SQLITE_SCAN.fullmatch(detail)
        if (
            scan
            and "USING" not in scan.group(2)
            and not scan.group(1).startswith("(")
            and scan.group(1) not in ("CONSTANT", "SUBQUERY")
        ):
            scans.append(scan.group(1))
    return lines, scans


def _mysql(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    lines, scans = [], []
    for row in rows:
        table = str(row.get("table") or "")
        access = str(row.get("type") or "")
        estimate = row.get("rows")
        key = row.get("key") or "-"
        extra = f" ({row['Extra']})" if row.get("Extra") else ""
        lines.append(
            f"{row.get('select_type', '')} {table}: type={access}, key={key}, "
            f"rows~{estimate}{extra}"
        )
        if access == "ALL" and table and not table.startswith("<"):
            scans.append(f"{table} (~{estimate} rows estimated)" if estimate else table)
    return lines, scans


def _postgresql(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    document = next(iter(rows[0].values())) if rows else []
    if isinstance(document, str):
        document = json.loads(document)
    lines: list[str] = []
    scans: list[str] = []

    def walk(node: dict[str, Any], level: int) -> None:
        kind = str(node.get("Node Type", "?"))
        relation = node.get("Relation Name")
        index = node.get("Index Name")
        estimate = node.get("Plan Rows")
        text = kind + (f" on {relation}" if relation else "") + (f" using {index}" if index else "")
        lines.append(f"{'  ' * level}{text} (rows~{estimate}, cost {node.get('Total Cost')})")
        if kind == "Seq Scan" and relation:
            scans.append(f"{relation} (~{estimate} rows estimated)")
        for child in node.get("Plans", ()):
            walk(child, level + 1)

    for item in document:
        walk(item.get("Plan", {}), 0)
    return lines, scans


_READERS = {"sqlite": _sqlite, "mysql": _mysql, "mariadb": _mysql, "postgresql": _postgresql}
