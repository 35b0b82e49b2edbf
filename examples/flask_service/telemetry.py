"""OpenTelemetry wiring: one manual server span per request, and where sqlaudit reports to it.

No ``opentelemetry-instrumentation-*`` package is needed: ``TracingMiddleware`` opens a
``SERVER`` span around each request and keeps it current until the response body is done, so
that sqlaudit's reporters, which run when the audit closes (after the body), find it with
``trace.get_current_span()``.

``audit_reporters()`` returns the reporters the middleware uses: findings logged on logger
``sqlaudit``, the span renamed after the route, and the report on the span through
``sqlaudit.otel.OTelReporter`` (attributes ``sqlaudit.query_count``, ``sqlaudit.finding_kinds``,
..., one ``sqlaudit.finding`` event per finding), or through ``SpanSummary``, a minimal
stand-in defined here, with an sqlaudit that has no ``sqlaudit.otel``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from sqlaudit.reporters import LogReporter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from sqlaudit import AuditReport
    from sqlaudit.reporters import Reporter

__all__ = [
    "RouteSpanName",
    "SpanSummary",
    "TracingMiddleware",
    "audit_reporters",
    "tracer_provider",
]


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
    """Renames the current server span after the unit: ``GET /streams/<int:stream_id>``, the
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
    """A ``SERVER`` span per request, current while the app runs and while its body is sent."""

    def __init__(self, app: WSGIApplication, tracer: trace.Tracer) -> None:
        self.app = app
        self.tracer = tracer

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        method = environ.get("REQUEST_METHOD", "GET")
        span = self.tracer.start_span(
            f"{method} {environ.get('PATH_INFO', '/')}", kind=SpanKind.SERVER
        )
        span.set_attribute("http.request.method", method)
        token = context.attach(trace.set_span_in_context(span))
        try:
            body = self.app(environ, start_response)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR))
            span.end()
            raise
        finally:
            context.detach(token)
        return _SpanBody(body, span)


class _SpanBody:
    """The app's body with the span current around each chunk; the span ends with the body
    (exhausted or closed, whichever comes first, as OpenTelemetry's WSGI middleware does)."""

    def __init__(self, body: Iterable[bytes], span: trace.Span) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._span = span
        self._ended = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = context.attach(trace.set_span_in_context(self._span))
        try:
            if self._iterator is None:
                self._iterator = iter(self._body)
            return next(self._iterator)
        except StopIteration:
            self._end()
            raise
        finally:
            context.detach(token)

    def close(self) -> None:
        token = context.attach(trace.set_span_in_context(self._span))
        try:
            self._end()
        finally:
            context.detach(token)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._span.end()
