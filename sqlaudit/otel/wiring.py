"""Tell when a request's or job's own span ended before sqlaudit reported: a wiring mistake.

The reporter puts a unit's attributes and findings on the span current when the unit closes.
That is the request's SERVER span (the job's CONSUMER span) only if the instrumentation that
made it is wired outside sqlaudit's: opened before the unit, ended after it. Wired inside,
the span ends while the unit is still open (``WSGIAuditMiddleware`` around
opentelemetry-instrumentation-wsgi's middleware; ``sqlaudit.flask.init_app`` called before
``FlaskInstrumentor().instrument_app``, whose teardown hook then runs first; sqlaudit's Celery
receivers connected after ``CeleryInstrumentor().instrument()``), and the unit would report
onto whatever is current then: nothing, so a span of its own in a new trace.

:class:`EntrySpans`, an SDK span processor registered once per tracer provider, remembers for
each open unit the last SERVER or CONSUMER span that ended inside it *without a local parent*:
the entry span of this process (a root, or the child of a remote parent: a ``traceparent``
header, a task message). Spans with a local parent (an in-process call to another service, an
eager Celery task inside a request) are someone else's and are ignored. The reporter asks only
for units an integration marked as a request or a job (``sqlaudit.report.entry``): a test's
own audit normally encloses the requests it makes. ``on_end`` costs a kind check for every
other span.
"""

from __future__ import annotations

import sys
import threading
import weakref
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind

from sqlaudit._internal import contain, fork_safe
from sqlaudit.capture.scope import Scope, current
from sqlaudit.report import scope_of

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["EndedSpan", "EntrySpans", "entry_spans_for", "processor_for"]

_ENTRY_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)


class EndedSpan(NamedTuple):
    """An entry span that ended inside an open unit."""

    context: SpanContext
    name: str
    kind: SpanKind
    #: Its ``http.route`` attribute, if any (for the metrics).
    route: str | None


class EntrySpans(SpanProcessor):
    """Remembers the entry spans that end while a unit of work is open, per unit."""

    def __init__(self) -> None:
        self._by_scope: weakref.WeakKeyDictionary[Scope, EndedSpan] = weakref.WeakKeyDictionary()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Remember ``span`` if it is an entry span ending inside an open unit (errors are
        contained, as in every listener)."""
        if span.kind not in _ENTRY_KINDS:
            return
        scope = current()
        if scope is None or scope.ended is not None:
            return
        try:
            parent = span.parent
            context = span.context
            if context is None or (parent is not None and not parent.is_remote):
                return
            route = (span.attributes or {}).get("http.route")
            self._by_scope[scope] = EndedSpan(
                context, span.name, span.kind, route if isinstance(route, str) else None
            )
        except Exception as exc:
            contain("otel.entry_spans", exc, scope)

    def ended(self, report: AuditReport) -> EndedSpan | None:
        """The entry span that ended while ``report``'s unit was open, if one did."""
        return self._by_scope.get(scope_of(report))


P = TypeVar("P", bound=SpanProcessor)
# provider -> {processor class: the instance registered on it}
_processors: weakref.WeakKeyDictionary[object, dict[type[SpanProcessor], SpanProcessor]] = (
    weakref.WeakKeyDictionary()
)
_processors_lock = threading.Lock()
fork_safe(sys.modules[__name__], "_processors_lock")


def processor_for(provider: object, kind: type[P]) -> P | None:
    """The ``kind`` processor registered on an SDK ``provider`` (made and registered on first
    use, once per provider and kind: every reporter on that provider shares it).

    None when ``provider`` is not an SDK TracerProvider (the API alone runs no processors).
    """
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return None
    with _processors_lock:
        registered = _processors.setdefault(provider, {})
        processor = registered.get(kind)
        if processor is None:
            processor = registered[kind] = kind()
            add(processor)
    return cast(P, processor)


def entry_spans_for(provider: object) -> EntrySpans | None:
    """The :class:`EntrySpans` of an SDK ``provider`` (see :func:`processor_for`)."""
    return processor_for(provider, EntrySpans)
