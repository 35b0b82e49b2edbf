"""Faults: whatever breaks, the application sees what it would see without sqlaudit.

Each fault is injected into real work on a real database; where the database is involved, the
same scenario first runs on the same engine before it is instrumented, and everything the
application saw (results, exception class, message, ``connection_invalidated``, the pool's
state) and everything SQLAlchemy saw (statements sent to a cursor, ``handle_error`` calls)
must be identical with sqlaudit in the path. Injected here:

* a detector that raises (``RepeatedQuery.detect`` patched), a reporter that raises (a
  ``LogReporter`` whose ``report`` is patched; a real SDK ``SpanProcessor`` failing in
  ``on_end`` under ``OTelReporter``): the other detectors and reporters still run, the report
  closes, ``internal_errors`` counts each failure, logger ``sqlaudit`` logs it once; the
  application's own exception always wins over them;
* an OTLP/HTTP endpoint that is down (a closed port) or slow (accepts, never answers), with the
  real OTLP exporters for spans, logs and metrics behind batch and simple processors: nothing
  reaches the application, and the unit waits for the exporter only when the application chose
  a synchronous processor, then at most the exporter's timeout per export;
* a database error mid-statement (unique and NOT NULL violations, a failing ``executemany``, a
  syntax error, PostgreSQL's aborted transaction, an ORM flush failing);
* a connection killed by the server (``KILL`` on MariaDB, ``pg_terminate_backend`` on
  PostgreSQL) in the middle of a Core connection, an ORM session and a WSGI request;
* invalidated pool connections: ``Connection.invalidate()``, soft invalidation, a connection
  killed while idle in the pool, with and without ``pool_pre_ping``.

Covered elsewhere, not repeated: a detector, reporter or JSON sink failing inside the WSGI and
ASGI middlewares (``test_wsgi.py`` and ``test_asgi.py``,
``test_sqlaudit_failure_is_logged_once_and_response_unchanged``), the middleware's header code
failing (``test_wsgi.py``, ``test_middleware_failure_leaves_the_response_alone``), the OTel
tracer raising (``test_otel.py``, ``test_a_failing_backend_never_breaks_the_unit``).

Strict mode (``SQLAUDIT_STRICT=1``, set by conftest) stays on for the database and OTLP faults:
an internal error there would re-raise and change what the application sees, so those tests
also prove sqlaudit had none. It is switched off only where a sqlaudit failure is the fault.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from collect import Collect
from databases import Kind
from flask import Flask
from models import Author, Base
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    InMemoryMetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    exc,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, QueuePool
from timing import UNTIMED, kinds
from werkzeug.test import Client

import sqlaudit
from sqlaudit import AuditConfig, AuditReport
from sqlaudit._internal import internal_error
from sqlaudit.capture.scope import CURRENT
from sqlaudit.detectors.repeated_query import RepeatedQuery
from sqlaudit.otel import OTelReporter
from sqlaudit.reporters import LogReporter
from sqlaudit.wsgi import WSGIAuditMiddleware

SERVERS: list[Kind] = ["mysql", "postgresql"]
#: The server's id for the current session, as ``KILL`` / ``pg_terminate_backend`` take it.
SESSION_ID = {"mysql": "SELECT CONNECTION_ID()", "postgresql": "SELECT pg_backend_pid()"}
_KILL_WAIT_S = 5.0

_metadata = MetaData()
fault_table = Table(
    "sqlaudit_t_fault",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(20), nullable=False),
)

Step = tuple[object, ...]


# -- what the application and SQLAlchemy saw -----------------------------------------------


class Seen:
    """What the application saw, one step at a time (values, or the error as raised)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def __call__(self, step: Callable[[], object]) -> None:
        """Run ``step``; note its value or its error (class, DBAPI class, message, flag)."""
        try:
            value = step()
        except exc.DBAPIError as error:
            orig = type(error.orig)
            self.steps.append(
                (
                    "error",
                    type(error),
                    f"{orig.__module__}.{orig.__qualname__}",
                    str(error),
                    error.connection_invalidated,
                )
            )
            return
        except exc.SQLAlchemyError as error:
            self.steps.append(("error", type(error), None, str(error), None))
            return
        self.steps.append(("ok", value))


class Probe:
    """SQLAlchemy's own view: statements sent to a cursor and ``handle_error`` calls.

    The same listeners are attached with and without sqlaudit, so they are part of the
    comparison, not a difference between the runs.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.errors: list[tuple[str, bool, bool]] = []

    def _before(self, *args: Any) -> None:
        self.statements.append(args[2])  # (conn, cursor, statement, parameters, ...)

    def _error(self, context: ExceptionContext) -> None:
        self.errors.append(
            (
                type(context.original_exception).__name__,
                context.is_disconnect,
                context.is_pre_ping,
            )
        )

    def __enter__(self) -> Probe:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "handle_error", self._error)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "handle_error", self._error)


@dataclass(frozen=True)
class Run:
    """One run of a scenario: the application's steps, SQLAlchemy's statements and errors
    (DBAPI class name, disconnect, raised by a pre-ping)."""

    steps: list[Step]
    statements: list[str]
    errors: list[tuple[str, bool, bool]]


Scenario = Callable[[Engine, Seen], None]


def compare(
    engine: Engine, scenario: Scenario, prepare: Callable[[Engine], None] | None = None
) -> tuple[Run, Run, AuditReport]:
    """Run ``scenario`` on ``engine`` uninstrumented, then instrumented inside an audit.

    Each run starts from an emptied pool and, if given, ``prepare`` (outside the audit).
    """
    runs: list[Run] = []
    report: AuditReport | None = None
    for audited in (False, True):
        engine.dispose()
        if prepare is not None:
            prepare(engine)
        seen = Seen()
        handle = sqlaudit.instrument(engine) if audited else None
        try:
            with Probe(engine) as probe:
                if handle is None:
                    scenario(engine, seen)
                else:
                    with sqlaudit.audit("fault", on_finding="ignore", **UNTIMED) as report:
                        scenario(engine, seen)
        finally:
            if handle is not None:
                handle.remove()
        runs.append(Run(seen.steps, probe.statements, probe.errors))
    assert report is not None
    return runs[0], runs[1], report


def assert_same_and_closed(plain: Run, audited: Run, report: AuditReport) -> None:
    """Same run with and without sqlaudit; the report closed and holds those statements."""
    assert audited == plain
    assert report.ended is not None
    assert report.internal_errors == 0
    assert CURRENT.get() is None
    assert [r.sql for r in report.statements] == audited.statements
    assert report.query_count == len(audited.statements)
    statement_errors = [name for name, _, ping in audited.errors if not ping]
    assert [r.error for r in report.statements if r.error] == statement_errors
    # A fault is not the application's mistake: no warning (e.g. a transaction "left open"
    # by a dead connection) may come out of it.
    assert kinds(report, timing=True) == []


def pool_state(engine: Engine) -> tuple[int, int]:
    """(connections checked out, connections idle in the pool)."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    return pool.checkedout(), pool.checkedin()


# -- killing a server session --------------------------------------------------------------


@pytest.fixture
def killer(engine: Engine) -> Iterator[Engine]:
    """A separate, never-instrumented autocommit engine on ``engine``'s server."""
    other = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        yield other
    finally:
        other.dispose()


def kill(killer: Engine, session_id: int) -> None:
    """End server session ``session_id`` from another connection; wait until it is gone."""
    with killer.connect() as connection:
        if killer.dialect.name == "postgresql":
            terminate = text("SELECT pg_terminate_backend(:id)")
            assert connection.execute(terminate, {"id": session_id}).scalar_one() is True
            alive = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :id")
        else:
            connection.exec_driver_sql(f"KILL {int(session_id)}")
            alive = text("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = :id")
        deadline = time.monotonic() + _KILL_WAIT_S
        while connection.execute(alive, {"id": session_id}).scalar_one():
            if time.monotonic() > deadline:
                raise AssertionError(f"session {session_id} alive {_KILL_WAIT_S} s after kill")
            time.sleep(0.01)


# -- sqlaudit's own failures ----------------------------------------------------------------


class DetectorFaultError(Exception):
    pass


class ReporterFaultError(Exception):
    pass


class AppError(Exception):
    pass


class FailingSpanProcessor(SpanProcessor):
    """A real SDK span processor whose ``on_end`` raises, as a buggy exporter chain would."""

    def on_end(self, span: ReadableSpan) -> None:
        raise ReporterFaultError("span processor failed")


def repeated_selects(engine: Engine) -> list[int]:
    """Four statements of one shape from one line: a repeated query, and over a budget of 2."""
    with engine.connect() as connection:
        return [connection.execute(text("SELECT :i"), {"i": i}).scalar_one() for i in range(4)]


def internal_error_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in caplog.records if r.name == "sqlaudit" and "internal error" in r.getMessage()
    ]


@pytest.fixture
def lenient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production behaviour (not strict), with a fresh "logged once" memory."""
    monkeypatch.delenv("SQLAUDIT_STRICT")
    monkeypatch.setattr("sqlaudit._internal._seen", set())


@pytest.mark.usefixtures("lenient")
def test_raising_detector_is_contained_counted_and_logged_once(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A detector that raises: the unit's result is unchanged, every other detector still
    reports, each report closes and counts the failure (nested units roll it up), and the
    failure is logged once for the whole process."""
    expected = repeated_selects(engine)
    handle = sqlaudit.instrument(engine)
    try:
        with sqlaudit.audit("control", max_queries=2, on_finding="ignore") as control:
            assert repeated_selects(engine) == expected
        control_kinds = {f.kind for f in control.findings}
        assert {"repeated_query", "query_budget"} <= control_kinds

        def explode(self: RepeatedQuery, unit: Any, records: Any) -> Any:
            raise DetectorFaultError("injected detector failure")

        monkeypatch.setattr(RepeatedQuery, "detect", explode)
        reports: list[AuditReport] = []
        with caplog.at_level(logging.ERROR, logger="sqlaudit"):
            for n in range(3):
                with sqlaudit.audit(f"unit {n}", max_queries=2, on_finding="ignore") as report:
                    assert repeated_selects(engine) == expected
                reports.append(report)
            with sqlaudit.audit("outer", max_queries=8, on_finding="ignore") as outer:
                with sqlaudit.audit("inner", max_queries=2, on_finding="ignore") as inner:
                    assert repeated_selects(engine) == expected
                assert repeated_selects(engine) == expected  # the outer unit's own
    finally:
        handle.remove()
    for report in reports:
        assert report.ended is not None
        assert report.query_count == control.query_count
        assert report.internal_errors == 1
        assert {f.kind for f in report.findings} == control_kinds - {"repeated_query"}
    assert inner.internal_errors == 1
    assert outer.internal_errors == 2  # the inner unit's, rolled up, and its own
    assert outer.query_count == 2 * inner.query_count == 2 * control.query_count
    [logged] = internal_error_logs(caplog)
    assert "detector repeated_query" in logged.getMessage()
    assert logged.exc_info is not None
    assert logged.exc_info[0] is DetectorFaultError
    assert CURRENT.get() is None


class CloseFaultError(Exception):
    """A fault injected into sqlaudit's own close path."""


@pytest.mark.usefixtures("lenient")
@pytest.mark.parametrize("broken", ["freeze", "findings"])
def test_a_fault_while_closing_never_reaches_the_application(
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    broken: str,
) -> None:
    """A bug of sqlaudit's own while a unit closes (freezing it, or shaping its findings) is
    contained: the ``with`` block ends normally, the report is closed with what could be
    read, the fault is counted and logged, and an exception of the application still wins."""
    expected = repeated_selects(engine)

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise CloseFaultError(f"injected {broken} failure")

    if broken == "freeze":
        monkeypatch.setattr("sqlaudit.capture.scope.Scope.freeze", explode)
    else:
        monkeypatch.setattr("sqlaudit._audit._with_stacks", explode)
    handle = sqlaudit.instrument(engine)
    try:
        with caplog.at_level(logging.ERROR, logger="sqlaudit"):
            with sqlaudit.audit("unit", on_finding="raise") as report:
                assert repeated_selects(engine) == expected
            with pytest.raises(ZeroDivisionError):
                with sqlaudit.audit("failing", on_finding="raise") as failing:
                    repeated_selects(engine)
                    1 / 0  # noqa: B018 - the application's own error
    finally:
        handle.remove()
    for closed in (report, failing):
        assert closed.ended is not None
        assert closed.findings == ()  # none judged: the fault came first
        if broken == "freeze":  # neither freeze worked: nothing recorded is reported
            assert closed.internal_errors == 2
            assert closed.statements == ()
        else:  # frozen before the fault: the statements and counts are the unit's own
            assert closed.internal_errors == 1
            assert closed.query_count == len(expected)
    logged = internal_error_logs(caplog)
    assert {r.exc_info[0] for r in logged if r.exc_info} == {CloseFaultError}
    assert CURRENT.get() is None


@pytest.mark.usefixtures("lenient")
@pytest.mark.parametrize("broken", ["LogReporter", "OTelReporter"])
def test_raising_reporter_is_contained_counted_and_logged_once(
    engine: Engine,
    broken: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A reporter that raises (the log reporter; the OTel reporter over a real SDK whose span
    processor fails): the unit's result is unchanged, the reporters after it still receive
    the report, each report closes and counts the failure once, and it is logged once."""
    expected = repeated_selects(engine)
    provider = TracerProvider()
    provider.add_span_processor(FailingSpanProcessor())
    failing: LogReporter | OTelReporter
    if broken == "LogReporter":

        def explode(self: LogReporter, report: AuditReport) -> None:
            raise ReporterFaultError("log handler gone")

        monkeypatch.setattr(LogReporter, "report", explode)
        failing = LogReporter()
    else:
        failing = OTelReporter(provider, metrics=False)
    collect = Collect()
    handle = sqlaudit.instrument(engine)
    try:
        with caplog.at_level(logging.ERROR, logger="sqlaudit"):
            for n in range(3):
                with sqlaudit.audit(
                    f"unit {n}", reporters=[failing, collect], max_queries=2, on_finding="log"
                ):
                    assert repeated_selects(engine) == expected
    finally:
        handle.remove()
        provider.shutdown()
    assert [r.name for r in collect.reports] == ["unit 0", "unit 1", "unit 2"]
    for report in collect.reports:
        assert report.ended is not None
        assert report.query_count == len(expected)
        assert report.internal_errors == 1
        assert "query_budget" in {f.kind for f in report.findings}
    [logged] = internal_error_logs(caplog)
    assert f"reporter {broken}" in logged.getMessage()
    assert logged.exc_info is not None
    assert logged.exc_info[0] is ReporterFaultError
    assert CURRENT.get() is None


@pytest.mark.usefixtures("lenient")
def test_the_applications_exception_wins_over_failing_detector_and_reporter(
    sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """When the application raises while a detector and a reporter fail, the application's
    exception reaches the caller untouched (not AuditFailed, not sqlaudit's), and the report
    still closes with both failures counted and logged once each."""

    def explode(self: RepeatedQuery, unit: Any, records: Any) -> Any:
        raise DetectorFaultError("injected detector failure")

    def explode_reporter(self: LogReporter, report: AuditReport) -> None:
        raise ReporterFaultError("log handler gone")

    monkeypatch.setattr(RepeatedQuery, "detect", explode)
    monkeypatch.setattr(LogReporter, "report", explode_reporter)
    error = AppError("the application's own error")
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        with caplog.at_level(logging.ERROR, logger="sqlaudit"), pytest.raises(AppError) as raised:
            with sqlaudit.audit(
                "failing", reporters=[LogReporter()], max_queries=0, on_finding="raise"
            ) as report:
                results = repeated_selects(sqlite_engine)
                raise error
    finally:
        handle.remove()
    assert raised.value is error
    assert error.__context__ is None
    assert report.ended is not None
    assert report.query_count == len(results)
    assert report.internal_errors == 2
    assert "query_budget" in {f.kind for f in report.findings}
    wheres = sorted(r.getMessage() for r in internal_error_logs(caplog))
    assert [w.split(" (")[0] for w in wheres] == [
        "sqlaudit internal error in detector repeated_query",
        "sqlaudit internal error in reporter LogReporter",
    ]


def test_internal_error_is_logged_once_per_place_and_exception_class(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The "logged once" key is (where, exception class): a second kind of failure at the
    same place is logged too, a repeat of either is not; strict mode re-raises."""
    monkeypatch.setattr("sqlaudit._internal._seen", set())
    with pytest.raises(DetectorFaultError):
        internal_error("detector x", DetectorFaultError("strict"))
    caplog.clear()
    monkeypatch.delenv("SQLAUDIT_STRICT")
    monkeypatch.setattr("sqlaudit._internal._seen", set())
    with caplog.at_level(logging.ERROR, logger="sqlaudit"):
        for fault in (DetectorFaultError("a"), DetectorFaultError("b"), ValueError("c")):
            internal_error("detector x", fault)
        internal_error("reporter y", ValueError("d"))
    logged = internal_error_logs(caplog)
    assert [(r.getMessage(), r.exc_info and r.exc_info[0]) for r in logged] == [
        ("sqlaudit internal error in detector x (logged once)", DetectorFaultError),
        ("sqlaudit internal error in detector x (logged once)", ValueError),
        ("sqlaudit internal error in reporter y (logged once)", ValueError),
    ]


# -- OTLP endpoint down or slow -------------------------------------------------------------


class SilentCollector:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port: int = self._server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:  # the accept timeout: look at the stop flag again
                continue
            self.accepted.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self.accepted:
            connection.close()
        self._server.close()


def closed_port() -> int:
    """A local port nobody listens on (bound, then released): connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Otlp:
    """SDK providers exporting spans, logs and metrics over OTLP/HTTP to ``base``.

    The exporters report their own outcome on ``health`` (the SDK's ``otel.sdk.exporter.*``
    metrics, enabled by ``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), read in memory: how
    many items failed to export, whatever the exporters logged.
    """

    processor: str
    timeout: float
    base: str
    health: InMemoryMetricReader = field(init=False)
    tracer_provider: TracerProvider = field(init=False)
    logger_provider: LoggerProvider = field(init=False)
    meter_provider: MeterProvider = field(init=False)
    _health_provider: MeterProvider = field(init=False)

    def __post_init__(self) -> None:
        self.health = InMemoryMetricReader()
        self._health_provider = MeterProvider(metric_readers=[self.health])
        options: dict[str, Any] = {"timeout": self.timeout, "meter_provider": self._health_provider}
        spans = OTLPSpanExporter(endpoint=f"{self.base}/v1/traces", **options)
        logs = OTLPLogExporter(endpoint=f"{self.base}/v1/logs", **options)
        metrics = OTLPMetricExporter(endpoint=f"{self.base}/v1/metrics", **options)
        self.tracer_provider = TracerProvider()
        self.logger_provider = LoggerProvider()
        if self.processor == "batch":
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(spans, schedule_delay_millis=10)
            )
            self.logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(logs, schedule_delay_millis=10)
            )
        else:
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
            self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
        reader = PeriodicExportingMetricReader(metrics, export_interval_millis=100)
        self.meter_provider = MeterProvider(metric_readers=[reader])

    def reporter(self) -> OTelReporter:
        return OTelReporter(
            self.tracer_provider,
            self.meter_provider,
            logger_provider=self.logger_provider,
            findings_as="both",
        )

    def flush(self) -> None:
        """Let the batch processors attempt their exports now."""
        wait_ms = int(self.timeout * 1000) + 2000
        self.tracer_provider.force_flush(wait_ms)
        self.logger_provider.force_flush(wait_ms)

    def exported(self, signal: str) -> dict[str | None, int]:
        """Items of ``signal`` (``span``, ``log``) the exporter handled, by ``error.type``."""
        data = self.health.get_metrics_data()
        points = [
            point
            for resource in (data.resource_metrics if data is not None else ())
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == f"otel.sdk.exporter.{signal}.exported"
            for point in metric.data.data_points
            if isinstance(point, NumberDataPoint)
        ]
        totals: dict[str | None, int] = {}
        for point in points:
            error = (point.attributes or {}).get("error.type")
            key = None if error is None else str(error)
            totals[key] = totals.get(key, 0) + int(point.value)
        return totals

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()
        self._health_provider.shutdown()


#: Exporter timeout: long enough that a unit waiting for an export could not go unnoticed, and
#: that a loaded machine cannot make a unit that waits for nothing look as if it waited.
_OTLP_TIMEOUT_S = 2.0
#: Longest a unit may take when nothing waits for the exporter: less than one export's timeout,
#: so a single wait is caught, with room for a loaded machine.
_NO_WAIT_BOUND_S = 0.8 * _OTLP_TIMEOUT_S


@pytest.mark.real_clock
@pytest.mark.parametrize("processor", ["batch", "simple"])
@pytest.mark.parametrize("endpoint", ["down", "slow"])
def test_otlp_endpoint_down_or_slow_never_reaches_the_application(
    sqlite_engine: Engine,
    endpoint: str,
    processor: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the real OTLP/HTTP exporters pointed at a closed port or at a collector that never
    answers, the unit's result is unchanged, nothing raises (in strict mode) and the report
    closes with no internal error, while every span and log record fails to export. Behind
    batch processors the unit does not wait for the exporter at all; behind the synchronous
    processors the application chose, it waits at most the exporter's timeout per export (its
    span and one log record per finding), which is the SDK's behaviour; the report's own
    duration never includes that wait."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    expected = repeated_selects(sqlite_engine)
    collector = SilentCollector() if endpoint == "slow" else None
    port = collector.port if collector is not None else closed_port()
    otlp = Otlp(processor, _OTLP_TIMEOUT_S, f"http://127.0.0.1:{port}")
    reporter = otlp.reporter()
    handle = sqlaudit.instrument(sqlite_engine)
    units: list[tuple[AuditReport, float]] = []
    try:
        with caplog.at_level(logging.ERROR, logger="sqlaudit"):
            for n in range(2):
                started = time.perf_counter()
                with sqlaudit.audit(
                    f"GET /unit/{n}", reporters=[reporter], max_queries=2, on_finding="ignore"
                ) as report:
                    assert repeated_selects(sqlite_engine) == expected
                units.append((report, time.perf_counter() - started))
            otlp.flush()
            spans, logs = otlp.exported("span"), otlp.exported("log")
    finally:
        handle.remove()
        otlp.shutdown()
        if collector is not None:
            collector.close()
    # The fault was real: every span and finding log record failed to export, none went out.
    findings = sum(len(report.findings) for report, _ in units)
    assert findings >= len(units)
    assert None not in spans
    assert sum(spans.values()) == len(units)
    assert None not in logs
    assert sum(logs.values()) == findings
    if collector is not None:
        assert collector.accepted
    for report, elapsed in units:
        assert report.ended is not None
        assert report.internal_errors == 0
        assert report.query_count == len(expected)
        assert report.duration < _NO_WAIT_BOUND_S
        exports = 1 + len(report.findings)  # the unit's span, one log record per finding
        if processor == "batch":
            assert elapsed < _NO_WAIT_BOUND_S
        elif endpoint == "slow":
            assert exports * _OTLP_TIMEOUT_S * 0.9 <= elapsed
            assert elapsed < exports * _OTLP_TIMEOUT_S + _NO_WAIT_BOUND_S
        else:  # refused at once; the backoff before a retry is longer than the timeout
            assert elapsed < exports * _OTLP_TIMEOUT_S + _NO_WAIT_BOUND_S
    assert not [r for r in caplog.records if r.name == "sqlaudit" and r.levelno >= logging.ERROR]
    assert CURRENT.get() is None


# -- database errors mid-statement ----------------------------------------------------------


def fresh_tables(engine: Engine) -> None:
    _metadata.drop_all(engine)
    _metadata.create_all(engine)
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.add(Author(id=1, name="author 1"))
        session.commit()


def failing_statements(engine: Engine, seen: Seen) -> None:
    """Constraint violations, a failing executemany, a syntax error and a failing ORM flush,
    each followed by what the application does next."""
    table = fault_table
    with engine.connect() as connection:
        connection.execute(insert(table), [{"id": 1, "name": "a"}])
        connection.commit()
        seen(lambda: connection.execute(insert(table).values(id=1, name="duplicate")).rowcount)
        # PostgreSQL refuses this one (the transaction is aborted); the others answer.
        seen(lambda: connection.execute(select(func.count()).select_from(table)).scalar_one())
        connection.rollback()
        many = [{"id": 2, "name": "b"}, {"id": 1, "name": "duplicate"}, {"id": 3, "name": "c"}]
        seen(lambda: connection.execute(insert(table), many).rowcount)
        connection.rollback()
        seen(lambda: connection.execute(text("SELEC broken FROM sqlaudit_t_fault")).all())
        connection.rollback()
        seen(lambda: connection.execute(insert(table).values(id=9, name=None)).rowcount)
        connection.rollback()
        seen(lambda: connection.execute(select(table.c.id).order_by(table.c.id)).scalars().all())
    with Session(engine) as session:
        session.add(Author(id=1, name="duplicate"))
        seen(session.commit)
        seen(lambda: session.scalars(select(Author.name)).all())  # after the failed flush
        session.rollback()
        seen(lambda: [a.name for a in session.scalars(select(Author).order_by(Author.id))])


def test_database_error_mid_statement_reaches_the_application_unchanged(
    clean_db: Engine,
) -> None:
    """Database errors raised mid-statement reach the application as the same exception
    class with the same message and flags, SQLAlchemy's ``handle_error`` sees the same, the
    application continues as it would; the report closes and records each failed statement
    with its error."""
    plain, audited, report = compare(clean_db, failing_statements, fresh_tables)
    assert_same_and_closed(plain, audited, report)
    errors = [step for step in plain.steps if step[0] == "error"]
    assert len(errors) >= 5
    assert all(step[4] is False for step in errors if step[2] is not None)  # not disconnects
    assert len([r for r in report.statements if r.error]) == len(plain.errors) >= 5


# -- connections killed by the server -------------------------------------------------------


def killed_mid_work(killer: Engine) -> Scenario:
    def scenario(engine: Engine, seen: Seen) -> None:
        """A Core connection and then an ORM session each lose their server session between
        two statements; the application goes on with the next checkout."""
        session_id = SESSION_ID[engine.dialect.name]
        with engine.connect() as connection:
            sid = connection.execute(text(session_id)).scalar_one()
            kill(killer, sid)
            seen(lambda: connection.execute(text("SELECT 1")).scalar_one())
            seen(lambda: connection.execute(text("SELECT 2")).scalar_one())
            seen(lambda: (connection.invalidated, connection.in_transaction()))
        with engine.connect() as connection:
            seen(lambda: connection.execute(text(session_id)).scalar_one() != sid)
        with Session(engine) as session:
            sid = session.execute(text(session_id)).scalar_one()
            kill(killer, sid)
            seen(lambda: session.execute(text("SELECT 3")).scalar_one())
            seen(lambda: session.execute(text("SELECT 4")).scalar_one())
            session.rollback()
            seen(lambda: session.execute(text(session_id)).scalar_one() != sid)
        seen(lambda: pool_state(engine))

    return scenario


@pytest.mark.parametrize("db_kind", SERVERS)
def test_connection_killed_by_the_server_mid_work(engine: Engine, killer: Engine) -> None:
    """``KILL`` (MariaDB) / ``pg_terminate_backend`` (PostgreSQL) between two statements:
    the application gets the same OperationalError (same DBAPI class, message and
    ``connection_invalidated``), the same PendingRollbackError after it, and the pool hands
    out a new connection next time, exactly as without sqlaudit; the report closes with the
    statements and the failed one counted."""
    plain, audited, report = compare(engine, killed_mid_work(killer))
    assert_same_and_closed(plain, audited, report)
    core_killed, core_after, core_state, core_next = plain.steps[:4]
    orm_killed, orm_after, orm_next, pool_after = plain.steps[4:]
    for killed, after in ((core_killed, core_after), (orm_killed, orm_after)):
        assert killed[:2] == ("error", exc.OperationalError)
        assert killed[4] is True
        assert after[:2] == ("error", exc.PendingRollbackError)
    assert core_state == ("ok", (True, True))  # invalidated, its transaction still to end
    assert core_next == orm_next == ("ok", True)  # a new server session each time
    assert pool_after == ("ok", (0, 1))  # the dead connections were discarded
    assert [(d, p) for _, d, p in plain.errors] == [(True, False), (True, False)]


def killed_while_pooled(killer: Engine) -> Scenario:
    def scenario(engine: Engine, seen: Seen) -> None:
        """The server ends a session while its connection sits idle in the pool."""
        session_id = SESSION_ID[engine.dialect.name]
        with engine.connect() as connection:
            sid = connection.execute(text(session_id)).scalar_one()
        kill(killer, sid)
        with engine.connect() as connection:
            seen(lambda: connection.execute(text(session_id)).scalar_one() != sid)
        with engine.connect() as connection:
            seen(lambda: connection.execute(text(session_id)).scalar_one() != sid)
        seen(lambda: pool_state(engine))

    return scenario


@pytest.mark.parametrize("pre_ping", [True, False], ids=["pre_ping", "no_pre_ping"])
@pytest.mark.parametrize("db_kind", SERVERS)
def test_connection_killed_while_in_the_pool(
    engine: Engine, killer: Engine, pre_ping: bool
) -> None:
    """A pooled connection whose server session was killed: with ``pool_pre_ping`` the pool
    replaces it unseen (the ping is not counted as the application's statement), without it
    the first statement fails as a disconnect and the next checkout works; either way the
    application sees exactly what it sees without sqlaudit."""
    pinged = create_engine(engine.url, pool_pre_ping=pre_ping)
    try:
        plain, audited, report = compare(pinged, killed_while_pooled(killer))
    finally:
        pinged.dispose()
    assert_same_and_closed(plain, audited, report)
    if pre_ping:
        assert plain.steps[0] == ("ok", True)
        assert [(d, p) for _, d, p in plain.errors] == [(True, True)]
    else:
        assert plain.steps[0][:2] == ("error", exc.OperationalError)
        assert plain.steps[0][4] is True
    assert plain.steps[1] == ("ok", True)


# -- invalidated pool connections -----------------------------------------------------------


def invalidated(engine: Engine, seen: Seen) -> None:
    """``Connection.invalidate()`` mid-transaction, then a soft invalidation."""
    with engine.connect() as connection:
        first = connection.connection.dbapi_connection
        seen(lambda: connection.execute(text("SELECT 1")).scalar_one())
        connection.invalidate()
        seen(lambda: (connection.invalidated, connection.in_transaction()))
        seen(lambda: connection.execute(text("SELECT 2")).scalar_one())
        connection.rollback()
        seen(lambda: connection.execute(text("SELECT 3")).scalar_one())
        second = connection.connection.dbapi_connection
        seen(lambda: (connection.invalidated, second is not first))
        connection.connection.invalidate(soft=True)  # recycled when it goes back to the pool
        seen(lambda: connection.execute(text("SELECT 4")).scalar_one())
        seen(lambda: connection.connection.dbapi_connection is second)
    with engine.connect() as connection:
        seen(lambda: connection.connection.dbapi_connection is not second)
        seen(lambda: connection.execute(text("SELECT 5")).scalar_one())


def test_invalidated_pool_connection(engine: Engine) -> None:
    """An explicitly invalidated connection (hard, then soft): the same PendingRollbackError
    until rollback, the same reconnection and recycling as without sqlaudit; the report
    closes with the statements that reached the database."""
    plain, audited, report = compare(engine, invalidated)
    assert_same_and_closed(plain, audited, report)
    assert plain.steps[2][:2] == ("error", exc.PendingRollbackError)
    assert plain.steps[4] == ("ok", (False, True))
    assert plain.steps[-2:] == [("ok", True), ("ok", 5)]


# -- a request whose connection is killed, through the WSGI middleware ----------------------


def killing_app(engine: Engine, killer: Engine, propagate: bool) -> Flask:
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = propagate
    session_id = SESSION_ID[engine.dialect.name]

    @app.get("/streams/<int:stream_id>")
    def stream(stream_id: int) -> str:
        with engine.connect() as connection:
            kill(killer, connection.execute(text(session_id)).scalar_one())
            return str(connection.execute(text("SELECT :id"), {"id": stream_id}).scalar_one())

    @app.get("/health")
    def health() -> str:
        with engine.connect() as connection:
            return str(connection.execute(text("SELECT 1")).scalar_one())

    return app


def get_both(client: Client) -> list[Step]:
    """GET a request whose connection is killed, then a healthy one."""
    outcomes: list[Step] = []
    for path in ("/streams/7", "/health"):
        try:
            response = client.get(path)
        except exc.DBAPIError as error:
            outcomes.append(
                ("raised", type(error), type(error.orig), str(error), error.connection_invalidated)
            )
            continue
        outcomes.append(
            ("response", response.status, sorted(response.headers.items()), response.get_data())
        )
    return outcomes


@pytest.mark.parametrize("propagate", [False, True], ids=["500", "propagated"])
@pytest.mark.parametrize("db_kind", SERVERS)
def test_connection_killed_mid_request_through_the_wsgi_middleware(
    engine: Engine, killer: Engine, propagate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A Flask request whose connection the server kills mid-request returns the same 500
    (or raises the same OperationalError to the server) with and without the middleware, the
    next request succeeds on a new connection, and both audits close and are reported."""
    app = killing_app(engine, killer, propagate)
    with caplog.at_level(logging.CRITICAL, logger=app.logger.name):  # Flask's 500 traceback
        engine.dispose()
        with Probe(engine) as plain_probe:
            plain = get_both(Client(app))
        engine.dispose()
        collect = Collect()
        middleware = WSGIAuditMiddleware(
            app, AuditConfig.for_production(on_finding="ignore"), reporters=[collect]
        )
        handle = sqlaudit.instrument(engine)
        try:
            with Probe(engine) as probe:
                audited = get_both(Client(middleware))
        finally:
            handle.remove()
    assert audited == plain
    assert (probe.statements, probe.errors) == (plain_probe.statements, plain_probe.errors)
    if propagate:
        assert plain[0][:2] == ("raised", exc.OperationalError)
        assert plain[0][4] is True
    else:
        assert plain[0][:2] == ("response", "500 INTERNAL SERVER ERROR")
    assert plain[1][:2] == ("response", "200 OK")
    [(error, disconnect, pre_ping)] = probe.errors
    assert (disconnect, pre_ping) == (True, False)
    summary = [
        (r.name, r.ended is not None, r.internal_errors, [s.error for s in r.statements])
        for r in collect.reports
    ]
    # A propagated exception ends Flask's request context before it reaches the middleware
    # (flask.ctx.RequestContext.pop clears environ["werkzeug.request"]); the middleware reads
    # the matched rule from Flask's frame in the traceback instead, so the name is the same.
    killed_name = "GET /streams/<int:stream_id>"
    assert summary == [
        (killed_name, True, 0, [None, error]),
        ("GET /health", True, 0, [None]),
    ]
    assert [s.sql for r in collect.reports for s in r.statements] == probe.statements
    assert CURRENT.get() is None
