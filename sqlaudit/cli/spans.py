"""Read sqlaudit's units of work from OTLP/JSON lines, for ``sqlaudit report``.

Input: the format of ``opentelemetry-exporter-otlp-json-file``, of the Collector's ``file``
exporter and of :func:`sqlaudit.otel.jsonl_tracer_provider`: one ``ExportTraceServiceRequest``
(or ``ExportLogsServiceRequest``) per line. A unit of work is a span carrying
``sqlaudit.query_count``; its findings are its ``sqlaudit.finding`` events, or Logs-API records
of that name in its context (``findings_as="logs"``); its statement shapes are its
``sqlaudit.statement`` events (``OTelReporter(statement_events=n)``: fingerprints, never
values). Metric lines are skipped. Standard library only: no opentelemetry import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "ReportInputError", "Spans", "Statement", "Unit", "load"]

_FINDING = "sqlaudit.finding"
_STATEMENT = "sqlaudit.statement"


class ReportInputError(ValueError):
    """A line of the input is not OTLP/JSON."""


@dataclass
class Where:
    """An application frame named by a span: path as exported (absolute), line, function."""

    path: str
    line: str
    function: str


@dataclass
class Finding:
    """One ``sqlaudit.finding`` event (or log record) of a unit."""

    kind: str
    severity: str
    count: int
    message: str
    fix: str
    where: Where | None


@dataclass
class Statement:
    """One statement shape of a unit: its fingerprint, from one call site."""

    number: int
    count: int
    kind: str
    db_ms: float
    sql: str
    where: Where | None
    errors: list[str] = field(default_factory=list)


@dataclass
class Unit:
    """One unit of work: a span carrying ``sqlaudit.query_count``."""

    route: str
    trace_id: str
    span_id: str
    start: int
    queries: int
    db_ms: float
    #: The request's path (``url.path`` / ``http.target``) when the span has it.
    path: str = ""
    findings: list[Finding] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    #: Statement shapes of the unit (more than ``statements`` when the export was capped);
    #: None when the unit's statements were not exported.
    shape_count: int | None = None


@dataclass
class Spans:
    """What a file held: sqlaudit's units (in time order) and how many spans in all."""

    units: list[Unit]
    span_count: int


def _value(value: dict[str, Any]) -> Any:
    """An OTLP/JSON ``AnyValue`` as a Python value (int64s arrive as strings)."""
    for key, item in value.items():
        if key == "intValue":
            return int(item)
        if key == "doubleValue":
            return float(item)
        if key == "arrayValue":
            return [_value(v) for v in item.get("values", ())]
        if key == "kvlistValue":
            return _attributes(item.get("values", ()))
        return item
    return None


def _attributes(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {item.get("key", ""): _value(item.get("value") or {}) for item in items}


def _where(attrs: dict[str, Any]) -> Where | None:
    path = attrs.get("code.file.path") or attrs.get("code.filepath")
    if not path:
        return None
    line = attrs.get("code.line.number") or attrs.get("code.lineno") or "?"
    function = attrs.get("code.function.name") or attrs.get("code.function") or "?"
    return Where(str(path), str(line), str(function))


def _finding(attrs: dict[str, Any]) -> Finding:
    return Finding(
        kind=str(attrs.get("sqlaudit.finding.kind", "unknown")),
        severity=str(attrs.get("sqlaudit.finding.severity", "")),
        count=int(attrs.get("sqlaudit.finding.count", 1) or 1),
        message=str(attrs.get("sqlaudit.finding.message", "")),
        fix=str(attrs.get("sqlaudit.finding.fix", "")),
        where=_where(attrs),
    )


def _statement(attrs: dict[str, Any]) -> Statement:
    errors = attrs.get("sqlaudit.statement.errors") or []
    return Statement(
        number=int(attrs.get("sqlaudit.statement.number", 0)),
        count=int(attrs.get("sqlaudit.statement.count", 1) or 1),
        kind=str(attrs.get("sqlaudit.statement.kind", "")),
        db_ms=float(attrs.get("sqlaudit.statement.db_time_ms", 0.0)),
        sql=str(attrs.get("db.query.text") or attrs.get("db.statement") or ""),
        where=_where(attrs),
        errors=[str(e) for e in errors] if isinstance(errors, list) else [str(errors)],
    )


def _route(attrs: dict[str, Any], name: str) -> str:
    route = attrs.get("http.route")
    if route:
        method = attrs.get("http.request.method") or attrs.get("http.method")
        return f"{method} {route}" if method else str(route)
    return str(attrs.get("sqlaudit.unit") or name)


def _collect(
    data: dict[str, Any],
    units: dict[tuple[str, str], Unit],
    logged: list[tuple[tuple[str, str], Finding]],
) -> int:
    """Add one OTLP/JSON export's sqlaudit units and logged findings; return its span count."""
    spans = 0
    for resource in data.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                spans += 1
                attrs = _attributes(span.get("attributes", ()))
                if "sqlaudit.query_count" not in attrs:
                    continue
                shapes = attrs.get("sqlaudit.statement_shape_count")
                unit = Unit(
                    route=_route(attrs, str(span.get("name", ""))),
                    trace_id=str(span.get("traceId", "")),
                    span_id=str(span.get("spanId", "")),
                    start=int(span.get("startTimeUnixNano", 0)),
                    queries=int(attrs["sqlaudit.query_count"]),
                    db_ms=float(attrs.get("sqlaudit.db_time_ms", 0.0)),
                    path=str(attrs.get("url.path") or attrs.get("http.target") or ""),
                    shape_count=None if shapes is None else int(shapes),
                )
                for event in span.get("events", ()):
                    name = event.get("name")
                    if name == _FINDING:
                        unit.findings.append(_finding(_attributes(event.get("attributes", ()))))
                    elif name == _STATEMENT:
                        found = _statement(_attributes(event.get("attributes", ())))
                        unit.statements.append(found)
                unit.statements.sort(key=lambda s: s.number)
                units[(unit.trace_id, unit.span_id)] = unit
    for resource in data.get("resourceLogs", ()):
        for scope in resource.get("scopeLogs", ()):
            for record in scope.get("logRecords", ()):
                if record.get("eventName") == _FINDING:
                    key = (str(record.get("traceId", "")), str(record.get("spanId", "")))
                    logged.append((key, _finding(_attributes(record.get("attributes", ())))))
    return spans


def load(lines: Iterable[str]) -> Spans:
    """The units of OTLP/JSON ``lines`` (e.g. an open file); ReportInputError names a bad line."""
    units: dict[tuple[str, str], Unit] = {}
    logged: list[tuple[tuple[str, str], Finding]] = []
    spans = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise ReportInputError(
                f"line {number} is not JSON ({exc}); expected OTLP/JSON lines"
            ) from None
        except RecursionError:  # json's decoder recurses per nesting level (issue 14, row 12)
            raise ReportInputError(
                f"line {number} nests too deeply to be OTLP/JSON spans or logs"
            ) from None
        if not isinstance(data, dict):
            raise ReportInputError(f"line {number} is not an OTLP/JSON object")
        # A JSON line of another shape (a list where OTLP has objects, a count that is not a
        # number) is a bad input, reported with its line number, not a traceback.
        try:
            spans += _collect(data, units, logged)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            raise ReportInputError(
                f"line {number} is not OTLP/JSON spans or logs ({type(exc).__name__}: {exc})"
            ) from None
    for key, found in logged:
        owner = units.get(key)
        if owner is not None and found not in owner.findings:
            owner.findings.append(found)
    return Spans(sorted(units.values(), key=lambda u: u.start), spans)
