"""How transactions end: the dialect's ``do_commit`` / ``do_rollback``, wrapped once per dialect.

``instrument()`` calls ``watch_ends(engine.dialect)``; ``remove()`` calls ``unwatch_ends``.
A Core transaction that wrote (``TxState.listening``, set by ``transactions.on_statement``)
is finished as ``commit``, ``rollback`` or ``rollback_exception`` when its connection's
commit or rollback reaches the driver; ORM transactions end through the session listeners.

On error inside sqlaudit: logged once, counted on the report, never raised into the commit.
"""

from __future__ import annotations

import sys
from typing import Any

from sqlaudit.capture.callsite import capture, offsets
from sqlaudit.capture.guard import listener
from sqlaudit.capture.scope import CURRENT, FALLBACK, Scope

__all__ = ["unwatch_ends", "watch_ends"]

#: Where the application is found on this path (``callsite.offsets``).
_OFFSETS = offsets()


@listener("transactions.end")
def _ended(scope: Scope, dbapi_connection: Any, end: str) -> None:
    # Called by the wrappers below, before the driver's commit or rollback (where SQLAlchemy
    # fires ConnectionEvents.commit/rollback). SQLAlchemy passes the pool's proxy of the
    # DBAPI connection; the pool's own reset ROLLBACK comes after on_reset finished the state.
    raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)
    tx = scope.tx_by_dbapi.get(id(raw))
    # ``ended`` tested first: the pool's reset ROLLBACK (one per checkin) finds it finished.
    if tx is not None and not tx.ended and tx.listening and not tx.session:
        if end == "rollback" and sys.exc_info()[1]:  # (the guard's ``try`` keeps exc_info)
            end = "rollback_exception"
        tx.finish(end, capture(4, scope.opener, _OFFSETS))


def watch_ends(dialect: Any) -> None:
    """Observe how transactions end on ``dialect`` (one engine's, shared with the engines
    ``execution_options()`` derives from it): its ``do_commit`` and ``do_rollback`` are wrapped
    on the instance, once however many instrumentations share it (counted; ``unwatch_ends``
    restores them when the last one goes).

    Why not ``ConnectionEvents.commit`` / ``rollback``: on the Engine they move every statement
    onto SQLAlchemy's slow path; on each Connection they cost an ``event.listen`` per
    Connection that writes, i.e. per request (~60 µs, issue 20). A wrapper costs one call per
    commit or rollback, and only transactions that wrote (``TxState.listening``) look at it.
    """
    count = vars(dialect).get(_COUNT, 0)
    if count:
        vars(dialect)[_COUNT] = count + 1
        return
    commit, rollback = dialect.do_commit, dialect.do_rollback

    # With no unit open (most commits of a service between sampled requests) a wrapper
    # costs one ContextVar read and a list check: no further call.
    def do_commit(dbapi_connection: Any) -> None:
        if CURRENT.get() is not None or FALLBACK:
            _ended(dbapi_connection, "commit")
        commit(dbapi_connection)

    def do_rollback(dbapi_connection: Any) -> None:
        if CURRENT.get() is not None or FALLBACK:
            _ended(dbapi_connection, "rollback")  # or "rollback_exception" (``_ended``)
        rollback(dbapi_connection)

    for name, wrapper in (("do_commit", do_commit), ("do_rollback", do_rollback)):
        # What to restore: the instance's own attribute if it had one, else nothing (the
        # class's method shows through again).
        wrapper.__sqlaudit_restore__ = vars(dialect).get(name, _ABSENT)  # type: ignore[attr-defined]
        setattr(dialect, name, wrapper)
    vars(dialect)[_COUNT] = 1


def unwatch_ends(dialect: Any) -> None:
    """Undo one ``watch_ends(dialect)``; the last one restores the dialect's methods (unless
    something wrapped them again since: then ours stay, inert once no scope is open)."""
    count = vars(dialect).get(_COUNT, 0)
    if count > 1:
        vars(dialect)[_COUNT] = count - 1
        return
    vars(dialect).pop(_COUNT, None)
    for name in ("do_commit", "do_rollback"):
        wrapper = vars(dialect).get(name)
        restore = getattr(wrapper, "__sqlaudit_restore__", None)
        if restore is None:
            continue  # not ours (any more)
        if restore is _ABSENT:
            delattr(dialect, name)
        else:
            setattr(dialect, name, restore)


_COUNT = "_sqlaudit_watch_ends"
_ABSENT = object()
