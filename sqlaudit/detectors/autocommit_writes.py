"""``autocommit_writes``: several writes in one unit of work on an autocommit connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, own_transactions, unit_of
from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


class AutocommitWrites:
    """>= 2 writes in one unit of work (a request, a job, a test) that each committed on their
    own on autocommit connections, in one checkout or session or in several (repository
    methods that each take their own connection): the unit's work is not atomic.

    Read-only work on an autocommit engine is a recommended pattern and a single write is
    atomic anyway: neither is flagged; DDL is not a write here.
    """

    kind = "autocommit_writes"
    #: ``run_detectors`` skips it for a unit with no transaction with writes.
    needs = "tx_writes"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        txs = [tx for tx in own_transactions(unit, self.kind) if tx.autocommit and tx.writes]
        writes = sum(tx.writes for tx in txs)
        if writes < 2:
            return
        where = (
            unit_of(txs[0])
            if len(txs) == 1
            else f"{len(txs)} connection checkouts or sessions of one unit of work"
        )
        yield Finding(
            kind=self.kind,
            severity=Severity.WARNING,
            message=(
                f"autocommit: {writes} writes in {where}, each committed on its own; the work "
                "is not atomic and a failure half-way leaves it half done"
            ),
            count=writes,
            location=first(txs[0].begin_stack),
            fix=(
                "run the unit's writes in one transaction on an engine without "
                "isolation_level='AUTOCOMMIT': `with engine.begin() as conn:` or "
                "`with Session(engine) as session, session.begin():`, passing that connection "
                "or session to the functions that write (keep the autocommit engine for "
                "read-only work)"
            ),
            db_time=sum(tx.exec_time for tx in txs),
            stack=txs[0].begin_stack,
        )
