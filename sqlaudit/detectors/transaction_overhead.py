"""``transaction_overhead`` (info): round trips spent on transaction control."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.records import StatementKind

if TYPE_CHECKING:
    from sqlaudit.capture.scope import AuditReport
    from sqlaudit.model.records import QueryRecord

_FIXES = {
    "mysql": (
        "PyMySQL sends COMMIT per transaction and the pool a ROLLBACK on every return: serve "
        "read-only requests from an autocommit engine "
        "(engine.execution_options(isolation_level='AUTOCOMMIT')) created with "
        "skip_autocommit_rollback=True (SQLAlchemy >= 2.0.43), and group writes into one "
        "transaction per request"
    ),
    "postgresql": (
        "psycopg wraps even reads in BEGIN ... ROLLBACK: serve read-only requests from an "
        "autocommit engine (isolation_level='AUTOCOMMIT') created with "
        "skip_autocommit_rollback=True (SQLAlchemy >= 2.0.43), and group writes into one "
        "transaction per request"
    ),
}


def control_round_trips(report: AuditReport) -> tuple[int, int]:
    """(transaction-control round trips, statement round trips) of the unit, estimated per
    dialect: COMMIT/ROLLBACK per transaction, BEGIN on PostgreSQL, the pool's reset ROLLBACK
    per connection returned, and SAVEPOINT/RELEASE statements."""
    counts = report.counts
    control = counts.get(StatementKind.TRANSACTION, 0)
    statements = report.query_count
    dialect = ""
    for tx in report.transaction_records:
        dialect = dialect or tx.dialect
        if not tx.statements or tx.autocommit:
            continue
        if tx.end != "open":
            control += 1  # COMMIT or ROLLBACK (also when a close ended it)
        if tx.dialect == "postgresql":
            control += 1  # BEGIN
    control += report.resets
    return control, statements


class TransactionOverhead:
    """Info: transaction control takes >= ``transaction_overhead_ratio`` of round trips."""

    kind = "transaction_overhead"
    #: ``run_detectors`` skips it for a unit with no transactions.
    _needs = "transactions"

    def detect(self, report: AuditReport, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        ratio = report.config.transaction_overhead_ratio
        if ratio is None or not report.transaction_records:
            return
        dialect = report.transaction_records[0].dialect
        if dialect not in _FIXES:
            return  # embedded SQLite: no round trips to save
        control, statements = control_round_trips(report)
        total = control + statements
        if total < 2 or control < ratio * total:
            return
        yield Finding(
            kind=self.kind,
            severity=Severity.INFO,
            message=(
                f"transaction overhead: about {control} of {total} round trips are "
                "transaction control (BEGIN/COMMIT/ROLLBACK/SAVEPOINT), not statements"
            ),
            count=control,
            location=None,
            fix=_FIXES[dialect],
        )
