"""What a unit holds, for skipping detectors that would find nothing in it.

Most units have no finding at all: a request of ten statements from ten lines. Running every
detector over them costs more than the statements did (issue 20), so ``run_detectors`` first
asks ``Facts``:

* ``has(need)``: whether the unit holds anything of what a detector names in ``needs`` (any
  detector, a user's too);
* ``may_find(unit, facts)``: which of sqlaudit's own detectors (their exact classes, ``OURS``)
  may find something, by a cheap necessary condition of each finding they can make (implying
  the detector's ``needs``): counts and thresholds read in one pass, never a
  fingerprint. A detector is skipped only when its ``detect`` would yield nothing; each test
  below is implied by every finding its detector yields (more records or transactions can only
  make it true), so the statements a detector sees minus those ``ignore``d, and its own
  transactions among the unit's, need no test of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from sqlaudit._internal import count_into
from sqlaudit.detectors._grouping import innermost, loads_in, partition, record_of
from sqlaudit.detectors.autocommit_lock import AutocommitLock
from sqlaudit.detectors.autocommit_read_modify_write import AutocommitReadModifyWrite
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
from sqlaudit.detectors.stale_identity_map import StaleIdentityMap
from sqlaudit.detectors.transaction_overhead import _WHY, TransactionOverhead
from sqlaudit.detectors.unused_eager_load import UnusedEagerLoad
from sqlaudit.detectors.write_loop import WriteLoop
from sqlaudit.model.fields import duration_of, stack_of

if TYPE_CHECKING:
    from sqlaudit.detectors._grouping import Part
    from sqlaudit.model.records import QueryRecord, UnitRecord

__all__ = ["OURS", "Facts", "may_find", "quiet"]

_ROLLBACKS = ("rollback", "rollback_exception")


class Facts:
    """What one unit holds, each fact computed on first use (internal to ``run_detectors``)."""

    __slots__ = ("_cache", "_loads", "_parts", "_records", "_unit")

    def __init__(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> None:
        self._unit = unit
        self._records = records
        self._cache: dict[str, bool] = {}
        self._parts: dict[str, Part] | None = None
        self._loads: frozenset[str] | None = None

    def has(self, need: str) -> bool:
        """Whether the unit holds any of ``need`` (a detector's ``needs``)."""
        known = self._cache.get(need)
        if known is None:
            known = self._cache[need] = self._compute(need)
        return known

    def _compute(self, need: str) -> bool:
        unit = self._unit
        if need in ("lazy", "column", "read", "write"):
            return bool(self.part(need))
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

    def part(self, name: str) -> Part:
        """The records of one part of ``partition`` (computed once, shared with detectors)."""
        parts = self._parts
        if parts is None:
            parts = self._parts = partition(self._records, self.loads())
        return parts[name]

    def loads(self) -> frozenset[str]:
        """The records' ``OrmLoad.load`` values (read once for ``quiet`` and ``partition``)."""
        loads = self._loads
        if loads is None:
            loads = self._loads = loads_in(self._records)
        return loads


def _repeats(items: Part, minimum: int) -> bool:
    """Whether ``minimum`` of ``items`` come from one innermost application frame (grouping
    by shape and stack keeps such frames together)."""
    if len(items) < minimum:
        return False
    seen: dict[object, int] = {}
    count_into(seen, map(innermost, filter(None, map(stack_of, map(record_of, items)))))
    return max(seen.values(), default=0) >= minimum


def quiet(records: Sequence[QueryRecord], loads: AbstractSet[str] | None = None) -> bool:
    """True when no record is a lazy or column load and no two come from one innermost
    application frame: then no part holds a lazy or column load, nor two records of one frame,
    and each minimum of the per-statement tests below is at least 2 (``AuditConfig`` checks
    it). Most units (ten statements from ten lines) are told without partitioning them.
    ``loads``: the records' ``OrmLoad.load`` values when known (``Facts.loads``)."""
    if loads is None:
        loads = loads_in(records)
    if "lazy" in loads or "column" in loads:  # told first: an N+1's 200 frames not read
        return False
    sites = list(map(innermost, filter(None, map(stack_of, records))))
    return len(set(sites)) == len(sites)


def may_find(unit: UnitRecord, facts: Facts) -> set[type]:
    """sqlaudit's detector classes that may find something in ``unit``: one pass over its
    records' parts and one over its transactions. Each test is implied by every finding of its
    detector (and implies the detector's ``needs``)."""
    config = unit.config
    found: set[type] = set()
    records = facts._records
    if records and not quiet(records, facts.loads()):
        if len(facts.part("lazy")) >= config.n_plus_one_min:
            found.add(NPlusOne)  # a group of n_plus_one_min parents or more
        if len(facts.part("column")) >= min(config.deferred_reload_min, config.expired_reload_min):
            found.add(ColumnReload)
        if _repeats(facts.part("read"), config.repeated_query_min):
            found.add(RepeatedQuery)  # groups are of one shape and one whole stack
        if _repeats(facts.part("write"), 2):
            found.add(WriteLoop)
    if records:
        threshold = config.slow_query_ms
        if threshold is not None and max(map(duration_of, records)) >= threshold / 1000.0:
            found.add(SlowQuery)
    # Statements under ignore("query_budget") only lower the count and the DB time.
    if (config.max_queries is not None and unit.query_count > config.max_queries) or (
        config.max_db_time_ms is not None and unit.db_time * 1000 > config.max_db_time_ms
    ):
        found.add(QueryBudget)
    if unit.transaction_records:
        _transactions(unit, found)
    if unit.stale_reads:
        found.add(StaleIdentityMap)
    if unit.read_modify_writes:
        found.add(AutocommitReadModifyWrite)
    if unit.eager_loads:
        found.add(UnusedEagerLoad)
    return found


def _transactions(unit: UnitRecord, found: set[type]) -> None:
    """The transaction detectors that may find something in ``unit``'s transactions (its own
    are among them)."""
    config = unit.config
    long_ms = config.long_transaction_ms
    idle = config.idle_in_transaction_ms
    open_transactions = config.open_transactions
    long = overhead = False
    autocommit_writes = commits = committed = 0
    for tx in unit.transaction_records:
        end = tx.end
        writes = tx.writes
        autocommit = tx.autocommit
        if not long:
            long = (
                (end == "open" and open_transactions)
                or (long_ms is not None and (tx.ended - tx.started) * 1000 > long_ms)
                or (idle is not None and tx.max_gap * 1000 > idle)
            )
        if not overhead:
            overhead = tx.dialect in _WHY
        # What one transaction shows on its own is added at once (rare: no flag to carry).
        if autocommit:
            if tx.locks:  # a locking read on an autocommit connection
                found.add(AutocommitLock)
            autocommit_writes += writes
            if writes and end in _ROLLBACKS:  # autocommitted writes rolled back
                found.add(IneffectiveRollback)
        if writes:
            if end == "commit":
                commits += bool(tx.end_stack)
                committed += autocommit is False
            elif end == "closed" and autocommit is False:
                found.add(DiscardedWrites)  # writes in a transaction closed without commit
    if long:  # still open at the end, open too long, or idle too long
        found.add(LongTransaction)
    if overhead and config.transaction_overhead_ratio is not None:  # not embedded SQLite
        found.add(TransactionOverhead)
    if commits >= config.commit_in_loop_min:  # committed writes, from a place
        found.add(CommitInLoop)
    if autocommit_writes >= 2:
        found.add(AutocommitWrites)
    if committed >= 2:  # two transactions that committed writes
        found.add(SplitTransaction)


#: sqlaudit's detectors, by exact class: a subclass may detect otherwise, it is not skipped.
OURS = frozenset(
    {
        NPlusOne,
        ColumnReload,
        RepeatedQuery,
        WriteLoop,
        QueryBudget,
        SlowQuery,
        LongTransaction,
        TransactionOverhead,
        AutocommitLock,
        CommitInLoop,
        AutocommitWrites,
        IneffectiveRollback,
        DiscardedWrites,
        SplitTransaction,
        StaleIdentityMap,
        AutocommitReadModifyWrite,
        UnusedEagerLoad,
    }
)
