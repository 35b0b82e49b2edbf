"""OpenTelemetry attribute names and values for sqlaudit's units and findings.

Plain dicts built from a closed :class:`~sqlaudit.AuditReport`; nothing here imports
opentelemetry, so the attribute contract is testable (and readable) on its own.

Semantic-convention names that changed between the old and the stable conventions follow
``OTEL_SEMCONV_STABILITY_OPT_IN`` (the migration guides for database and code attributes):

===================  =====================  =============================================
stable (default)     old                    emitted
===================  =====================  =============================================
``db.system.name``   ``db.system``          old too with ``database/dup``
``db.query.text``    ``db.statement``       old too with ``database/dup``
``db.collection.name`` ``db.sql.table``     old too with ``database/dup``
``code.file.path``   ``code.filepath``      old too with ``code/dup``
``code.line.number`` ``code.lineno``        old too with ``code/dup``
``code.function.name`` ``code.function``    old too with ``code/dup``
===================  =====================  =============================================

sqlaudit is a new instrumentation with no users of the old names to keep, so it emits the
stable names by default (the guides ask *existing* instrumentations to keep their old default);
``database`` / ``code`` select the stable names only, ``.../dup`` both, and
``OTelReporter(semconv="old")`` the old names only, for backends that know no others.
``db.query.text`` is always the fingerprint (literals and placeholders as ``?``): bind values
never leave the process.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from sqlaudit.errors import ConfigError
from sqlaudit.sql.fingerprint import fingerprint, tables

if TYPE_CHECKING:
    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import CallSite, QueryRecord
    from sqlaudit.report import AuditReport

__all__ = [
    "FINDING_EVENT",
    "STATEMENT_EVENT",
    "Semconv",
    "code_attributes",
    "db_system_attributes",
    "epoch_offset_ns",
    "finding_attributes",
    "query_summary",
    "statement_events",
    "unit_attributes",
]

#: The span event / log record event name of one finding.
FINDING_EVENT = "sqlaudit.finding"
#: The span event name of one statement shape of a unit (``OTelReporter(statement_events=n)``).
STATEMENT_EVENT = "sqlaudit.statement"
_MODES = ("stable", "old", "dup")

AttributeValue = Union[str, bool, int, float, Sequence[str]]  # noqa: UP007 - a runtime alias on 3.10
Attributes = dict[str, AttributeValue]

#: SQLAlchemy dialect name -> (stable ``db.system.name``, old ``db.system``) value.
_DB_SYSTEMS = {
    "postgresql": ("postgresql", "postgresql"),
    "mysql": ("mysql", "mysql"),
    "mariadb": ("mariadb", "mariadb"),
    "sqlite": ("sqlite", "sqlite"),
    "mssql": ("microsoft.sql_server", "mssql"),
    "oracle": ("oracle.db", "oracle"),
}


@dataclass(frozen=True, slots=True)
class Semconv:
    """Which names to emit where the old and stable conventions differ."""

    db_stable: bool = True
    db_old: bool = False
    code_stable: bool = True
    code_old: bool = False

    @classmethod
    def resolve(cls, mode: str | None = None, opt_in: str | None = None) -> Semconv:
        """``mode`` ("stable", "old", "dup") if given, else ``OTEL_SEMCONV_STABILITY_OPT_IN``."""
        if mode is not None:
            if mode not in _MODES:
                allowed = ", ".join(map(repr, _MODES))
                raise ConfigError(f"semconv must be one of {allowed} or None, got {mode!r}")
            stable, old = mode != "old", mode != "stable"
            return cls(stable, old, stable, old)
        if opt_in is None:
            opt_in = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "")
        tokens = {token.strip() for token in opt_in.split(",")}
        return cls(
            db_stable=True,
            db_old="database/dup" in tokens,
            code_stable=True,
            code_old="code/dup" in tokens,
        )


def epoch_offset_ns() -> int:
    """Add to ``perf_counter() * 1e9`` to get Unix-epoch ns (the clock spans are stamped in).

    The wall clock is read between two ``perf_counter_ns`` reads, three times, keeping the
    tightest bracket: a thread switch between the reads would otherwise shift every converted
    time by its length.
    """
    best_width, best_offset = -1, 0
    for _ in range(3):
        before = time.perf_counter_ns()
        wall = time.time_ns()
        after = time.perf_counter_ns()
        if best_width < 0 or after - before < best_width:
            best_width, best_offset = after - before, wall - (before + after) // 2
    return best_offset


def unit_attributes(report: AuditReport) -> Attributes:
    """The per-unit attributes set on the request's span (or sqlaudit's span for the unit)."""
    kinds: list[str] = []
    for finding in report.findings:
        if finding.kind not in kinds:
            kinds.append(finding.kind)
    return {
        "sqlaudit.unit": report.name,
        "sqlaudit.query_count": report.query_count,
        "sqlaudit.db_time_ms": round(report.db_time_ms, 3),
        "sqlaudit.transaction_count": report.transaction_count,
        # Round trips spent on BEGIN/COMMIT/ROLLBACK/SAVEPOINT (estimated per dialect, see
        # ``UnitRecord.round_trips``): a statistic of every unit, not a finding.
        "sqlaudit.transaction_control_count": report.round_trips[0],
        "sqlaudit.commit_count": report.commit_count,
        "sqlaudit.rollback_count": report.rollback_count,
        "sqlaudit.finding_count": len(report.findings),
        "sqlaudit.finding_kinds": kinds,
    }


def code_attributes(site: CallSite | None, semconv: Semconv) -> Attributes:
    """``code.*`` attributes of one application frame, named as ``semconv`` says."""
    if site is None:
        return {}
    attrs: Attributes = {}
    if semconv.code_stable:
        attrs["code.file.path"] = site.file
        attrs["code.line.number"] = site.line
        attrs["code.function.name"] = site.function
    if semconv.code_old:
        attrs["code.filepath"] = site.file
        attrs["code.lineno"] = site.line
        attrs["code.function"] = site.function
    return attrs


def db_system_attributes(dialect: str, semconv: Semconv) -> Attributes:
    """``db.system.name`` (and/or the old ``db.system``) for a SQLAlchemy dialect name."""
    stable, old = _DB_SYSTEMS.get(dialect, ("other_sql", "other_sql"))
    attrs: Attributes = {}
    if semconv.db_stable:
        attrs["db.system.name"] = stable
    if semconv.db_old:
        attrs["db.system"] = old
    return attrs


def query_summary(sql: str, dialect: str = "") -> tuple[str, tuple[str, ...]]:
    """(``db.query.summary``, tables): ``"SELECT sqlaudit_t_book"``; sqlparse, cached per text."""
    words = fingerprint(sql, dialect).split(None, 1)
    operation = words[0].upper() if words else ""
    found = tables(sql, dialect)
    summary = " ".join((operation, *found)) if found else operation
    return summary[:255], found


def finding_attributes(
    finding: Finding,
    statements: Sequence[QueryRecord],
    semconv: Semconv,
    *,
    include_sql: bool = False,
    span_ids: Sequence[str] = (),
) -> Attributes:
    """The attributes of one ``sqlaudit.finding`` event or log record (no bind values)."""
    attrs: Attributes = {
        "sqlaudit.finding.kind": finding.kind,
        "sqlaudit.finding.severity": str(finding.severity),
        "sqlaudit.finding.count": finding.count,
        "sqlaudit.finding.message": finding.headline,
        "sqlaudit.finding.fix": finding.fix,
        "sqlaudit.finding.db_time_ms": round(finding.db_time * 1000, 3),
    }
    if finding.relationship:
        attrs["sqlaudit.finding.relationship"] = finding.relationship
    attrs.update(code_attributes(finding.location, semconv))
    dialect = ""
    if finding.statements:
        dialect = statements[finding.statements[0]].dialect
        attrs.update(db_system_attributes(dialect, semconv))
    text = finding.fingerprint or (fingerprint(finding.sql, dialect) if finding.sql else None)
    if text:
        summary, found = query_summary(finding.sql or text, dialect)
        if semconv.db_stable:
            attrs["db.query.text"] = text
            if summary:
                attrs["db.query.summary"] = summary
            # Stable conventions: set only when the query targets one collection.
            if len(found) == 1:
                attrs["db.collection.name"] = found[0]
        if semconv.db_old:
            attrs["db.statement"] = text
            if len(found) == 1:
                attrs["db.sql.table"] = found[0]
    if include_sql and finding.sql:
        attrs["sqlaudit.finding.sql"] = finding.sql
    if span_ids:
        attrs["sqlaudit.finding.span_ids"] = list(span_ids)
    return attrs


def statement_events(
    records: Sequence[QueryRecord], semconv: Semconv, limit: int
) -> tuple[list[tuple[float, Attributes]], int]:
    """(start, attributes) of the first ``limit`` statement shapes of a unit, in the order
    they first ran, and how many shapes there were in all.

    A shape is a fingerprint issued from one call site, as the text report groups them: its
    text (literals and placeholders as ``?``: never a value), the number of its first
    statement in the unit, how many ran, their DB time, the statement kind and the call site.
    """
    groups: dict[tuple[str, CallSite | None], list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault((fingerprint(record.sql, record.dialect), record.callsite), []).append(
            index
        )
    events = []
    for (shape, site), indexes in list(groups.items())[:limit]:
        first = records[indexes[0]]
        attrs: Attributes = {
            "sqlaudit.statement.number": indexes[0] + 1,
            "sqlaudit.statement.count": len(indexes),
            "sqlaudit.statement.kind": first.kind,
            "sqlaudit.statement.db_time_ms": round(
                sum(records[i].duration for i in indexes) * 1000, 3
            ),
        }
        if semconv.db_stable:
            attrs["db.query.text"] = shape
        if semconv.db_old:
            attrs["db.statement"] = shape
        errors = sorted({records[i].error or "" for i in indexes} - {""})
        if errors:
            attrs["sqlaudit.statement.errors"] = errors
        attrs.update(db_system_attributes(first.dialect, semconv))
        attrs.update(code_attributes(site, semconv))
        events.append((first.start, attrs))
    return events, len(groups)
