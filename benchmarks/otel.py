"""Cost of sqlaudit's OpenTelemetry reporter per unit of work.

Run from the repository root::

    python benchmarks/otel.py            # full run (about a minute)
    python benchmarks/otel.py --quick    # short run (smoke test)
    python benchmarks/otel.py --json results.json

Times are CPU times, not wall-clock: ``process_time()`` for a round (so the BatchSpanProcessor's
worker thread counts too), ``thread_time()`` inside ``report()``; a busy machine (other
processes competing for the cores) then inflates them far less than it would wall-clock times.

One process, SQLite in memory, the real OpenTelemetry SDK set up as a service would have it:
a BatchSpanProcessor (its exporter drops the batches: export cost is the exporter's, not
sqlaudit's), a MeterProvider with a reader that is never collected, a LoggerProvider with a
batch processor. Every variant runs its units inside a recording SERVER span (the request span
of the application's own instrumentation) and inside ``sqlaudit.audit(...)``; only the
reporters differ, so the differences are the reporter's cost per unit:

* ``audit only``: ``reporters=()``, the baseline;
* ``OTel``: ``OTelReporter()`` defaults: attributes on the request span, one event per finding,
  three metrics, the statement-span index registered on the provider;
* ``OTel + spans``: also one span per transaction and one per N+1 burst;
* ``OTel logs``: findings as Logs-API records instead of span events;
* ``OTel own span``: no request span; the reporter starts one for the unit (baseline: the
  same without reporter and without request span).

Two units of work: ``clean`` (10 Core selects by primary key, no finding) and ``n+1`` (an ORM
session loading 20 parents and lazy-loading a relationship of each: 21 statements, one
finding). Rounds interleave the variants in shuffled order; each figure is the median over
rounds of (round time / units in round). The time spent inside the reporter's ``report()``
during those rounds is also accumulated ("in report()": the reporter's own cost per unit, in
place, far less sensitive to a busy machine than the difference of two end-to-end medians).
Finally ``report()`` alone is timed, repeatedly, on one closed report of each unit.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from time import process_time, thread_time
from typing import Any

import sqlalchemy
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.version import __version__ as sdk_version
from opentelemetry.trace import SpanKind
from sqlalchemy import ForeignKey, String, bindparam, create_engine, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.pop("SQLAUDIT_STRICT", None)

import sqlaudit
from sqlaudit.otel import OTelReporter


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30))
    children: Mapped[list[Child]] = relationship()


class Child(Base):
    __tablename__ = "child"
    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"))


class Timed:
    """Wraps a reporter and accumulates the time spent in its ``report()`` (in situ)."""

    def __init__(self, inner: OTelReporter) -> None:
        self.inner = inner
        self.spent = 0.0

    def report(self, report: sqlaudit.AuditReport) -> None:
        start = thread_time()
        self.inner.report(report)
        self.spent += thread_time() - start


class Drop(SpanExporter, LogRecordExporter):
    """Accepts every batch and does nothing with it."""

    def export(self, batch: Any) -> Any:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def workloads(engine: sqlalchemy.Engine) -> dict[str, Callable[[], None]]:
    by_id = select(Parent.name).where(Parent.id == bindparam("pid"))

    def clean() -> None:
        with engine.connect() as conn:
            for i in range(1, 11):
                conn.execute(by_id, {"pid": i}).one()

    def n_plus_one() -> None:
        with Session(engine) as session:
            for parent in session.scalars(select(Parent)):
                parent.children  # noqa: B018 - the lazy load is the point

    return {"clean": clean, "n+1": n_plus_one}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (smoke test)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    rounds, per_round = (15, 20) if args.quick else (60, 50)

    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Parent), [{"id": i, "name": f"p{i}"} for i in range(1, 21)])
        conn.execute(insert(Child), [{"id": i, "parent_id": i} for i in range(1, 21)])
    handle = sqlaudit.instrument(engine)

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(Drop()))
    tracer = tracer_provider.get_tracer("app")
    config = sqlaudit.AuditConfig(on_finding="ignore")

    def reporter(**options: Any) -> Timed:
        return Timed(OTelReporter(tracer_provider, meter_provider, **options))

    variants: dict[str, tuple[tuple[Any, ...], bool]] = {
        "audit only": ((), True),
        "OTel": ((reporter(),), True),
        "OTel + spans": ((reporter(transaction_spans=True, burst_spans=True),), True),
        "OTel logs": (
            (reporter(logger_provider=logger_provider, findings_as="logs"),),
            True,
        ),
        "no span, audit only": ((), False),
        "OTel own span": ((reporter(),), False),
    }
    baselines = {name: "audit only" if in_span else "no span, audit only"
                 for name, (_, in_span) in variants.items()}  # fmt: skip

    results: dict[str, dict[str, float]] = {}
    for work_name, work in workloads(engine).items():
        samples: dict[str, list[float]] = {name: [] for name in variants}
        in_situ: dict[str, list[float]] = {name: [] for name in variants}

        def unit(
            reporters: tuple[Any, ...], in_span: bool, work: Callable[[], None] = work
        ) -> None:
            if in_span:
                with (
                    tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER),
                    sqlaudit.audit("GET /x", config, reporters=reporters),
                ):
                    work()
            else:
                with sqlaudit.audit("GET /x", config, reporters=reporters):
                    work()

        for reporters, in_span in variants.values():  # warm up
            for _ in range(per_round):
                unit(reporters, in_span)
            if reporters:
                reporters[0].spent = 0.0
        for _ in range(rounds):
            order = list(variants)
            random.shuffle(order)
            for name in order:
                reporters, in_span = variants[name]
                start = process_time()
                for _ in range(per_round):
                    unit(reporters, in_span)
                samples[name].append((process_time() - start) / per_round)
                if reporters:
                    before = reporters[0].spent
                    reporters[0].spent = 0.0
                    in_situ[name].append(before / per_round)
        medians = {name: statistics.median(values) * 1e6 for name, values in samples.items()}
        for name, values in in_situ.items():
            if values:
                medians[f"in report(): {name}"] = statistics.median(values) * 1e6
        results[work_name] = medians

        with sqlaudit.audit("GET /x", config, reporters=()) as closed:
            work()
        for name, (reporters, in_span) in variants.items():
            if not reporters:
                continue
            times = []
            for _ in range(rounds * 5):
                start = thread_time()
                if in_span:
                    with tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER):
                        t0 = thread_time()
                        reporters[0].report(closed)
                        times.append(thread_time() - t0)
                else:
                    reporters[0].report(closed)
                    times.append(thread_time() - start)
            results[work_name][f"report() alone: {name}"] = statistics.median(times) * 1e6

    print(
        f"sqlaudit OTel reporter cost per unit of work: Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}, OpenTelemetry SDK "
        f"{sdk_version}, {rounds} rounds x {per_round} units"
    )
    for work_name, medians in results.items():
        print(f"\n{work_name}")
        print(f"  {'variant':<32} {'µs/unit':>10} {'vs baseline':>12}")
        for name in variants:
            delta = medians[name] - medians[baselines[name]]
            shown = "" if name == baselines[name] else f"{delta:+10.1f}"
            print(f"  {name:<32} {medians[name]:>10.1f} {shown:>12}")
        for key, value in medians.items():
            if key.startswith(("report() alone", "in report()")):
                print(f"  {key:<32} {value:>10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    handle.remove()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
