"""Entry units: the units of work that stand for one span of their own.

An HTTP request is the work of its server's SERVER span, a background job the work of its
worker's CONSUMER span (or of the span sqlaudit makes for it when nothing traces the job). The
middlewares and job integrations mark the units they open with :func:`mark`; reporters read it
with :func:`entry_kind`. ``sqlaudit.otel`` uses it to tell a wiring mistake (that span ended
while the unit was still open: the instrumentation was wired inside sqlaudit's) from a unit
that merely encloses other services' spans (a test auditing a request, a job calling an
in-process service), which is normal.

A registry rather than an attribute of :class:`~sqlaudit.AuditReport`: it is internal, and the
public report stays the same for every kind of unit.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["EntryKind", "entry_kind", "mark"]

#: ``"request"``: an HTTP request (SERVER span); ``"job"``: a background job (CONSUMER span);
#: ``"streamed"``: a request whose streamed body runs after its framework ended the span
#: (Flask tears a request down before a ``stream_with_context`` body runs), so the span ending
#: first is expected, not a wiring mistake.
EntryKind = Literal["request", "job", "streamed"]

_entries: weakref.WeakKeyDictionary[AuditReport, EntryKind] = weakref.WeakKeyDictionary()


def mark(report: AuditReport, kind: EntryKind) -> None:
    """Record that ``report`` is the unit of one request or job (held weakly)."""
    _entries[report] = kind


def entry_kind(report: AuditReport) -> EntryKind | None:
    """``"request"`` or ``"job"`` for a unit an integration opened, else None."""
    return _entries.get(report)
