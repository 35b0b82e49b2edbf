"""JSON form of a report: fingerprints and counts, never bind values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlaudit.model.paths import relative
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["report_to_dict"]


def report_to_dict(report: AuditReport) -> dict[str, Any]:
    """A JSON-safe dict. SQL text appears only when ``config.include_sql`` is True."""
    include_sql = report.config.include_sql
    statements = []
    for record in report.statements:
        item: dict[str, Any] = {
            "fingerprint": fingerprint(record.sql, record.dialect),
            "kind": record.kind,
            "duration_ms": round(record.duration * 1000, 3),
            "rowcount": record.rowcount,
            "batch": record.batch,
            "error": record.error,
            "location": None
            if record.callsite is None
            else {
                "file": relative(record.callsite.file),
                "line": record.callsite.line,
                "function": record.callsite.function,
            },
            "orm": None if record.orm is None else record.orm.load,
            "relationship": None if record.orm is None else record.orm.relationship,
        }
        if include_sql:
            item["sql"] = record.sql
        statements.append(item)
    return {
        "name": report.name,
        "query_count": report.query_count,
        "counts": report.counts,
        "db_time_ms": round(report.db_time_ms, 3),
        "duration_ms": round(report.duration * 1000, 3),
        "transactions": report.transaction_count,
        "commits": report.commit_count,
        "rollbacks": report.rollback_count,
        "round_trips": dict(
            zip(("transaction_control", "statements"), report.round_trips, strict=True)
        ),
        "overflow": report.overflow,
        "internal_errors": report.internal_errors,
        "findings": [f.to_dict(include_sql=include_sql) for f in report.findings],
        "allowed": [f.to_dict(include_sql=include_sql) for f in report.allowed],
        "statements": statements,
    }
