"""The unit of work being audited: the current one lives in a ContextVar.

``AuditReport`` is both the scope that capture listeners write into and the report the user
reads once the block exits. Its hot path (``record``) appends one tuple per statement and
stops growing at ``max_records``: past that only counters move.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import internal_error
from sqlaudit.capture.callsite import capture
from sqlaudit.capture.log import StatementLog
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.records import CallSite, OrmLoad, QueryRecord, StatementKind
from sqlaudit.sql.fingerprint import _kind_cache, statement_kind
from sqlaudit.sql.params import _cache as _roles_cache
from sqlaudit.sql.params import signature

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlaudit.capture.identity import StaleRead
    from sqlaudit.capture.origins import Origin, OriginRecord
    from sqlaudit.capture.transactions import TransactionRecord, TxState
    from sqlaudit.model.findings import Finding

__all__ = ["CURRENT", "FALLBACK", "SUPPRESSED", "AuditReport", "current"]

#: The innermost open audit scope of this thread / task, or None.
CURRENT: ContextVar[AuditReport | None] = ContextVar("sqlaudit_scope", default=None)
#: Finding kinds suppressed by ``sqlaudit.ignore`` in this context.
SUPPRESSED: ContextVar[frozenset[str]] = ContextVar("sqlaudit_suppressed", default=frozenset())

#: Audits opened with ``all_threads=True``, innermost last: they also receive statements from
#: threads and tasks that have no audit of their own (e.g. a test client's server thread).
FALLBACK: list[AuditReport] = []

_TRANSACTION = StatementKind.TRANSACTION
_new_record = tuple.__new__

#: Reads the ORM context of a statement from its execution context (set by ``_orm`` while
#: the ORM detail listeners are attached):
#: ``(scope, context, invoked statement, kind, stack) -> OrmLoad | None``.
OrmHook = Callable[["AuditReport", Any, Any, str, tuple[CallSite, ...]], "OrmLoad | None"]
orm_hook: list[OrmHook] = []

#: Accounts a recorded statement to its transaction (``_transactions.on_statement``, set by
#: ``_capture`` at import; a hook because ``_transactions`` imports this module):
#: ``(scope, context, kind, start, duration, stack, batch) -> None``.
TxHook = Callable[["AuditReport", Any, str, float, float, tuple[CallSite, ...], int], None]
tx_hook: list[TxHook] = []


def current() -> AuditReport | None:
    """The audit that owns statements issued here now: this context's, else a fallback."""
    scope = CURRENT.get()
    if scope is None and FALLBACK:
        return FALLBACK[-1]
    return scope


class AuditReport:
    """The statements and findings of one unit of work (a request, job or test).

    Filled while the ``sqlaudit.audit(...)`` block runs; ``findings`` is set when it exits.
    """

    __slots__ = (
        "__weakref__",
        "_frozen_origins",
        "_lock",
        "_log",
        "_max",
        "_records",
        "checkouts",
        "committed",
        "config",
        "connecting",
        "ended",
        "findings",
        "flush_load",
        "flush_seq",
        "identity",
        "internal_errors",
        "name",
        "origin_of",
        "origin_rows",
        "origins",
        "orm_statements",
        "parent",
        "resets",
        "sessions",
        "stale_reads",
        "started",
        "transaction_records",
        "tx_all",
        "tx_by_conn",
        "tx_by_dbapi",
        "tx_by_session",
    )

    def __init__(self, name: str, config: AuditConfig, parent: AuditReport | None = None):
        #: The unit of work's name, e.g. ``"GET /users/{id}"``.
        self.name = name
        self.config = config
        self.parent = parent
        # The statement log (see _statement_log); its list, lock and cap are also held here
        # for the hot path.
        self._log = StatementLog(config.max_records)
        self._records = self._log.records
        self._lock = self._log.lock
        self._max = config.max_records
        # ORM linkage (internal): the ORM statements executed lately, id -> (origin id, the
        # class it selects), so InstanceEvents.load can tell which query loaded an object;
        # and the sessions with an open transaction, by id of their Connection.
        self.orm_statements: dict[int, tuple[int, type | None]] = {}
        self.sessions: dict[int, tuple[Any, Any]] = {}
        #: Internal sqlaudit errors swallowed while auditing this unit.
        self.internal_errors = 0
        self.findings: Sequence[Finding] = ()
        #: The unit's database transactions (filled when the audit closes).
        self.transaction_records: Sequence[TransactionRecord] = ()
        # Capture state (internal): the last statement's kind and stack for the transaction
        # tracker, open transactions by Connection / DBAPI connection / Session key, every
        # transaction seen, DBAPI connections checked out inside this scope, the open flush.
        self.tx_by_conn: dict[int, TxState] = {}
        self.tx_by_dbapi: dict[int, TxState] = {}
        self.tx_by_session: dict[int, list[TxState]] = {}
        self.tx_all: list[TxState] = []
        self.checkouts: set[int] = set()
        #: ROLLBACKs the pool sent resetting connections returned inside this scope.
        self.resets = 0
        self.flush_load: OrmLoad | None = None
        # Stale identity maps: per session key (autocommit, identities carried into its
        # transaction), and the SELECTs that may have re-read them.
        self.identity: dict[int, tuple[bool, frozenset[Any]]] = {}
        self.stale_reads: list[StaleRead] = []
        # Parent-origin linkage: the queries that loaded ORM objects, and object -> origin.
        self.origins: dict[int, Origin] = {}
        self.origin_of: dict[int, int] = {}
        self.origin_rows: dict[int, int] = {}
        self._frozen_origins: dict[int, OriginRecord] = {}
        self.flush_seq = 0
        #: Sessions that committed in this scope (their objects may be expired since).
        self.committed: set[int] = set()
        #: The DBAPI connection being set up (first connect), whose statements are not counted.
        self.connecting = 0
        self.started = perf_counter()
        self.ended: float | None = None

    # -- hot path ------------------------------------------------------------------------

    def record(
        self,
        sql: str,
        start: float,
        rowcount: Any,
        batch: int,
        error: str | None,
        context: Any,
        parameters: Any = None,
    ) -> None:
        """Account for one statement that started at ``start`` and has just ended (called by
        the capture listeners with its execution context).

        Thread-safe: threads sharing one scope (``asyncio.to_thread`` copies the context,
        ``all_threads=True``) append records (atomic) and count statements past the cap under
        the scope's lock; a record that a race put past ``max_records`` is counted as
        overflow when read (``StatementLog``), so ``max_records`` holds exactly.

        On error inside sqlaudit: logged once, counted on the report, never raised.
        """
        duration = perf_counter() - start
        try:
            if self.connecting and _dbapi_id(context) == self.connecting:
                return  # connection setup (dialect initialize, on-connect hooks): not the app's
            if type(rowcount) is not int:
                rowcount = -1  # a driver reporting something else (None, a str...)
            kind = _kind_cache.get(sql) or statement_kind(sql)
            records = self._records
            if len(records) >= self._max:
                self._log.count_past_cap(kind, duration)
                # Counting-only scopes (max_records=0, e.g. unsampled requests) stop here: no
                # call site, no transaction tracking. Past a real cap, transactions still count.
                if self._max:
                    tx_hook[0](self, context, kind, start, duration, (), batch)
                return
            # Two threads sharing the scope may both pass the check above with one slot left:
            # _settle() moves any record past the cap to the overflow counts when read.
            # Frames: capture, record, the do_execute listener, SQLAlchemy's
            # _exec_single_context (or _exec_insertmany_context), _execute_context: the walk
            # starts at the last, skipping frames that are never the application's.
            stack = capture(4)
            orm = self.flush_load
            if orm_hook:
                # Only ORM-enabled statements carry propagate attributes; Core ones skip it.
                statement = getattr(context, "invoked_statement", None)
                if statement is not None and statement._propagate_attrs:
                    load = orm_hook[0](self, context, statement, kind, stack)
                    if load is not None:
                        orm = load
            records.append(
                _new_record(
                    QueryRecord,
                    (
                        sql,
                        kind,
                        start,
                        duration,
                        rowcount,
                        batch,
                        error,
                        stack,
                        orm,
                        id(context.root_connection),
                        context.dialect.name,
                        SUPPRESSED.get(),
                        None
                        if parameters is None or _roles_cache.get(sql, False) is None
                        else signature(sql, parameters),
                    ),
                )
            )
            tx_hook[0](self, context, kind, start, duration, stack, batch)
        except Exception as exc:
            self.internal_errors += 1
            internal_error("capture", exc)

    def origin_record(self, oid: int) -> OriginRecord | None:
        """The query ``oid`` (from ``OrmLoad.query``) as plain data, or None."""
        frozen = self._frozen_origins.get(oid)
        if frozen is None:
            origin = self.origins.get(oid)
            if origin is None:
                return None
            from sqlaudit.capture.origins import freeze

            frozen = self._frozen_origins[oid] = freeze(oid, origin, self.origin_rows.get(oid, 0))
        return frozen

    @property
    def origin_records(self) -> dict[int, OriginRecord]:
        """Every query that loaded ORM objects in this unit, by id (see ``OrmLoad.query``)."""
        return {oid: record for oid in self.origins if (record := self.origin_record(oid))}

    def checked_out_here(self, dbapi: int) -> bool:
        """True when the DBAPI connection was checked out inside this scope or a parent."""
        scope: AuditReport | None = self
        while scope is not None:
            if dbapi in scope.checkouts:
                return True
            scope = scope.parent
        return False

    # -- public view ---------------------------------------------------------------------

    @property
    def _kind_counts(self) -> dict[str, int]:
        return self._log.kind_counts()

    @property
    def query_count(self) -> int:
        """Statements issued, transaction control (BEGIN/COMMIT/SAVEPOINT...) excluded."""
        counts = self._kind_counts
        return sum(counts.values()) - counts.get(_TRANSACTION, 0)

    @property
    def overflow(self) -> int:
        """Statements beyond ``max_records``: counted, not recorded."""
        return self._log.overflow()

    @property
    def db_time(self) -> float:
        """Seconds spent executing counted statements (transaction control excluded)."""
        return self._log.db_time()

    @property
    def recorded_count(self) -> int:
        """Statements recorded in detail (at most ``max_records``)."""
        return self._log.recorded_count()

    @property
    def counts(self) -> dict[str, int]:
        """Statements per kind (``select``, ``insert``, ..., ``transaction``)."""
        return dict(sorted(self._kind_counts.items()))

    @property
    def statements(self) -> Sequence[QueryRecord]:
        """Recorded statements in the order they started (at most ``max_records``)."""
        return self._log.statements()

    @property
    def db_time_ms(self) -> float:
        """Milliseconds the unit's counted statements spent in the database."""
        return self.db_time * 1000.0

    @property
    def duration(self) -> float:
        """Wall-clock seconds the unit has been (or was) open."""
        end = self.ended if self.ended is not None else perf_counter()
        return end - self.started

    @property
    def commit_count(self) -> int:
        """Transactions of this unit that ended in a commit."""
        return sum(1 for t in self._transactions_so_far() if t.end == "commit")

    @property
    def rollback_count(self) -> int:
        """Transactions of this unit that were rolled back (explicitly, on error or at close)."""
        ends = ("rollback", "rollback_exception", "closed")
        return sum(1 for t in self._transactions_so_far() if t.end in ends and t.writes)

    @property
    def transaction_count(self) -> int:
        """Database transactions of this unit that ran at least one statement."""
        return sum(1 for t in self._transactions_so_far() if t.statements)

    def _transactions_so_far(self) -> Sequence[TransactionRecord | TxState]:
        return self.transaction_records if self.ended is not None else self.tx_all

    def merge_child(self, child: AuditReport) -> None:
        """Roll a closed nested scope's statements up into this one (under this scope's lock:
        other threads may be recording into it)."""
        with self._lock:
            self._merge_child(child)

    def _merge_child(self, child: AuditReport) -> None:
        self._log.merge(child._log)
        self.tx_all.extend(child.tx_all)
        self.stale_reads.extend(child.stale_reads)
        self.origins.update(child.origins)
        self.origin_of.update(child.origin_of)
        self.origin_rows.update(child.origin_rows)
        self.orm_statements.update(child.orm_statements)
        self.sessions.update(child.sessions)
        self.checkouts |= child.checkouts
        self.resets += child.resets
        self.internal_errors += child.internal_errors

    def render(self, *, statements: bool = True) -> str:
        """The human report: diagnosis first, then the statements with repeats collapsed."""
        from sqlaudit.report.text import render

        return render(self, statements=statements)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict of the report (fingerprints, never bind values)."""
        from sqlaudit.report.json import report_to_dict

        return report_to_dict(self)

    def __repr__(self) -> str:
        return (
            f"<AuditReport {self.name!r} queries={self.query_count} findings={len(self.findings)}>"
        )


def _dbapi_id(context: Any) -> int:
    return id(context.root_connection.connection.dbapi_connection)
