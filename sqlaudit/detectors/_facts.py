"""What a unit holds, for skipping detectors that would find nothing in it.

Most units have no finding at all: a request of ten statements from ten lines. Running every
detector over them costs more than the statements did (issue 20), so ``run_detectors`` first
asks ``Facts``:

* ``has(need)``: whether the unit holds anything of what a detector names in ``needs`` (any
  detector, a user's too);
* ``quiet(detector)``: for sqlaudit's own detectors (their exact classes), a cheap necessary
  condition of each finding they can make: counts and thresholds read in one pass, never a
  fingerprint. A detector is skipped only when its ``detect`` would yield nothing; each test
  below is implied by every finding its detector yields (more records or transactions can only
  make it true), so the statements a detector sees minus those ``ignore``d, and its own
  transactions among the unit's, need no test of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING

from sqlaudit.detectors._grouping import partition
from sqlaudit.detectors.autocommit_lock import AutocommitLock
from sqlaudit.detectors.autocommit_writes import AutocommitWrites
from sqlaudit.detectors.column_reload import ColumnReload
from sqlaudit.detectors.commit_in_loop import CommitInLoop
from sqlaudit.detectors.discarded_writes import DiscardedWrites
from sqlaudit.detectors.ineffective_rollback import IneffectiveRollback
from sqlaudit.detectors.long_transaction import LongTransaction
from sqlaudit.detectors.n_plus_one import NPlusOne
from sqlaudit.detectors.query_budget import QueryBudget
from sqlaudit.detectors.repeated_query import RepeatedQuery
from sqlaudit.detectors.slow_query import SlowQuery
from sqlaudit.detectors.split_transaction import SplitTransaction
from sqlaudit.detectors.transaction_overhead import _WHY, TransactionOverhead
from sqlaudit.detectors.write_loop import WriteLoop

if TYPE_CHECKING:
    from sqlaudit.detectors._grouping import Part
    from sqlaudit.model.records import QueryRecord, UnitRecord

__all__ = ["Facts"]

_DURATION = itemgetter(3)  # QueryRecord.duration
_ROLLBACKS = ("rollback", "rollback_exception")


class Facts:
    """What one unit holds, each fact computed on first use (internal to ``run_detectors``)."""

    __slots__ = ("_cache", "_records", "_unit")

    def __init__(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> None:
        self._unit = unit
        self._records = records
        self._cache: dict[str, bool] = {}

    def has(self, need: str) -> bool:
        """Whether the unit holds any of ``need`` (a detector's ``needs``)."""
        known = self._cache.get(need)
        if known is None:
            known = self._cache[need] = self._compute(need)
        return known

    def _compute(self, need: str) -> bool:
        unit = self._unit
        if need in ("lazy", "column", "read", "write"):
            return bool(partition(self._records)[need])
        if need == "transactions":
            return bool(unit.transaction_records)
        if need == "tx_writes":
            return any(tx.writes for tx in unit.transaction_records)
        if need == "stale_reads":
            return bool(unit.stale_reads)
        if need == "read_modify_writes":
            return bool(unit.read_modify_writes)
        if need == "eager_loads":
            return bool(unit.eager_loads)
        return True  # unknown: run the detector

    def quiet(self, detector: object) -> bool:
        """True when ``detector`` (one of sqlaudit's own) cannot find anything in the unit."""
        test = _QUIET.get(type(detector))
        return test is not None and not test(self._unit, self)

    def part(self, name: str) -> Part:
        return partition(self._records)[name]


def _repeats(items: Part, minimum: int) -> bool:
    """Whether ``minimum`` of ``items`` come from one innermost application frame (grouping
    by shape and stack keeps such frames together)."""
    if len(items) < minimum:
        return False
    seen: dict[object, int] = {}
    for _, record in items:
        stack = record.stack
        if stack:
            n = seen[stack[0]] = seen.get(stack[0], 0) + 1
            if n >= minimum:
                return True
    return False


# Each test: may ``detect`` yield a finding for this unit? (True when in doubt.)


def _n_plus_one(unit: UnitRecord, facts: Facts) -> bool:
    return len(facts.part("lazy")) >= unit.config.n_plus_one_min


def _column_reload(unit: UnitRecord, facts: Facts) -> bool:
    config = unit.config
    return len(facts.part("column")) >= min(config.deferred_reload_min, config.expired_reload_min)


def _repeated_query(unit: UnitRecord, facts: Facts) -> bool:
    return _repeats(facts.part("read"), unit.config.repeated_query_min)


def _write_loop(unit: UnitRecord, facts: Facts) -> bool:
    return _repeats(facts.part("write"), 2)


def _query_budget(unit: UnitRecord, facts: Facts) -> bool:
    config = unit.config
    # Statements under ignore("query_budget") only lower the count and the DB time.
    if config.max_queries is not None and unit.query_count > config.max_queries:
        return True
    return config.max_db_time_ms is not None and unit.db_time * 1000 > config.max_db_time_ms


def _slow_query(unit: UnitRecord, facts: Facts) -> bool:
    threshold = unit.config.slow_query_ms
    records = facts._records
    return (
        threshold is not None
        and bool(records)
        and max(map(_DURATION, records)) >= (threshold / 1000.0)
    )


def _long_transaction(unit: UnitRecord, facts: Facts) -> bool:
    config = unit.config
    long_ms = config.long_transaction_ms
    idle = config.idle_in_transaction_ms
    for tx in unit.transaction_records:
        if tx.end == "open" and config.open_transactions:
            return True
        if long_ms is not None and (tx.ended - tx.started) * 1000 > long_ms:
            return True
        if idle is not None and tx.max_gap * 1000 > idle:
            return True
    return False


def _transaction_overhead(unit: UnitRecord, facts: Facts) -> bool:
    if unit.config.transaction_overhead_ratio is None:
        return False
    return any(tx.dialect in _WHY for tx in unit.transaction_records)


def _autocommit_lock(unit: UnitRecord, facts: Facts) -> bool:
    return any(tx.autocommit and tx.locks for tx in unit.transaction_records)


def _commit_in_loop(unit: UnitRecord, facts: Facts) -> bool:
    commits = sum(
        1 for tx in unit.transaction_records if tx.end == "commit" and tx.writes and tx.end_stack
    )
    return commits >= unit.config.commit_in_loop_min


def _autocommit_writes(unit: UnitRecord, facts: Facts) -> bool:
    return sum(tx.writes for tx in unit.transaction_records if tx.autocommit) >= 2


def _ineffective_rollback(unit: UnitRecord, facts: Facts) -> bool:
    return any(
        tx.autocommit and tx.writes and tx.end in _ROLLBACKS for tx in unit.transaction_records
    )


def _discarded_writes(unit: UnitRecord, facts: Facts) -> bool:
    return any(
        tx.end == "closed" and tx.writes and tx.autocommit is False
        for tx in unit.transaction_records
    )


def _split_transaction(unit: UnitRecord, facts: Facts) -> bool:
    committed = sum(
        1
        for tx in unit.transaction_records
        if tx.end == "commit" and tx.writes and tx.autocommit is False
    )
    return committed >= 2


#: sqlaudit's detectors by exact class (a subclass may detect otherwise: it is not skipped).
_QUIET: dict[type, Callable[[UnitRecord, Facts], bool]] = {
    NPlusOne: _n_plus_one,
    ColumnReload: _column_reload,
    RepeatedQuery: _repeated_query,
    WriteLoop: _write_loop,
    QueryBudget: _query_budget,
    SlowQuery: _slow_query,
    LongTransaction: _long_transaction,
    TransactionOverhead: _transaction_overhead,
    AutocommitLock: _autocommit_lock,
    CommitInLoop: _commit_in_loop,
    AutocommitWrites: _autocommit_writes,
    IneffectiveRollback: _ineffective_rollback,
    DiscardedWrites: _discarded_writes,
    SplitTransaction: _split_transaction,
}
