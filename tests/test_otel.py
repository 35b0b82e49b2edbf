"""OTelReporter with the real OpenTelemetry SDK (in-memory exporters): the attributes on the
request's span, one event per finding, logs, optional spans, metrics, semconv opt-in, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

import pytest
from models import Author, Base, Book, prepared
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, create_engine, event, literal_column, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
from sqlaudit.capture import instrumentation as _capture
from sqlaudit.otel import OTelReporter, setup


@dataclass
class OTel:
    """SDK providers with in-memory exporters for spans, metrics and logs."""

    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    meter_provider: MeterProvider
    metrics: InMemoryMetricReader
    logger_provider: LoggerProvider
    logs: InMemoryLogRecordExporter

    def reporter(self, **options: Any) -> OTelReporter:
        return OTelReporter(self.tracer_provider, self.meter_provider, **options)

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        return spans if name is None else [s for s in spans if s.name == name]

    def points(self, name: str) -> list[Any]:
        data = self.metrics.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture
def otel() -> Iterator[OTel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    yield OTel(tracer_provider, spans, meter_provider, reader, logger_provider, logs)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[Engine]:
    with prepared(sqlite_engine) as eng:
        yield eng


def n_plus_one(engine: Engine) -> None:
    """1 + 5 statements: every author's books lazy-loaded from one line."""
    with Session(engine) as session:
        for author in session.scalars(select(Author)):
            assert author.books  # marker: otel n+1


def line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if marker in line and "line_of(" not in line:
                return number
    raise AssertionError(marker)


def audited(engine: Engine, reporter: OTelReporter, name: str = "GET /authors") -> Any:
    with sqlaudit.audit(name, reporters=[reporter], on_finding="ignore", **UNTIMED) as report:
        n_plus_one(engine)
    return report


def test_unit_attributes_land_on_the_recording_request_span(otel: OTel, db: Engine) -> None:
    """Inside a recording span (the HTTP server span), the unit's counts go on that span and
    sqlaudit starts no span of its own."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /authors", kind=SpanKind.SERVER):
        report = audited(db, otel.reporter())
    (server,) = otel.finished()
    assert server.kind is SpanKind.SERVER
    attrs = dict(server.attributes or {})
    assert attrs == {
        "sqlaudit.unit": "GET /authors",
        "sqlaudit.query_count": 6,
        "sqlaudit.db_time_ms": round(report.db_time_ms, 3),
        "sqlaudit.transaction_count": 1,
        "sqlaudit.transaction_control_count": report.round_trips[0],
        "sqlaudit.commit_count": 0,
        "sqlaudit.rollback_count": 0,
        "sqlaudit.finding_count": 1,
        "sqlaudit.finding_kinds": ("n_plus_one",),
    }


@pytest.mark.real_clock
def test_finding_event_carries_diagnosis_location_and_fingerprint(otel: OTel, db: Engine) -> None:
    """One ``sqlaudit.finding`` event per finding, with kind, severity, count, message, fix,
    code location, database system and the statement's fingerprint (never values)."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /authors"):
        report = audited(db, otel.reporter())
    (span,) = otel.finished()
    (event,) = span.events
    finding = report.findings[0]
    attrs = dict(event.attributes or {})
    assert event.name == "sqlaudit.finding"
    assert attrs["sqlaudit.finding.kind"] == "n_plus_one"
    assert attrs["sqlaudit.finding.severity"] == "warning"
    assert attrs["sqlaudit.finding.count"] == 5
    assert attrs["sqlaudit.finding.message"] == finding.message
    assert attrs["sqlaudit.finding.fix"] == finding.fix
    assert attrs["sqlaudit.finding.relationship"] == "Author.books"
    assert attrs["code.file.path"] == __file__
    assert attrs["code.line.number"] == line_of("marker: otel n+1")
    assert attrs["code.function.name"] == "n_plus_one"
    assert attrs["db.system.name"] == "sqlite"
    assert attrs["db.query.text"] == finding.fingerprint
    assert "?" in str(attrs["db.query.text"])
    assert attrs["db.query.summary"] == "SELECT sqlaudit_t_book"
    assert attrs["db.collection.name"] == "sqlaudit_t_book"
    assert "sqlaudit.finding.sql" not in attrs
    first = report.statements[finding.statements[0]]
    assert span.start_time is not None
    assert span.start_time <= event.timestamp <= (span.end_time or 0)
    assert first.start < report.ended  # the event sits where the burst began


def test_own_span_for_the_unit_when_no_span_is_recording(otel: OTel, db: Engine) -> None:
    """Without a recording span, sqlaudit makes one INTERNAL span for the unit, covering its
    duration, and never one per statement."""
    report = audited(db, otel.reporter())
    (span,) = otel.finished()
    assert span.name == "GET /authors"
    assert span.kind is SpanKind.INTERNAL
    assert span.parent is None
    assert (span.attributes or {})["sqlaudit.query_count"] == report.query_count == 6
    assert [e.name for e in span.events] == ["sqlaudit.finding"]
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 == pytest.approx(report.duration, abs=1e-3)


def test_sampled_out_request_is_not_replaced_by_a_root_span(otel: OTel, db: Engine) -> None:
    """A request span that is not recording (sampled out) gets a child sqlaudit span that the
    parent-based sampler drops too: no orphan root trace appears."""
    sampled_out = trace.NonRecordingSpan(
        trace.SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    with trace.use_span(sampled_out):
        audited(db, otel.reporter())
    assert otel.finished() == []


def test_clean_unit_has_counts_and_no_events(otel: OTel, db: Engine) -> None:
    """A unit without findings still reports its counts, with zero findings and no event."""
    with (
        sqlaudit.audit("GET /authors/1", reporters=[otel.reporter()], **UNTIMED),
        Session(db) as s,
    ):
        s.get(Author, 1)
    (span,) = otel.finished()
    attrs = dict(span.attributes or {})
    assert attrs["sqlaudit.query_count"] == 1
    assert attrs["sqlaudit.finding_count"] == 0
    assert attrs["sqlaudit.finding_kinds"] == ()
    assert span.events == ()


@pytest.mark.parametrize(
    ("opt_in", "mode", "present", "absent"),
    [
        ("", None, {"db.system.name", "db.query.text", "code.file.path"}, {"db.system"}),
        ("database", None, {"db.query.text", "code.line.number"}, {"db.statement"}),
        (
            "http,database/dup",
            None,
            {"db.system.name", "db.system", "db.query.text", "db.statement", "db.sql.table"},
            {"code.filepath"},
        ),
        ("code/dup", None, {"code.file.path", "code.filepath", "code.lineno"}, {"db.statement"}),
        (
            "database/dup",
            "old",
            {"db.system", "db.statement", "code.filepath", "code.function"},
            {"db.system.name", "db.query.text", "code.file.path"},
        ),
    ],
    ids=["default-stable", "database", "database-dup", "code-dup", "explicit-old"],
)
def test_semconv_stability_opt_in(
    otel: OTel,
    db: Engine,
    monkeypatch: pytest.MonkeyPatch,
    opt_in: str,
    mode: Any,
    present: set[str],
    absent: set[str],
) -> None:
    """``OTEL_SEMCONV_STABILITY_OPT_IN`` picks old/stable/both names where they differ;
    ``semconv=`` overrides it."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    audited(db, otel.reporter(semconv=mode))
    (span,) = otel.finished()
    keys = set((span.events[0].attributes or {}).keys())
    assert present <= keys
    assert not absent & keys


def test_findings_as_log_records(otel: OTel, db: Engine) -> None:
    """``findings_as="logs"``: each finding is a Logs-API event record named sqlaudit.finding
    in the unit span's trace context, and the span carries no event."""
    reporter = OTelReporter(
        otel.tracer_provider, otel.meter_provider,
        logger_provider=otel.logger_provider, findings_as="logs",
    )  # fmt: skip
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /authors") as server:
        audited(db, reporter)
    (span,) = otel.finished()
    assert span.events == ()
    (log,) = otel.logs.get_finished_logs()
    record = log.log_record
    assert record.event_name == "sqlaudit.finding"
    assert record.severity_text == "WARNING"
    assert record.body is not None and str(record.body).startswith("N+1: Author.books")
    assert record.trace_id == server.get_span_context().trace_id
    assert record.span_id == server.get_span_context().span_id
    assert (record.attributes or {})["sqlaudit.finding.kind"] == "n_plus_one"


def test_findings_as_both(otel: OTel, db: Engine) -> None:
    """``findings_as="both"`` emits the event and the log record."""
    reporter = OTelReporter(
        otel.tracer_provider, logger_provider=otel.logger_provider, findings_as="both"
    )
    audited(db, reporter)
    (span,) = otel.finished()
    assert len(span.events) == 1
    assert len(otel.logs.get_finished_logs()) == 1


@pytest.mark.real_clock
def test_transaction_span_shows_the_transaction_held_across_a_backend_call(
    otel: OTel, db: Engine
) -> None:
    """``transaction_spans=True``: one INTERNAL span per ORM transaction, enclosing the backend
    call made while it was open, with its idle time, outcome and where it began."""
    tracer = otel.tracer_provider.get_tracer("app")
    reporter = otel.reporter(transaction_spans=True)
    with (
        tracer.start_as_current_span("POST /books"),
        sqlaudit.audit("POST /books", reporters=[reporter]),
        Session(db) as session,
    ):
        session.add(Book(id=100, title="new", author_id=1))
        session.flush()  # marker: transaction begins
        with tracer.start_as_current_span("GET payments-service", kind=SpanKind.CLIENT):
            time.sleep(0.2)
        session.commit()
    (txn,) = otel.finished("sqlaudit.transaction")
    (backend,) = otel.finished("GET payments-service")
    (server,) = otel.finished("POST /books")
    assert txn.kind is SpanKind.INTERNAL
    assert txn.parent is not None and txn.parent.span_id == server.context.span_id
    assert txn.start_time is not None and backend.start_time is not None
    # sqlaudit's perf_counter times are converted to the epoch once per report; on a busy
    # machine the conversion may be off by a few ms, much less than the 200 ms call.
    slack = 20_000_000
    assert txn.start_time <= backend.start_time + slack
    assert (backend.end_time or 0) <= (txn.end_time or 0) + slack
    attrs = dict(txn.attributes or {})
    assert attrs["sqlaudit.transaction.source"] == "orm"
    assert attrs["sqlaudit.transaction.outcome"] == "commit"
    assert attrs["sqlaudit.transaction.statement_count"] == 1
    assert attrs["sqlaudit.transaction.write_count"] == 1
    assert attrs["sqlaudit.transaction.idle_ms"] >= 200
    assert attrs["db.system.name"] == "sqlite"
    assert attrs["code.line.number"] == line_of("marker: transaction begins")


def test_core_transaction_span(otel: OTel, db: Engine) -> None:
    """Core transactions (``engine.begin()``) get their span too, with how they ended."""
    reporter = otel.reporter(transaction_spans=True)
    with sqlaudit.audit("job", reporters=[reporter]), db.begin() as conn:
        conn.execute(Book.__table__.insert(), {"id": 101, "title": "x", "author_id": 1})
        conn.execute(select(Book.id).where(Book.id == 101)).one()
    (txn,) = otel.finished("sqlaudit.transaction")
    attrs = dict(txn.attributes or {})
    assert attrs["sqlaudit.transaction.source"] == "core"
    assert attrs["sqlaudit.transaction.statement_count"] == 2
    assert attrs["sqlaudit.transaction.outcome"] == "commit"
    (unit,) = otel.finished("job")
    assert txn.parent is not None and txn.parent.span_id == unit.context.span_id


def test_burst_span_per_n_plus_one(otel: OTel, db: Engine) -> None:
    """``burst_spans=True``: one INTERNAL span covering the N+1's statements, as a child of the
    unit's span; off by default."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /authors") as server:
        report = audited(db, otel.reporter(burst_spans=True))
    (burst,) = otel.finished("sqlaudit.n_plus_one")
    assert burst.parent is not None
    assert burst.parent.span_id == server.get_span_context().span_id
    assert (burst.attributes or {})["sqlaudit.finding.count"] == 5
    records = [report.statements[i] for i in report.findings[0].statements]
    assert (burst.end_time or 0) - (burst.start_time or 0) <= report.duration * 1e9
    assert len(records) == 5


def test_optional_spans_are_off_by_default(otel: OTel, db: Engine) -> None:
    """By default sqlaudit adds no span at all inside a request span."""
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("GET /authors"):
        audited(db, otel.reporter())
    assert [s.name for s in otel.finished()] == ["GET /authors"]


@pytest.mark.real_clock
def test_metrics_per_unit_and_per_finding(otel: OTel, db: Engine) -> None:
    """Histograms of statements and DB time per unit and a findings counter, with the unit,
    the request's http.route and the finding kind as attributes."""
    tracer = otel.tracer_provider.get_tracer("app")
    reporter = otel.reporter()
    with tracer.start_as_current_span("GET", attributes={"http.route": "/authors"}):
        audited(db, reporter)
    audited(db, reporter, name="list-authors-job")
    statements = {p.attributes["sqlaudit.unit"]: p for p in otel.points("sqlaudit.unit.statements")}
    assert statements["GET /authors"].attributes == {
        "sqlaudit.unit": "GET /authors",
        "http.route": "/authors",
        "sqlaudit.finding.kind": "n_plus_one",
    }
    assert statements["GET /authors"].sum == 6 and statements["GET /authors"].count == 1
    assert "http.route" not in statements["list-authors-job"].attributes
    (db_time,) = [
        p
        for p in otel.points("sqlaudit.unit.db_time")
        if p.attributes["sqlaudit.unit"] == "GET /authors"
    ]
    assert 0 < db_time.sum < 1
    findings = otel.points("sqlaudit.findings")
    assert sorted((p.attributes["sqlaudit.unit"], p.value) for p in findings) == [
        ("GET /authors", 1),
        ("list-authors-job", 1),
    ]
    assert {p.attributes["sqlaudit.finding.kind"] for p in findings} == {"n_plus_one"}


def test_nested_unit_gets_its_own_span_and_no_metrics(otel: OTel, db: Engine) -> None:
    """A nested audit reports on its own child span (not overwriting its parent's attributes)
    and leaves the metrics to its parent."""
    tracer = otel.tracer_provider.get_tracer("app")
    reporter = otel.reporter()
    with (
        tracer.start_as_current_span("GET /page"),
        sqlaudit.audit("GET /page", reporters=[reporter], on_finding="ignore"),
    ):
        with sqlaudit.audit("widget", reporters=[reporter], on_finding="ignore"):
            n_plus_one(db)
        with Session(db) as session:
            session.get(Author, 1)
    (widget,) = otel.finished("widget")
    (page,) = otel.finished("GET /page")
    assert widget.parent is not None and widget.parent.span_id == page.context.span_id
    assert (widget.attributes or {})["sqlaudit.query_count"] == 6
    assert (page.attributes or {})["sqlaudit.query_count"] == 7
    assert {p.attributes["sqlaudit.unit"] for p in otel.points("sqlaudit.unit.statements")} == {
        "GET /page"
    }


def test_max_events_caps_the_events(otel: OTel, db: Engine) -> None:
    """``max_events`` bounds the findings put on one span; the count attribute stays exact."""
    audited(db, otel.reporter(max_events=0))
    (span,) = otel.finished()
    assert span.events == ()
    assert (span.attributes or {})["sqlaudit.finding_count"] == 1


def test_include_sql_adds_the_sample_sql(otel: OTel, db: Engine) -> None:
    """With ``include_sql=True`` the sample SQL (placeholders, no values) is exported too."""
    with sqlaudit.audit(
        "GET /authors",
        reporters=[otel.reporter()],
        on_finding="ignore",
        include_sql=True,
        **UNTIMED,
    ):
        n_plus_one(db)
    (span,) = otel.finished()
    sql = (span.events[0].attributes or {})["sqlaudit.finding.sql"]
    assert "sqlaudit_t_book" in str(sql)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"findings_as": "spans"}, "findings_as must be one of 'events', 'logs', 'both'"),
        ({"max_events": -1}, "max_events must be an int >= 0, got -1"),
        ({"max_links": True}, "max_links must be an int >= 0, got True"),
        ({"burst_spans": "yes"}, "burst_spans must be True or False, got 'yes'"),
        ({"semconv": "new"}, "semconv must be one of 'stable', 'old', 'dup' or None"),
    ],
    ids=["findings_as", "max_events", "max_links", "burst_spans", "semconv"],
)
def test_bad_options_are_config_errors(options: dict[str, Any], message: str) -> None:
    """Every option is validated when the reporter is made; the error names it and the value."""
    with pytest.raises(sqlaudit.ConfigError, match=message.replace("(", r"\(")):
        OTelReporter(**options)


def test_a_failing_backend_never_breaks_the_unit(
    otel: OTel, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the tracer raises, the audit still closes and counts the internal error (outside
    strict mode); the application's work is untouched."""
    monkeypatch.setenv("SQLAUDIT_STRICT", "0")
    reporter = otel.reporter()
    with mock.patch.object(reporter, "_tracer") as tracer:
        tracer.start_span.side_effect = RuntimeError("exporter down")
        report = audited(db, reporter)
    assert report.internal_errors == 1
    assert report.query_count == 6


def test_setup_instruments_engines_and_reports(otel: OTel, sqlite_engine: Engine) -> None:
    """``setup(engine)`` instruments the engine and gives the production config and the
    reporters (OpenTelemetry, then logging) to audit with."""
    Base.metadata.create_all(sqlite_engine)
    service = setup(sqlite_engine, tracer_provider=otel.tracer_provider, metrics=False)
    try:
        assert service.config == sqlaudit.AuditConfig.for_production()
        assert [type(r).__name__ for r in service.reporters] == ["OTelReporter", "LogReporter"]
        with service.audit("job"), Session(sqlite_engine) as session:
            session.get(Author, 1)
    finally:
        service.remove()
        Base.metadata.drop_all(sqlite_engine)
    (span,) = otel.finished("job")
    assert (span.attributes or {})["sqlaudit.query_count"] == 1


def test_setup_with_a_bad_engine_instruments_none(otel: OTel) -> None:
    """``setup(good, bad)`` raises for the bad engine and leaves the good one as it was: not
    instrumented when it was not, still instrumented (same handle) when it already was."""
    fresh = create_engine("sqlite://")
    kept = create_engine("sqlite://")
    already = sqlaudit.instrument(kept)
    try:
        with pytest.raises(sqlaudit.ConfigError, match="Engine or AsyncEngine"):
            setup(fresh, kept, "sqlite://", tracer_provider=otel.tracer_provider)  # type: ignore[arg-type]
        assert sqlaudit.instrument(kept) is already and already.active
        assert not any(event.contains(fresh, name, fn) for name, fn in _capture._LISTENERS)
    finally:
        already.remove()
        fresh.dispose()
        kept.dispose()


def test_import_sqlaudit_imports_no_opentelemetry() -> None:
    """``import sqlaudit`` never imports opentelemetry; ``sqlaudit.otel`` does."""
    code = (
        "import sys, sqlaudit; assert not any(m.startswith('opentelemetry') for m in sys.modules);"
        "import sqlaudit.otel; assert 'opentelemetry.trace' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("db_kind", "system"),
    [("sqlite", "sqlite"), ("mysql", "mysql"), ("postgresql", "postgresql")],
    ids=["sqlite", "mysql", "postgresql"],
)
def test_db_system_name_per_database(otel: OTel, clean_db: Engine, system: str) -> None:
    """``db.system.name`` names the database the finding's statements ran on."""
    with prepared(clean_db):
        audited(clean_db, otel.reporter())
    (span,) = otel.finished()
    attrs = span.events[0].attributes or {}
    assert attrs["db.system.name"] == system
    assert attrs["db.collection.name"] == "sqlaudit_t_book"


def test_asgi_middleware_reports_on_the_server_span(otel: OTel, db: Engine) -> None:
    """The deployment the README shows: the application's HTTP instrumentation outside
    ``ASGIAuditMiddleware(reporters=[OTelReporter()])``; the request's counts and findings land
    on that server span, named after the route template."""
    import asyncio

    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sqlaudit.asgi import ASGIAuditMiddleware

    async def authors(request: Request) -> JSONResponse:
        n_plus_one(db)
        return JSONResponse({"group": request.path_params["group"]})

    tracer = otel.tracer_provider.get_tracer("http.server")
    audited_app = ASGIAuditMiddleware(
        Starlette(routes=[Route("/authors/{group}", authors)]),
        sqlaudit.AuditConfig(on_finding="ignore", **UNTIMED),  # type: ignore[arg-type]
        reporters=[otel.reporter()],
    )

    async def app(scope: Any, receive: Any, send: Any) -> None:
        """A stand-in for the application's own HTTP server instrumentation."""
        with tracer.start_as_current_span(
            f"{scope['method']} {scope['path']}", kind=SpanKind.SERVER
        ):
            await audited_app(scope, receive, send)

    async def main() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/authors/7")

    assert asyncio.run(main()).status_code == 200
    (server,) = otel.finished()
    attrs = dict(server.attributes or {})
    assert attrs["sqlaudit.unit"] == "GET /authors/{group}"
    assert attrs["sqlaudit.query_count"] == 6
    assert attrs["sqlaudit.finding_kinds"] == ("n_plus_one",)
    assert [e.name for e in server.events] == ["sqlaudit.finding"]


def test_works_with_the_api_alone() -> None:
    """With opentelemetry-api but no SDK (the ``otel`` extra), the reporter works against the
    API's no-op providers: nothing is recorded, nothing fails."""
    code = """
import sys
class NoSDK:
    def find_spec(self, name, path=None, target=None):
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter")):
            raise ImportError(f"{name} is not installed")
sys.meta_path.insert(0, NoSDK())
from sqlalchemy import create_engine, text
import sqlaudit
from sqlaudit.otel import OTelReporter
engine = create_engine("sqlite://")
sqlaudit.instrument(engine)
with sqlaudit.audit("job", reporters=[OTelReporter(burst_spans=True, transaction_spans=True)]) as r:
    with engine.connect() as conn:
        conn.execute(text("select 1"))
assert r.query_count == 1 and r.internal_errors == 0
assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules)
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_huge_in_lists_are_one_shape_and_export_whole(otel: OTel, engine: Engine) -> None:
    """Issue 14, row 2: IN lists of 3, 1,500 and 3,000 values (PostgreSQL's drivers render
    ``%(id_1_1)s::INTEGER`` for each) are one fingerprint, and the unit's findings reach
    OpenTelemetry whole: no internal error (sqlparse refused the uncollapsed text)."""
    with prepared(engine, authors=3) as db:
        with sqlaudit.audit("GET /books", on_finding="ignore", **UNTIMED) as report:
            with db.connect() as conn:
                for size in (3, 1500, 3000):
                    ids = list(range(size))
                    conn.execute(select(Book.id).where(Book.id.in_(ids))).all()
        otel.reporter().report(report)
    shapes = {f.fingerprint for f in report.findings}
    assert [f.kind for f in report.findings] == ["repeated_query"]
    assert shapes == {
        "SELECT sqlaudit_t_book.id FROM sqlaudit_t_book WHERE sqlaudit_t_book.id IN (?)"
    }
    assert report.internal_errors == 0
    (event,) = [e for span in otel.finished() for e in span.events]
    attrs = dict(event.attributes or {})
    assert attrs["db.query.text"] == shapes.pop()
    assert attrs["db.collection.name"] == "sqlaudit_t_book"


def test_statement_events_export_shapes_in_order_never_values(otel: OTel, db: Engine) -> None:
    """``statement_events=n``: the unit's statement shapes as ``sqlaudit.statement`` events,
    in the order they first ran (number, count, kind, call site, fingerprint with ``?`` for
    the literal the code inlined); capped at n with the total on the span; off by default."""
    tracer = otel.tracer_provider.get_tracer("app")
    with (
        tracer.start_as_current_span("GET /authors") as server,
        sqlaudit.audit("GET /authors", reporters=[otel.reporter(statement_events=5)], **UNTIMED),
        Session(db) as session,
    ):
        literal = select(Author).where(Author.name != literal_column("'s3cr3t-literal'"))
        for author in session.scalars(literal):  # marker: otel shapes root
            assert author.books  # marker: otel shapes lazy
    (span,) = otel.finished("GET /authors")
    assert span.context is not None and span.context.span_id == server.get_span_context().span_id
    events = [e for e in span.events if e.name == "sqlaudit.statement"]
    attrs = [dict(e.attributes or {}) for e in events]
    assert [(a["sqlaudit.statement.number"], a["sqlaudit.statement.count"]) for a in attrs] == [
        (1, 1),
        (2, 5),
    ]
    assert [a["code.line.number"] for a in attrs] == [
        line_of("marker: otel shapes root"),
        line_of("marker: otel shapes lazy"),
    ]
    assert all(a["sqlaudit.statement.kind"] == "select" for a in attrs)
    first = str(attrs[0]["db.query.text"])
    assert first.startswith("SELECT") and "!= ?" in first
    assert "s3cr3t" not in repr(span.events) and "s3cr3t" not in repr(span.attributes)
    assert (span.attributes or {})["sqlaudit.statement_shape_count"] == 2

    otel.spans.clear()
    with tracer.start_as_current_span("GET /authors"):
        audited(db, otel.reporter(statement_events=1))
    (span,) = otel.finished("GET /authors")
    assert len([e for e in span.events if e.name == "sqlaudit.statement"]) == 1
    assert (span.attributes or {})["sqlaudit.statement_shape_count"] == 2

    otel.spans.clear()
    with tracer.start_as_current_span("GET /authors"):
        audited(db, otel.reporter())
    (span,) = otel.finished("GET /authors")
    assert not [e for e in span.events if e.name == "sqlaudit.statement"]
    assert "sqlaudit.statement_shape_count" not in (span.attributes or {})
