"""``autocommit_lock``: ``SELECT ... FOR UPDATE`` on an autocommit connection."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from sqlaudit.detectors._tx import first, own_transactions
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.sql.fingerprint import fingerprint, short

if TYPE_CHECKING:
    from sqlaudit.model.hazards import LockedRead
    from sqlaudit.model.records import CallSite, QueryRecord, UnitRecord


class AutocommitLock:
    """A locking read (``with_for_update()``: ``FOR UPDATE``, ``FOR SHARE``, ``LOCK IN SHARE
    MODE``) whose connection autocommits: the statement is its own transaction, so the row
    lock is released the moment the SELECT returns and protects nothing that follows.

    Silent: the same read inside a real transaction; SQLite, where ``with_for_update()``
    renders no lock clause at all.
    """

    kind = "autocommit_lock"
    #: ``run_detectors`` skips it for a unit without transactions.
    needs = "transactions"

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        groups: dict[tuple[str, tuple[CallSite, ...]], list[LockedRead]] = {}
        for tx in own_transactions(unit, self.kind):
            if not tx.autocommit:
                continue
            for lock in tx.locks:
                if self.kind not in lock.suppressed:
                    key = (fingerprint(lock.sql, tx.dialect), lock.stack)
                    groups.setdefault(key, []).append(lock)
        if not groups:
            return
        position = {(r.start, r.sql): i for i, r in enumerate(records)}
        for (shape, stack), locks in groups.items():
            n = len(locks)
            sql = locks[0].sql
            found = [position.get((lock.start, lock.sql)) for lock in locks]
            yield Finding(
                kind=self.kind,
                severity=Severity.ERROR,
                message=(
                    f"autocommit lock: {n}x {short(sql, 80)} on an autocommit connection: "
                    "the lock ends with the statement, so it protects nothing (a concurrent "
                    "update between this read and the write that depends on it goes through, "
                    "and one of the two is lost)"
                ),
                count=n,
                location=first(stack),
                fix=(
                    "run the locking read and the writes that depend on it in one transaction "
                    "on an engine without isolation_level='AUTOCOMMIT': `with engine.begin() "
                    "as conn:` or `with Session(engine) as session, session.begin():`; the row "
                    "lock then lasts until the commit"
                ),
                fingerprint=shape,
                sql=sql,
                db_time=sum(records[i].duration for i in found if i is not None),
                statements=tuple(i for i in found if i is not None),
                stack=stack,
            )
