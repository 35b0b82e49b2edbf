"""Background jobs: a unit per Celery task run (a real worker thread on the real Redis broker,
and eager mode) reported onto the Celery instrumentation's CONSUMER span, and a unit per RQ job
run (a real ``SimpleWorker`` on Redis) reported onto the job's span; options, failures, policy."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import jobs_app
import pytest
from brokers import delete_prefixed, prefix, redis_url
from celery import Celery
from celery.contrib.testing.worker import start_worker
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.trace import SpanKind
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import JobStatus
from sqlalchemy import Engine, text
from timing import untimed
from traced import Traced, reported_on_own_span, sqlaudit_attributes, traced

import sqlaudit
import sqlaudit.jobs.celery
from sqlaudit import AuditFailed, ConfigError
from sqlaudit.jobs import JobAuditor
from sqlaudit.jobs.rq import audited_job_class

KINDS = {"query_budget", "repeated_query"}
# Celery's Redis result backend still calls redis-py's deprecated ``setex``.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated setex:DeprecationWarning")


@pytest.fixture
def otel() -> Iterator[Traced]:
    with traced() as sdk:
        yield sdk


@pytest.fixture
def audited(engine: Engine) -> Iterator[Engine]:
    handle = sqlaudit.instrument(engine)
    yield engine
    handle.remove()


@pytest.fixture
def instrumented_celery(otel: Traced) -> Iterator[None]:
    """The OpenTelemetry Celery instrumentation, on the test's tracer provider."""
    instrumentor = CeleryInstrumentor()
    yield
    instrumentor.uninstrument()


def celery_app(url: str, keys: str) -> Celery:
    """A Celery app on the Redis at ``url``, its queue and keys under ``keys``; in memory
    (for eager runs) with ``url="memory://"``."""
    backend = "cache+memory://" if url == "memory://" else url
    app = Celery("sqlaudit_tests", broker=url, backend=backend)
    app.conf.update(
        task_default_queue=keys,
        broker_transport_options={"global_keyprefix": f"{keys}:"},
        result_backend_transport_options={"global_keyprefix": f"{keys}:"},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app


def tasks(app: Celery, engine: Engine) -> tuple[Any, Any]:
    @app.task(name="reports.export", shared=False)
    def export(times: int) -> int:
        with engine.connect() as connection:
            for _ in range(times):
                connection.execute(text("SELECT 1"))
        return times

    @app.task(name="reports.broken", shared=False)
    def broken() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        raise RuntimeError("the task's own error")

    return export, broken


def connect(otel: Traced, **options: Any) -> sqlaudit.jobs.celery.CeleryAudit:
    settings: dict[str, Any] = {
        "budgets": {"reports.*": 1},
        "reporters": [otel.reporter()],
        **options,
    }
    return sqlaudit.jobs.celery.connect(untimed(), **settings)


# -- Celery ----------------------------------------------------------------------------------


def test_celery_worker_reports_on_the_consumer_span(
    audited: Engine, otel: Traced, instrumented_celery: None
) -> None:
    """A real worker thread on the Redis broker: the task run is one unit, its report on
    the instrumentation's CONSUMER span (``run/reports.export``), in the trace the producer
    started; the metrics count it under the task's name."""
    url, keys = redis_url(), prefix()
    app = celery_app(url, keys)
    export, _ = tasks(app, audited)
    integration = connect(otel, app=app)  # before the instrumentation, as the README says
    CeleryInstrumentor().instrument(tracer_provider=otel.provider)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            assert export.delay(3).get(timeout=30) == 3
    finally:
        integration.disconnect()
        delete_prefixed(url, keys)
    spans = otel.spans()
    consumer = reported_on_own_span(spans, SpanKind.CONSUMER, 3, KINDS)
    assert consumer.name == "run/reports.export"
    assert sqlaudit_attributes(consumer)["sqlaudit.unit"] == "reports.export"
    assert [s.kind for s in spans if s.kind is SpanKind.PRODUCER] == [SpanKind.PRODUCER]
    units = {dict(p.attributes)["sqlaudit.unit"] for p in otel.points("sqlaudit.unit.statements")}
    assert units == {"reports.export"}


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_celery_eager_failure_is_a_failing_unit(
    audited: Engine, otel: Traced, instrumented_celery: None
) -> None:
    """Eager mode (``task.apply()``): a task that raises is still one unit, reported on its
    span, and its own error is what the caller gets."""
    app = celery_app("memory://", prefix())
    _, broken = tasks(app, audited)
    integration = connect(otel, on_finding="raise", budgets={"reports.*": 0})
    CeleryInstrumentor().instrument(tracer_provider=otel.provider)
    try:
        result = broken.apply()
    finally:
        integration.disconnect()
    assert isinstance(result.result, RuntimeError)
    [consumer] = [s for s in otel.spans() if s.kind is SpanKind.CONSUMER]
    attributes = sqlaudit_attributes(consumer)
    assert attributes["sqlaudit.query_count"] == 1
    assert attributes["sqlaudit.finding_kinds"] == ("query_budget",)


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_celery_connected_after_the_instrumentation_warns(
    audited: Engine, otel: Traced, instrumented_celery: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Connected after ``CeleryInstrumentor().instrument()``, sqlaudit's ``task_postrun``
    receiver runs once the CONSUMER span ended: it warns, naming the fix, and reports onto a
    child of that span, in the task's trace."""
    app = celery_app("memory://", prefix())
    export, _ = tasks(app, audited)
    CeleryInstrumentor().instrument(tracer_provider=otel.provider)
    integration = connect(otel)
    try:
        with caplog.at_level(logging.WARNING, logger="sqlaudit"):
            assert export.apply(args=(3,)).get() == 3
    finally:
        integration.disconnect()
    assert any("before CeleryInstrumentor().instrument()" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    spans = otel.spans()
    [consumer] = [s for s in spans if s.kind is SpanKind.CONSUMER]
    [unit] = [s for s in spans if sqlaudit_attributes(s)]
    assert unit.parent == consumer.context
    assert sqlaudit_attributes(unit)["sqlaudit.query_count"] == 3


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_celery_options_choose_the_tasks(audited: Engine, otel: Traced) -> None:
    """``app`` limits the integration to one Celery app, ``exclude`` skips task names, and a
    task audited inside an open audit is a nested unit of it."""
    app, other = celery_app("memory://", prefix()), celery_app("memory://", prefix())
    export, _ = tasks(app, audited)
    elsewhere, _ = tasks(other, audited)
    collected: list[sqlaudit.AuditReport] = []

    class Keep:
        def report(self, report: sqlaudit.AuditReport) -> None:
            collected.append(report)

    integration = sqlaudit.jobs.celery.connect(untimed(), app=app, reporters=[Keep()])
    skipping = sqlaudit.jobs.celery.connect(exclude=["reports.*"], reporters=[Keep()])
    try:
        elsewhere.apply(args=(1,))
        assert collected == []
        with sqlaudit.audit("request", untimed(), reporters=[]) as outer:
            export.apply(args=(2,))
    finally:
        integration.disconnect()
        skipping.disconnect()
    [job] = collected
    assert job.name == "reports.export" and job.parent is outer
    assert outer.query_count == 2


def test_job_options_are_validated_when_set_up() -> None:
    """Bad job options fail at setup with a message naming the option and the value."""
    with pytest.raises(ConfigError, match="unknown job option"):
        JobAuditor(header=True)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="exclude must be job names or globs"):
        JobAuditor(exclude=["two words"])
    with pytest.raises(ConfigError, match="budgets keys must be a job name"):
        JobAuditor(budgets={"": 3})
    with pytest.raises(ConfigError, match="sample_rate"):
        sqlaudit.jobs.celery.connect(sample_rate=2.0)
    assert JobAuditor(budgets={"mail.*": 5, "reports.nightly": 50}).budget_for("mail.send") == 5


def test_sampled_out_jobs_are_not_audited() -> None:
    """``sample_rate=0``: no unit is opened."""
    assert JobAuditor(sample_rate=0.0).begin("reports.export") is None
    assert JobAuditor().begin("reports.export") is not None


# -- RQ --------------------------------------------------------------------------------------


@pytest.fixture
def rq_queue(audited: Engine) -> Iterator[tuple[Redis, Queue, str]]:
    url, keys = redis_url(), prefix()
    jobs_app.ENGINE = audited
    redis = Redis.from_url(url)
    try:
        yield redis, Queue(keys, connection=redis), keys
    finally:
        jobs_app.ENGINE = None
        delete_prefixed(url, keys)
        redis.close()


class BurstWorker(SimpleWorker):
    """rq's ``SimpleWorker`` without its command channel (a Redis pub/sub thread for "kill
    the horse" commands, which a burst run in a test never gets). With rq 3.0 and redis-py
    8.2 the worker's teardown waits for that thread with no timeout, and the thread sleeps in
    reads of up to 60 s: a CI run hung there. The jobs and their units are unchanged."""

    def subscribe(self) -> None:
        pass


def test_rq_worker_reports_each_job_on_its_span(
    rq_queue: tuple[Redis, Queue, str], otel: Traced
) -> None:
    """A real ``SimpleWorker`` on Redis with the audited job class: each run is one unit named
    after the job's function, reported onto the job's span; the queue needed no change."""
    redis, queue, keys = rq_queue
    job = queue.enqueue(jobs_app.export, 3, job_id=f"{keys}-export")
    job_class = audited_job_class(untimed(), budgets={"jobs_app.*": 1}, reporters=[otel.reporter()])
    worker = BurstWorker([queue], connection=redis, job_class=job_class, name=f"{keys}-worker")
    assert worker.work(burst=True)
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    span = reported_on_own_span(otel.spans(), SpanKind.INTERNAL, 3, KINDS)
    assert span.name == "jobs_app.export"


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_rq_job_errors_win_and_policy_fails_jobs(
    rq_queue: tuple[Redis, Queue, str], otel: Traced
) -> None:
    """A job that raises fails with its own error (its unit still reported); with
    ``on_finding="raise"`` a job over its budget fails with ``AuditFailed``."""
    redis, queue, keys = rq_queue
    broken = queue.enqueue(jobs_app.broken, job_id=f"{keys}-broken")
    over = queue.enqueue(jobs_app.export, 2, job_id=f"{keys}-over")
    job_class = audited_job_class(
        untimed(), on_finding="raise", budgets={"jobs_app.*": 1}, reporters=[otel.reporter()]
    )
    BurstWorker([queue], connection=redis, job_class=job_class, name=f"{keys}-w").work(burst=True)
    assert broken.get_status(refresh=True) == JobStatus.FAILED
    assert "the job's own error" in (broken.latest_result().exc_string or "")
    assert over.get_status(refresh=True) == JobStatus.FAILED
    assert AuditFailed.__name__ in (over.latest_result().exc_string or "")
    reported = {s.name: sqlaudit_attributes(s)["sqlaudit.query_count"] for s in otel.spans()}
    assert reported == {"jobs_app.broken": 1, "jobs_app.export": 2}
