"""``Traced``: the real OpenTelemetry SDK with in-memory exporters, and the check that a unit's
report landed on the request's (job's) own span, in its own trace."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from sqlaudit.otel import OTelReporter


@dataclass
class Traced:
    """SDK tracer and meter providers with in-memory exporters."""

    provider: TracerProvider
    exporter: InMemorySpanExporter
    meters: MeterProvider
    reader: InMemoryMetricReader

    def reporter(self, **options: Any) -> OTelReporter:
        return OTelReporter(self.provider, self.meters, **options)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """The data points of the metric ``name``."""
        data = self.reader.get_metrics_data()
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


@contextmanager
def traced() -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    try:
        yield Traced(provider, exporter, meters, reader)
    finally:
        provider.shutdown()
        meters.shutdown()


def sqlaudit_attributes(span: ReadableSpan) -> dict[str, Any]:
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("sqlaudit.")}


def reported_on_own_span(
    spans: list[ReadableSpan], kind: SpanKind, queries: int, kinds: set[str]
) -> ReadableSpan:
    """The one span of ``kind`` (the request's SERVER span, the job's CONSUMER span) carries
    the unit's attributes and one event per finding; every span is in its trace (no extra
    trace) and no other span carries sqlaudit's attributes (no extra span). Returns it."""
    [entry] = [s for s in spans if s.kind is kind]
    attributes = sqlaudit_attributes(entry)
    assert attributes["sqlaudit.query_count"] == queries, attributes
    assert kinds <= set(attributes["sqlaudit.finding_kinds"]), attributes
    assert attributes["sqlaudit.finding_count"] == len(attributes["sqlaudit.finding_kinds"])
    events = [e for e in entry.events if e.name == "sqlaudit.finding"]
    assert [(e.attributes or {})["sqlaudit.finding.kind"] for e in events] == list(
        attributes["sqlaudit.finding_kinds"]
    )
    assert entry.context is not None
    assert {s.context.trace_id for s in spans if s.context is not None} == {entry.context.trace_id}
    assert [s.name for s in spans if s is not entry and sqlaudit_attributes(s)] == []
    return entry
