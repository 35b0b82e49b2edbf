"""sqlaudit's metrics: statements, DB time and transaction control per unit (histograms),
findings (a counter).

* ``sqlaudit.unit.statements`` (``{statement}``; Prometheus ``sqlaudit_unit_statements``):
  histogram of statements per unit, attributes unit, route, worst finding kind;
* ``sqlaudit.unit.db_time`` (``s``; Prometheus ``sqlaudit_unit_db_time_seconds``): histogram
  of seconds spent executing SQL per unit, same attributes;
* ``sqlaudit.findings`` (``{finding}``; Prometheus ``sqlaudit_findings_total``): counter of
  findings, attributes unit, route, finding kind, severity;
* ``sqlaudit.unit.transaction_control`` (``{round_trip}``; Prometheus
  ``sqlaudit_unit_transaction_control``): histogram of round trips spent on
  BEGIN/COMMIT/ROLLBACK/SAVEPOINT per unit (estimated per dialect), same attributes as the
  other histograms: with ``sqlaudit.unit.statements`` it gives the share of transaction
  control per route.

``sqlaudit.unit`` is the audit's name and ``http.route`` the route of the request span when the
user's HTTP instrumentation set one: both must be templates (``GET /users/{id}``), never raw
paths, or the series multiply. On the histograms ``sqlaudit.finding.kind`` is the kind of the
unit's worst finding, ``"none"`` for a clean unit (one value per unit, so nothing is counted
twice), which lets a dashboard compare the statement counts of clean and faulty requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opentelemetry.metrics import Meter

from sqlaudit.otel.attributes import Attributes

if TYPE_CHECKING:
    from sqlaudit.report import AuditReport

__all__ = ["INSTRUMENTS", "UnitMetrics"]

#: (name, unit, description) of every instrument, for documentation and the dashboard test.
INSTRUMENTS = (
    ("sqlaudit.unit.statements", "{statement}", "SQL statements issued per unit of work"),
    ("sqlaudit.unit.db_time", "s", "Seconds spent executing SQL per unit of work"),
    ("sqlaudit.findings", "{finding}", "sqlaudit findings reported"),
    (
        "sqlaudit.unit.transaction_control",
        "{round_trip}",
        "Round trips spent on BEGIN/COMMIT/ROLLBACK/SAVEPOINT per unit of work",
    ),
)
_STATEMENT_BUCKETS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)
_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class UnitMetrics:
    """The instruments, made once per reporter from its meter."""

    def __init__(self, meter: Meter) -> None:
        statements, db_time, findings, control = INSTRUMENTS
        (s_name, s_unit, s_doc), (t_name, t_unit, t_doc) = statements, db_time
        (f_name, f_unit, f_doc), (c_name, c_unit, c_doc) = findings, control
        self.statements = meter.create_histogram(
            s_name, unit=s_unit, description=s_doc,
            explicit_bucket_boundaries_advisory=_STATEMENT_BUCKETS,
        )  # fmt: skip
        self.db_time = meter.create_histogram(
            t_name, unit=t_unit, description=t_doc,
            explicit_bucket_boundaries_advisory=_TIME_BUCKETS,
        )  # fmt: skip
        self.findings = meter.create_counter(f_name, unit=f_unit, description=f_doc)
        self.control = meter.create_histogram(
            c_name, unit=c_unit, description=c_doc,
            explicit_bucket_boundaries_advisory=_STATEMENT_BUCKETS,
        )  # fmt: skip

    def record(self, report: AuditReport, route: str | None) -> None:
        """Record one closed unit."""
        base: Attributes = {"sqlaudit.unit": report.name}
        if route:
            base["http.route"] = route
        worst = report.findings[0].kind if report.findings else "none"
        unit_attrs = {**base, "sqlaudit.finding.kind": worst}
        self.statements.record(report.query_count, unit_attrs)
        self.db_time.record(report.db_time, unit_attrs)
        self.control.record(report.round_trips[0], unit_attrs)
        for finding in report.findings:
            self.findings.add(
                1,
                {
                    **base,
                    "sqlaudit.finding.kind": finding.kind,
                    "sqlaudit.finding.severity": str(finding.severity),
                },
            )
