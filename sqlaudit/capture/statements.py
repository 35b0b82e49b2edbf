"""Statement capture: the dialect-level listeners and ``record``, the per-statement hot path.

===========================  ==========================================  ====================
event (target)               what is recorded                            cost per statement
===========================  ==========================================  ====================
``do_execute`` (dialect)     text, kind, duration, rowcount, error,      +1 µs with no scope;
                             call site, connection, ORM context (read    full record in scope
                             from the execution context, see ``orm``)
``do_executemany``           the same, with the number of parameter sets  same
``do_execute_no_params``     the same, for statements without parameters  same
``connect`` (first, last)    the DBAPI connection being set up: its       per new connection
                             statements are not the application's
===========================  ==========================================  ====================

Why dialect events: any ``ConnectionEvents`` listener on an Engine moves every statement of
that engine onto SQLAlchemy's slow path (+3.5 to +4.4 µs, measured; DESIGN "Measured facts")
and ``event.remove`` does not undo it. ``DialectEvents.do_execute`` keeps the fast path.

How: with no scope active the listener returns False at once and SQLAlchemy runs the statement
itself. In a scope the listener runs the dialect's own ``do_execute`` (exactly what SQLAlchemy
would have run, unchanged), times it and returns True. A ``do_execute`` listener that returns
True pre-empts listeners registered after it (``DialectEvents`` docs), so ``instrument()``
should be called after any other tool that hooks ``do_execute``; listeners registered before
it run first, as usual. A DBAPI exception propagates unchanged: SQLAlchemy then wraps it and
fires ``handle_error`` exactly as without sqlaudit.

On error inside sqlaudit (never the statement's own error): the failure is logged once on
logger ``sqlaudit``, counted on the unit, and the statement's outcome is untouched.
"""

from __future__ import annotations

from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import contain
from sqlaudit.capture import orm
from sqlaudit.capture.callsite import capture, offsets
from sqlaudit.capture.scope import CURRENT, FALLBACK, SUPPRESSED, current, open_ancestor
from sqlaudit.capture.transactions import on_statement
from sqlaudit.model.records import QueryRecord, StatementKind
from sqlaudit.sql.fingerprint import known, new_facts
from sqlaudit.sql.params import hashes

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext

    from sqlaudit.capture.scope import Scope

__all__ = ["LISTENERS", "connect_begins", "connect_ends", "record"]

#: The offsets of this path into ``callsite.capture`` (``callsite.offsets``), passed by
#: position: a ``partial`` with a keyword costs ~0.2 µs per call (it builds a dict), a direct
#: call ~0.03 µs, and neither adds a frame between ``record`` and the walk (issue 20).
_OFFSETS = offsets()

_new_record = tuple.__new__
_SELECT = StatementKind.SELECT
#: ``CURRENT.get`` and ``SUPPRESSED.get``, bound once: read for every statement.
_current = CURRENT.get
_suppressed = SUPPRESSED.get


def record(
    scope: Scope,
    sql: str,
    start: float,
    rowcount: Any,
    context: Any,
    parameters: Any = None,
    batch: int = 1,
    error: str | None = None,
) -> None:
    """Account for one statement that started at ``start`` and has just ended: ``batch``
    parameter sets, ``error`` the name of the exception it raised. (The per-statement call
    passes no defaults: each argument passed is a bytecode.)

    Thread-safe: threads sharing one scope (``asyncio.to_thread`` copies the context,
    ``all_threads=True``) append records (atomic) and count statements past the cap under the
    log's lock; a record that a race put past ``max_records`` is counted as overflow when read
    (``StatementLog``), so ``max_records`` holds exactly.
    """
    duration = perf_counter() - start
    try:
        if scope.connecting and _dbapi_id(context) == scope.connecting:
            return  # connection setup (dialect initialize, on-connect hooks): not the app's
        if type(rowcount) is not int:
            rowcount = -1  # a driver reporting something else (None, a str...)
        # The text's entry (kind, parameter roles...): made once per distinct text, issue 20.
        entry = known.get(sql) or new_facts(sql)
        kind = entry.kind
        records = scope.records
        if len(records) >= scope.cap:
            scope.log.count_past_cap(kind, duration)
            # Counting-only scopes (max_records=0, e.g. unsampled requests) stop here: no
            # call site, no transaction tracking. Past a real cap, transactions still count.
            if scope.cap:
                on_statement(scope, context, kind, start, duration, (), batch, rowcount)
            return
        # Two threads sharing the scope may both pass the check above with one slot left:
        # the log moves any record past the cap to the overflow counts when read.
        # Frames: capture, record, the do_execute listener, SQLAlchemy's
        # _exec_single_context (or _exec_insertmany_context), _execute_context: the walk
        # starts at the last, skipping frames that are never the application's.
        stack = capture(4, scope.opener, _OFFSETS)
        load = scope.flush_load
        if orm.detail:
            # Only ORM-enabled statements carry propagate attributes; Core ones skip it.
            try:  # getattr(context, "invoked_statement", None), in fewer bytecodes
                statement = context.invoked_statement
            except AttributeError:  # an ExecutionContext that is not SQLAlchemy's default
                statement = None
            if statement is not None and statement._propagate_attrs:
                found = orm.statement_load(scope, context, statement, kind, stack, rowcount)
                if found is not None:
                    load = found
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
                    load,
                    id(context.root_connection),
                    context.dialect.name,
                    _suppressed(),
                    None
                    if parameters is None or not entry.roles
                    else hashes(entry.roles, parameters),
                    scope.key,
                ),
            )
        )
        on_statement(scope, context, kind, start, duration, stack, batch, rowcount)
        if scope.explain is not None and kind == _SELECT and parameters is not None:
            scope.explain.keep(sql, parameters, context)  # development only: see explain
    except Exception as exc:
        contain("capture", exc, scope)


def _dbapi_id(context: Any) -> int:
    return id(context.root_connection.connection.dbapi_connection)


def _scope() -> Scope | None:
    """``current()`` for the listeners: this context's scope, else the innermost fallback."""
    scope = _current()
    if scope is None and FALLBACK:
        try:
            return FALLBACK[-1]
        except IndexError:  # the last fallback closed in another thread since the check
            return None
    return scope


def _do_execute(
    cursor: DBAPICursor, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    scope = _current()
    if scope is None:
        if not FALLBACK:
            return False
        scope = _scope()
        if scope is None:
            return False
    elif scope.ended is not None:  # a context that outlived its unit
        scope = open_ancestor(scope)
        if scope is None:
            return False
    start = perf_counter()
    try:
        context.dialect.do_execute(cursor, statement, parameters, context)
    except BaseException as exc:
        record(scope, statement, start, -1, context, parameters, error=type(exc).__name__)
        raise
    try:  # _rowcount(cursor), inlined: this is the per-statement path
        rowcount = cursor.rowcount
    except Exception:
        rowcount = -1
    record(scope, statement, start, rowcount, context, parameters)
    return True


def _rowcount(cursor: DBAPICursor) -> Any:
    """``cursor.rowcount``, or -1 when reading it fails (``record`` keeps ints only)."""
    try:
        return cursor.rowcount
    except Exception:
        return -1


def _do_executemany(
    cursor: DBAPICursor, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    scope = _current()
    if scope is None:
        if not FALLBACK:
            return False
        scope = _scope()
        if scope is None:
            return False
    elif scope.ended is not None:  # a context that outlived its unit
        scope = open_ancestor(scope)
        if scope is None:
            return False
    dialect = context.dialect
    start = perf_counter()
    try:
        dialect.do_executemany(cursor, statement, parameters, context)
    except BaseException as exc:
        record(scope, statement, start, -1, context, None, len(parameters), type(exc).__name__)
        raise
    record(scope, statement, start, _rowcount(cursor), context, None, len(parameters))
    return True


def _do_execute_no_params(cursor: DBAPICursor, statement: str, context: ExecutionContext) -> bool:
    scope = _current()
    if scope is None:
        if not FALLBACK:
            return False
        scope = _scope()
        if scope is None:
            return False
    elif scope.ended is not None:  # a context that outlived its unit
        scope = open_ancestor(scope)
        if scope is None:
            return False
    dialect = context.dialect
    start = perf_counter()
    try:
        dialect.do_execute_no_params(cursor, statement, context)
    except BaseException as exc:
        record(scope, statement, start, -1, context, error=type(exc).__name__)
        raise
    record(scope, statement, start, _rowcount(cursor), context)
    return True


def connect_begins(dbapi_connection: Any, connection_record: Any) -> None:
    """First ``connect`` listener (``insert=True``): statements on this new DBAPI connection
    until ``connect_ends`` are setup (SQLAlchemy's first-connect ``dialect.initialize()``
    runs in a ``connect`` listener registered at ``create_engine``), not the application's."""
    scope = current()
    if scope is not None:
        scope.connecting = id(dbapi_connection)


def connect_ends(dbapi_connection: Any, connection_record: Any) -> None:
    scope = current()
    if scope is not None and scope.connecting == id(dbapi_connection):
        scope.connecting = 0


#: ``(event name, listener)`` attached to each instrumented engine's dialect.
LISTENERS: tuple[tuple[str, Any], ...] = (
    ("do_execute", _do_execute),
    ("do_executemany", _do_executemany),
    ("do_execute_no_params", _do_execute_no_params),
)
