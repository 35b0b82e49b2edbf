"""No data leaves: a canary secret sent as a bind value and as an inlined literal never
appears in a text report, a log record, JSON, OpenTelemetry spans, events, logs and metrics,
pytest's output and the files the plugin writes (JSON report, baseline), the middleware's
development page, or the HTML report built from exported spans.

The inlined literals come in every quoting style of the dialect (issue 14, row 1): plain
strings, double-quoted strings (SQLite, MariaDB), a backslash before the closing quote
(SQLite, PostgreSQL, MariaDB under ``NO_BACKSLASH_ESCAPES``), PostgreSQL dollar quotes with a
non-ASCII tag, ``E''`` strings and nested comments, and ``0b`` numbers.

Each check also asserts that the output it scans is the real thing (finding kinds, table
names, diagnoses), and a positive control shows the canary does reach sqlaudit's records, so
every check can fail."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from collect import every_output
from flask import Flask, request
from models import Author, prepared
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from plugin_cases.support import project, run
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session
from werkzeug.test import Client

import sqlaudit
from sqlaudit import cli
from sqlaudit.otel import OTelReporter, jsonl_tracer_provider
from sqlaudit.reporters import LogReporter
from sqlaudit.wsgi import WSGIAuditMiddleware

pytest_plugins = ("pytester",)

CANARY = "canary-5ecr3t-7f3a"
#: The digits of a ``0b`` literal (MariaDB; PostgreSQL 16+): they must not survive either.
BITS = "1011011101111"


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def quoting_styles(db: Engine, secret: str) -> None:
    """``secret`` inlined in every quoting style ``db``'s dialect has, each statement three
    times from one line (a repeated-query finding: its fingerprint reaches every output)."""
    table = "sqlaudit_t_author"
    styles = [f"SELECT id FROM {table} WHERE name = 'C:\\' OR name = '{secret}'"]
    setup: list[str] = []
    teardown: list[str] = []
    dialect = db.dialect.name
    if dialect in ("sqlite", "mysql", "mariadb"):
        styles.append(f'SELECT id FROM {table} WHERE name = "{secret}"')
    if dialect in ("mysql", "mariadb"):
        # The backslash style is a string only under NO_BACKSLASH_ESCAPES (the default reads
        # \' as a quote): set it, as a server configured so would have it.
        setup.append("SET @sqlaudit_mode = @@sql_mode")
        setup.append("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_BACKSLASH_ESCAPES')")
        teardown.append("SET SESSION sql_mode = @sqlaudit_mode")
        styles.append(f"SELECT id FROM {table} WHERE id = 0b{BITS}")
    if dialect == "postgresql":
        styles += [
            f"SELECT id FROM {table} WHERE name = $é${secret}$é$",
            f"SELECT id FROM {table} WHERE name = E'\\' {secret}'",
            f"SELECT id FROM {table} /* a /* b */ {secret} */ WHERE id = 1",
        ]
    with db.connect() as conn:
        for statement in setup:
            conn.exec_driver_sql(statement)
        for sql in styles:
            for _ in range(3):
                conn.exec_driver_sql(sql).all()
        for statement in teardown:
            conn.exec_driver_sql(statement)
    if dialect == "postgresql":  # 0b literals: PostgreSQL 16+; a syntax error before
        with db.connect() as conn, contextlib.suppress(Exception):
            conn.exec_driver_sql(f"SELECT id FROM {table} WHERE id = 0b{BITS}").all()


def workload(db: Engine) -> None:
    """Every kind of statement, with the canary as bind value and as inlined literal (in every
    quoting style of the dialect), in patterns that produce findings (so messages, fixes and
    fingerprints are all exercised)."""
    quoting_styles(db, CANARY)
    with Session(db) as session:
        for i in range(3):
            session.execute(select(Author).where(Author.name == CANARY + str(i))).all()
            session.execute(text(f"SELECT id FROM sqlaudit_t_author WHERE name = '{CANARY}'"))
        for author in session.scalars(select(Author)):
            assert author.books
        session.commit()
    with db.connect() as conn:
        for i in range(5):
            conn.execute(insert(Author).values(id=500 + i, name=CANARY))
            conn.execute(text(f"UPDATE sqlaudit_t_author SET name = '{CANARY}' WHERE id = {i}"))
        conn.execute(update(Author).where(Author.name == CANARY).values(name=CANARY + "x"))
    with pytest.raises(Exception):  # noqa: B017 - any DBAPI error; its text is not ours
        with db.connect() as conn:
            conn.execute(text(f"SELECT no_such_column FROM t WHERE x = '{CANARY}'"))


def test_canary_never_leaves(db: Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Text, logs, JSON and OpenTelemetry output of findings-rich audits hold no canary."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]  # SDK: unannotated
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    metrics = InMemoryMetricReader()
    reporter = OTelReporter(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[metrics]),
        logger_provider=logger_provider,
        findings_as="both",
        transaction_spans=True,
        burst_spans=True,
        statement_events=100,
    )
    caplog.set_level(logging.DEBUG, logger="sqlaudit")
    with sqlaudit.audit("canary", reporters=[LogReporter(summary=True), reporter]) as report:
        workload(db)
    kinds = {f.kind for f in report.findings}
    assert {"repeated_query", "n_plus_one", "write_loop"} <= kinds
    outputs = {
        "text": report.render(),
        "json": json.dumps(report.to_dict()),
        "logs": "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records),
        "spans": "\n".join(s.to_json() for s in spans.get_finished_spans()),
        "otel logs": "\n".join(repr(r.log_record) for r in logs.get_finished_logs()),
        "metrics": repr(metrics.get_metrics_data()),
    }
    assert spans.get_finished_spans()
    for name, output in outputs.items():
        assert CANARY not in output, name
        assert BITS not in output, name
    # In the process, records keep the SQL as sent (placeholders; inlined literals are part
    # of the text): that is what include_sql=True would export, and it is off by default.
    assert any(CANARY in r.sql for r in report.statements)
    assert sum(CANARY in r.sql for r in report.statements) >= 9  # the quoting styles ran


def test_include_sql_is_the_explicit_opt_in(db: Engine) -> None:
    """With ``include_sql=True`` the SQL text as sent is exported (inlined literals included,
    bind values never): the check above can fail, and the opt-in is explicit."""
    with sqlaudit.audit("opt-in", include_sql=True, on_finding="ignore") as report:
        workload(db)
    exported = json.dumps(report.to_dict())
    assert CANARY in exported  # the inlined literal, part of the SQL text
    assert f"{CANARY}0" not in exported  # the bind value: never recorded at all


# -- pytest output and the plugin's files ----------------------------------------------------

#: The inner suite reads the canary from the environment, so neither its source nor pytest's
#: tracebacks of it hold the value: output that shows it got it from sqlaudit.
INNER_TESTS = """
import os

import pytest
from sqlalchemy import insert, select, text

import sqlaudit as sqlaudit_lib
from feedlib import Session, feed
from myapp.models import Comment, Stream, add_streams

CANARY = os.environ["SQLAUDIT_LEAK_CANARY"]
EXTRA = int(os.environ.get("SQLAUDIT_LEAK_EXTRA", "0"))


def work(engine):
    with Session(engine) as session:
        feed(session)
        for i in range(3 + EXTRA):
            session.execute(select(Stream).where(Stream.title == CANARY + str(i))).all()
            session.execute(text(f"SELECT id FROM sqlaudit_t_stream WHERE title = '{CANARY}'"))
            # SQLite's other quoting styles: a double-quoted string, a backslash before a quote
            session.execute(text(f'SELECT id FROM sqlaudit_t_stream WHERE title = "{CANARY}"'))
            backslash = f"SELECT id FROM sqlaudit_t_stream WHERE title = 'C:\\\\' OR title = "
            session.execute(text(backslash + f"'{CANARY}'"))
    with engine.connect() as conn:
        for i in range(5 + EXTRA):
            conn.execute(insert(Comment).values(stream_id=1, body=CANARY))
            conn.execute(text(f"UPDATE sqlaudit_t_comment SET body = '{CANARY}' WHERE id = {i}"))
        conn.commit()
        try:
            conn.execute(text(f"SELECT nope FROM sqlaudit_t_stream WHERE title = '{CANARY}'"))
        except Exception:
            conn.rollback()


@pytest.mark.query_budget(5, select=2, writes=1)
def test_budget(engine):
    work(engine)


@pytest.mark.no_queries
def test_no_queries(engine):
    work(engine)


def test_findings(engine):
    work(engine)


def test_own_failure(engine):
    work(engine)
    raise RuntimeError("the test's own failure")


def test_fixture_block(engine, sqlaudit):
    with sqlaudit.budget(2):
        work(engine)


def test_fixture_constant_queries(engine, sqlaudit):
    def populate(scale):
        add_streams(engine, scale)
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE sqlaudit_t_stream SET title = '{CANARY}'"))

    def action():
        with Session(engine) as session:
            feed(session)
            session.execute(select(Stream).where(Stream.title == CANARY)).all()

    sqlaudit.assert_constant_queries(populate, action)


def test_assert_on_findings(engine):
    with sqlaudit_lib.audit("inner", on_finding="ignore") as report:
        work(engine)
    assert report.findings == []


def test_assert_on_records(engine):
    with sqlaudit_lib.audit("inner", on_finding="ignore") as report:
        work(engine)
    canaries = [r for r in report.statements if CANARY in r.sql]
    assert canaries[0] == canaries[1]
"""

#: The positive control: the same work with the explicit SQL opt-in (inlined literals shown).
CONTROL_TEST = """
import pytest
from test_feed import work


@pytest.mark.sqlaudit(include_sql=True)
def test_opt_in(engine):
    work(engine)
"""


def test_pytest_output_and_files_hold_no_canary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Plugin runs over tests that send the canary as bind values and inlined literals (marker,
    fixture and finding failures, a test's own error, the terminal summary, the JSON report,
    writing a baseline and failing against it): neither pytest's stdout/stderr nor any file
    written in the project (SARIF and JUnit XML files included) holds the canary, nor do the
    GitHub annotations; with ``include_sql=True`` the JSON report does."""
    project(pytester, INNER_TESTS)
    monkeypatch.setenv("SQLAUDIT_LEAK_CANARY", CANARY)
    common = ("-rA", "-vv", "--tb=long")
    found = run(
        pytester,
        *common,
        "--sqlaudit",
        "--sqlaudit-report",
        "--sqlaudit-json=out/r.json",
        "--sqlaudit-sarif=out/r.sarif",
        "--sqlaudit-annotations=github",
        "--junitxml=out/junit.xml",
    )
    accept = run(
        pytester, *common, "--sqlaudit-baseline=baseline.json", "--sqlaudit-update-baseline=all"
    )
    monkeypatch.setenv("SQLAUDIT_LEAK_EXTRA", "4")  # more statements than the baseline holds
    regress = run(pytester, *common, "--sqlaudit-baseline=baseline.json")

    found.assert_outcomes(failed=8)
    regress.assert_outcomes(failed=8)
    outputs = {
        f"{name} {stream}": "\n".join(getattr(result, stream).lines)
        for name, result in (("found", found), ("accept", accept), ("regress", regress))
        for stream in ("stdout", "stderr")
    }
    files = {
        path.relative_to(pytester.path).as_posix(): path.read_text("utf-8", errors="replace")
        for path in pytester.path.rglob("*")
        if path.is_file() and path.suffix != ".pyc"
    }
    assert {"out/r.json", "out/r.sarif", "out/junit.xml", "baseline.json", "test_feed.py"} <= set(
        files
    )
    assert "::error file=" in outputs["found stdout"]
    # What was scanned is the real output: diagnoses, tables, summary, baseline notes.
    out = outputs["found stdout"]
    assert "query budget exceeded: " in out and "SELECT budget exceeded: " in out
    assert "write budget exceeded: " in out
    assert "@pytest.mark.no_queries says this code does not query" in out
    assert "N+1: Stream.comments lazy-loaded 20x" in out
    assert "sqlaudit.budget(2)" in out and "statement count grows with the data" in out
    assert "repeated_query" in out and "write_loop" in out
    assert "sqlaudit_t_stream" in out and "sqlaudit_t_comment" in out
    assert "RuntimeError: the test's own failure" in out
    # Assertions on findings and records print their reprs (issue 14, row 8): no SQL text.
    assert "assert (Finding(kind='n_plus_one'" in out and "relationship='Stream.comments'," in out
    assert "QueryRecord(sql=<" in out and "Differing fields: sql, start" in out
    assert "8 tests audited, " in out
    assert "wrote baseline baseline.json" in outputs["accept stdout"]
    assert "more statements than the baseline allows" in outputs["regress stdout"]
    report = json.loads(files["out/r.json"])
    kinds = {f["kind"] for test in report["tests"] for f in test["findings"]}
    assert {"n_plus_one", "repeated_query", "write_loop"} <= kinds
    assert "sqlaudit_t_comment" in files["out/r.json"]
    assert '"kind": "repeated_query"' in files["baseline.json"]
    for name, output in {**outputs, **files}.items():
        assert CANARY not in output, name

    pytester.makepyfile(test_control=CONTROL_TEST)
    control = run(pytester, "test_control.py", "--sqlaudit-json=control.json")
    control.assert_outcomes(failed=1)
    assert CANARY in (pytester.path / "control.json").read_text("utf-8")


# -- the middleware's development page -------------------------------------------------------


def leaky_app(db: Engine) -> Flask:
    """Routes that put what the client sent (path, query string, JSON body) into SQL, as bind
    values and as inlined literals, with an N+1, repeated queries, a write loop, an error."""
    app = Flask(__name__)

    @app.get("/authors/<name>")
    def authors(name: str) -> str:
        literal = request.args["q"]
        quoting_styles(db, literal)
        with Session(db) as session:
            for i in range(3):
                session.execute(select(Author).where(Author.name == name + str(i))).all()
                sql = f"SELECT id FROM sqlaudit_t_author WHERE name = '{literal}'"
                session.execute(text(sql)).all()
            for author in session.scalars(select(Author)):
                assert author.books
        return "ok"

    @app.post("/authors")
    def create() -> tuple[str, int]:
        names: list[str] = request.get_json()["names"]
        with db.connect() as conn:
            for i, name in enumerate(names):
                conn.execute(insert(Author).values(id=600 + i, name=name))
                conn.execute(text(f"UPDATE sqlaudit_t_author SET name = '{name}' WHERE id = {i}"))
            conn.commit()
        return "created", 201

    @app.get("/broken")
    def broken() -> str:
        with db.connect() as conn:
            sql = f"SELECT no_such_column FROM sqlaudit_t_author WHERE name = '{request.args['q']}'"
            conn.execute(text(sql))
        return "unreachable"

    return app


class Keep:
    """A reporter keeping the closed reports."""

    def __init__(self) -> None:
        self.reports: list[sqlaudit.AuditReport] = []

    def report(self, report: sqlaudit.AuditReport) -> None:
        self.reports.append(report)


def test_dev_page_holds_no_canary(db: Engine) -> None:
    """After requests carrying the canary in the path, the query string and the body, the
    development page (fetched through the WSGI middleware) and every response header list the
    routes, finding kinds and table shapes, and never the canary."""
    app = leaky_app(db)
    keep = Keep()
    middleware = WSGIAuditMiddleware(app.wsgi_app, **every_output({"GET /authors/<name>": 3}, keep))
    client = Client(middleware)
    headers: list[str] = []
    for method, url, body, status in (
        ("GET", f"/authors/{CANARY}?q={CANARY}", None, 200),
        ("POST", "/authors", {"names": [f"{CANARY}{i}" for i in range(6)]}, 201),
        ("GET", f"/broken?q={CANARY}", None, 500),
    ):
        with client.open(url, method=method, json=body) as response:
            response.get_data()
            assert response.status_code == status, url
            headers += [f"{k}: {v}" for k, v in response.headers.items()]
    with client.get("/_sqlaudit") as response:
        page = response.get_data(as_text=True)
    assert response.status_code == 200

    assert "<title>sqlaudit: last 3 requests</title>" in page
    assert "GET /authors/&lt;name&gt;" in page and "POST /authors" in page
    for kind in ("n_plus_one", "repeated_query", "query_budget", "write_loop"):
        assert f">{kind}</span>" in page, kind
    assert "N+1: Author.books lazy-loaded" in page
    assert "FROM sqlaudit_t_author" in page and "UPDATE sqlaudit_t_author" in page
    assert '<div class="explain">' in page  # plans asked with the canary as bind value
    assert any(h.startswith("X-SQL-Queries: ") and "n_plus_one" in h for h in headers)
    assert CANARY not in page
    assert CANARY not in "\n".join(headers)
    # The requests' SQL as recorded in the process does hold the canary (inlined literals).
    assert len(keep.reports) == 3
    assert all(any(CANARY in r.sql for r in report.statements) for report in keep.reports)


# -- the HTML report ---------------------------------------------------------------------------


def test_html_report_holds_no_canary(
    db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Spans exported as OTLP/JSON lines (transaction and burst spans included) and the page
    ``sqlaudit report`` builds from them show the route, finding kinds, fixes and tables of
    the canary workload, and never the canary."""
    path = tmp_path / "spans.jsonl"
    provider = jsonl_tracer_provider(path, service_name="leaks")
    reporter = OTelReporter(
        tracer_provider=provider,
        metrics=False,
        transaction_spans=True,
        burst_spans=True,
        statement_events=100,
    )
    tracer = provider.get_tracer("leaks.http")
    route = "GET /authors"
    with (
        tracer.start_as_current_span(route, kind=SpanKind.SERVER, attributes={"http.route": "/a"}),
        sqlaudit.audit(route, reporters=[reporter], on_finding="ignore") as report,
    ):
        workload(db)
    provider.shutdown()
    assert {"repeated_query", "n_plus_one", "write_loop"} <= {f.kind for f in report.findings}

    assert cli.main(["report", str(path)]) == 0
    page = capsys.readouterr().out
    spans = path.read_text(encoding="utf-8")
    assert '"sqlaudit.query_count"' in spans
    assert "<h1>sqlaudit report</h1>" in page
    for kind in ("n_plus_one", "repeated_query", "write_loop"):
        assert f'id="kind-{kind}"' in page, kind
    assert "N+1: Author.books lazy-loaded" in page
    assert ".options(selectinload(Author.books))" in page
    assert "sqlaudit_t_author" in page
    assert '"sqlaudit.statement"' in spans and "<pre>UPDATE sqlaudit_t_author" in page
    assert CANARY not in page
    assert CANARY not in spans
    assert any(CANARY in r.sql for r in report.statements)
