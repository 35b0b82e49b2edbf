"""sqlaudit's optional spans: one per database transaction, one per N+1 burst.

Both are INTERNAL children of the unit's span, made after the fact from recorded times (the
reporter runs when the unit closes), and both are off by default. There is never a span per
statement: opentelemetry-instrumentation-sqlalchemy makes those, and a burst span *links* to
them instead (see ``_otel_correlate``).

A transaction span covers one of ``report.transaction_records`` (Core connection or ORM
session, from its first statement to its commit, rollback or close), so a transaction held open
across a backend call shows in the waterfall as a bar enclosing that call's span.
``sqlaudit.transaction.idle_ms`` is its longest stretch without a statement, including the
stretch before its commit that the record's ``max_gap`` (between statements) leaves out; it is
measured on the unit's statements inside the transaction's time range, so threads sharing one
unit can only make it smaller. Transactions the audited code did not begin (``external``: an
outer test-fixture transaction) and transactions without a statement get no span.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, SpanKind, Tracer

from sqlaudit.otel.attributes import Attributes, Semconv, code_attributes, db_system_attributes

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord
    from sqlaudit.report import AuditReport

__all__ = ["BURST_KINDS", "burst_span", "transaction_spans"]

#: Finding kinds that are a burst of one statement shape in a loop: each gets a burst span.
BURST_KINDS = frozenset({"n_plus_one", "column_reload", "repeated_query", "write_loop"})


def _ns(perf: float, offset_ns: int) -> int:
    return int(perf * 1e9) + offset_ns


def transaction_spans(
    tracer: Tracer,
    parent: Context,
    report: AuditReport,
    records: Sequence[QueryRecord],
    semconv: Semconv,
    offset_ns: int,
) -> int:
    """One ``sqlaudit.transaction`` span per transaction of the unit; returns how many."""
    made = 0
    for tx in report.transaction_records:
        if tx.external or not tx.statements:
            continue
        inside = [
            r for r in records if tx.started <= r.start <= tx.ended and r.kind != "transaction"
        ]
        idle = tx.max_gap
        cursor = tx.started
        for record in inside:
            idle = max(idle, record.start - cursor)
            cursor = max(cursor, record.start + record.duration)
        idle = max(idle, tx.ended - cursor)
        attrs: Attributes = {
            "sqlaudit.unit": report.name,
            "sqlaudit.transaction.source": tx.source,
            "sqlaudit.transaction.outcome": tx.end,
            "sqlaudit.transaction.statement_count": tx.statements,
            "sqlaudit.transaction.write_count": tx.writes,
            "sqlaudit.transaction.db_time_ms": round(tx.exec_time * 1000, 3),
            "sqlaudit.transaction.idle_ms": round(idle * 1000, 3),
            "sqlaudit.transaction.duration_ms": round((tx.ended - tx.started) * 1000, 3),
        }
        if tx.autocommit is not None:
            attrs["sqlaudit.transaction.autocommit"] = tx.autocommit
        attrs.update(db_system_attributes(tx.dialect, semconv))
        attrs.update(code_attributes(tx.begin_stack[0] if tx.begin_stack else None, semconv))
        span = tracer.start_span(
            "sqlaudit.transaction",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attrs,
            start_time=_ns(tx.started, offset_ns),
        )
        span.end(end_time=_ns(tx.ended, offset_ns))
        made += 1
    return made


def burst_span(
    tracer: Tracer,
    parent: Context,
    kind: str,
    records: Sequence[QueryRecord],
    indexes: Sequence[int],
    attributes: Attributes,
    statement_spans: Mapping[int, SpanContext],
    offset_ns: int,
    max_links: int,
) -> None:
    """One ``sqlaudit.<kind>`` span covering a finding's statements, linked to their spans."""
    burst = [records[i] for i in indexes]
    if not burst:
        return
    start = min(r.start for r in burst)
    end = max(r.start + r.duration for r in burst)
    links = [Link(statement_spans[i]) for i in indexes if i in statement_spans][:max_links]
    span = tracer.start_span(
        f"sqlaudit.{kind}",
        context=parent,
        kind=SpanKind.INTERNAL,
        attributes=attributes,
        links=links,
        start_time=_ns(start, offset_ns),
    )
    span.end(end_time=_ns(end, offset_ns))
