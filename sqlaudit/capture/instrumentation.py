"""Core capture: ``instrument(engine)`` and the dialect-level statement listeners.

===========================  ==========================================  ====================
event (target)               what is recorded                            cost per statement
===========================  ==========================================  ====================
``do_execute`` (dialect)     text, kind, duration, rowcount, error,      +1 µs with no scope;
                             call site, connection, ORM context (read    full record in scope
                             from the execution context, see ``_orm``)
``do_executemany``           the same, with the number of parameter sets  same
``do_execute_no_params``     the same, for statements without parameters  same
===========================  ==========================================  ====================

Why dialect events: any ``ConnectionEvents`` listener on an Engine moves every statement of
that engine onto SQLAlchemy's slow path (+3.5 to +4.4 µs, measured; DESIGN "Measured facts")
and ``event.remove`` does not undo it. ``DialectEvents.do_execute`` keeps the fast path.

How: with no audit scope active the listener returns False at once and SQLAlchemy runs the
statement itself. In a scope the listener runs the dialect's own ``do_execute`` (exactly what
SQLAlchemy would have run, unchanged), times it and returns True. A ``do_execute`` listener
that returns True pre-empts listeners registered after it (``DialectEvents`` docs), so
``instrument()`` should be called after any other tool that hooks ``do_execute``; listeners
registered before it run first, as usual. A DBAPI exception propagates unchanged: SQLAlchemy
then wraps it and fires ``handle_error`` exactly as without sqlaudit.

On error inside sqlaudit (never the statement's own error): the failure is logged once on
logger ``sqlaudit``, counted on the report, and the statement's outcome is untouched.
"""

from __future__ import annotations

import threading
import weakref
from time import perf_counter
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from sqlaudit.capture import orm as _orm
from sqlaudit.capture.pool import POOL_LISTENERS
from sqlaudit.capture.scope import CURRENT, FALLBACK, current, tx_hook
from sqlaudit.capture.transactions import on_statement
from sqlaudit.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor, ExecutionContext


__all__ = ["Instrumentation", "instrument"]

tx_hook[:] = [on_statement]

_lock = threading.RLock()
_registry: weakref.WeakKeyDictionary[Engine, Instrumentation] = weakref.WeakKeyDictionary()


def _do_execute(
    cursor: DBAPICursor, statement: str, parameters: Any, context: ExecutionContext
) -> bool:
    scope = CURRENT.get()
    if scope is None:
        if not FALLBACK:
            return False
        scope = FALLBACK[-1]
    dialect = context.dialect
    start = perf_counter()
    try:
        dialect.do_execute(cursor, statement, parameters, context)
    except BaseException as exc:
        scope.record(statement, start, -1, 1, type(exc).__name__, context, parameters)
        raise
    try:  # _rowcount(cursor), inlined: this is the per-statement path
        rowcount = cursor.rowcount
    except Exception:
        rowcount = -1
    scope.record(statement, start, rowcount, 1, None, context, parameters)
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
    scope = CURRENT.get()
    if scope is None:
        if not FALLBACK:
            return False
        scope = FALLBACK[-1]
    dialect = context.dialect
    start = perf_counter()
    try:
        dialect.do_executemany(cursor, statement, parameters, context)
    except BaseException as exc:
        scope.record(statement, start, -1, len(parameters), type(exc).__name__, context)
        raise
    scope.record(statement, start, _rowcount(cursor), len(parameters), None, context)
    return True


def _do_execute_no_params(cursor: DBAPICursor, statement: str, context: ExecutionContext) -> bool:
    scope = CURRENT.get()
    if scope is None:
        if not FALLBACK:
            return False
        scope = FALLBACK[-1]
    dialect = context.dialect
    start = perf_counter()
    try:
        dialect.do_execute_no_params(cursor, statement, context)
    except BaseException as exc:
        scope.record(statement, start, -1, 1, type(exc).__name__, context)
        raise
    scope.record(statement, start, _rowcount(cursor), 1, None, context)
    return True


def _connect_begins(dbapi_connection: Any, record: Any) -> None:
    """First ``connect`` listener (``insert=True``): statements on this new DBAPI connection
    until ``_connect_ends`` are setup (SQLAlchemy's first-connect ``dialect.initialize()``
    runs in a ``connect`` listener registered at ``create_engine``), not the application's."""
    scope = current()
    if scope is not None:
        scope.connecting = id(dbapi_connection)


def _connect_ends(dbapi_connection: Any, record: Any) -> None:
    scope = current()
    if scope is not None and scope.connecting == id(dbapi_connection):
        scope.connecting = 0


_LISTENERS: tuple[tuple[str, Any], ...] = (
    ("do_execute", _do_execute),
    ("do_executemany", _do_executemany),
    ("do_execute_no_params", _do_execute_no_params),
)


class Instrumentation:
    """The handle ``instrument(engine)`` returns; ``remove()`` takes its listeners off again."""

    __slots__ = ("__weakref__", "_engine", "_finalizer", "_removed", "_token", "orm")

    def __init__(self, engine: Engine, orm: bool = True) -> None:
        self._engine = weakref.ref(engine)
        self._removed = False
        #: Whether the ORM detail listeners (lazy loads, origins) were asked for.
        self.orm = orm
        # Shared with the engine's finalizer: the ORM listeners are released exactly once,
        # by remove() or when the engine is garbage-collected, whichever comes first.
        self._token = _orm.Token(orm)
        self._finalizer: weakref.finalize[Any, Any] | None = None

    @property
    def engine(self) -> Engine | None:
        """The instrumented engine, or None once it has been garbage-collected."""
        return self._engine()

    @property
    def active(self) -> bool:
        """True until ``remove()`` is called or the engine is collected."""
        return not self._removed and self._engine() is not None

    def _attach(self, engine: Engine) -> None:
        for name, fn in _LISTENERS + POOL_LISTENERS:
            event.listen(engine, name, fn)
        event.listen(engine, "connect", _connect_begins, insert=True)
        event.listen(engine, "connect", _connect_ends)
        self._token.acquire()

    def remove(self) -> None:
        """Remove exactly the listeners this instrumentation added. Idempotent."""
        with _lock:
            if self._removed:
                return
            self._removed = True
            engine = self._engine()
            if engine is not None:
                for name, fn in (
                    *_LISTENERS,
                    *POOL_LISTENERS,
                    ("connect", _connect_begins),
                    ("connect", _connect_ends),
                ):
                    if event.contains(engine, name, fn):
                        event.remove(engine, name, fn)
                if _registry.get(engine) is self:
                    del _registry[engine]
            if self._finalizer is not None:
                # Otherwise each instrument()/remove() cycle on a long-lived engine would leave
                # a finalizer registered until the engine is collected.
                self._finalizer.detach()
                self._finalizer = None
            self._token.release()

    def __repr__(self) -> str:
        engine = self._engine()
        state = "removed" if self._removed else "active"
        return f"<sqlaudit.Instrumentation {state} {engine!r}>"


def instrument(engine: Any, *, orm: bool = True) -> Instrumentation:
    """Audit statements of ``engine`` (an ``Engine`` or ``AsyncEngine``) inside audit scopes.

    Idempotent: instrumenting the same engine again returns the same handle. The engine is
    held weakly. With no ``sqlaudit.audit(...)`` block open, Core statements run as before at
    a cost of about one microsecond each.

    ``orm=True`` (default) also reads, inside audits, which statements are lazy loads, eager
    batches and column loads, and attaches a ``Mapper``-wide ``InstanceEvents.load`` listener
    that sees which query loaded each object (``n_plus_one``, ``column_reload``,
    ``stale_identity_map``, the exact fixes); that listener costs each ORM object loaded in the
    process a fraction of a microsecond, audit open or not. ``orm=False`` leaves both off:
    statements, transactions, budgets, repeated queries and write loops are still audited. The
    ORM detail stays on while any instrumentation asked for it.
    """
    if not isinstance(orm, bool):
        raise ConfigError(f"orm must be True or False, got {orm!r}")
    target = getattr(engine, "sync_engine", engine)
    if not isinstance(target, Engine):
        raise ConfigError(
            "instrument() takes a sqlalchemy Engine or AsyncEngine, "
            f"got {type(engine).__module__}.{type(engine).__qualname__}"
        )
    with _lock:
        existing = _registry.get(target)
        if existing is not None and existing.active:
            if orm and not existing.orm:
                raise ConfigError(
                    "this engine is already instrumented with orm=False; remove() that "
                    "instrumentation first to instrument it with orm=True"
                )
            return existing
        handle = Instrumentation(target, orm)
        handle._attach(target)
        _registry[target] = handle
        handle._finalizer = weakref.finalize(target, handle._token.release)
        return handle
