"""``transaction_overhead`` (info): round trips spent on transaction control."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord

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


class TransactionOverhead:
    """Info: transaction control takes >= ``transaction_overhead_ratio`` of round trips."""

    kind = "transaction_overhead"
    #: ``run_detectors`` skips it for a unit with no transactions.
    needs = "transactions"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        ratio = unit.config.transaction_overhead_ratio
        if ratio is None or not unit.transaction_records:
            return
        dialect = unit.transaction_records[0].dialect
        if dialect not in _FIXES:
            return  # embedded SQLite: no round trips to save
        control, statements = unit.round_trips
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
