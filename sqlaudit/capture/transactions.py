"""Transaction capture: one state per database transaction, for Core connections and ORM
sessions alike.

===========================  ==========================================  ===================
event (target)               what is recorded                            cost
===========================  ==========================================  ===================
every statement in a scope   the transaction it belongs to: statements,  one dict lookup
(from ``_capture``)          writes, time executing, largest idle gap
first write of a Core        autocommit, read from the DBAPI connection  once per
transaction                  (``dialect.detect_autocommit_setting``);    transaction with
                             from then on its commit or rollback is      writes
                             followed (``tx_ends.watch_ends``)
``PoolEvents`` (``_pool``)   checkouts in the scope, implicit rollback   +0.1 µs/checkout
                             at close (``transaction_was_reset``)
``SessionEvents.after_begin``  an ORM session began a root transaction  per transaction
``after_commit``, ``after_rollback``, ``after_transaction_end``          per transaction
===========================  ==========================================  ===================

How commits and rollbacks are seen: ``instrument()`` wraps the engine's dialect's
``do_commit`` and ``do_rollback`` (``tx_ends.watch_ends``), where SQLAlchemy also fires
``ConnectionEvents.commit``/``rollback``. A ``ConnectionEvents`` listener on an Engine slows
every statement of the engine by ~4 µs, forever (DESIGN "Measured facts"); one on each
Connection that writes cost an ``event.listen`` per request (issue 20). Only transactions with
writes need to know whether they ended in a commit or a rollback (and, as before, later
transactions of the same Connection): read-only transactions end when their connection goes
back to the pool or the next transaction starts.

How a transaction ended:
``commit``; ``rollback`` (explicit); ``rollback_exception`` (a rollback while an exception
propagates: ``sys.exc_info()`` is set, e.g. ``with engine.begin():`` or ``with
session.begin():`` exiting on error); ``closed`` (rolled back implicitly: a Core connection
closed with its transaction open, which the pool reports as ``transaction_was_reset``, or an
ORM session closed without commit or rollback); ``open`` (still open when the scope closed).
Event orders were verified on SQLite, MariaDB (PyMySQL) and PostgreSQL (psycopg 3).

Autocommit is read from the DBAPI connection (``capture.autocommit``), never by a round trip:
``dialect.detect_autocommit_setting()`` (SQLAlchemy >= 2.0.43), else the driver's own flag
(``get_autocommit()``, ``autocommit``, sqlite3's ``isolation_level is None``), else the
``isolation_level`` execution option.

Savepoints and transactions the code under audit did not begin (a connection checked out
before the scope opened, a session bound to an outer ``Connection`` as in the "one outer
transaction per test" fixture pattern) are marked ``external`` and never produce findings.

On error inside sqlaudit: logged once, counted on the report, never raised into the query.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from sqlaudit.capture.autocommit import detect_autocommit
from sqlaudit.capture.callsite import capture, offsets
from sqlaudit.capture.hazards import track, track_read
from sqlaudit.capture.scope import SUPPRESSED, Scope
from sqlaudit.model.records import CallSite, StatementKind, TransactionRecord
from sqlaudit.sql.cache import ABSENT, TEXTS

if TYPE_CHECKING:
    from sqlalchemy.engine.default import DefaultExecutionContext
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.orm import Session, SessionTransaction

    from sqlaudit.model.hazards import LockedRead


__all__ = ["TxState", "detect_autocommit", "on_statement", "session_begin", "session_end"]

#: Where the application is found on each path (``callsite.offsets``).
_BEGIN_OFFSETS = offsets()
_END_OFFSETS = offsets()

_WRITES = StatementKind.WRITES
_SELECT = StatementKind.SELECT
_TRANSACTION = StatementKind.TRANSACTION
_known = TEXTS.data
_new_record = tuple.__new__
#: Ends whose moment was observed (``finish`` ran then), unlike "open" and "ended".
_OBSERVED_ENDS = frozenset({"commit", "rollback", "rollback_exception", "closed"})


def _no_root() -> None:
    """``TxState.root`` of a transaction begun with none (never the Connection's current one)."""


class TxState:
    """Mutable state of one open transaction (internal)."""

    __slots__ = (
        "autocommit",
        "begin_stack",
        "conn_ref",
        "connection",
        "dbapi",
        "dialect",
        "driver",
        "end",
        "end_stack",
        "ended",
        "exec_time",
        "external",
        "last_end",
        "last_read",
        "listening",
        "locks",
        "max_gap",
        "overflow",
        "root",
        "rows_written",
        "session",
        "started",
        "statements",
        "streamed_last",
        "streaming",
        "suppressed",
        "unit",
        "write_sql",
        "writes",
    )

    def __init__(
        self,
        started: float,
        stack: tuple[CallSite, ...],
        conn: Connection,
        dbapi: int,
        unit: int,
        root: Callable[[], Any] = _no_root,
        session: int = 0,
        external: bool = False,
        listening: bool = False,
    ) -> None:
        # One store per field: a store into a slot costs ~15 ns, one through
        # ``object.__setattr__`` (``model.frozen.assign``) ~140 ns (measured, issue 20).
        self.started = started
        #: When its last statement ended (its start, before the first).
        self.last_end = started
        self.begin_stack = stack
        self.conn_ref: weakref.ref[Connection] = weakref.ref(conn)
        #: ``id()`` of that Connection, as its statements' ``QueryRecord.connection``.
        self.connection = id(conn)
        dialect = conn.dialect
        self.dialect: str = dialect.name
        self.driver: str = dialect.driver
        self.dbapi = dbapi
        self.unit = unit
        # The Connection's root transaction when this one began (weakly: compared by
        # identity, an id() could be reused by the next transaction object).
        self.root = root
        #: ``id()`` of the ORM session, 0 for Core.
        self.session = session
        #: Not begun by the audited code (``TransactionRecord.external``).
        self.external = external
        #: Its end is observed when it comes: an ORM session's (``session_end``), or a Core
        #: transaction's that wrote (its commit or rollback is followed, ``tx_ends``).
        self.listening = listening
        self.suppressed = SUPPRESSED.get()
        self.autocommit: bool | None = None
        self.statements = 0
        self.writes = 0
        self.rows_written = 0
        self.exec_time = 0.0
        self.max_gap = 0.0
        self.end = "open"
        self.ended = 0.0
        self.end_stack: tuple[CallSite, ...] = ()
        self.streaming = False
        #: The last statement streamed its results: the time after it is fetching, not idle.
        self.streamed_last = False
        #: Locking reads while it autocommitted, the distinct texts it wrote (``hazards``).
        self.locks: tuple[LockedRead, ...] = ()
        self.write_sql: tuple[str, ...] = ()
        #: The last plain SELECT, the read a write may follow: (text, parameters, stack).
        #: Cleared when the transaction ends (bind values stay no longer than it).
        self.last_read: tuple[str, Any, tuple[CallSite, ...]] | None = None
        #: The counts of a unit past ``max_records`` transactions: this state is not kept
        #: once it ends, only counted there.
        self.overflow: dict[str, int] | None = None

    def finish(self, end: str, stack: tuple[CallSite, ...] = ()) -> None:
        if self.end == "open":
            self.last_read = None  # bind values stay no longer than the transaction
            self.end = end
            self.ended = perf_counter()
            self.end_stack = stack
            if self.overflow is not None:
                self.count_into(self.overflow)

    def count_into(self, counts: dict[str, int]) -> None:
        """Add this transaction to ``counts`` (a unit's transactions past ``max_records``,
        kept as the numbers its report shows: see ``UnitRecord``)."""
        if not self.statements:
            return
        counts["transactions"] = counts.get("transactions", 0) + 1
        if self.end == "commit":
            counts["commits"] = counts.get("commits", 0) + 1
        if self.writes and self.end in ("rollback", "rollback_exception", "closed"):
            counts["rollbacks"] = counts.get("rollbacks", 0) + 1
        if not self.autocommit:
            control = (self.end != "open") + (self.dialect == "postgresql")
            counts["control"] = counts.get("control", 0) + control

    def settle(self) -> None:
        """At scope close: an "open" transaction whose connection moved on has "ended"."""
        if self.end != "open":
            return
        conn = self.conn_ref()
        if (
            conn is None
            or conn.closed
            or not conn.in_transaction()
            or (not self.session and not self.same_root(conn))
        ):
            self.finish("ended")

    def same_root(self, conn: Connection) -> bool:
        """The Connection still runs the root transaction this state began with."""
        root = self.root()
        return root is not None and root is conn.get_transaction()

    def freeze(self, now: float) -> TransactionRecord:
        end = self.end
        ended = self.ended if end != "open" else now
        # The longest stretch without a statement: between two statements, or from the last
        # one to the observed end (commit, rollback, close), but never a stretch that follows
        # a statement streaming its results, which is fetching rows, not idle.
        idle = self.max_gap
        if end in _OBSERVED_ENDS and not self.streamed_last and self.statements:
            idle = max(idle, ended - self.last_end)
        # Every field, in order, straight into the tuple (``statements.record`` makes its
        # ``QueryRecord`` so): no keyword handling, no Python-level ``_make`` (issue 20).
        return _new_record(
            TransactionRecord,
            (
                "orm" if self.session else "core",
                self.autocommit,
                end,
                self.statements,
                self.writes,
                self.started,
                ended,
                self.exec_time,
                idle,
                self.begin_stack,
                self.end_stack,
                self.external,
                self.streaming,
                self.dialect,
                self.session,
                self.rows_written,
                self.suppressed,
                self.unit,
                self.driver,
                self.locks,
                self.write_sql,
                self.connection,
            ),
        )


# -- per statement (called from _capture for every statement in a scope) -------------------


def on_statement(
    scope: Scope,
    context: DefaultExecutionContext,
    kind: str,
    start: float,
    duration: float,
    stack: tuple[CallSite, ...],
    batch: int = 1,
    rowcount: int = -1,
) -> None:
    """Account a statement to its connection's current transaction."""
    if kind == _TRANSACTION:
        return
    conn = context.root_connection
    tx = scope.tx_by_conn.get(id(conn))
    if tx is None or tx.end != "open":
        # A Connection whose earlier transaction wrote keeps having its ends followed (as
        # the per-Connection listeners of earlier versions did).
        tx = _new_core_tx(
            scope,
            conn,
            start,
            stack,
            tx is not None and tx.listening and not tx.session and tx.conn_ref() is conn,
        )
    elif not tx.listening:
        # ``not tx.same_root(conn)``, inlined (the per-statement path, issue 20): a read-only
        # transaction ended unobserved (commit or rollback without a listener).
        # ``get_transaction()`` returns ``_transaction`` (SQLAlchemy 2.x), read without the call.
        current = conn._transaction
        if current is None or tx.root() is not current:
            tx.finish("ended")
            tx = _new_core_tx(scope, conn, start, stack, False)
    tx.statements += 1
    if kind == _SELECT:
        # ``track_read`` for a SELECT whose text's entry says it cannot lock, inlined (per
        # statement, issue 20): kept as the read a write may follow, unless ``tx`` is known
        # not to autocommit.
        sql = context.statement
        if _known.get(sql, ABSENT).locking is not False:
            track_read(tx, context, stack, start)  # locking reads
        elif tx.autocommit is not False:
            tx.last_read = (sql, context.parameters, stack)
    elif kind in _WRITES:
        track(scope, tx, context, kind, stack, start)  # read-modify-writes
        tx.writes += 1
        # Rows, not statements: one INSERT of 100 rows (insertmanyvalues) is 100 rows; the
        # driver's rowcount when it knows it, else the parameter sets sent.
        tx.rows_written += rowcount if rowcount >= 0 else batch
        if tx.autocommit is None:
            tx.autocommit = detect_autocommit(
                context.dialect, _dbapi(conn), context.execution_options
            )
        if not tx.listening:  # (a Core transaction: a session's is listening from its begin)
            tx.listening = True  # its commit or rollback is now followed (watch_ends)
    tx.exec_time += duration
    gap = start - tx.last_end
    if gap > tx.max_gap and tx.statements > 1 and not tx.streamed_last:
        tx.max_gap = gap
    tx.last_end = start + duration
    # Whether this statement streams its results (the time after it is fetching, not idle).
    if context.execution_options.get("stream_results"):
        tx.streamed_last = tx.streaming = True
    else:
        tx.streamed_last = False


def _dbapi(conn: Connection) -> DBAPIConnection | None:
    try:
        return conn.connection.dbapi_connection
    except Exception:
        return None


def _new_core_tx(
    scope: Scope, conn: Connection, start: float, stack: tuple[CallSite, ...], listening: bool
) -> TxState:
    dbapi = id(_dbapi(conn))
    external = not scope.checked_out_here(dbapi)
    root = conn.get_transaction()
    ref = _no_root if root is None else weakref.ref(root)
    tx = TxState(start, stack, conn, dbapi, scope.key, ref, 0, external, listening)
    scope.tx_by_conn[tx.connection] = tx
    scope.tx_by_dbapi[dbapi] = tx
    scope.keep(tx)
    return tx


# -- ORM session listeners (called from _orm) ----------------------------------------------


def session_begin(
    scope: Scope, session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    """A session began a transaction on ``connection``: it owns that connection's state."""
    dbapi = id(_dbapi(connection))
    external = (
        isinstance(session.bind, Connection)
        or connection.in_nested_transaction()
        or not scope.checked_out_here(dbapi)
    )
    stack = capture(3, scope.opener, _BEGIN_OFFSETS)
    tx = TxState(
        perf_counter(), stack, connection, dbapi, scope.key, _no_root, id(session), external, True
    )
    scope.tx_by_conn[tx.connection] = tx
    scope.tx_by_dbapi[dbapi] = tx
    scope.keep(tx)
    scope.tx_by_session.setdefault(id(session), []).append(tx)


def session_end(scope: Scope, session: Session, end: str) -> None:
    """The session's root transaction ended (``commit``, ``rollback*`` or ``closed``)."""
    txs = scope.tx_by_session.pop(id(session), None)
    if not txs:
        return
    stack = capture(3, scope.opener, _END_OFFSETS)
    if end == "rollback" and sys.exc_info()[1] is not None:
        end = "rollback_exception"
    for tx in txs:
        tx.finish(end, stack)
