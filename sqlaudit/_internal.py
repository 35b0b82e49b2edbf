"""Internal errors: logged once per kind, counted on the unit, re-raised in strict mode.

Listeners and middleware must never break the user's application, so every sqlaudit code path
that runs inside the user's query, request or test catches its own exceptions and hands them
to ``contain``, the one guard: it counts the error on the unit, logs it once, and re-raises it
only in strict mode (``SQLAUDIT_STRICT=1``, set by sqlaudit's own test suite so that such
errors surface) and never while the application itself is failing.

Fork safety (issue 14, row 10): a process forked while another thread holds one of sqlaudit's
locks gets that lock held for good, by a thread that does not exist in the child, and the
child's next audit or ``instrument()`` hung. Every lock is registered with ``fork_safe`` and
re-created in the child (``os.register_at_fork``; ``_at_fork_reinit`` is what the standard
library's own modules use, e.g. ``logging`` and ``concurrent.futures``). What a thread was
doing under the lock when the process forked is not finished in the child (an
``instrument()`` half done there: call it again, it is idempotent).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable, MutableMapping
from typing import Any

__all__ = ["contain", "count_into", "fork_safe", "internal_error", "is_strict", "logger"]

logger = logging.getLogger("sqlaudit")
_seen: set[str] = set()
_lock = threading.Lock()
#: Objects (modules included) whose named lock attributes are re-created in a forked child.
_locks: weakref.WeakKeyDictionary[object, tuple[str, ...]] = weakref.WeakKeyDictionary()
#: Functions that re-create locks they find themselves (e.g. those of the open audits).
_renewers: list[Callable[[], None]] = []


def fork_safe(owner: object, *names: str) -> None:
    """Re-create the locks ``owner.<name>`` in a child process forked from this one (``owner``
    is held weakly; a module, a class instance...)."""
    _locks[owner] = names


def fork_renewer(renew: Callable[[], None]) -> None:
    """Call ``renew()`` in a forked child, to re-create locks it finds itself."""
    _renewers.append(renew)


def _after_fork_in_child() -> None:
    _lock._at_fork_reinit()  # type: ignore[attr-defined]  # CPython 3.9+, as logging uses it
    for owner, names in list(_locks.items()):
        for name in names:
            getattr(owner, name)._at_fork_reinit()
    for renew in _renewers:
        renew()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)


def is_strict() -> bool:
    """True when internal errors should propagate (``SQLAUDIT_STRICT=1``)."""
    return os.environ.get("SQLAUDIT_STRICT", "") not in ("", "0", "false", "False")


def internal_error(where: str, exc: BaseException) -> None:
    """Record an internal failure at ``where``: log it the first time, re-raise if strict."""
    key = f"{where}:{type(exc).__name__}"
    with _lock:
        first = key not in _seen
        _seen.add(key)
    if first:
        logger.error("sqlaudit internal error in %s (logged once)", where, exc_info=exc)
    if is_strict():
        raise exc


def contain(where: str, exc: Exception, unit: Any = None, *, failing: bool = False) -> None:
    """Contain an internal error at ``where``: count it on ``unit`` (anything with an
    ``internal_errors`` counter: a scope, a report), log it once; in strict mode re-raise it,
    unless the application is ``failing`` (its own exception must win)."""
    if unit is not None:
        with contextlib.suppress(Exception):  # a unit that cannot count must not hide it
            unit.internal_errors += 1
    try:
        internal_error(where, exc)
    except Exception:
        if not failing:
            raise


def _count_by_loop(counts: MutableMapping[Any, int], items: Iterable[Hashable]) -> None:
    """``count_into`` where CPython's C helper is missing."""
    get = counts.get
    for item in items:
        counts[item] = get(item, 0) + 1


#: ``count_into(counts, items)`` adds one to ``counts[item]`` for each item: the C loop of
#: ``collections.Counter`` (a private helper of CPython), else the same loop in Python.
count_into: Callable[[MutableMapping[Any, int], Iterable[Hashable]], None]
try:
    from collections import _count_elements as count_into  # type: ignore[attr-defined,no-redef]
except ImportError:  # pragma: no cover - a Python without it (PyPy has its own, in Python)
    count_into = _count_by_loop
