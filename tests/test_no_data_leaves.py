"""No data leaves: a canary secret sent as a bind value and as an inlined literal never
appears in a text report, a log record, JSON, or OpenTelemetry spans, events and logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from models import Author, prepared
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, insert, select, text, update
from sqlalchemy.orm import Session

import sqlaudit
from sqlaudit.otel import OTelReporter
from sqlaudit.reporters import LogReporter

CANARY = "canary-5ecr3t-7f3a"


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def workload(db: Engine) -> None:
    """Every kind of statement, with the canary as bind value and as inlined literal, in
    patterns that produce findings (so messages, fixes and fingerprints are all exercised)."""
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
    logs = InMemoryLogRecordExporter()
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
    # In the process, records keep the SQL as sent (placeholders; inlined literals are part
    # of the text): that is what include_sql=True would export, and it is off by default.
    assert any(CANARY in r.sql for r in report.statements)


def test_include_sql_is_the_explicit_opt_in(db: Engine) -> None:
    """With ``include_sql=True`` the SQL text as sent is exported (inlined literals included,
    bind values never): the check above can fail, and the opt-in is explicit."""
    with sqlaudit.audit("opt-in", include_sql=True, on_finding="ignore") as report:
        workload(db)
    exported = json.dumps(report.to_dict())
    assert CANARY in exported  # the inlined literal, part of the SQL text
    assert f"{CANARY}0" not in exported  # the bind value: never recorded at all
