"""``ineffective_rollback``: a rollback after writes on an autocommit connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, own_transactions
from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


class IneffectiveRollback:
    """The code rolled back (explicitly, or because an exception left a ``begin()`` block)
    but every write was already committed by autocommit: nothing was undone."""

    kind = "ineffective_rollback"
    #: ``run_detectors`` skips it for a unit with no transaction with writes.
    needs = "tx_writes"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        for tx in own_transactions(unit, self.kind):
            if not tx.autocommit or not tx.writes:
                continue
            if tx.end not in ("rollback", "rollback_exception"):
                continue
            when = " while handling an exception" if tx.end == "rollback_exception" else ""
            yield Finding(
                kind=self.kind,
                severity=Severity.ERROR,
                message=(
                    f"ineffective rollback{when}: {tx.writes} write(s) on an autocommit "
                    "connection were already committed and stay in the database"
                ),
                count=tx.writes,
                location=first(tx.end_stack) or first(tx.begin_stack),
                fix=(
                    "do the writes in a real transaction (an engine or connection without "
                    "isolation_level='AUTOCOMMIT', `with engine.begin():` / "
                    "`session.begin()`), so that rollback() undoes them"
                ),
                db_time=tx.exec_time,
            )
