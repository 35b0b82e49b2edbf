"""``instrument(engine)``: attach sqlaudit's listeners to an engine; ``remove()`` takes them off.

Per engine: the statement listeners (``statements.LISTENERS``, dialect events that keep
SQLAlchemy's fast path), the pool listeners (``pool.POOL_LISTENERS``) and two ``connect``
listeners that tell connection setup from the application's statements; and the engine's
dialect's ``do_commit``/``do_rollback``, wrapped to see how transactions end
(``tx_ends.watch_ends``, shared by the engines derived from it). Shared by every
instrumentation: the class-level ``Session`` and ``Mapper`` listeners of ``orm``, attached
while at least one instrumentation wants them. Engines are held weakly.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any, overload

from sqlalchemy import event
from sqlalchemy.engine import Engine

from sqlaudit._validate import check_bool
from sqlaudit.capture.claims import Token
from sqlaudit.capture.extensions import ExtensionInstrumentation, is_flask_sqlalchemy
from sqlaudit.capture.pool import POOL_LISTENERS
from sqlaudit.capture.statements import LISTENERS, connect_begins, connect_ends
from sqlaudit.capture.tx_ends import unwatch_ends, watch_ends
from sqlaudit.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["ExtensionInstrumentation", "Instrumentation", "instrument"]

_lock = threading.RLock()
if hasattr(os, "register_at_fork"):  # POSIX
    # A fork waits for an instrument() or remove() in progress in another thread: SQLAlchemy's
    # event registry, which they change under this lock, is then whole in the child, and the
    # lock free there (issue 14, row 10; the standard library's logging does the same).
    os.register_at_fork(
        before=_lock.acquire,
        after_in_parent=_lock.release,
        after_in_child=_lock._at_fork_reinit,  # type: ignore[attr-defined]  # CPython 3.9+
    )
_registry: weakref.WeakKeyDictionary[Engine, Instrumentation] = weakref.WeakKeyDictionary()
_extensions: weakref.WeakKeyDictionary[Any, ExtensionInstrumentation] = weakref.WeakKeyDictionary()
_LISTENERS = LISTENERS


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
        self._token = Token(orm)
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
        for name, fn in LISTENERS + POOL_LISTENERS:
            event.listen(engine, name, fn)
        event.listen(engine, "connect", connect_begins, insert=True)
        event.listen(engine, "connect", connect_ends)
        watch_ends(engine.dialect)
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
                    *LISTENERS,
                    *POOL_LISTENERS,
                    ("connect", connect_begins),
                    ("connect", connect_ends),
                ):
                    try:
                        if event.contains(engine, name, fn):
                            event.remove(engine, name, fn)
                    except KeyError:
                        # SQLAlchemy 2.0.23 (not 2.1): once an engine derived with
                        # execution_options() was instrumented and removed, its parent's
                        # event.remove raises KeyError in the event registry's bookkeeping,
                        # after taking the listener off (tests/test_capture.py).
                        pass
                unwatch_ends(engine.dialect)
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


@overload
def instrument(engine: Engine | AsyncEngine, *, orm: bool = True) -> Instrumentation: ...
@overload
def instrument(engine: Any, *, orm: bool = True) -> Instrumentation | ExtensionInstrumentation: ...
def instrument(engine: Any, *, orm: bool = True) -> Instrumentation | ExtensionInstrumentation:
    """Audit statements of ``engine`` (an ``Engine`` or ``AsyncEngine``) inside audit scopes.

    Idempotent: instrumenting the same engine again returns the same handle. The engine is
    held weakly. With no ``sqlaudit.audit(...)`` block open, Core statements run as before at
    a cost of about one microsecond each.

    A Flask-SQLAlchemy extension (``db = SQLAlchemy()``) instruments every engine of it: each
    bind of each app, including those ``db.init_app(app)`` creates after this call (an app
    factory's ``create_app()``); it returns an :class:`ExtensionInstrumentation`.

    ``orm=True`` (default) also reads, inside audits, which statements are lazy loads, eager
    batches and column loads, and attaches a ``Mapper``-wide ``InstanceEvents.load`` listener
    that sees which query loaded each object (``n_plus_one``, ``column_reload``,
    ``stale_identity_map``, the exact fixes); that listener costs each ORM object loaded in the
    process a fraction of a microsecond, audit open or not. ``orm=False`` leaves both off:
    statements, transactions, budgets, repeated queries and write loops are still audited. The
    ORM detail stays on while any instrumentation asked for it.
    """
    check_bool("orm", orm)
    target = getattr(engine, "sync_engine", engine)
    if not isinstance(target, Engine):
        if is_flask_sqlalchemy(engine):
            return _instrument_extension(engine, orm)
        raise ConfigError(_unsupported(engine))
    with _lock:
        existing = _registry.get(target)
        if existing is not None and _reusable(existing, orm, "engine"):
            return existing
        handle = Instrumentation(target, orm)
        handle._attach(target)
        _registry[target] = handle
        handle._finalizer = weakref.finalize(target, handle._token.release_later)
        return handle


def _instrument_extension(extension: Any, orm: bool) -> ExtensionInstrumentation:
    with _lock:
        existing = _extensions.get(extension)
        if existing is not None and _reusable(existing, orm, "Flask-SQLAlchemy extension"):
            return existing
        handle = ExtensionInstrumentation(extension, orm, instrument)
        handle._start(instrument)
        _extensions[extension] = handle
        return handle


def _reusable(existing: Instrumentation | ExtensionInstrumentation, orm: bool, what: str) -> bool:
    """Whether ``existing`` is the handle to return again (instrument() is idempotent); a
    ConfigError when it lacks the ORM detail now asked for."""
    if not existing.active:
        return False
    if orm and not existing.orm:
        raise ConfigError(
            f"this {what} is already instrumented with orm=False; remove() that "
            "instrumentation first to instrument it with orm=True"
        )
    return True


def _unsupported(obj: object) -> str:
    """The ConfigError text for an object ``instrument()`` cannot take: what it got and what
    to pass instead."""
    # Imported here, on this error path only: sqlalchemy.ext.asyncio imports asyncio.
    from sqlalchemy import URL
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
    from sqlalchemy.orm import Session, scoped_session, sessionmaker

    kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
    got = (
        f"instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy "
        f"extension (db = SQLAlchemy()), got {kind}"
    )
    if isinstance(obj, (str, URL)):
        return f"{got}: create the engine first, engine = create_engine(url), and pass it"
    if isinstance(obj, (Session, scoped_session, AsyncSession)):
        return (
            f"{got}: pass the engine the session uses, sqlaudit.instrument(engine) where the "
            "engine is created (or sqlaudit.instrument(session.get_bind()))"
        )
    if isinstance(obj, (sessionmaker, async_sessionmaker)):
        return f"{got}: pass the engine it is bound to, the bind= of the sessionmaker"
    if isinstance(obj, (Connection, AsyncConnection)):
        return f"{got}: pass connection.engine (every connection of it is audited)"
    extensions = getattr(obj, "extensions", None)
    if isinstance(extensions, dict):  # a Flask (or Quart) app
        if "sqlalchemy" in extensions:
            return (
                f"{got}: pass the Flask-SQLAlchemy extension, sqlaudit.instrument(db), once "
                "where db = SQLAlchemy() is made (app.extensions['sqlalchemy'] is that object)"
            )
        return f"{got}: pass the engine the app uses, or its Flask-SQLAlchemy extension (db)"
    if callable(getattr(obj, "get_engine", None)) and callable(getattr(obj, "init_app", None)):
        return (
            f"{got}: this looks like Flask-SQLAlchemy older than 3.0 (no _make_engine); "
            "upgrade, or pass each engine inside an app context: sqlaudit.instrument(db.engine)"
        )
    return f"{got}: pass the engine your sessions use, e.g. sqlaudit.instrument(engine)"
