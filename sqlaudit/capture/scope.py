"""The unit of work being captured: a mutable ``Scope``, the current one in a ContextVar.

Capture listeners write into the scope of the statement's context (``current()``); when the
unit closes, ``close`` settles its transactions and freezes it into a ``UnitRecord``, the plain
data that detectors and renderers read. The public view of a unit is ``sqlaudit.AuditReport``
(``report/``), which owns its scope (``Scope.owner``).

Memory: the statement log stops recording at ``max_records`` (counters only past it); ORM
linkage keeps ids and bounded maps, never SQLAlchemy objects past the unit's close.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from operator import methodcaller
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlaudit.capture.log import StatementLog
from sqlaudit.model.frozen import evolve
from sqlaudit.model.hazards import EagerLoad
from sqlaudit.model.records import FrozenOrigins, StatementKind, UnitRecord

if TYPE_CHECKING:
    from types import FrameType

    from sqlaudit.capture.explain import Samples
    from sqlaudit.capture.transactions import TxState
    from sqlaudit.model.config import AuditConfig
    from sqlaudit.model.findings import Finding
    from sqlaudit.model.hazards import ReadModifyWrite
    from sqlaudit.model.records import Origin, OrmLoad, QueryRecord, StaleRead, TransactionRecord

__all__ = ["CURRENT", "FALLBACK", "SUPPRESSED", "Scope", "current", "open_ancestor"]

#: The innermost open scope of this thread / task, or None.
CURRENT: ContextVar[Scope | None] = ContextVar("sqlaudit_scope", default=None)
#: Finding kinds suppressed by ``sqlaudit.ignore`` in this context.
SUPPRESSED: ContextVar[frozenset[str]] = ContextVar("sqlaudit_suppressed", default=frozenset())

#: Scopes opened with ``all_threads=True``, innermost last: they also receive statements from
#: threads and tasks that have no scope of their own (e.g. a test client's server thread).
#: Another thread may remove the last one between a reader's emptiness check and its
#: ``FALLBACK[-1]``: readers catch the IndexError (``current``).
FALLBACK: list[Scope] = []

_TRANSACTION = StatementKind.TRANSACTION
#: The origins of a unit that loaded no ORM object (most): one read-only mapping for all.
_NO_ORIGINS = FrozenOrigins({}, {})
# Unit keys are unique in the process, so records of nested units keep theirs once merged.
_keys = itertools.count(1)


def current() -> Scope | None:
    """The scope that owns statements issued here now: this context's, else a fallback."""
    scope = CURRENT.get()
    if scope is None:
        if FALLBACK:
            try:
                return FALLBACK[-1]
            except IndexError:  # the last fallback closed in another thread since the check
                return None
        return None
    if scope.ended is not None:
        return open_ancestor(scope)
    return scope


def open_ancestor(scope: Scope | None) -> Scope | None:
    """The nearest of ``scope`` and its ancestors still open: a task or thread that kept a
    unit's context after the unit closed (an asyncio task created inside ``async with
    audit()`` and run after it) must not add statements to a closed report."""
    while scope is not None and scope.ended is not None:
        scope = scope.parent
    return scope


class Scope:
    """Mutable capture state of one open unit of work (internal)."""

    __slots__ = (
        "__weakref__",
        "_committed",
        "_identity",
        "cap",
        "checkouts",
        "child_findings",
        "config",
        "connecting",
        "eager",
        "eager_reads",
        "eager_watched",
        "ended",
        "explain",
        "flush_load",
        "flush_seq",
        "internal_errors",
        "key",
        "log",
        "name",
        "nested",
        "on_release",
        "opener",
        "origin_of",
        "origin_rows",
        "origins",
        "orm_statements",
        "owner",
        "parent",
        "records",
        "resets",
        "rmw",
        "sessions",
        "stale_pending",
        "stale_reads",
        "started",
        "tx_all",
        "tx_by_conn",
        "tx_by_dbapi",
        "tx_by_session",
        "tx_overflow",
    )

    #: Tags this unit's records (``QueryRecord.unit``, ``TransactionRecord.unit``...).
    key: int
    #: The public view this scope belongs to (an ``AuditReport``), if any.
    owner: Any
    # ORM linkage: the ORM statements executed lately, id -> (origin id, the class it
    # selects), so InstanceEvents.load can tell which query loaded an object; and the
    # sessions with an open transaction, by id of their Connection.
    orm_statements: dict[int, tuple[int, type | None]]
    sessions: dict[int, tuple[Any, Any]]
    # Transactions: open ones by Connection / DBAPI connection / Session key, every one
    # seen, the DBAPI connections checked out inside this scope, the open flush.
    tx_by_conn: dict[int, TxState]
    tx_by_dbapi: dict[int, TxState]
    tx_by_session: dict[int, list[TxState]]
    tx_all: list[TxState]
    #: Transactions past ``max_records``: counted, not kept (``TxState.count_into``).
    tx_overflow: dict[str, int]
    checkouts: set[int]
    flush_load: OrmLoad | None
    flush_seq: int
    #: Findings of nested units, each with the records it concerns (``audit.close`` lifts
    #: them into this unit's findings).
    child_findings: list[tuple[Finding, tuple[QueryRecord, ...]]]
    #: True once a nested unit closed inside this one (its records merged in).
    nested: bool
    #: The frame that opened the unit (the ``with sqlaudit.audit()`` line): call stacks end
    #: there. Held (compared by identity, never by id) until the unit closes.
    opener: FrameType | None
    #: sqlaudit errors swallowed while capturing this unit.
    internal_errors: int
    #: ROLLBACKs the pool sent resetting connections returned inside this scope.
    resets: int
    # Stale identity maps: per session key (autocommit, identities carried into its
    # transaction), and the SELECTs that may have re-read them.
    # Sessions are held weakly: a closed session leaves nothing behind (an id() would be
    # reused by the next session, and a dict by id grew with every session). Created on
    # first use (``identity``): most units have no ORM session.
    _identity: weakref.WeakKeyDictionary[Any, tuple[bool, frozenset[Any]]] | None
    stale_reads: list[StaleRead]
    # SELECTs whose re-read held rows are known once their loaded rows are counted:
    # (the read, its origin, the driver's rowcount, held rows of the class).
    stale_pending: list[tuple[StaleRead, int, int, int]]
    # Parent-origin linkage: the queries that loaded ORM objects, and object -> origin.
    origins: dict[int, Origin]
    #: The origin of each object loaded, by the row it stands for (``origins.row_of``).
    origin_of: dict[Any, int]
    origin_rows: dict[int, int]
    # Sessions that committed in this scope (``committed``, created on first use).
    _committed: weakref.WeakSet[Any] | None
    #: The DBAPI connection being set up (first connect), whose statements are not counted.
    connecting: int
    #: Bind values kept for EXPLAIN in development (``capture.explain``), else None.
    explain: Samples | None
    #: Read-modify-writes on autocommit connections (``capture.hazards``).
    rmw: list[ReadModifyWrite]
    # Eager loads (``capture.eager``, only with ``config.unused_eager_loads``): by
    # (relationship, loader, stack); the relationship attributes read in this unit (None:
    # not followed); the attributes this unit watches.
    eager: dict[tuple[str, str, tuple[Any, ...]], list[Any]]
    eager_reads: set[Any] | None
    eager_watched: set[Any]
    #: Called once when the unit is released after it closed (``release``).
    on_release: list[Callable[[], None]]
    ended: float | None

    def __init__(
        self, name: str, config: AuditConfig, parent: Scope | None = None, owner: Any = None
    ) -> None:
        self.name = name
        self.config = config
        self.parent = parent
        self.key = next(_keys)
        self.owner = owner
        # The statement log; its list and cap are also held here for the hot path.
        log = self.log = StatementLog(config.max_records)
        self.records = log.records
        self.cap = config.max_records
        # One plain store per field: a slot store is ~10 ns, where setting them in C through
        # object.__setattr__ (``model.frozen.assign``) cost ~100 ns each (issue 20).
        self.orm_statements = {}
        self.sessions = {}
        self.origins = {}
        self.origin_of = {}
        self.origin_rows = {}
        self.eager = {}
        self.tx_by_conn = {}
        self.tx_by_dbapi = {}
        self.tx_by_session = {}
        self.tx_overflow = {}
        self.child_findings = []
        self.tx_all = []
        self.stale_reads = []
        self.stale_pending = []
        self.rmw = []
        self.on_release = []
        self.checkouts = set()
        self.eager_watched = set()
        self.eager_reads = set() if config.unused_eager_loads else None
        self.opener = self.flush_load = self._identity = self._committed = None
        self.explain = self.ended = None
        self.internal_errors = self.resets = self.flush_seq = self.connecting = 0
        self.nested = False
        self.started = perf_counter()

    @property
    def identity(self) -> weakref.WeakKeyDictionary[Any, tuple[bool, frozenset[Any]]]:
        """Per session (held weakly): whether it autocommits, and the identities it carried
        into its transaction (``capture.identity``)."""
        found = self._identity
        if found is None:
            found = self._identity = weakref.WeakKeyDictionary()
        return found

    @property
    def committed(self) -> weakref.WeakSet[Any]:
        """Sessions that committed in this scope (their objects may be expired since)."""
        found = self._committed
        if found is None:
            found = self._committed = weakref.WeakSet()
        return found

    def keep(self, tx: TxState) -> None:
        """Remember a transaction that just began: in detail up to ``max_records`` of them,
        then only as counts (memory per unit stays bounded however many it runs)."""
        if len(self.tx_all) < self.cap:
            self.tx_all.append(tx)
        else:
            tx.overflow = self.tx_overflow

    def checked_out_here(self, dbapi: int) -> bool:
        """True when the DBAPI connection was checked out inside this scope or a parent."""
        scope: Scope | None = self
        while scope is not None:
            if dbapi in scope.checkouts:
                return True
            scope = scope.parent
        return False

    # -- reading while open ---------------------------------------------------------------

    def kind_counts(self) -> dict[str, int]:
        return self.log.kind_counts()

    def query_count(self) -> int:
        counts = self.log.kind_counts()
        return sum(counts.values()) - counts.get(_TRANSACTION, 0)

    def transactions(self, now: float) -> tuple[TransactionRecord, ...]:
        """The transactions so far, frozen as of ``now`` (the open ones as still open)."""
        return tuple(map(methodcaller("freeze", now), self.tx_all))

    def _eager_loads(self) -> tuple[EagerLoad, ...]:
        """The eager loads so far; a joined load counts once its query loaded a row."""
        reads = self.eager_reads or ()
        loads = []
        for (name, strategy, stack), entry in list(self.eager.items()):
            attribute, configured, sql, statements, queries, suppressed = entry
            if queries and not any(self.origin_rows.get(q, 0) for q in queries):
                continue  # a joined load whose query loaded no row
            read = attribute in reads
            load = (name, strategy, configured, stack, statements, read, sql, self.key, suppressed)
            loads.append(EagerLoad(*load))
        return tuple(loads)

    def freeze(self, now: float | None = None) -> UnitRecord:
        """What the unit did so far, as plain data (``now``: its end, default the clock)."""
        ended = perf_counter() if now is None else now
        statements, counts, db_time, overflow = self.log.snapshot()
        return UnitRecord(
            name=self.name,
            config=self.config,
            statements=statements,
            counts=counts,
            db_time=db_time,
            overflow=overflow,
            transaction_records=self.transactions(ended) if self.tx_all else (),
            origin_records=(
                FrozenOrigins(dict(self.origins), dict(self.origin_rows))
                if self.origins
                else _NO_ORIGINS
            ),
            stale_reads=self._stale_reads() if self.stale_reads or self.stale_pending else (),
            resets=self.resets,
            started=self.started,
            ended=ended,
            internal_errors=self.internal_errors,
            transactions_past_cap=dict(self.tx_overflow),
            key=self.key,
            nested=self.nested,
            read_modify_writes=tuple(self.rmw),
            eager_loads=self._eager_loads() if self.eager else (),
        )

    def _stale_reads(self) -> tuple[StaleRead, ...]:
        reads = list(self.stale_reads)
        rows = self.origin_rows
        for read, oid, rowcount, held in self.stale_pending:
            reread = min(held, rowcount - rows.get(oid, 0))
            if reread > 0:
                reads.append(read._replace(held=reread))
        return tuple(reads)

    # -- closing --------------------------------------------------------------------------

    def close(self) -> UnitRecord:
        """End the unit: settle its transactions and freeze it."""
        self.ended = perf_counter()
        self.flush_load = None
        for tx in self.tx_all:
            if tx.end == "open":  # (else ``settle`` has nothing to do)
                tx.settle()
        # A state counted past the cap was kept once ``tx_all`` was full (``keep``).
        for tx in list(self.tx_by_conn.values()) if len(self.tx_all) >= self.cap else ():
            if tx.overflow is not None and tx.end == "open":
                tx.count_into(tx.overflow)  # still open: counted as such, once
                tx.overflow = None
        return self.freeze(self.ended)

    def merge_child(self, child: Scope, unit: UnitRecord, findings: Sequence[Finding]) -> None:
        """Take a closed nested scope: its statements, transactions and ORM state roll up into
        this one (under this scope's log lock: other threads may be recording into it), and
        its ``findings`` (judged on its own ``unit``) are kept, named after it, to be reported
        by this unit too."""
        statements = unit.statements
        named = [
            (
                f if f.unit is not None else evolve(f, unit=child.name),
                tuple(statements[i] for i in f.statements if i < len(statements)),
            )
            for f in findings
        ]
        with self.log.lock:
            self.nested = True
            self.child_findings.extend(named)
            self.log.merge(child.log)
            room = max(0, self.cap - len(self.tx_all))
            self.tx_all.extend(child.tx_all[:room])
            for tx in child.tx_all[room:]:
                tx.count_into(self.tx_overflow)
            for name, n in child.tx_overflow.items():
                self.tx_overflow[name] = self.tx_overflow.get(name, 0) + n
            self.stale_reads.extend(child._stale_reads())
            self.origins.update(child.origins)
            self.origin_of.update(child.origin_of)
            self.origin_rows.update(child.origin_rows)
            self.orm_statements.update(child.orm_statements)
            self.sessions.update(child.sessions)
            self.checkouts |= child.checkouts
            self.resets += child.resets
            self.internal_errors += child.internal_errors
            self.rmw.extend(child.rmw)
            if self.eager_reads is not None and child.eager_reads:
                self.eager_reads |= child.eager_reads

    def release(self) -> None:
        """Drop the references to sessions and statement ids once the unit is closed (merged
        into the parent, if any): a closed report must not keep sessions alive."""
        if self.orm_statements:
            self.orm_statements.clear()
        if self.sessions:
            self.sessions.clear()
        self.opener = None
        if self.origin_of:
            self.origin_of.clear()  # identity keys hold primary-key values and mapped classes
        if self.on_release:
            callbacks, self.on_release = self.on_release, []
            for callback in callbacks:  # e.g. stop watching attributes (``capture.eager``)
                callback()
        if self.eager:
            self.eager.clear()  # mapped attributes
        if self.eager_reads:
            self.eager_reads = set()
