"""Internal errors: logged once per kind, counted on the unit, re-raised in strict mode.

Listeners and middleware must never break the user's application, so every sqlaudit code path
that runs inside the user's query, request or test catches its own exceptions and hands them
to ``contain``, the one guard: it counts the error on the unit, logs it once, and re-raises it
only in strict mode (``SQLAUDIT_STRICT=1``, set by sqlaudit's own test suite so that such
errors surface) and never while the application itself is failing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any

__all__ = ["contain", "internal_error", "is_strict", "logger"]

logger = logging.getLogger("sqlaudit")
_seen: set[str] = set()
_lock = threading.Lock()


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
