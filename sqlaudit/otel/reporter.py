"""``OTelReporter``: one closed unit of work to OpenTelemetry (see :mod:`sqlaudit.otel`)."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from opentelemetry import metrics, trace
from opentelemetry._logs import LoggerProvider, LogRecord, SeverityNumber, get_logger
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TracerProvider

import sqlaudit
from sqlaudit._internal import logger
from sqlaudit._validate import check_bool, check_choice, check_int, check_provider
from sqlaudit.errors import ConfigError
from sqlaudit.model.findings import Severity
from sqlaudit.otel.attributes import (
    FINDING_EVENT,
    STATEMENT_EVENT,
    Semconv,
    epoch_offset_ns,
    finding_attributes,
    statement_events,
    unit_attributes,
)
from sqlaudit.otel.metrics import UnitMetrics
from sqlaudit.otel.spans import BURST_KINDS, burst_span, transaction_spans
from sqlaudit.report.entry import entry_kind

if TYPE_CHECKING:
    from opentelemetry.context import Context

    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import QueryRecord
    from sqlaudit.otel.correlate import StatementSpans
    from sqlaudit.otel.wiring import EndedSpan, EntrySpans
    from sqlaudit.report import AuditReport

__all__ = ["OTelReporter"]

FindingsAs = Literal["events", "logs", "both"]
_FINDINGS_AS = ("events", "logs", "both")
_SEVERITY_NUMBERS = {
    Severity.INFO: SeverityNumber.INFO,
    Severity.WARNING: SeverityNumber.WARN,
    Severity.ERROR: SeverityNumber.ERROR,
}
#: How to fix the wiring when the request's or job's span ended before its unit closed.
_REWIRE = {
    "request": (
        "wire the HTTP instrumentation outside sqlaudit: "
        "OpenTelemetryMiddleware(WSGIAuditMiddleware(app)) for WSGI; for Flask, "
        "sqlaudit.flask.init_app(app) after FlaskInstrumentor().instrument_app(app)"
    ),
    "job": (
        "connect sqlaudit's job integration first: sqlaudit.jobs.celery.connect() before "
        "CeleryInstrumentor().instrument()"
    ),
}


class OTelReporter:
    """Reports each closed unit of work to OpenTelemetry (a :class:`~sqlaudit.reporters.Reporter`).

    ``tracer_provider`` / ``meter_provider`` / ``logger_provider``: None means the global ones
    (resolved when used, so a provider set up later is honoured). ``findings_as``: ``"events"``
    (span events, the default), ``"logs"`` (Logs-API event records named ``sqlaudit.finding``,
    in the unit span's context), or ``"both"``. ``transaction_spans`` / ``burst_spans``: the
    optional INTERNAL spans. ``correlate``: name the statement spans of
    opentelemetry-instrumentation-sqlalchemy a finding concerns (SDK providers only).
    ``semconv``: ``"stable"``, ``"old"`` or ``"dup"``; None follows
    ``OTEL_SEMCONV_STABILITY_OPT_IN``. ``max_events``: findings reported per unit;
    ``max_links``: statement spans named per finding. ``statement_events``: the unit's first
    n statement shapes as ``sqlaudit.statement`` span events (fingerprint, count, DB time,
    call site; never a value), for ``sqlaudit report``'s statement lists; 0 (the default)
    exports none.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        logger_provider: LoggerProvider | None = None,
        findings_as: FindingsAs = "events",
        transaction_spans: bool = False,
        burst_spans: bool = False,
        correlate: bool = True,
        metrics: bool = True,
        semconv: Literal["stable", "old", "dup"] | None = None,
        max_events: int = 32,
        max_links: int = 32,
        statement_events: int = 0,
    ) -> None:
        check_provider("tracer_provider", tracer_provider, "get_tracer")
        check_provider("meter_provider", meter_provider, "get_meter")
        check_provider("logger_provider", logger_provider, "get_logger")
        check_choice("findings_as", findings_as, _FINDINGS_AS)
        check_int("max_events", max_events, 0)
        check_int("max_links", max_links, 0)
        self.statement_events = check_int("statement_events", statement_events, 0)
        if findings_as != "events" and "event_name" not in inspect.signature(LogRecord).parameters:
            raise ConfigError(
                f"findings_as={findings_as!r} needs an opentelemetry-api whose LogRecord takes "
                "event_name; upgrade opentelemetry-api or use findings_as='events'"
            )
        self.findings_as = findings_as
        self.transaction_spans = check_bool("transaction_spans", transaction_spans)
        self.burst_spans = check_bool("burst_spans", burst_spans)
        self.correlate = check_bool("correlate", correlate)
        self.semconv = Semconv.resolve(semconv)
        self.max_events = max_events
        self.max_links = max_links
        version = sqlaudit.__version__
        self._tracer_provider = tracer_provider
        self._tracer = trace.get_tracer("sqlaudit", version, tracer_provider)
        self._metrics = (
            UnitMetrics(_get_meter(version, meter_provider))
            if check_bool("metrics", metrics)
            else None
        )
        self._logger = (
            get_logger("sqlaudit", version, logger_provider) if findings_as != "events" else None
        )
        self._statement_spans: StatementSpans | None = None
        self._entry_spans: EntrySpans | None = None
        self._warned: set[str] = set()
        self._register()

    def _register(self) -> None:
        """Register the statement-span index and the entry-span watch (``_otel_wiring``) on an
        SDK tracer provider (once per provider)."""
        if self._entry_spans is not None:
            return
        provider = self._tracer_provider
        if provider is None:
            provider = trace.get_tracer_provider()
        if not hasattr(provider, "add_span_processor"):
            return  # the API's no-op or proxy provider: no spans to watch (yet)
        try:
            from sqlaudit.otel.correlate import statement_spans_for
            from sqlaudit.otel.wiring import entry_spans_for
        except ImportError:  # opentelemetry-sdk is not installed
            self.correlate = False
            return
        if self.correlate:
            self._statement_spans = statement_spans_for(provider)
        self._entry_spans = entry_spans_for(provider)

    def report(self, report: AuditReport) -> None:
        """Put ``report`` on the current (or its own) span, emit findings, record metrics."""
        self._register()
        offset = epoch_offset_ns()
        records = report.statements
        current = trace.get_current_span()
        entry = self._ended_entry(report)
        own = report.parent is not None or not current.is_recording() or entry is not None
        attrs = unit_attributes(report)
        ended = report.ended if report.ended is not None else report.started + report.duration
        parent: Context | None = None
        if entry is not None:
            # In the request's (job's) own trace, under the span that ended too early.
            parent = trace.set_span_in_context(NonRecordingSpan(entry.context))
        span: Span
        if own:
            span = self._tracer.start_span(
                report.name,
                context=parent,
                kind=SpanKind.INTERNAL,
                attributes=attrs,
                start_time=int(report.started * 1e9) + offset,
            )
        else:
            span = current
            span.set_attributes(attrs)
        try:
            self._emit(report, records, span, offset)
        finally:
            if own:
                span.end(end_time=int(ended * 1e9) + offset)
        if self._metrics is not None and report.parent is None:
            self._metrics.record(report, entry.route if entry is not None else _route(current))

    def _ended_entry(self, report: AuditReport) -> EndedSpan | None:
        """The span of ``report``'s request or job if it ended before the unit closed (the
        instrumentation wired inside sqlaudit's), with a warning the first time."""
        kind = entry_kind(report)
        if kind is None or self._entry_spans is None:
            return None
        entry = self._entry_spans.ended(report)
        if entry is not None and kind in _REWIRE and kind not in self._warned:
            self._warned.add(kind)
            logger.warning(
                "sqlaudit: the %s span %r ended before the unit of work %r closed, so its "
                "sqlaudit.* attributes and findings went to a child span of it instead "
                "(warned once): %s; see the README, OpenTelemetry",
                entry.kind.name,
                entry.name,
                report.name,
                _REWIRE[kind],
            )
        return entry

    def _emit(
        self, report: AuditReport, records: Sequence[QueryRecord], span: Span, offset: int
    ) -> None:
        context = trace.set_span_in_context(span)
        findings = report.findings[: self.max_events]
        paired = self._pair(report, records, findings, offset)
        own_trace = span.get_span_context().trace_id
        fallback_time = int(report.started * 1e9) + offset
        for finding in findings:
            indexes = finding.statements[: self.max_links]
            span_ids = [
                format(paired[i].span_id, "016x")
                for i in indexes
                if i in paired and paired[i].trace_id == own_trace
            ]
            attrs = finding_attributes(
                finding,
                records,
                self.semconv,
                include_sql=report.config.include_sql,
                span_ids=span_ids,
            )
            when = (
                int(records[finding.statements[0]].start * 1e9) + offset
                if finding.statements
                else fallback_time
            )
            if self.findings_as != "logs":
                span.add_event(FINDING_EVENT, attrs, timestamp=when)
            if self._logger is not None:
                self._logger.emit(
                    LogRecord(
                        timestamp=when,
                        context=context,
                        severity_number=_SEVERITY_NUMBERS[finding.severity],
                        severity_text=str(finding.severity).upper(),
                        body=finding.headline,
                        attributes=attrs,
                        event_name=FINDING_EVENT,
                    )
                )
            if self.burst_spans and finding.kind in BURST_KINDS:
                burst_span(
                    self._tracer, context, finding.kind, records, finding.statements,
                    attrs, paired, offset, self.max_links,
                )  # fmt: skip
        if self.transaction_spans:
            transaction_spans(self._tracer, context, report, records, self.semconv, offset)
        if self.statement_events:
            shapes, total = statement_events(records, self.semconv, self.statement_events)
            span.set_attribute("sqlaudit.statement_shape_count", total)
            for start, attrs in shapes:
                span.add_event(STATEMENT_EVENT, attrs, timestamp=int(start * 1e9) + offset)

    def _pair(
        self,
        report: AuditReport,
        records: Sequence[QueryRecord],
        findings: Sequence[Finding],
        offset: int,
    ) -> dict[int, SpanContext]:
        """Statement spans of the findings' statements, by record index (may be empty)."""
        if self._statement_spans is None:
            return {}
        seen = self._statement_spans.spans(report)
        if not seen:
            return {}
        from sqlaudit.otel.correlate import match

        wanted: set[int] = set()
        for finding in findings:
            wanted.update(finding.statements[: self.max_links])
        return match(records, wanted, seen, offset)


def _get_meter(version: str, provider: MeterProvider | None) -> metrics.Meter:
    return metrics.get_meter("sqlaudit", version, provider)


def _route(span: Span) -> str | None:
    """``http.route`` of the request span, when its SDK span exposes attributes."""
    attributes = getattr(span, "attributes", None)
    route = attributes.get("http.route") if attributes is not None else None
    return route if isinstance(route, str) else None
