"""``transaction_overhead`` (info): round trips spent on transaction control."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, own_transactions
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.records import StatementKind

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord, UnitRecord

_WRITES = StatementKind.WRITES
_TRANSACTION = StatementKind.TRANSACTION
#: Why each transaction costs round trips, per dialect (drivers of one database agree).
_WHY = {
    "postgresql": (
        "on PostgreSQL every transaction costs a BEGIN and a COMMIT or ROLLBACK round trip"
    ),
    "mysql": (
        "on MySQL/MariaDB every transaction costs a COMMIT or ROLLBACK round trip, and the pool "
        "sends a ROLLBACK when a connection goes back (reset on return)"
    ),
    "mariadb": (
        "on MariaDB every transaction costs a COMMIT or ROLLBACK round trip, and the pool "
        "sends a ROLLBACK when a connection goes back (reset on return)"
    ),
}


def own_round_trips(unit: UnitRecord) -> tuple[int, int]:
    """(transaction-control round trips, statement round trips) of the unit's own work (those
    of units opened inside it were counted when they closed)."""
    if not unit.nested:
        return unit.round_trips
    own = unit.own_statements
    control = sum(1 for r in own if r.kind == _TRANSACTION)
    for tx in unit.own_transactions:
        if not tx.statements or tx.autocommit:
            continue
        control += tx.end != "open"
        control += tx.dialect == "postgresql"
    return control, sum(1 for r in own if r.kind != _TRANSACTION)


class TransactionOverhead:
    """Info: many transactions in one unit: at least ``transaction_overhead_min`` control
    round trips (BEGIN/COMMIT/ROLLBACK/SAVEPOINT) making at least
    ``transaction_overhead_ratio`` of its round trips. The round trips themselves are a
    statistic of every unit (``AuditReport.round_trips``), not a finding: one SELECT in a
    Session on PostgreSQL is BEGIN + SELECT + ROLLBACK, the price of a transaction."""

    kind = "transaction_overhead"
    #: ``run_detectors`` skips it for a unit with no transactions.
    needs = "transactions"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        config = unit.config
        ratio = config.transaction_overhead_ratio
        txs = list(own_transactions(unit, self.kind))
        if ratio is None or not txs:
            return
        dialect = txs[0].dialect
        if dialect not in _WHY:
            return  # embedded SQLite: no round trips to save
        control, statements = own_round_trips(unit)
        total = control + statements
        if control < config.transaction_overhead_min or control < ratio * total:
            return
        count = sum(1 for tx in txs if tx.statements and not tx.autocommit)
        writes = any(r.kind in _WRITES for r in records)
        fix = (
            "group the unit's work into one transaction: one `with session.begin():` (or "
            "`with engine.begin() as conn:`) around the request or job, passing that session "
            "or connection to the helpers, instead of a transaction per statement or helper"
        )
        if not writes:
            fix += (
                "; this unit only reads, so it can also run on an autocommit connection "
                "(engine.execution_options(isolation_level='AUTOCOMMIT'), with "
                "skip_autocommit_rollback=True on SQLAlchemy >= 2.0.43), which sends no "
                "BEGIN/COMMIT at all"
            )
        yield Finding(
            kind=self.kind,
            severity=Severity.INFO,
            message=(
                f"transaction overhead: {count} transactions in one unit of work; about "
                f"{control} of its {total} round trips are transaction control, not "
                f"statements ({_WHY[dialect]})"
            ),
            count=control,
            location=first(txs[0].begin_stack),
            fix=fix,
            stack=txs[0].begin_stack,
        )
