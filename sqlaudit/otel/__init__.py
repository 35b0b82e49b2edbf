"""OpenTelemetry: each unit's counts and findings on the request's span, metrics, optional spans.

The only sqlaudit modules importing opentelemetry are this one and its ``_otel_*`` helpers;
``import sqlaudit`` imports none of them. Install with ``pip install sqlaudit-middleware[otel]``
(``opentelemetry-api``; an SDK and exporters are the application's choice)::

    from sqlaudit.otel import OTelReporter
    with sqlaudit.audit("GET /users", reporters=[OTelReporter()]):
        ...

or, for a service, one call (instruments the engines, production thresholds, OTel + logging)::

    otel = sqlaudit.otel.setup(engine)
    with otel.audit("nightly-export"):
        ...

When the unit closes, the reporter puts on the *current* span, if one is recording (the
request's SERVER span of the standard HTTP instrumentation, the job's CONSUMER span of the
Celery one: the integrations close their units while that span is open), else on a span it
starts for the unit. If the request's or job's own span ended while its unit was still open
(the instrumentation wired inside sqlaudit's), it warns once and makes that span the parent of
its own, so that the report stays in the request's trace (``_otel_wiring``):

* ``sqlaudit.unit``, ``.query_count``, ``.db_time_ms``, ``.transaction_count``, ``.commit_count``,
  ``.rollback_count``, ``.finding_count``, ``.finding_kinds`` (see ``_otel_attrs``);
* one ``sqlaudit.finding`` event per finding (or a Logs-API event record with
  ``findings_as="logs"``, since span events are being deprecated upstream; ``"both"``);
* optionally one INTERNAL span per database transaction and one per N+1 burst (``_otel_spans``);

and records the ``sqlaudit.unit.statements`` / ``sqlaudit.unit.db_time`` histograms and the
``sqlaudit.findings`` counter (``_otel_metrics``), with the span's ``http.route`` if it has one.
A nested unit always gets its own span (its parent's attributes stay the parent's) and records
no metrics (its parent counts them).

With ``opentelemetry-instrumentation-sqlalchemy`` and an SDK tracer provider, each finding names
the statement spans it concerns: ``sqlaudit.finding.span_ids`` on the event (events cannot carry
links) and span links from the burst span (see ``_otel_correlate``). sqlaudit never makes a span
per statement.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlaudit
from sqlaudit._validate import check_bool
from sqlaudit.errors import ConfigError
from sqlaudit.otel.reporter import OTelReporter
from sqlaudit.reporters import LogReporter, Reporter

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["OTelReporter", "OTelSetup", "jsonl_tracer_provider", "setup"]


@dataclass(frozen=True)
class OTelSetup:
    """What :func:`setup` made: pass ``config`` and ``reporters`` to the middleware or audit."""

    config: sqlaudit.AuditConfig
    reporter: OTelReporter
    reporters: tuple[Reporter, ...]
    instrumentations: tuple[sqlaudit.Instrumentation, ...]

    def audit(self, name: str, **overrides: Any) -> sqlaudit.audit:
        """``sqlaudit.audit(name)`` with this setup's config and reporters."""
        return sqlaudit.audit(name, self.config, reporters=self.reporters, **overrides)

    def remove(self) -> None:
        """Remove the engines' instrumentation (the reporter holds no other resources)."""
        for instrumentation in self.instrumentations:
            instrumentation.remove()


def setup(
    *engines: Engine | AsyncEngine,
    config: sqlaudit.AuditConfig | None = None,
    log_findings: bool = True,
    **reporter_options: Any,
) -> OTelSetup:
    """One call for a service: instrument ``engines``, report to OpenTelemetry (and logging).

    ``config`` defaults to :meth:`AuditConfig.for_production`; ``reporter_options`` go to
    :class:`OTelReporter` (providers default to the global ones the application configured).
    With ``log_findings`` and ``on_finding="log"``, findings are logged on logger ``sqlaudit``
    too. A bad option is a ConfigError, raised before any engine is instrumented.
    """
    if config is None:
        config = sqlaudit.AuditConfig.for_production()
    elif not isinstance(config, sqlaudit.AuditConfig):
        raise ConfigError(f"config must be an AuditConfig, got {type(config).__name__}")
    known = set(inspect.signature(OTelReporter).parameters)
    unknown = sorted(set(reporter_options) - known)
    if unknown:
        raise ConfigError(
            f"unknown OTelReporter option(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    reporter = OTelReporter(**reporter_options)
    reporters: tuple[Reporter, ...] = (reporter,)
    existing = {h for engine in engines if (h := _instrumented(engine)) is not None}
    if check_bool("log_findings", log_findings) and config.on_finding == "log":
        reporters += (LogReporter(),)
    elif config.on_finding == "log":
        # on_finding="log" adds the log records to any reporters: "ignore" leaves them out.
        config = config.replace(on_finding="ignore")
    handles: list[sqlaudit.Instrumentation] = []
    try:
        for engine in engines:
            handles.append(sqlaudit.instrument(engine))
    except BaseException:
        # A bad engine further down the list: leave none of the earlier ones instrumented
        # by this call (handles that already existed are returned by instrument() again and
        # stay as they were).
        for handle in handles:
            if handle not in existing:
                handle.remove()
        raise
    return OTelSetup(config, reporter, reporters, tuple(handles))


def _instrumented(engine: Any) -> sqlaudit.Instrumentation | None:
    """The active instrumentation of ``engine`` if it has one (None for anything else)."""
    from sqlaudit.capture.instrumentation import _registry

    target = getattr(engine, "sync_engine", engine)
    try:
        handle = _registry.get(target)
    except TypeError:  # not weakly referenceable: not an engine
        return None
    return handle if handle is not None and handle.active else None


def jsonl_tracer_provider(
    path: str | os.PathLike[str], *, service_name: str = "sqlaudit-demo"
) -> SDKTracerProvider:
    """An SDK TracerProvider writing spans to ``path`` as OTLP/JSON lines (needs the SDK).

    See :func:`sqlaudit.otel.jsonl.jsonl_tracer_provider`.
    """
    from sqlaudit.otel.jsonl import jsonl_tracer_provider as make

    return make(path, service_name=service_name)
