"""``sqlaudit report FILE.jsonl``: the HTML page built from OTLP/JSON span lines, checked as
data and as a person sees it in headless Chromium."""

from __future__ import annotations

import json
import os
import re
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
from sqlaudit import cli
from sqlaudit.cli.html_report import ReportInputError, build_report, check_trace_url
from sqlaudit.errors import ConfigError
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


def sorted_table(page: str, key: str) -> str:
    """The route table of ``page`` in the order of the ``key`` column."""
    return page.split(f'id="routes-by-{key}"')[1].split("</table>", maxsplit=1)[0]


def unit_line(
    route: str,
    queries: int,
    db_ms: float,
    findings: list[dict[str, Any]],
    span_id: str,
    statements: list[dict[str, Any]] = (),  # type: ignore[assignment]  # read only
    trace_id: str = "ab" * 16,
) -> str:
    span: dict[str, Any] = {
        "traceId": trace_id,
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
        ]
        + [
            {"name": "sqlaudit.statement", "attributes": [attr(k, v) for k, v in s.items()]}
            for s in statements
        ],
    }
    if statements:
        span["attributes"].append(attr("sqlaudit.statement_shape_count", len(statements)))
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
    """Routes are ranked by statements and by DB time (one table, two orders), findings
    grouped by kind with their fix and location, and every value from the file is
    HTML-escaped."""
    lines = [
        unit_line("/streams", 41, 12.5, [N1], "0000000000000001"),
        unit_line("/streams", 41, 13.5, [N1], "0000000000000002"),
        unit_line("/users/{id}", 2, 90.0, [], "0000000000000003"),
        unit_line("/<script>alert(1)</script>", 1, 0.1, [], "0000000000000004"),
        "",
        json.dumps({"resourceMetrics": []}),
    ]
    page = build_report(lines)
    by_statements = sorted_table(page, "statements")
    by_time = sorted_table(page, "db")
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
    """No spans at all still gives a page, saying that the input holds no sqlaudit data."""
    page = build_report([], source="empty.jsonl")
    assert page.startswith("<!DOCTYPE html>")
    assert "no sqlaudit data found in empty.jsonl: it holds no spans" in page
    assert "every unit of work was clean" not in page


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
    """Spans exported to OTLP/JSON lines by ``jsonl_tracer_provider`` (with statement events)
    become a page that Chromium renders with the routes, the N+1 and its fix, one labelled bar
    per request, each request's formatted statements and its trace link."""
    path = tmp_path / "spans.jsonl"
    provider = jsonl_tracer_provider(path, service_name="bff")
    reporter = OTelReporter(tracer_provider=provider, metrics=False, statement_events=50)
    with prepared(sqlite_engine, authors=8) as db:
        bff_traffic(db, reporter, provider.get_tracer("bff.http"))
    provider.shutdown()
    with path.open(encoding="utf-8") as lines:
        page = build_report(
            lines, source=path.name, trace_url="https://grafana.example/explore?traceId={trace_id}"
        )
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    shots = Path(os.environ.get("SQLAUDIT_SCREENSHOT_DIR") or tmp_path)
    dom = render(html.as_uri(), shots / "report.png", size="1280,3000")
    assert "<h1>sqlaudit report</h1>" in dom
    assert "<b>7</b>requests" in dom
    assert "<code>/authors</code>" in dom and "<code>/authors-fixed</code>" in dom
    assert "<code>GET /books/{id}</code>" in dom
    assert "N+1: Author.books lazy-loaded 8x, once per Author (8 parents)" in dom
    assert ".options(selectinload(Author.books))" in dom
    assert "3 finding(s), 24 statement(s), 1 route(s)" in dom
    assert dom.count('<rect class="bar bad"') == 3
    assert dom.count('<rect class="bar"') == 4
    assert ">2. /authors</text>" in dom and ">7. GET /books/{id}</text>" in dom
    # the N+1 request: its statements in order, the lazy load 8 times, formatted SQL
    request = dom.split('id="req-2"')[1].split("</details>")[0]
    assert request.index("FROM sqlaudit_t_author") < request.index("FROM sqlaudit_t_book")
    assert '<td class="n">8\u00d7</td>' in request  # 8 runs, as &times; renders
    assert "\nFROM sqlaudit_t_book\nWHERE ? = sqlaudit_t_book.author_id" in request
    assert '<a href="https://grafana.example/explore?traceId=' in request
    assert (shots / "report.png").stat().st_size > 10_000
    # the same page with the route table sorted by DB time (a header link: no script)
    render(f"{html.as_uri()}#routes-by-db", shots / "report-sorted-by-db.png", size="1280,900")
    if os.environ.get("SQLAUDIT_SCREENSHOT_DIR"):
        shutil.copy(html, shots / "report.html")


SHAPES = [
    {
        "sqlaudit.statement.number": 1,
        "sqlaudit.statement.count": 1,
        "sqlaudit.statement.kind": "select",
        "sqlaudit.statement.db_time_ms": 0.5,
        "db.query.text": "SELECT s.id, s.title FROM stream AS s WHERE s.live = ? ORDER BY s.id",
        "code.file.path": "/app/views.py",
        "code.line.number": 40,
        "code.function.name": "list_streams",
    },
    {
        "sqlaudit.statement.number": 2,
        "sqlaudit.statement.count": 20,
        "sqlaudit.statement.kind": "select",
        "sqlaudit.statement.db_time_ms": 4.25,
        "db.query.text": "SELECT u.id, u.name FROM users AS u WHERE u.id = ?",
        "code.file.path": "/app/views.py",
        "code.line.number": 42,
        "code.function.name": "list_streams",
        "sqlaudit.statement.errors": ["OperationalError"],
    },
]


def test_statement_list_per_request_with_formatted_sql() -> None:
    """Each request lists its statement shapes in order: number, runs, DB time, the SQL
    reindented one clause per line (placeholders as exported), the call site; a request
    whose statements were not exported says how to export them."""
    page = build_report(
        [
            unit_line("/streams", 21, 4.75, [N1], "0000000000000001", SHAPES),
            unit_line("/users/{id}", 2, 1.0, [], "0000000000000002"),
        ]
    )
    request = page.split('id="req-1"')[1].split("</details>")[0]
    assert (
        "<pre>SELECT s.id,\n       s.title\nFROM stream AS s\nWHERE s.live = ?\nORDER BY s.id</pre>"
        in request
    )
    assert request.index("FROM stream") < request.index("FROM users")
    assert "<td class=n>20&times;</td>" in request and "<td class=n>4.25</td>" in request
    assert "/app/views.py:42 in list_streams()" in request
    assert "failed: OperationalError" in request
    assert "N+1: Stream.owner lazy-loaded 20x" in request  # its findings, open by default
    assert page.split('id="req-1"')[0].endswith("<details ")
    other = page.split('id="req-2"')[1].split("</details>")[0]
    assert "Statements not exported" in other and "statement_events=50" in other


def test_chart_is_labelled_with_request_names_and_links_to_requests() -> None:
    """The chart draws one labelled bar per request (number and route), each a link to that
    request's statement list."""
    page = build_report(
        [
            unit_line("/streams", 21, 4.75, [N1], "0000000000000001", SHAPES),
            unit_line("/users/{id}", 2, 1.0, [], "0000000000000002"),
        ]
    )
    chart = page.split('<svg id="chart"')[1].split("</svg>")[0]
    assert '<a href="#req-1">' in chart and '<a href="#req-2">' in chart
    assert ">1. /streams</text>" in chart and ">2. /users/{id}</text>" in chart
    assert chart.count('<rect class="bar bad"') == 1 and chart.count('<rect class="bar"') == 1
    assert 'id="req-1"' in page and 'id="req-2"' in page
    assert "<script" not in page


def test_one_route_table_sortable_by_each_column_without_script() -> None:
    """The route table is one table whose column headers link to the other orders; CSS shows
    the order the URL's fragment names (statements by default), so sorting needs no script."""
    page = build_report(
        [
            unit_line("/streams", 41, 12.5, [N1], "0000000000000001"),
            unit_line("/users/{id}", 2, 90.0, [], "0000000000000002"),
            unit_line("/users/{id}", 2, 1.0, [], "0000000000000003"),
        ]
    )
    assert page.count('class="sort" id="routes-by-') == 6
    assert page.count("<h2") == page.count("<h2 id=")  # one Routes heading, not two
    assert page.count('<h2 id="routes">') == 1
    for key, first in [
        ("statements", "/streams"),
        ("db", "/users/{id}"),
        ("requests", "/users/{id}"),
    ]:
        table = sorted_table(page, key)
        assert (
            table.index("<tbody>")
            < table.index(first)
            < table.index("/streams" if first != "/streams" else "/users/{id}")
        )
        assert f'<a href="#routes-by-{key}" aria-sort="descending">' in table
    assert ".sort{display:none}#routes-by-statements,.sort:target{display:block}" in page


def test_trace_links_from_a_url_template() -> None:
    """``trace_url`` turns each trace id into a link; ids that are not hex stay plain text
    (the file is not trusted), and the URL is escaped in the attribute."""
    template = check_trace_url("https://grafana.example/explore?left=1&traceId={trace_id}")
    page = build_report(
        [
            unit_line("/streams", 21, 4.75, [N1], "0000000000000001"),
            unit_line("/x", 1, 0.1, [], "0000000000000002", trace_id='"><b>x</b>'),
        ],
        trace_url=template,
    )
    assert '<a href="https://grafana.example/explore?left=1&amp;traceId=' + "ab" * 16 + '">' in page
    assert "traceId=&quot;" not in page and "<b>x</b>" not in page
    assert "<code>&quot;&gt;&lt;b&gt;x&lt;/b&gt;</code>" in page
    assert "https://grafana" not in build_report([unit_line("/s", 1, 0.1, [], "0000000000000001")])


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("javascript:alert({trace_id})", "must start with http", id="scheme"),
        pytest.param("https://tempo/trace", "must contain {trace_id}", id="no-field"),
        pytest.param("https://tempo/{trace_id}/{user}", "must contain {trace_id}", id="unknown"),
        pytest.param("https://tempo/{trace_id", "not a valid template", id="broken"),
    ],
)
def test_bad_trace_url_templates(template: str, message: str) -> None:
    """A template that is not an http(s) URL with {trace_id} is refused, saying why."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_trace_url(template)


def test_paths_relative_to_the_root() -> None:
    """Source paths are shown relative to ``root`` when they lie under it."""
    lines = [unit_line("/streams", 21, 4.75, [N1], "0000000000000001", SHAPES)]
    page = build_report(lines, root="/app")
    assert "views.py:42 in list_streams()" in page and "/app/views.py" not in page
    assert "/app/views.py:42" in build_report(lines, root="/elsewhere")


def test_spans_without_sqlaudit_data_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file of spans none of which is a sqlaudit unit gives "no sqlaudit data found in
    FILE", on the page and on standard error, and exit code 1, not a clean report."""
    span = {"traceId": "ab" * 16, "spanId": "01" * 8, "name": "GET /", "attributes": []}
    path = tmp_path / "other.jsonl"
    path.write_text(
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span, span]}]}]}) + "\n",
        encoding="utf-8",
    )
    assert cli.main(["report", str(path)]) == 1
    out, err = capsys.readouterr()
    message = f"no sqlaudit data found in {path}: 2 span(s), none with sqlaudit attributes"
    assert message in out and message in err
    assert "every unit of work was clean" not in out


def test_cli_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--trace-url`` and ``--root`` (a production path, absent here) reach the page; a bad
    template is a usage error (exit 2) naming the problem."""
    path = tmp_path / "spans.jsonl"
    path.write_text(
        unit_line("/streams", 21, 4.75, [N1], "0000000000000001") + "\n", encoding="utf-8"
    )
    url = "http://jaeger:16686/trace/{trace_id}"
    assert cli.main(["report", str(path), "--trace-url", url, "--root", "/app"]) == 0
    out, _ = capsys.readouterr()
    assert f'<a href="http://jaeger:16686/trace/{"ab" * 16}">' in out
    assert "<code>views.py:42 in list_streams()</code>" in out
    assert cli.main(["report", str(path), "--trace-url", "ftp://x/{trace_id}"]) == 2
    assert "--trace-url must start with http:// or https://" in capsys.readouterr().err


def test_demo_spans_give_statement_lists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sqlaudit demo --otel-jsonl`` exports statement events, so the report of its file
    lists the planted N+1's statements, formatted, with their runs."""
    path = tmp_path / "spans.jsonl"
    assert cli.main(["demo", "--only", "GET /streams", "--otel-jsonl", str(path)]) == 0
    capsys.readouterr()
    assert cli.main(["report", str(path)]) == 0
    page = capsys.readouterr().out
    planted = page.split('id="req-1"')[1].split("</details>")[0]
    assert "GET /streams (planted)" in page
    assert "Statements not exported" not in planted
    assert planted.count("<pre>SELECT") >= 3
    assert "n_plus_one" in planted


def test_chart_shows_the_latest_requests_and_details_keep_the_worst() -> None:
    """Past 100 requests the chart draws the latest 100 and says so; the worst requests keep
    their statement lists even when older; a request's real path shows beside its route."""
    lines = [unit_line("/huge", 500, 9.0, [N1], "0000000000000001")]
    lines += [unit_line("/small", 1, 0.1, [], f"{i:016x}") for i in range(2, 106)]
    page = build_report(lines)
    chart = page.split('<svg id="chart"')[1].split("</svg>")[0]
    assert chart.count("<rect ") == 100
    assert "(the latest 100 of 105)" in page
    assert '<a href="#req-1">' not in chart and 'id="req-1"' in page
    span = json.loads(unit_line("/users/{id}", 1, 0.1, [], "00000000000000aa"))
    span["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"].append(
        attr("url.path", "/users/42")
    )
    page = build_report([json.dumps(span)])
    assert "<code>/users/{id}</code> <small>/users/42</small>" in page


def test_no_data_page_in_chromium(tmp_path: Path) -> None:
    """The page of a file without sqlaudit data shows the message, and nothing that looks
    like a clean report, in a real browser."""
    span = {"traceId": "ab" * 16, "spanId": "01" * 8, "name": "GET /", "attributes": []}
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    html = tmp_path / "report.html"
    html.write_text(build_report([line], source="other.jsonl"), encoding="utf-8")
    shots = Path(os.environ.get("SQLAUDIT_SCREENSHOT_DIR") or tmp_path)
    dom = render(html.as_uri(), shots / "report-no-data.png", size="1280,400")
    assert "no sqlaudit data found in other.jsonl: 1 span(s), none with sqlaudit" in dom
    assert "clean" not in dom and "<table" not in dom
