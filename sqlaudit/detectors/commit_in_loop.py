"""``commit_in_loop``: a commit per row, from one line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import own_transactions
from sqlaudit.model.findings import Finding, Severity

if TYPE_CHECKING:
    from sqlaudit.model.records import CallSite, QueryRecord, TransactionRecord, UnitRecord


class CommitInLoop:
    """>= ``commit_in_loop_min`` commits from one call stack, each writing at most
    ``commit_in_loop_max_rows`` rows (counted from the driver's rowcount: one statement
    inserting 100 rows is 100 rows, an item's DELETE and the UPDATE before it are 2).

    Chunked batch commits (many rows per commit) are the cure and are not flagged; nor are
    commits that wrote nothing (their cost is ``transaction_overhead``'s). The refresh SELECTs
    that ``expire_on_commit`` causes after each commit are counted with it.
    """

    kind = "commit_in_loop"
    #: ``run_detectors`` skips it for a unit with no transactions.
    needs = "transactions"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        groups: dict[tuple[CallSite, ...], list[TransactionRecord]] = {}
        most = unit.config.commit_in_loop_max_rows
        for tx in own_transactions(unit, self.kind):
            if tx.end == "commit" and tx.writes and tx.rows_written <= most and tx.end_stack:
                groups.setdefault(tx.end_stack, []).append(tx)
        for stack, txs in groups.items():
            if len(txs) < unit.config.commit_in_loop_min:
                continue
            after = min(tx.ended for tx in txs)
            refreshes = sum(
                1
                for r in records
                if r.orm is not None and r.orm.load == "column" and r.start >= after
            )
            hidden = (
                f", and {refreshes} refresh SELECTs after them (expire_on_commit)"
                if refreshes
                else ""
            )
            rows = sum(tx.rows_written for tx in txs)
            yield Finding(
                kind=self.kind,
                severity=Severity.WARNING,
                message=(
                    f"commit in a loop: {len(txs)} commits from one line, "
                    f"{_per_commit(txs)} each, {rows} row(s) in all{hidden}"
                ),
                count=len(txs),
                location=stack[0],
                fix=(
                    "commit once after the loop (or every few hundred rows); each commit is a "
                    "round trip and, with expire_on_commit=True, makes the next attribute "
                    "access reload the object"
                ),
                db_time=sum(tx.exec_time for tx in txs),
                stack=stack,
            )


def _per_commit(txs: Sequence[TransactionRecord]) -> str:
    """How many rows each commit wrote: "1 row", "2 rows", "1 to 3 rows"."""
    low = min(tx.rows_written for tx in txs)
    high = max(tx.rows_written for tx in txs)
    if low == high:
        return f"{low} row" if low == 1 else f"{low} rows"
    return f"{low} to {high} rows"
