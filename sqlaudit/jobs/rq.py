"""``sqlaudit.jobs.rq``: one unit of work per RQ job run.

RQ has no signals: a worker runs each job through ``Job.perform()`` (in its work horse: a
forked child for ``Worker``, the worker's own process for ``SimpleWorker``). The job class of
:func:`audited_job_class` runs ``perform`` inside the job's unit, named after the job's
function (``"reports.export"``)::

    # myapp/jobs.py
    from sqlaudit.jobs.rq import audited_job_class
    from sqlaudit.otel import OTelReporter

    AuditedJob = audited_job_class(reporters=[OTelReporter()])

and give it to the worker: ``rq worker --job-class myapp.jobs.AuditedJob``, or
``Worker(queues, connection=redis, job_class=AuditedJob)``. The queue that enqueues needs no
change: the job class only decides how the worker runs what it dequeued.

RQ has no OpenTelemetry instrumentation among the official ones, so the job's span is usually
the one ``OTelReporter`` makes for the unit, named after it; when a span is current and
recording (a tracing wrapper of the user's own), the unit reports onto it as a request's does.
A job that raises fails as before (its exception wins); with ``on_finding="raise"`` a job
whose findings reach ``fail_on`` fails with ``AuditFailed``. Only this module imports RQ.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rq.job import Job

from sqlaudit.jobs import JobAuditor

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from sqlaudit.jobs import JobOptions
    from sqlaudit.model.config import AuditConfig

__all__ = ["audited_job_class"]


def audited_job_class(
    config: AuditConfig | None = None, **options: Unpack[JobOptions]
) -> type[Job]:
    """A subclass of RQ's ``Job`` whose runs are audited, one unit per run.

    ``config`` and ``options``: see :class:`sqlaudit.jobs.JobOptions`; validated here.
    """
    auditor = JobAuditor(config, **options)

    class AuditedJob(Job):
        """RQ's ``Job``; ``perform`` runs inside the job's unit of work (sqlaudit)."""

        #: The validated options; opens and closes each run's unit.
        sqlaudit_auditor = auditor

        def perform(self) -> Any:
            name = self.func_name if isinstance(self.func_name, str) else "rq.job"
            return auditor.run(name, super().perform)

    return AuditedJob
