"""``long_transaction``: a transaction held open too long, idle inside, or never ended."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, ms, own_transactions
from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord


class LongTransaction:
    """Open longer than ``long_transaction_ms`` (not for a transaction streaming results: long
    by design), idle longer than ``idle_in_transaction_ms`` (between two statements, or
    between the last one and the commit; the time a streamed result is fetched is not idle),
    or still open when the unit of work ended. Autocommit connections hold no transaction."""

    kind = "long_transaction"
    #: ``run_detectors`` skips it for a unit with no transactions.
    needs = "transactions"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        for tx in own_transactions(unit, self.kind):
            if tx.autocommit or not tx.statements:
                continue
            open_for = tx.ended - tx.started
            reasons = []
            if tx.end == "open" and config.open_transactions:
                reasons.append("still open when the unit of work ended")
            if (
                config.long_transaction_ms is not None
                and open_for * 1000 > config.long_transaction_ms
                and not tx.streaming  # streaming many rows is long by design
            ):
                reasons.append(f"open {ms(open_for)} (threshold {config.long_transaction_ms:g} ms)")
            idle = config.idle_in_transaction_ms
            # Idle stretches count in a streaming transaction too: the time a streamed result
            # is being fetched is not in ``max_gap``, the rest of it is.
            if idle is not None and tx.max_gap * 1000 > idle:
                reasons.append(f"idle {ms(tx.max_gap)} without a statement (threshold {idle:g} ms)")
            if not reasons:
                continue
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"long transaction: {'; '.join(reasons)}; it ran {tx.statements} "
                    f"statement(s) in {ms(open_for)}, {ms(tx.exec_time)} of it executing SQL"
                ),
                count=tx.statements,
                location=first(tx.begin_stack),
                fix=(
                    "keep transactions short: do slow work (HTTP calls, rendering) before "
                    "the first statement or after commit, and end every transaction with "
                    "commit()/rollback() or a `with ...begin():` block; it holds a pooled "
                    "connection and its locks while open"
                ),
                db_time=tx.exec_time,
            )
