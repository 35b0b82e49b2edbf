"""OpenTelemetry wiring: one manual server span per request, and where sqlaudit reports to it.

No ``opentelemetry-instrumentation-*`` package is needed: ``TracingMiddleware`` (pure ASGI)
opens a ``SERVER`` span around each HTTP request. It sits outside sqlaudit's middleware, so
the span is still current when the audit closes and its reporters run.

``audit_reporters()`` returns the reporters the middleware uses: findings logged on logger
``sqlaudit``, the span renamed after the route, and the report on the span through
``sqlaudit.otel.OTelReporter`` (attributes ``sqlaudit.query_count``, ``sqlaudit.finding_kinds``,
..., one ``sqlaudit.finding`` event per finding), or through ``SpanSummary``, a minimal
stand-in defined here, with an sqlaudit that has no ``sqlaudit.otel``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind

from sqlaudit.reporters import LogReporter

if TYPE_CHECKING:
    from sqlaudit import AuditReport
    from sqlaudit.reporters import Reporter

__all__ = [
    "RouteSpanName",
    "SpanSummary",
    "TracingMiddleware",
    "audit_reporters",
    "tracer_provider",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def tracer_provider(exporter: SpanExporter | None = None) -> TracerProvider:
    """A tracer provider exporting to ``exporter`` (console, in-memory, OTLP...), if any."""
    provider = TracerProvider()
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


class SpanSummary:
    """Stand-in for ``sqlaudit.otel.OTelReporter`` where it is missing: the report's totals
    and finding kinds on the current span, one event per finding."""

    def report(self, report: AuditReport) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("sqlaudit.unit", report.name)
        span.set_attribute("sqlaudit.query_count", report.query_count)
        span.set_attribute("sqlaudit.db_time_ms", round(report.db_time_ms, 3))
        span.set_attribute("sqlaudit.finding_kinds", sorted({f.kind for f in report.findings}))
        for finding in report.findings:
            span.add_event("sqlaudit.finding", {"kind": finding.kind, "fix": finding.fix})


class RouteSpanName:
    """Renames the current server span after the unit: ``GET /streams/{stream_id}``, the
    route template the middleware found, instead of the raw path it started with."""

    def report(self, report: AuditReport) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.update_name(report.name)


def audit_reporters(provider: TracerProvider) -> list[Reporter]:
    """Findings to the log; the report on the current span (``OTelReporter`` when this
    sqlaudit has ``sqlaudit.otel``, else ``SpanSummary``), the span named after the route."""
    reporters: list[Reporter] = [LogReporter(), RouteSpanName()]
    try:
        from sqlaudit.otel import OTelReporter
    except ImportError:  # an sqlaudit without its OpenTelemetry reporter
        reporters.append(SpanSummary())
    else:
        reporters.append(OTelReporter(tracer_provider=provider))
    return reporters


class TracingMiddleware:
    """A ``SERVER`` span around each HTTP request (other scopes pass through)."""

    def __init__(self, app: ASGIApp, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = f"{scope['method']} {scope['path']}"
        with self.tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", scope["method"])
            await self.app(scope, receive, send)
