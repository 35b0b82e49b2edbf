"""The class-level ORM listeners (``Session`` events, ``InstanceEvents.load``), shared by every
instrumentation: attached while at least one wants them, detached when the last lets go.

Two groups: the session transaction events (cheap: per transaction) for every instrumentation,
and the ORM detail (``orm.statement_load`` in scopes, ``InstanceEvents.load``: a call per
loaded object in the process, scope or not) only for those created with ``orm=True``. Each
``instrument()`` holds a ``Token``; ``remove()`` releases it, and so does the engine's
finalizer when the application drops the engine.

A finalizer runs wherever the garbage collector collects, also while SQLAlchemy iterates the
very listeners it would remove: detaching there raised ``RuntimeError: deque mutated during
iteration`` into the application's ``Session`` (seen in this project's suite). So a
finalizer only gives up its claim; the listeners its release leaves unclaimed are detached
at the next safe point, the next ``instrument()`` or ``remove()`` (until then they find no
unit and return).
"""

from __future__ import annotations

import sys
import threading

from sqlalchemy import event
from sqlalchemy.orm import Mapper, Session

from sqlaudit._internal import fork_safe
from sqlaudit.capture import orm

__all__ = ["Token", "listening"]

#: Guards the counts. Re-entrant: an engine's finalizer runs whenever the garbage collector
#: collects the engine, and that can be in this very thread while it holds the lock
#: (``event.listen`` allocates): with a plain Lock that thread waited for itself forever
#: (seen in CI, Python 3.12).
_lock = threading.RLock()
fork_safe(sys.modules[__name__], "_lock")
#: Claims per group.
_users = {"session": 0, "detail": 0}
#: Groups still attached whose last claim a finalizer released (detached by ``_settle``).
_unclaimed: set[str] = set()


def _attach(group: str) -> None:
    if group == "detail":
        event.listen(Mapper, "load", orm.on_load, raw=True)
        orm.detail = True
        return
    for name, fn in orm.LISTENERS:
        event.listen(Session, name, fn)


def _detach(group: str) -> None:
    if group == "detail":
        if event.contains(Mapper, "load", orm.on_load):
            event.remove(Mapper, "load", orm.on_load)
        orm.detail = False
        return
    for name, fn in orm.LISTENERS:
        if event.contains(Session, name, fn):
            event.remove(Session, name, fn)


def _acquire(groups: tuple[str, ...]) -> None:
    # A finalizer run inside (see _lock) only releases groups that another token holds, so
    # never one counted from 0 here.
    for group in groups:
        _users[group] += 1
        if _users[group] == 1:
            if group in _unclaimed:
                _unclaimed.discard(group)  # never detached: claimed again as it is
            else:
                _attach(group)


def _release(groups: tuple[str, ...], now: bool) -> None:
    for group in groups:
        _users[group] -= 1
        if _users[group] == 0:
            if now:
                _detach(group)
            else:
                _unclaimed.add(group)


def _settle() -> None:
    """Detach the groups a finalizer left unclaimed (under ``_lock``, at a safe point)."""
    for group in tuple(_unclaimed):
        _unclaimed.discard(group)
        if _users[group] == 0:
            _detach(group)


def listening(group: str = "session") -> bool:
    """True while the class-level listeners of ``group`` (session or detail) are attached."""
    return _users[group] > 0 or group in _unclaimed


class Token:
    """One instrumentation's claim on the shared class-level listeners; released once."""

    __slots__ = ("_groups", "_state")

    def __init__(self, orm: bool = True) -> None:
        self._state = 0  # 0 new, 1 acquired, 2 released
        self._groups = ("session", "detail") if orm else ("session",)

    def acquire(self) -> None:
        with _lock:
            if self._state == 0:
                self._state = 1
                _acquire(self._groups)
            _settle()

    def release(self) -> None:
        """From ``remove()``: the claim and, if it was the last, the listeners. Idempotent;
        safe at once with the engine's finalizer."""
        with _lock:
            if self._state == 1:
                self._state = 2
                _release(self._groups, now=True)
            _settle()

    def release_later(self) -> None:
        """From the engine's finalizer: the claim only (see the module's docstring)."""
        with _lock:
            if self._state == 1:
                self._state = 2
                _release(self._groups, now=False)
