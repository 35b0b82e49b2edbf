"""``sqlaudit report FILE.jsonl``: the HTML page built from OTLP/JSON span lines, checked as
data and as a person sees it in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from browser import render
from models import Author, Book, prepared
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, selectinload
from timing import UNTIMED

import sqlaudit
from sqlaudit.cli.html_report import ReportInputError, build_report
from sqlaudit.otel import OTelReporter, jsonl_tracer_provider


def attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        values = [{"stringValue": v} for v in value]
        return {"key": key, "value": {"arrayValue": {"values": values}}}
    return {"key": key, "value": {"stringValue": value}}


def unit_line(
    route: str, queries: int, db_ms: float, findings: list[dict[str, Any]], span_id: str
) -> str:
    span = {
        "traceId": "ab" * 16,
        "spanId": span_id,
        "name": route,
        "kind": 2,
        "startTimeUnixNano": str(1_000 + int(span_id, 16)),
        "endTimeUnixNano": str(2_000 + int(span_id, 16)),
        "attributes": [
            attr("http.route", route),
            attr("sqlaudit.query_count", queries),
            attr("sqlaudit.db_time_ms", db_ms),
            attr("sqlaudit.finding_count", len(findings)),
        ],
        "events": [
            {"name": "sqlaudit.finding", "attributes": [attr(k, v) for k, v in f.items()]}
            for f in findings
        ],
    }
    request = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [span]}]}]}
    return json.dumps(request)


N1 = {
    "sqlaudit.finding.kind": "n_plus_one",
    "sqlaudit.finding.severity": "warning",
    "sqlaudit.finding.count": 20,
    "sqlaudit.finding.message": "N+1: Stream.owner lazy-loaded 20x",
    "sqlaudit.finding.fix": "add .options(selectinload(Stream.owner))",
    "code.file.path": "/app/views.py",
    "code.line.number": 42,
    "code.function.name": "list_streams",
}


def test_routes_ranked_findings_grouped_and_values_escaped() -> None:
    """Routes are ranked by statements and by DB time, findings grouped by kind with their fix
    and location, and every value from the file is HTML-escaped."""
    lines = [
        unit_line("/streams", 41, 12.5, [N1], "0000000000000001"),
        unit_line("/streams", 41, 13.5, [N1], "0000000000000002"),
        unit_line("/users/{id}", 2, 90.0, [], "0000000000000003"),
        unit_line("/<script>alert(1)</script>", 1, 0.1, [], "0000000000000004"),
        "",
        json.dumps({"resourceMetrics": []}),
    ]
    page = build_report(lines)
    by_statements = page.split('id="routes"')[1].split('id="routes-db"')[0]
    by_time = page.split('id="routes-db"')[1].split('id="findings"')[0]
    assert by_statements.index("/streams") < by_statements.index("/users/{id}")
    assert by_time.index("/users/{id}") < by_time.index("/streams")
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "add .options(selectinload(Stream.owner))" in page
    assert "/app/views.py:42 in list_streams()" in page
    assert 'id="kind-n_plus_one"' in page
    assert "2 finding(s), 40 statement(s), 1 route(s)" in page
    assert page.count('<rect class="bar') == 4


def test_findings_from_log_records_join_their_unit() -> None:
    """Findings exported as Logs-API event records (``findings_as="logs"``) are attributed to
    the unit span whose context they carry."""
    lines = [
        unit_line("/streams", 41, 12.5, [], "0000000000000001"),
        json.dumps(
            {
                "resourceLogs": [
                    {
                        "scopeLogs": [
                            {
                                "logRecords": [
                                    {
                                        "eventName": "sqlaudit.finding",
                                        "traceId": "ab" * 16,
                                        "spanId": "0000000000000001",
                                        "attributes": [attr(k, v) for k, v in N1.items()],
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ),
    ]
    page = build_report(lines)
    assert 'id="kind-n_plus_one"' in page
    assert '<rect class="bar bad"' in page


def test_empty_input_is_a_valid_page() -> None:
    """No units at all still gives a page saying so."""
    page = build_report([])
    assert page.startswith("<!DOCTYPE html>")
    assert "No findings" in page and "No requests." in page


def test_a_line_that_is_not_json_names_its_number() -> None:
    """A broken line is a ReportInputError (a ValueError) naming the line."""
    with pytest.raises(ReportInputError, match="line 2 is not JSON"):
        build_report(['{"resourceSpans": []}', "not json"])


def bff_traffic(engine: Engine, reporter: OTelReporter, tracer: Any) -> None:
    """A few requests of a small service: an N+1 route, its fixed twin, a single-row route."""
    for i in range(6):
        route = "GET /authors" if i % 2 else "GET /authors-fixed"
        with (
            tracer.start_as_current_span(
                route, kind=SpanKind.SERVER, attributes={"http.route": route.split()[1]}
            ),
            sqlaudit.audit(route, reporters=[reporter], on_finding="ignore", **UNTIMED),
        ):
            with Session(engine) as session:
                query = select(Author)
                if route.endswith("fixed"):
                    query = query.options(selectinload(Author.books))
                for author in session.scalars(query):
                    assert author.books
    with (
        sqlaudit.audit("GET /books/{id}", reporters=[reporter], **UNTIMED),
        Session(engine) as session,
    ):
        assert session.get(Book, 1) is not None


def test_report_from_exported_spans_in_chromium(tmp_path: Path, sqlite_engine: Engine) -> None:
    """Spans exported to OTLP/JSON lines by ``jsonl_tracer_provider`` become a page that
    Chromium renders with the routes, the N+1 and its fix, and one bar per request."""
    path = tmp_path / "spans.jsonl"
    provider = jsonl_tracer_provider(path, service_name="bff")
    reporter = OTelReporter(tracer_provider=provider, metrics=False)
    with prepared(sqlite_engine, authors=8) as db:
        bff_traffic(db, reporter, provider.get_tracer("bff.http"))
    provider.shutdown()
    with path.open(encoding="utf-8") as lines:
        page = build_report(lines)
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    screenshot = tmp_path / "report.png"
    dom = render(html.as_uri(), screenshot)
    if os.environ.get("SQLAUDIT_SCREENSHOT_DIR"):
        shutil.copy(screenshot, Path(os.environ["SQLAUDIT_SCREENSHOT_DIR"]) / "report.png")
        shutil.copy(html, Path(os.environ["SQLAUDIT_SCREENSHOT_DIR"]) / "report.html")
    assert "<h1>sqlaudit report</h1>" in dom
    assert "<b>7</b>requests" in dom
    assert "<code>/authors</code>" in dom and "<code>/authors-fixed</code>" in dom
    assert "<code>GET /books/{id}</code>" in dom
    assert "N+1: Author.books lazy-loaded 8x, once per Author (8 parents)" in dom
    assert ".options(selectinload(Author.books))" in dom
    assert "3 finding(s), 24 statement(s), 1 route(s)" in dom
    assert dom.count('<rect class="bar bad"') == 3
    assert dom.count('<rect class="bar"') == 4
    assert screenshot.stat().st_size > 10_000
