"""``sqlaudit report FILE.jsonl``: one self-contained HTML page from exported spans.

Input: OTLP/JSON lines, the format of ``opentelemetry-exporter-otlp-json-file``, of the
Collector's ``file`` exporter and of :func:`sqlaudit.otel.jsonl_tracer_provider`: one
``ExportTraceServiceRequest`` (or ``ExportLogsServiceRequest``) per line. A unit of work is a
span carrying ``sqlaudit.query_count``; its findings are its ``sqlaudit.finding`` events, or
Logs-API records of that name in its context (``findings_as="logs"``). Metric lines are skipped.

Output: one HTML page with no external resources (inline CSS and SVG, no script): routes ranked
by statements and by DB time, findings by kind with their fixes, the worst requests, and a chart
of statements per request. Standard library only: no opentelemetry import.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sqlaudit.model.paths import relative

__all__ = ["ReportInputError", "build_report"]

_FINDING = "sqlaudit.finding"
_CHART_MAX = 400
_RANK = {"info": 1, "warning": 2, "error": 3}


class ReportInputError(ValueError):
    """A line of the input is not OTLP/JSON."""


@dataclass
class _Finding:
    kind: str
    severity: str
    count: int
    message: str
    fix: str
    location: str


@dataclass
class _Unit:
    route: str
    trace_id: str
    span_id: str
    start: int
    queries: int
    db_ms: float
    findings: list[_Finding] = field(default_factory=list)


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


def _finding(attrs: dict[str, Any]) -> _Finding:
    where = ""
    if attrs.get("code.file.path") or attrs.get("code.filepath"):
        # Spans carry the absolute path (OpenTelemetry's code.file.path asks for one); the
        # page shows it relative to where the report is made, as every other output does.
        path = relative(str(attrs.get("code.file.path") or attrs.get("code.filepath")))
        line = attrs.get("code.line.number") or attrs.get("code.lineno") or "?"
        function = attrs.get("code.function.name") or attrs.get("code.function") or "?"
        where = f"{path}:{line} in {function}()"
    return _Finding(
        kind=str(attrs.get("sqlaudit.finding.kind", "unknown")),
        severity=str(attrs.get("sqlaudit.finding.severity", "")),
        count=int(attrs.get("sqlaudit.finding.count", 1) or 1),
        message=str(attrs.get("sqlaudit.finding.message", "")),
        fix=str(attrs.get("sqlaudit.finding.fix", "")),
        location=where,
    )


def _route(attrs: dict[str, Any], name: str) -> str:
    route = attrs.get("http.route")
    if route:
        method = attrs.get("http.request.method") or attrs.get("http.method")
        return f"{method} {route}" if method else str(route)
    return str(attrs.get("sqlaudit.unit") or name)


def _collect(
    data: dict[str, Any],
    units: dict[tuple[str, str], _Unit],
    logged: list[tuple[tuple[str, str], _Finding]],
) -> None:
    """Add one OTLP/JSON export's sqlaudit units and logged findings."""
    for resource in data.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                attrs = _attributes(span.get("attributes", ()))
                if "sqlaudit.query_count" not in attrs:
                    continue
                unit = _Unit(
                    route=_route(attrs, str(span.get("name", ""))),
                    trace_id=str(span.get("traceId", "")),
                    span_id=str(span.get("spanId", "")),
                    start=int(span.get("startTimeUnixNano", 0)),
                    queries=int(attrs["sqlaudit.query_count"]),
                    db_ms=float(attrs.get("sqlaudit.db_time_ms", 0.0)),
                )
                for event in span.get("events", ()):
                    if event.get("name") == _FINDING:
                        unit.findings.append(_finding(_attributes(event.get("attributes", ()))))
                units[(unit.trace_id, unit.span_id)] = unit
    for resource in data.get("resourceLogs", ()):
        for scope in resource.get("scopeLogs", ()):
            for record in scope.get("logRecords", ()):
                if record.get("eventName") == _FINDING:
                    key = (str(record.get("traceId", "")), str(record.get("spanId", "")))
                    logged.append((key, _finding(_attributes(record.get("attributes", ())))))


def _parse(lines: Iterable[str]) -> list[_Unit]:
    units: dict[tuple[str, str], _Unit] = {}
    logged: list[tuple[tuple[str, str], _Finding]] = []
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
            _collect(data, units, logged)
        except (TypeError, ValueError, AttributeError, KeyError, RecursionError) as exc:
            raise ReportInputError(
                f"line {number} is not OTLP/JSON spans or logs ({type(exc).__name__}: {exc})"
            ) from None
    for key, found in logged:
        owner = units.get(key)
        if owner is not None and found not in owner.findings:
            owner.findings.append(found)
    return sorted(units.values(), key=lambda u: u.start)


def _table(headers: list[str], rows: list[list[str]], numeric: range) -> str:
    """An HTML table; cells are already escaped; the ``numeric`` columns align right."""
    head = "".join(
        f"<th{' class=n' if i in numeric else ''}>{escape(h)}</th>" for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _routes(units: list[_Unit]) -> tuple[str, str]:
    by_route: dict[str, list[_Unit]] = {}
    for unit in units:
        by_route.setdefault(unit.route, []).append(unit)
    rows = []
    for route, group in by_route.items():
        queries = sum(u.queries for u in group)
        db_ms = sum(u.db_ms for u in group)
        findings = sum(len(u.findings) for u in group)
        rows.append((route, len(group), queries, max(u.queries for u in group), db_ms, findings))

    def render(ordered: list[tuple[str, int, int, int, float, int]]) -> str:
        return _table(
            ["Route", "Requests", "Statements", "Per request", "Max", "DB ms", "Findings"],
            [
                [
                    f"<code>{escape(r)}</code>", str(n), str(q), f"{q / n:.1f}", str(mx),
                    f"{db:.1f}", f'<span class="{"bad" if f else "ok"}">{f}</span>',
                ]
                for r, n, q, mx, db, f in ordered
            ],
            range(1, 7),
        )  # fmt: skip

    by_queries = render(sorted(rows, key=lambda r: (-r[2], -r[4], r[0])))
    by_time = render(sorted(rows, key=lambda r: (-r[4], -r[2], r[0])))
    return by_queries, by_time


def _findings(units: list[_Unit]) -> str:
    by_kind: dict[str, list[tuple[_Unit, _Finding]]] = {}
    for unit in units:
        for found in unit.findings:
            by_kind.setdefault(found.kind, []).append((unit, found))
    if not by_kind:
        return '<p class="ok">No findings: every unit of work was clean.</p>'
    parts = []
    for kind, items in sorted(by_kind.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        routes = Counter(u.route for u, _ in items)
        fixes = Counter(f.fix for _, f in items if f.fix)
        places = Counter(f.location for _, f in items if f.location)
        severity = max((f.severity for _, f in items), key=lambda s: _RANK.get(s, 0))
        statements = sum(f.count for _, f in items)
        parts.append(
            f'<section class="finding" id="kind-{escape(kind)}"><h3><code>{escape(kind)}</code>'
            f' <span class="sev {escape(severity)}">{escape(severity)}</span> '
            f"<small>{len(items)} finding(s), {statements} statement(s), "
            f"{len(routes)} route(s)</small></h3>"
            f"<p class=msg>{escape(items[0][1].message)}</p>"
            "<h4>Fix</h4><ul>"
            + "".join(
                f"<li>{escape(fix)} <small>&times;{n}</small></li>"
                for fix, n in fixes.most_common(5)
            )
            + "</ul><h4>Where</h4><ul>"
            + "".join(
                f"<li><code>{escape(p)}</code> <small>&times;{n}</small></li>"
                for p, n in places.most_common(5)
            )
            + "</ul><p><small>Routes: "
            + ", ".join(f"<code>{escape(r)}</code> &times;{n}" for r, n in routes.most_common(8))
            + "</small></p></section>"
        )
    return "".join(parts)


def _chart(units: list[_Unit]) -> str:
    """An inline SVG bar chart: statements per request, in time order, red with findings."""
    shown = units[-_CHART_MAX:]
    if not shown:
        return "<p>No requests.</p>"
    width, height, pad = 960, 240, 40
    top = max(1, *(u.queries for u in shown))
    step = min((width - pad) / len(shown), 24.0)
    bars = []
    for i, unit in enumerate(shown):
        h = (height - pad) * unit.queries / top
        x, y = pad + i * step, height - pad / 2 - h
        cls = "bar bad" if unit.findings else "bar"
        tip = f"{unit.route}: {unit.queries} statements, {len(unit.findings)} finding(s)"
        bars.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{max(step - 1, 0.5):.1f}" '
            f'height="{max(h, 0.5):.1f}"><title>{escape(tip)}</title></rect>'
        )
    note = f" (latest {_CHART_MAX} of {len(units)})" if len(units) > len(shown) else ""
    axis = (
        f'<text x="{pad - 6}" y="{pad / 2 + 4}" class="ax" text-anchor="end">{top}</text>'
        f'<text x="{pad - 6}" y="{height - pad / 2}" class="ax" text-anchor="end">0</text>'
        f'<line x1="{pad}" y1="{height - pad / 2}" x2="{width}" '
        f'y2="{height - pad / 2}" class="ax"/>'
    )
    return (
        f'<svg id="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="statements per request">{axis}{"".join(bars)}</svg>'
        f"<p><small>{len(shown)} request(s) in time order{note}; red: with findings.</small></p>"
    )


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1d2330}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:1px solid #dde;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{padding:.3rem .6rem;border-bottom:1px solid #eef;text-align:left;vertical-align:top}
th{background:#f4f5fa}.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#f4f5fa;border-radius:8px;
padding:.6rem 1rem;min-width:9rem}.card b{display:block;font-size:1.6rem}
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34}.bar{fill:#8a94b3}.bar.bad{fill:#d0463b}
.ax{stroke:#99a;fill:#667;font-size:11px}.sev{font-size:.75rem;padding:.1rem .4rem;
border-radius:4px;background:#eee}.sev.warning{background:#ffe3a3}.sev.error{background:#f8b4ae}
.finding{border:1px solid #e3e5ef;border-radius:8px;padding:.2rem 1rem;margin:.8rem 0}
.msg{font-weight:600}code{font-size:.92em}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
"""


def build_report(lines: Iterable[str]) -> str:
    """The HTML page for OTLP/JSON ``lines`` (e.g. an open file). ReportInputError if not JSON."""
    units = _parse(lines)
    findings = sum(len(u.findings) for u in units)
    faulty = sum(1 for u in units if u.findings)
    cards = [
        ("requests", str(len(units))),
        ("routes", str(len({u.route for u in units}))),
        ("statements", str(sum(u.queries for u in units))),
        ("DB time", f"{sum(u.db_ms for u in units):.1f} ms"),
        ("findings", str(findings)),
        (
            "requests with findings",
            f"{faulty}" + (f" ({faulty / len(units):.0%})" if units else ""),
        ),
    ]
    by_queries, by_time = _routes(units)
    worst = sorted(units, key=lambda u: (-u.queries, -u.db_ms))[:10]
    worst_table = _table(
        ["Route", "Statements", "DB ms", "Findings", "Trace"],
        [
            [
                f"<code>{escape(u.route)}</code>", str(u.queries), f"{u.db_ms:.1f}",
                escape(", ".join(sorted({f.kind for f in u.findings})) or "-"),
                f"<code>{escape(u.trace_id)}</code>",
            ]
            for u in worst
        ],
        range(1, 3),
    )  # fmt: skip
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>sqlaudit report</title><style>{_CSS}</style></head><body>"
        "<h1>sqlaudit report</h1><p>SQL traffic per unit of work, from exported spans.</p>"
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in cards)
        + "</div>"
        '<h2 id="routes">Routes by statements</h2>' + by_queries
        + '<h2 id="routes-db">Routes by DB time</h2>' + by_time
        + '<h2 id="findings">Findings by kind</h2>' + _findings(units)
        + '<h2 id="statements">Statements per request</h2>' + _chart(units)
        + '<h2 id="worst">Worst requests</h2>' + worst_table
        + "</body></html>"
    )  # fmt: skip
