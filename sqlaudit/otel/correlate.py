"""Find the statement spans a finding concerns (made by opentelemetry-instrumentation-sqlalchemy).

sqlaudit never makes a span per statement: that is the SQLAlchemy instrumentation's job, and
doing it twice would double every trace. To let a finding point at the statement spans it is
about, :class:`StatementSpans` (an SDK span processor, registered once per tracer provider)
remembers the CLIENT spans with a ``db.statement`` / ``db.query.text`` attribute that *end inside
an audit scope*: their start, end, statement text and span context, per outermost unit, at most
``max_records`` of them. ``on_end`` costs one ContextVar lookup for every other span.

:func:`match` then pairs each recorded statement with one remembered span: the same fingerprint
(the instrumentation's text may carry a sqlcommenter comment; the fingerprint drops comments)
and the nearest interval in time. Both clocks are the wall clock in the end: records are stamped
with ``perf_counter`` and converted with one ``time_ns() - perf_counter_ns()`` offset per report;
when the unit's statements and spans of one shape are equally many they pair one to one in
time order (immune to clock error); otherwise by nearest time, since the instrumentation's span
encloses sqlaudit's own timing of the same statement by microseconds.
"""

from __future__ import annotations

import bisect
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, SpanKind

from sqlaudit._internal import contain, fork_safe
from sqlaudit.capture.scope import Scope, current
from sqlaudit.otel.wiring import processor_for
from sqlaudit.report import scope_of
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord
    from sqlaudit.report import AuditReport

__all__ = ["SeenSpan", "StatementSpans", "match", "statement_spans_for"]

#: How far apart (ns) a span and a record of the same statement may be and still pair.
TOLERANCE_NS = 50_000_000
_STATEMENT_KEYS = ("db.query.text", "db.statement")


class SeenSpan(NamedTuple):
    """A statement span that ended inside an audit: times in Unix-epoch ns."""

    start: int
    end: int
    statement: str
    context: SpanContext


class StatementSpans(SpanProcessor):
    """Remembers statement spans that end inside an audit, per outermost unit of work."""

    def __init__(self) -> None:
        self._by_unit: weakref.WeakKeyDictionary[Scope, list[SeenSpan]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        fork_safe(self, "_lock")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Remember ``span`` if it is a statement span ending inside an audit scope.

        Errors are contained (logged once, counted on the report), as in every listener.
        """
        scope = current()
        if scope is None or span.kind is not SpanKind.CLIENT:
            return
        try:
            attributes = span.attributes or {}
            statement = next(
                (v for k in _STATEMENT_KEYS if isinstance(v := attributes.get(k), str)), None
            )
            context = span.context
            if statement is None or span.start_time is None or span.end_time is None:
                return
            if context is None:
                return
            root = scope
            while root.parent is not None:
                root = root.parent
            seen = self._by_unit.get(root)
            if seen is None:
                with self._lock:
                    seen = self._by_unit.setdefault(root, [])
            if len(seen) < root.config.max_records:
                seen.append(SeenSpan(span.start_time, span.end_time, statement, context))
        except Exception as exc:
            contain("otel.statement_spans", exc, scope)

    def spans(self, report: AuditReport) -> list[SeenSpan]:
        """The statement spans remembered for ``report``'s outermost unit."""
        root = scope_of(report)
        while root.parent is not None:
            root = root.parent
        return list(self._by_unit.get(root, ()))


def statement_spans_for(provider: object) -> StatementSpans | None:
    """The :class:`StatementSpans` of an SDK ``provider``, registered on first use; None for
    the API's providers (``sqlaudit.otel.wiring.processor_for``)."""
    return processor_for(provider, StatementSpans)


def match(
    records: Sequence[QueryRecord],
    indexes: Iterable[int],
    spans: Sequence[SeenSpan],
    offset_ns: int,
    tolerance_ns: int = TOLERANCE_NS,
) -> dict[int, SpanContext]:
    """Pair the records at ``indexes`` with statement spans of the same shape.

    Per shape, when the unit's records and the spans within the unit's time range are equally
    many, they pair one to one in time order, whatever the error of ``offset_ns``. Otherwise
    (spans from outside the unit, records past ``max_records``) each record takes the unused
    span of its shape nearest in time, within ``tolerance_ns``, or none.
    """
    wanted = set(indexes)
    if not wanted or not spans:
        return {}
    shapes = [fingerprint(record.sql, record.dialect) for record in records]
    # The spans are of the same engines' statements: read with the same dialect's rules.
    dialect = records[0].dialect if records else ""
    by_shape: dict[str, list[SeenSpan]] = {}
    for span in spans:
        by_shape.setdefault(fingerprint(span.statement, dialect), []).append(span)
    first = int(min(r.start for r in records) * 1e9) + offset_ns - tolerance_ns
    last = int(max(r.start + r.duration for r in records) * 1e9) + offset_ns + tolerance_ns
    paired: dict[int, SpanContext] = {}
    for shape in {shapes[i] for i in wanted}:
        same = sorted(
            (i for i, s in enumerate(shapes) if s == shape), key=lambda i: records[i].start
        )
        candidates = sorted(
            (s for s in by_shape.get(shape, ()) if first <= s.start <= last), key=lambda s: s.start
        )
        if len(same) == len(candidates):
            paired.update(
                (i, s.context) for i, s in zip(same, candidates, strict=True) if i in wanted
            )
        else:
            paired.update(_nearest(records, [i for i in same if i in wanted], candidates,
                                   offset_ns, tolerance_ns))  # fmt: skip
    return paired


def _nearest(
    records: Sequence[QueryRecord],
    indexes: Sequence[int],
    candidates: Sequence[SeenSpan],
    offset_ns: int,
    tolerance_ns: int,
) -> Iterator[tuple[int, SpanContext]]:
    """Each record (in time order) with the unused candidate nearest in time, if close enough."""
    starts = [s.start for s in candidates]
    used: set[int] = set()
    for index in indexes:
        record = records[index]
        begin = int(record.start * 1e9) + offset_ns
        end = begin + int(record.duration * 1e9)
        lo = bisect.bisect_left(starts, begin - tolerance_ns)
        hi = bisect.bisect_right(starts, begin + tolerance_ns)
        best, best_distance = -1, tolerance_ns + 1
        for position in range(lo, hi):
            span = candidates[position]
            distance = abs(span.start - begin) + abs(span.end - end)
            if position not in used and distance < best_distance:
                best, best_distance = position, distance
        if best >= 0:
            used.add(best)
            yield index, candidates[best].context
