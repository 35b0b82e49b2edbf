"""``listener``: the guard around sqlaudit's SQLAlchemy event listeners."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, cast

from sqlaudit._internal import contain
from sqlaudit.capture.scope import CURRENT, FALLBACK, Scope, current

__all__ = ["listener"]

P = ParamSpec("P")

#: ``CURRENT.get``, bound once: every guarded listener call reads it.
_current = CURRENT.get


def listener(where: str) -> Callable[[Callable[Concatenate[Scope, P], None]], Callable[P, None]]:
    """Decorator for SQLAlchemy event listeners (pool, session, connection events): the
    listener runs only while a scope is current, receives it first, and its errors are
    contained (``_internal.contain``), never raised into the application's call."""

    def wrap(fn: Callable[Concatenate[Scope, P], None]) -> Callable[P, None]:
        # Positional arguments only (SQLAlchemy's calls): ``**kwargs`` would make a dict per
        # call. ``current()`` is inlined (issue 20).
        call = cast("Callable[..., None]", fn)

        def guarded(*args: Any) -> None:
            scope = _current()
            if scope is None:
                if not FALLBACK:
                    return  # no unit open: no further call
                scope = current()  # a fallback
                if scope is None:
                    return
            elif scope.ended is not None:
                scope = current()  # the open ancestor of a unit this context outlived
                if scope is None:
                    return
            try:
                call(scope, *args)
            except Exception as exc:
                contain(where, exc, scope)

        guarded.__name__ = fn.__name__
        guarded.__qualname__ = fn.__qualname__
        guarded.__doc__ = fn.__doc__
        return cast("Callable[P, None]", guarded)

    return wrap
