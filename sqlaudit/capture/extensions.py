"""``instrument(db)`` for a Flask-SQLAlchemy extension: every engine of every app, now and later.

Flask-SQLAlchemy (3.0 and later) creates its engines inside ``db.init_app(app)``, one per bind
key, through the extension's ``_make_engine(bind_key, options, app)``, and keeps them in
``db._app_engines`` (a ``WeakKeyDictionary`` from app to ``{bind_key: Engine}``;
``flask_sqlalchemy/extension.py``). An app factory calls ``init_app`` in ``create_app()``,
which a test suite calls once per test: the engines do not exist yet where the extension is
made, and a new app gets new engines. So ``instrument(db)`` instruments the engines that exist
and wraps ``_make_engine`` on this one extension object (an instance attribute, whatever the
method's signature) so that each engine it creates afterwards is instrumented as it is made,
before any statement runs on it. SQLAlchemy has no event for an engine being created (a
``CreateEnginePlugin`` has to be named in the URL or the engine options).

Duck-typed: nothing here imports Flask or Flask-SQLAlchemy (import-linter: "No web framework
anywhere"). Engines are held weakly, as ``instrument(engine)`` holds them.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import contain

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from sqlaudit.capture.instrumentation import Instrumentation

__all__ = ["ExtensionInstrumentation", "is_flask_sqlalchemy"]

_lock = threading.RLock()


def is_flask_sqlalchemy(obj: object) -> bool:
    """Whether ``obj`` looks like a Flask-SQLAlchemy 3.x ``SQLAlchemy`` extension."""
    return (
        callable(getattr(obj, "_make_engine", None))
        and callable(getattr(obj, "init_app", None))
        and isinstance(getattr(obj, "_app_engines", None), weakref.WeakKeyDictionary)
    )


class ExtensionInstrumentation:
    """What ``instrument(db)`` returns for a Flask-SQLAlchemy extension: the instrumentation of
    each of its engines (every bind of every app, including apps initialised later);
    ``remove()`` takes them all off and stops instrumenting new ones."""

    __slots__ = ("__weakref__", "_extension", "_handles", "_make_engine", "_removed", "orm")

    def __init__(
        self, extension: Any, orm: bool, instrument: Callable[..., Instrumentation]
    ) -> None:
        self._extension = weakref.ref(extension)
        self._removed = False
        self._handles: list[Instrumentation] = []
        #: Whether the ORM detail listeners were asked for (as for ``instrument(engine)``).
        self.orm = orm
        original = extension._make_engine
        handle = weakref.ref(self)

        def _make_engine(*args: Any, **kwargs: Any) -> Any:
            engine = original(*args, **kwargs)
            me = handle()
            if me is not None and not me._removed:
                try:
                    me._add(instrument(engine, orm=orm))
                except Exception as exc:  # never break the app's creation
                    contain("instrument a Flask-SQLAlchemy engine", exc)
            return engine

        self._make_engine = _make_engine

    def _start(self, instrument: Callable[..., Instrumentation]) -> None:
        extension = self._extension()
        if extension is None:
            return
        for engines in list(extension._app_engines.values()):
            for engine in list(engines.values()):
                self._add(instrument(engine, orm=self.orm))
        extension._make_engine = self._make_engine

    def _add(self, handle: Instrumentation) -> None:
        with _lock:
            # Apps (and their engines) come and go, one per test in a factory-built suite.
            self._handles = [h for h in self._handles if h.active and h is not handle]
            self._handles.append(handle)

    @property
    def engines(self) -> list[Engine]:
        """The extension's instrumented engines that are still alive."""
        with _lock:
            return [e for h in self._handles if h.active and (e := h.engine) is not None]

    @property
    def active(self) -> bool:
        """True until ``remove()`` is called or the extension is collected."""
        return not self._removed and self._extension() is not None

    def __iter__(self) -> Iterator[Instrumentation]:
        with _lock:
            return iter([h for h in self._handles if h.active])

    def remove(self) -> None:
        """Remove the instrumentation of every engine of the extension and stop instrumenting
        the engines it creates. Idempotent."""
        with _lock:
            if self._removed:
                return
            self._removed = True
            handles, self._handles = self._handles, []
            extension = self._extension()
            if extension is not None and extension.__dict__.get("_make_engine") is (
                self._make_engine
            ):
                del extension._make_engine  # the class's method again
        for handle in handles:
            handle.remove()

    def __repr__(self) -> str:
        state = "removed" if self._removed else "active"
        return f"<sqlaudit.ExtensionInstrumentation {state} {self._extension()!r}>"
