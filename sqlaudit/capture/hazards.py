"""Autocommit hazards beyond plain writes: locking reads and read-modify-writes (issue 22).

===============================  ===========================================  ===============
hook                             what is recorded                             cost
===============================  ===========================================  ===============
every statement of a             (``track``) a SELECT: is it a locking one?   ~0.1 µs per
transaction (``transactions``)   (by text, cached: ``sql.locking``); a write:  statement
                                 its text (the first few distinct ones)
a locking SELECT (``FOR          autocommit read from the DBAPI connection    per locking
UPDATE``...)                     (no round trip); a ``LockedRead`` when it    read only
                                 autocommits
any other SELECT                 (text, parameters, stack) kept on its open   one tuple
                                 transaction until the next SELECT, unless
                                 the transaction is known not to autocommit
an UPDATE outside a flush on an  compared with that last SELECT: same table,  per such
autocommit connection            same key values, a column it returned set    UPDATE
                                 to a new number (``core_update``)
``SessionEvents.after_flush``    an object loaded in this unit whose numeric  per flush of an
(``orm``)                        columns were changed to new numbers, on an   autocommit
                                 autocommit session (``flushed``)             session
===============================  ===========================================  ===============

Why numbers only: a lost update is a value computed from what was read (a balance, a
counter, a stock level) and written back; a new string or date is as often a plain overwrite.
Key columns (primary and foreign keys) are never counted: moving a row to another parent is
not arithmetic on it. A mapper with a ``version_id_col`` is skipped: SQLAlchemy's optimistic
check already refuses the lost update (``StaleDataError``). Bind values are compared in the
process and dropped when the transaction ends; records hold none.

On error inside sqlaudit: contained by the caller (``statements.record`` / the session
listener), never raised into the statement.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect

from sqlaudit.capture.autocommit import dbapi_of, detect_autocommit
from sqlaudit.capture.callsite import capture
from sqlaudit.capture.scope import SUPPRESSED
from sqlaudit.model.hazards import LockedRead, ReadModifyWrite
from sqlaudit.model.records import StatementKind
from sqlaudit.sql.cache import ABSENT, TEXTS
from sqlaudit.sql.locking import is_locking
from sqlaudit.sql.rowkeys import param, select_shape, update_shape

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from sqlaudit.capture.scope import Scope
    from sqlaudit.capture.transactions import TxState
    from sqlaudit.model.records import CallSite

__all__ = [
    "MAX_LOCKS",
    "MAX_RMW",
    "flushed",
    "track",
    "track_read",
]

#: Locking reads kept per transaction.
MAX_LOCKS = 16
#: Read-modify-writes kept per unit of work.
MAX_RMW = 1000
#: Distinct write texts kept per transaction (``TransactionRecord.write_sql``).
MAX_WRITE_SQL = 4
_UPDATE = StatementKind.UPDATE
_WRITES = StatementKind.WRITES
_known = TEXTS.data


def track(
    scope: Scope,
    tx: TxState,
    context: Any,
    kind: str,
    stack: tuple[CallSite, ...],
    start: float,
) -> None:
    """Account one write of ``tx`` (called by ``transactions.on_statement``; SELECTs go to
    ``track_read``)."""
    sql = context.statement
    written = tx.write_sql  # a tuple: no container made for transactions that never write
    if len(written) < MAX_WRITE_SQL and sql not in written:
        tx.write_sql = (*written, sql)
    # A flush's UPDATEs are judged per object, with the ORM's history (``flushed``).
    if kind == _UPDATE and tx.last_read is not None and not scope.flush_load:
        read, tx.last_read = tx.last_read, None  # one write per read
        if _autocommit(tx, context):
            core_update(scope, read, context, stack)


def track_read(tx: TxState, context: Any, stack: tuple[CallSite, ...], start: float) -> None:
    """Account one SELECT of ``tx``: a locking read, else the read a write may follow (neither
    is kept when ``tx`` is known not to autocommit). ``transactions.on_statement`` inlines the
    common case: a text its entry says cannot lock."""
    sql = context.statement
    # The answer kept in the text's entry (``sql.cache.TextFacts``), else ``is_locking``'s.
    locking = _known.get(sql, ABSENT).locking
    if locking is None:
        locking = is_locking(sql, tx.dialect)
    if locking:
        if _autocommit(tx, context) and len(tx.locks) < MAX_LOCKS:
            tx.locks = (*tx.locks, LockedRead(sql, stack, start, SUPPRESSED.get()))
    elif tx.autocommit is not False:
        tx.last_read = (sql, context.parameters, stack)


def _autocommit(tx: TxState, context: Any) -> bool:
    """Whether ``tx``'s connection autocommits, asked once per transaction (no round trip)."""
    if tx.autocommit is None:
        conn = context.root_connection
        tx.autocommit = detect_autocommit(
            context.dialect, dbapi_of(conn), context.execution_options
        )
    return bool(tx.autocommit)


def _number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _key_columns(context: Any) -> frozenset[str]:
    """Primary- and foreign-key column names of a compiled UPDATE's table (empty for text)."""
    table = getattr(getattr(context.compiled, "statement", None), "table", None)
    columns = getattr(table, "c", None)
    if columns is None:
        return frozenset()
    return frozenset(c.name.lower() for c in columns if c.primary_key or c.foreign_keys)


def core_update(
    scope: Scope,
    read: tuple[str, Any, tuple[CallSite, ...]],
    context: Any,
    stack: tuple[CallSite, ...],
) -> None:
    """An UPDATE outside a flush on an autocommit connection: a read-modify-write when it
    writes back, by key, the row the SELECT just before it (``read``) returned."""
    if len(scope.rmw) >= MAX_RMW:
        return
    read_sql, read_parameters, read_stack = read
    write_sql = context.statement
    update = update_shape(write_sql)
    if update is None:
        return
    select = select_shape(read_sql)
    if select is None or select.table != update.table:
        return
    if len(context.parameters) != 1:
        return  # an executemany writes many rows: not the write-back of one read
    values = context.parameters[0]
    selected = read_parameters[0] if read_parameters else None
    read_keys = dict(select.keys)
    for column, key in update.keys:
        if column not in read_keys:
            return
        found, value = param(values, key)
        seen, read_value = param(selected, read_keys[column])
        if not (found and seen) or value != read_value:
            return  # another row, or a key the read did not filter on
    excluded = _key_columns(context) | {c for c, _ in update.keys}
    returned = select.columns
    columns = sorted(
        column
        for column, key in update.absolute
        if (column in returned or "*" in returned)
        and column not in excluded
        and _number(param(values, key)[1])
    )
    if columns:
        scope.rmw.append(
            ReadModifyWrite(
                "core",
                update.table,
                tuple(columns),
                read_stack,
                stack,
                read_sql=read_sql,
                write_sql=write_sql,
                unit=scope.key,
                suppressed=SUPPRESSED.get(),
            )
        )


def flushed(scope: Scope, session: Session) -> None:
    """``after_flush`` of a session: objects it wrote back with new numbers in numeric columns
    they were read with, when its transaction autocommits."""
    txs = scope.tx_by_session.get(id(session))
    if not txs or not txs[-1].autocommit:
        return  # a real transaction (or one the unit did not begin)
    origin_of = scope.origin_of
    stack: tuple[CallSite, ...] | None = None
    for obj in session.dirty:  # after_flush still shows the pre-flush state (SessionEvents)
        if len(scope.rmw) >= MAX_RMW:
            return
        state = inspect(obj)
        oid = origin_of.get(state.key) if state.key is not None else None
        origin = scope.origins.get(oid) if oid is not None else None
        mapper = state.mapper
        if origin is None or mapper.version_id_col is not None:
            continue  # not read in this unit, or the ORM's optimistic check guards it
        columns = []
        for name, old in state.committed_state.items():
            prop = mapper.column_attrs.get(name)
            if prop is None or any(c.primary_key or c.foreign_keys for c in prop.columns):
                continue
            new = state.dict.get(name)
            if _number(old) and _number(new) and old != new:
                columns.append(name)
        if columns:
            if stack is None:
                stack = capture(2, scope.opener)
            target = mapper.class_.__name__
            read_stack = origin[6]
            scope.rmw.append(
                ReadModifyWrite(
                    "orm",
                    target,
                    tuple(sorted(columns)),
                    read_stack,
                    stack,
                    unit=scope.key,
                    suppressed=SUPPRESSED.get(),
                )
            )
