"""``discarded_writes``: writes rolled back because nobody committed."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, own_transactions
from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


class DiscardedWrites:
    """A transaction with writes that ended by its connection or session closing.

    Not flagged: an explicit ``rollback()``, a rollback because an exception propagated, a
    transaction the audited code did not begin (a test fixture's outer transaction).
    """

    kind = "discarded_writes"
    #: ``run_detectors`` skips it for a unit with no transaction with writes.
    needs = "tx_writes"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        for tx in own_transactions(unit, self.kind):
            if tx.end != "closed" or not tx.writes or tx.autocommit is not False:
                continue
            what = "the session was closed" if tx.source == "orm" else "the connection was closed"
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"discarded writes: {tx.writes} write(s) rolled back because {what} "
                    "without commit"
                ),
                count=tx.writes,
                location=first(tx.end_stack) or first(tx.begin_stack),
                fix=(
                    "commit before closing (`conn.commit()` / `session.commit()`), or use "
                    "`with engine.begin() as conn:` / `with session.begin():`, which commit "
                    "on success; call rollback() explicitly if discarding is intended"
                ),
                db_time=tx.exec_time,
            )
