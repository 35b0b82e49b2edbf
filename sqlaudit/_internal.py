"""Internal errors: logged once per kind, counted on the report, re-raised in strict mode.

Listeners and middleware must never break the user's application, so every sqlaudit code path
that runs inside the user's query, request or test catches its own exceptions and hands them
here. sqlaudit's own test suite sets ``SQLAUDIT_STRICT=1`` so that such errors surface.
"""

from __future__ import annotations

import logging
import os
import threading

__all__ = ["internal_error", "is_strict", "logger"]

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
