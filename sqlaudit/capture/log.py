"""A scope's statement log: the statements recorded in detail (at most ``max_records``) and
the counts of every statement, recorded or not.

The capture hot path (``statements.record``) appends to ``records`` without a lock
(``list.append`` is atomic) and calls ``count_past_cap`` only once the log is full. Counts
and db time are derived from the records when read, counting only what is new since the last
read. Two threads sharing a scope can both find one free slot; the record a race puts past
the cap is moved to the overflow counts when read, so ``max_records`` holds exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

from sqlaudit._internal import count_into
from sqlaudit.model.fields import duration_of, kind_of
from sqlaudit.model.records import QueryRecord, StatementKind

__all__ = ["StatementLog"]

_TRANSACTION = StatementKind.TRANSACTION


class StatementLog:
    """Recorded statements and statement counts of one scope (internal)."""

    __slots__ = ("_derived", "_over_counts", "_over_db_time", "_sorted", "cap", "lock", "records")

    def __init__(self, cap: int) -> None:
        #: Statements recorded in detail, in the order they ended; appended by the hot path.
        self.records: list[QueryRecord] = []
        #: ``max_records``.
        self.cap = cap
        #: Guards the overflow counts and every read; the hot path's appends do not take it.
        self.lock = threading.Lock()
        self._over_counts: dict[str, int] = {}
        self._over_db_time = 0.0
        # What was derived from the records so far: (records counted, counts by kind, db
        # time). records only grows at its end (appends, merges; _settle trims past the cap,
        # never below what was counted), so each read counts only the new records.
        self._derived: tuple[int, dict[str, int], float] = (0, {}, 0.0)
        # (number of records, the records in start order) once a merge may have put them out
        # of order, else None.
        self._sorted: tuple[int, tuple[QueryRecord, ...]] | None = None

    def count_past_cap(self, kind: str, duration: float) -> None:
        """Count a statement the full log does not record."""
        with self.lock:
            counts = self._over_counts
            counts[kind] = counts.get(kind, 0) + 1
            if kind != _TRANSACTION:
                self._over_db_time += duration

    def kind_counts(self) -> dict[str, int]:
        """Statements per kind, recorded or not."""
        with self.lock:
            counts, _ = self._settle()
            total = dict(counts)
            for kind, n in self._over_counts.items():
                total[kind] = total.get(kind, 0) + n
        return total

    def overflow(self) -> int:
        """Statements counted but not recorded."""
        with self.lock:
            self._settle()
            return sum(self._over_counts.values())

    def db_time(self) -> float:
        """Seconds spent executing statements, transaction control excluded."""
        with self.lock:
            _, db_time = self._settle()
            return db_time + self._over_db_time

    def recorded_count(self) -> int:
        return min(len(self.records), self.cap)

    def statements(self) -> tuple[QueryRecord, ...]:
        """The recorded statements in the order they started."""
        with self.lock:
            self._settle()
            return self._ordered()

    def snapshot(self) -> tuple[tuple[QueryRecord, ...], dict[str, int], float, int]:
        """``statements()``, ``kind_counts()``, ``db_time()`` and ``overflow()`` at once, under
        one lock (a unit's close reads all four)."""
        with self.lock:
            counts, db_time = self._settle()
            total = dict(counts)
            over = self._over_counts
            if not over:  # most units: nothing past the cap
                return self._ordered(), total, db_time + self._over_db_time, 0
            for kind, n in over.items():
                total[kind] = total.get(kind, 0) + n
            return self._ordered(), total, db_time + self._over_db_time, sum(over.values())

    def _ordered(self) -> tuple[QueryRecord, ...]:
        """The records in start order (callers hold the lock and settled)."""
        records = tuple(self.records)
        cached = self._sorted
        if cached is None:
            return records
        if cached[0] != len(records):
            cached = self._sorted = (len(records), tuple(sorted(records, key=_start)))
        return cached[1]

    def merge(self, child: StatementLog) -> None:
        """Take a closed nested scope's statements: recorded while there is room, counted
        past it (the caller holds this log's lock)."""
        with child.lock:
            child._settle()
        room = max(0, self.cap - len(self.records))
        self.records.extend(child.records[:room])
        self._count_over(child.records[room:])
        counts = self._over_counts
        for kind, n in child._over_counts.items():
            counts[kind] = counts.get(kind, 0) + n
        self._over_db_time += child._over_db_time
        if self._sorted is None:
            self._sorted = (-1, ())

    def _count_over(self, records: Iterable[QueryRecord]) -> None:
        counts = self._over_counts
        for r in records:
            counts[r.kind] = counts.get(r.kind, 0) + 1
            if r.kind != _TRANSACTION:
                self._over_db_time += r.duration

    def _settle(self) -> tuple[dict[str, int], float]:
        """Counts by kind and db time of the recorded statements (callers hold the lock)."""
        records = self.records
        end = len(records)
        if end > self.cap:
            # Two threads raced for the last slot: the records past the cap become overflow.
            # (They are never among those already counted: counting happens only here, after
            # this trim, so the counted prefix is never longer than the cap.)
            self._count_over(records[self.cap : end])
            del records[self.cap : end]
            end = self.cap
        done, counts, db_time = self._derived
        if done < end:
            # In C (a scope of 10,000 records is counted once, at close; one of ten, once per
            # request): what ``Counter.update`` runs, without building a Counter.
            new: Sequence[QueryRecord] = records[done:end]
            counts = dict(counts)
            controls = counts.get(_TRANSACTION, 0)
            count_into(counts, map(kind_of, new))
            db_time += sum(map(duration_of, new))
            if counts.get(_TRANSACTION, 0) != controls:
                db_time -= sum(r.duration for r in new if r.kind == _TRANSACTION)
            self._derived = (end, counts, db_time)
        return counts, db_time


def _start(record: QueryRecord) -> float:
    return record.start
