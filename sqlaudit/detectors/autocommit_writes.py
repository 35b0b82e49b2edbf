"""``autocommit_writes``: several writes in one unit of work on an autocommit connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, own_transactions, unit_of
from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


class AutocommitWrites:
    """>= 2 writes in one transaction scope whose connection autocommits each statement.

    Read-only work on an autocommit engine is a recommended pattern and single writes are
    atomic anyway: neither is flagged; DDL is not a write here.
    """

    kind = "autocommit_writes"
    #: ``run_detectors`` skips it for a unit with no transaction with writes.
    needs = "tx_writes"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        for tx in own_transactions(unit, self.kind):
            if not tx.autocommit or tx.writes < 2:
                continue
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"autocommit: {tx.writes} writes in {unit_of(tx)} each committed on "
                    "their own; the work is not atomic and a failure half-way leaves it "
                    "half done"
                ),
                count=tx.writes,
                location=first(tx.begin_stack),
                fix=(
                    "run the writes in one transaction on an engine without "
                    "isolation_level='AUTOCOMMIT': `with engine.begin() as conn:` or "
                    "`with Session(engine) as session, session.begin():` (keep the "
                    "autocommit engine for read-only work)"
                ),
                db_time=tx.exec_time,
            )
