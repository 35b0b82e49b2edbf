"""Findings point at the statement spans they concern, next to
opentelemetry-instrumentation-sqlalchemy, on one trace, without duplicate spans."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy
from models import Author, prepared
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
from sqlaudit.model.records import QueryRecord
from sqlaudit.otel import OTelReporter
from sqlaudit.otel.correlate import SeenSpan, match

MS = 1_000_000


def record(sql: str, start_ms: float, duration_ms: float = 1.0) -> QueryRecord:
    return QueryRecord(
        sql, "select", start_ms / 1000, duration_ms / 1000, 1, 1, None, (), None, 1, "sqlite",
        frozenset(),
    )  # fmt: skip


def seen(sql: str, start_ms: float, end_ms: float, span_id: int) -> SeenSpan:
    context = SpanContext(1, span_id, is_remote=False)
    return SeenSpan(int(start_ms * MS), int(end_ms * MS), sql, context)


LAZY = "SELECT b.id FROM b WHERE b.author_id = ?"


@pytest.mark.parametrize(
    ("records", "spans", "expected"),
    [
        ([record(LAZY, 10)], [seen(LAZY, 9.99, 11.01, 7)], {0: 7}),
        ([record(LAZY, 10)], [seen("SELECT a.id FROM a", 9.99, 11.01, 7)], {}),
        ([record(LAZY, 10)], [seen(LAZY, 500, 501, 7)], {}),
        (
            [record(LAZY, 10), record(LAZY, 12), record(LAZY, 14)],
            [seen(LAZY, 13.99, 15.01, 3), seen(LAZY, 9.99, 11.01, 1), seen(LAZY, 11.99, 13.01, 2)],
            {0: 1, 1: 2, 2: 3},
        ),
        (
            [record("SELECT b.id FROM b WHERE b.author_id = %(param_1)s", 10)],
            [seen("SELECT b.id FROM b WHERE b.author_id = %(param_1)s /*traceparent='00-1'*/",
                  9.99, 11.01, 9)],
            {0: 9},
        ),
        ([record(LAZY, 10), record(LAZY, 12)], [seen(LAZY, 9.99, 11.01, 4)], {0: 4}),
        (
            [record(LAZY, 10), record(LAZY, 12), record(LAZY, 14)],
            [seen(LAZY, 16.99, 18.01, 1), seen(LAZY, 18.99, 20.01, 2), seen(LAZY, 20.99, 22.01, 3)],
            {0: 1, 1: 2, 2: 3},
        ),
        (
            [record(LAZY, 10), record(LAZY, 12)],
            [seen(LAZY, 7.99, 9.01, 8), seen(LAZY, 9.99, 11.01, 1), seen(LAZY, 11.99, 13.01, 2)],
            {0: 1, 1: 2},
        ),
    ],
    ids=["same-shape", "other-shape", "too-far", "loop-in-order", "sqlcommenter", "one-span-once",
         "clock-offset-7ms", "extra-span-nearest"],
)  # fmt: skip
def test_match_pairs_same_shape_in_order_or_nearest_in_time(
    records: list[QueryRecord], spans: list[SeenSpan], expected: dict[int, int]
) -> None:
    """Records and spans of one shape pair one to one in time order when equally many (even
    with the clocks 7 ms apart), else each record takes the nearest unused span."""
    paired = match(records, range(len(records)), spans, offset_ns=0)
    assert {i: c.span_id for i, c in paired.items()} == expected


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracer_provider, exporter
    tracer_provider.shutdown()


@pytest.fixture
def db(sqlite_engine: Engine) -> Iterator[Engine]:
    with prepared(sqlite_engine) as eng:
        yield eng


def n_plus_one(engine: Engine, reporter: OTelReporter, tracer: trace.Tracer) -> Any:
    with (
        tracer.start_as_current_span("GET /authors", kind=SpanKind.SERVER),
        sqlaudit.audit(
            "GET /authors", reporters=[reporter], on_finding="ignore", **UNTIMED
        ) as report,
        Session(engine) as session,
    ):
        for author in session.scalars(select(Author)):
            assert author.books
    return report


def check_coexistence(spans: list[ReadableSpan], report: Any) -> None:
    """The assertions shared by the stand-in and the real instrumentation."""
    statement_spans = [
        s
        for s in spans
        if s.kind is SpanKind.CLIENT
        and {"db.statement", "db.query.text"} & set((s.attributes or {}).keys())
    ]
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (burst,) = [s for s in spans if s.name == "sqlaudit.n_plus_one"]
    # One span per statement, all made by the instrumentation; sqlaudit adds none.
    assert len(statement_spans) == report.query_count == 6
    assert all(s.instrumentation_scope.name != "sqlaudit" for s in statement_spans)
    sqlaudit_spans = [s for s in spans if s.instrumentation_scope.name == "sqlaudit"]
    assert [s.name for s in sqlaudit_spans] == ["sqlaudit.n_plus_one"]
    # One trace.
    assert {s.context.trace_id for s in spans} == {server.context.trace_id}
    # The finding names exactly the five lazy-load spans, by span id and by link.
    lazy = sorted(
        (s for s in statement_spans if "author_id" in str((s.attributes or {}).values())),
        key=lambda s: s.start_time or 0,
    )
    assert len(lazy) == 5
    (finding_event,) = server.events
    ids = (finding_event.attributes or {})["sqlaudit.finding.span_ids"]
    assert list(ids) == [format(s.context.span_id, "016x") for s in lazy]
    assert [link.context.span_id for link in burst.links] == [s.context.span_id for s in lazy]


@pytest.mark.real_clock
def test_statement_spans_of_a_stand_in_instrumentation(
    provider: tuple[TracerProvider, InMemorySpanExporter], db: Engine
) -> None:
    """Any instrumentation making CLIENT spans with ``db.statement`` (here a stand-in for
    opentelemetry-instrumentation-sqlalchemy, which refuses SQLAlchemy 2.1) is correlated."""
    tracer_provider, exporter = provider
    statement_tracer = tracer_provider.get_tracer("stand-in")

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        span = statement_tracer.start_span("SELECT", kind=SpanKind.CLIENT)
        span.set_attribute("db.statement", statement)
        conn.info["stand_in_span"] = span

    def after(conn: Any, *args: Any) -> None:
        conn.info.pop("stand_in_span").end()

    event.listen(db, "before_cursor_execute", before)
    event.listen(db, "after_cursor_execute", after)
    try:
        reporter = OTelReporter(tracer_provider, burst_spans=True)
        report = n_plus_one(db, reporter, tracer_provider.get_tracer("app"))
    finally:
        event.remove(db, "before_cursor_execute", before)
        event.remove(db, "after_cursor_execute", after)
    check_coexistence(list(exporter.get_finished_spans()), report)


def _instrumentation_conflict() -> str | None:
    from opentelemetry.instrumentation.dependencies import get_dependency_conflicts
    from opentelemetry.instrumentation.sqlalchemy.package import _instruments

    conflict = get_dependency_conflicts(list(_instruments))
    return None if conflict is None else str(conflict)


@pytest.mark.parametrize("commenter", [False, True], ids=["plain", "sqlcommenter"])
@pytest.mark.real_clock
def test_coexists_with_opentelemetry_instrumentation_sqlalchemy(
    provider: tuple[TracerProvider, InMemorySpanExporter], db: Engine, commenter: bool
) -> None:
    """With opentelemetry-instrumentation-sqlalchemy active, findings land on the request's
    trace and reference its statement spans; no span is duplicated. (SQLAlchemy 2.0 only: the
    instrumentation refuses 2.1; CI runs the suite on 2.0.30 too.)"""
    conflict = _instrumentation_conflict()
    if conflict is not None:
        pytest.skip(
            f"opentelemetry-instrumentation-sqlalchemy does not support SQLAlchemy "
            f"{sqlalchemy.__version__} ({conflict}); this test runs on SQLAlchemy 2.0"
        )
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    tracer_provider, exporter = provider
    instrumentor = SQLAlchemyInstrumentor()
    instrumentor.instrument(
        engine=db, tracer_provider=tracer_provider, enable_commenter=commenter,
        enable_attribute_commenter=commenter,
    )  # fmt: skip
    try:
        reporter = OTelReporter(tracer_provider, burst_spans=True)
        report = n_plus_one(db, reporter, tracer_provider.get_tracer("app"))
    finally:
        instrumentor.uninstrument()
    spans = [s for s in exporter.get_finished_spans() if s.name != "connect"]
    check_coexistence(spans, report)
