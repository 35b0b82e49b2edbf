"""``sqlaudit.jobs.celery``: one unit of work per Celery task run, on the task's own span.

::

    import sqlaudit.jobs.celery
    from sqlaudit.otel import OTelReporter

    sqlaudit.jobs.celery.connect(reporters=[OTelReporter()])   # where the Celery app is made
    # then, in the worker (e.g. a worker_process_init receiver):
    CeleryInstrumentor().instrument()

Celery sends ``task_prerun`` before a task runs and ``task_postrun`` after it (with its
``state``), both in the thread that runs it (``celery.app.trace.build_tracer``), in eager mode
(``task.apply()``, ``task_always_eager``) too. sqlaudit opens the task's unit, named after the
task (``"reports.export"``), in its ``task_prerun`` receiver and makes it current in that thread;
its ``task_postrun`` receiver closes it: detectors, reporters, policy. A state other than
``SUCCESS`` (``FAILURE``, ``RETRY``, ``REJECTED``, ``IGNORED``) counts as a failing job.

The OpenTelemetry Celery instrumentation opens the task's CONSUMER span (``run/<task name>``)
in a ``task_prerun`` receiver and ends it in a ``task_postrun`` receiver
(``CeleryInstrumentor._trace_prerun`` / ``_trace_postrun``). Celery calls receivers in the order
they were connected (``celery.utils.dispatch.Signal.send``), so connect sqlaudit *first*: its
``task_postrun`` receiver then runs while that span is still open and current, and the
attributes and findings land on it. Connected after, it runs once the span ended; sqlaudit.otel
then warns and reports onto a child of that span, in the job's trace.

With ``on_finding="raise"``, ``AuditFailed`` is raised from the ``task_postrun`` receiver:
Celery's signal dispatch logs it ("Signal handler ... raised") and the task's outcome stays as
it was. Only this module imports Celery.
"""

from __future__ import annotations

import contextlib
import threading
from contextvars import Token
from typing import TYPE_CHECKING, Any

from celery import signals

from sqlaudit.capture.scope import CURRENT, Scope
from sqlaudit.jobs import JobAuditor
from sqlaudit.report import scope_of

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from sqlaudit.jobs import JobOptions
    from sqlaudit.model.config import AuditConfig
    from sqlaudit.report import AuditReport

__all__ = ["CeleryAudit", "connect"]


def connect(
    config: AuditConfig | None = None, *, app: Any = None, **options: Unpack[JobOptions]
) -> CeleryAudit:
    """Audit every Celery task run from now on (of ``app`` only, if given); returns the
    connected :class:`CeleryAudit` (``.disconnect()`` undoes it).

    ``config`` and ``options``: see :class:`sqlaudit.jobs.JobOptions`; validated here.
    """
    integration = CeleryAudit(config, app=app, **options)
    integration.connect()
    return integration


class CeleryAudit:
    """The ``task_prerun`` / ``task_postrun`` receivers of one configuration."""

    def __init__(
        self, config: AuditConfig | None = None, *, app: Any = None, **options: Unpack[JobOptions]
    ) -> None:
        #: The validated options; opens and closes each task's unit.
        self.auditor = JobAuditor(config, **options)
        self.app = app
        # The units of the task runs in progress, by task id (prerun and postrun of one run
        # happen in one thread; different runs may overlap in a threads or gevent pool).
        self._running: dict[str, tuple[AuditReport, Token[Scope | None]]] = {}
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Connect the receivers (strongly referenced: they live as long as this object)."""
        signals.task_prerun.connect(self.prerun, weak=False)
        signals.task_postrun.connect(self.postrun, weak=False)

    def disconnect(self) -> None:
        """Disconnect the receivers; task runs in progress are closed by nothing."""
        signals.task_prerun.disconnect(self.prerun)
        signals.task_postrun.disconnect(self.postrun)

    def prerun(self, sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
        """``task_prerun`` receiver: open the task's unit and make it current."""
        task = task if task is not None else sender
        if task is None or task_id is None:
            return
        if self.app is not None and getattr(task, "app", None) is not self.app:
            return
        report = self.auditor.begin(str(getattr(task, "name", None) or "celery.task"))
        if report is None:
            return
        token = CURRENT.set(scope_of(report))
        with self._lock:
            self._running[str(task_id)] = (report, token)

    def postrun(self, sender: Any = None, task_id: Any = None, state: Any = None, **_: Any) -> None:
        """``task_postrun`` receiver: close the task's unit (``AuditFailed`` propagates to
        Celery's signal dispatch, which logs it)."""
        if task_id is None:
            return
        with self._lock:
            running = self._running.pop(str(task_id), None)
        if running is None:
            return
        report, token = running
        # Reset in another context than it was set in (a pool running prerun and postrun in
        # different ones): ContextVar.reset raises ValueError; as audit() does, go on.
        with contextlib.suppress(ValueError):
            CURRENT.reset(token)
        self.auditor.finish(report, failing=state != "SUCCESS")
