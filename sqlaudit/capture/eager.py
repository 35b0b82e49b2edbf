"""Eager loads and whether the unit reads them (``AuditConfig.unused_eager_loads``: development
and tests only, off by default).

==============================  ==============================================  =============
hook                            what is recorded                                cost
==============================  ==============================================  =============
an eager batch's cursor         the relationship of a ``selectinload`` /        in opted-in
execute (``orm``)               ``subqueryload`` / ``lazy="selectin"`` batch    units only
an ORM query's cursor execute   the relationships its compile state joins       in opted-in
(``orm``)                       eagerly (``joinedload``, ``lazy="joined"``)     units only
reading a watched relationship  the attribute, in the reading unit's set        +0.1 µs per
attribute (any thread)                                                          read
==============================  ==============================================  =============

Why a descriptor: SQLAlchemy has no event for reading an attribute. A loaded attribute is
returned by ``InstrumentedAttribute.__get__`` straight from the instance ``__dict__``
(orm/attributes.py), so neither ``AttributeEvents`` (set, append, remove, init events only)
nor the ``InstanceState`` (no trace of reads) can tell a collection that was read from one
that was not. Bullet (Ruby) hooks the association readers for the same reason. So each
relationship attribute an opted-in unit loads eagerly becomes, while such a unit is open, an
instance of ``_Watched``: the same object (``__class__`` swapped, so every reference
SQLAlchemy and the application hold stays valid), whose ``__get__`` notes the read and then
runs ``InstrumentedAttribute.__get__``. When the last unit watching it is released (closed),
its class is put back. With the switch off nothing is swapped and nothing is paid; on, a read
of a watched attribute costs ~0.1 µs more, in every thread, while it is watched (measured:
benchmarks/eager.py, 306 ns instead of 194 ns).

Which loader ran: ``joinedload`` leaves the relationship's path in the query's compile state
(``create_eager_joins``, what ``_JoinedLoader.setup_query`` appends); a selectin batch binds
its parents' keys as ``primary_keys`` (``_SelectInLoader``), a subquery batch does not. These
are SQLAlchemy-internal names, read with defaults (a load that cannot be read is not
recorded, so never reported).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm.attributes import InstrumentedAttribute
from sqlalchemy.orm.path_registry import PathRegistry

from sqlaudit.capture.scope import CURRENT, FALLBACK, SUPPRESSED

if TYPE_CHECKING:
    from sqlaudit.capture.scope import Scope
    from sqlaudit.model.records import CallSite

__all__ = ["on_batch", "on_query"]

_lock = threading.Lock()
#: Watched attributes -> how many open units watch them.
_watchers: dict[Any, int] = {}


class _Watched(InstrumentedAttribute[Any]):
    """An ``InstrumentedAttribute`` whose reads are noted in the reading unit (see module)."""

    __slots__ = ()
    inherit_cache = True  # same cache key as the attribute it stands in for

    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is not None:
            scope = CURRENT.get()
            if scope is None and FALLBACK:
                try:
                    scope = FALLBACK[-1]
                except IndexError:  # the last fallback closed in another thread
                    scope = None
            # The innermost unit that follows reads: a unit opened inside it without the
            # switch (a plain nested audit) reads on its behalf.
            while scope is not None:
                reads = scope.eager_reads
                if reads is not None:
                    reads.add(self)
                    break
                scope = scope.parent
        return InstrumentedAttribute.__get__(self, instance, owner)


def _watch(scope: Scope, attribute: Any) -> bool:
    """Watch ``attribute`` while ``scope`` is open; False when it cannot be watched."""
    if attribute in scope.eager_watched:
        return True
    if type(attribute) not in (InstrumentedAttribute, _Watched):
        return False  # a custom attribute class: not ours to swap
    with _lock:
        count = _watchers.get(attribute, 0)
        if count == 0:
            attribute.__class__ = _Watched
        _watchers[attribute] = count + 1
    if not scope.eager_watched:
        scope.on_release.append(lambda: _unwatch(scope))
    scope.eager_watched.add(attribute)
    return True


def _unwatch(scope: Scope) -> None:
    with _lock:
        for attribute in scope.eager_watched:
            count = _watchers.get(attribute, 0) - 1
            if count > 0:
                _watchers[attribute] = count
                continue
            _watchers.pop(attribute, None)
            if type(attribute) is _Watched:
                _restore(attribute)
    scope.eager_watched.clear()


def _restore(attribute: Any) -> None:
    attribute.__class__ = InstrumentedAttribute


def _note(
    scope: Scope,
    prop: Any,
    strategy: str,
    stack: tuple[CallSite, ...],
    sql: str,
    statements: int,
    query: int = 0,
) -> None:
    attribute = getattr(prop, "class_attribute", None)
    if attribute is None or not _watch(scope, attribute):
        return
    name = f"{prop.parent.class_.__name__}.{prop.key}"
    lazy = {True: "select", False: "joined", None: "noload"}.get(prop.lazy, prop.lazy)
    key = (name, strategy, stack)
    entry = scope.eager.get(key)
    if entry is None:
        entry = scope.eager[key] = [attribute, lazy == strategy, sql, 0, [], SUPPRESSED.get()]
    entry[3] += statements
    if query:
        entry[4].append(query)


def on_batch(scope: Scope, context: Any, statement: Any, stack: tuple[CallSite, ...]) -> None:
    """An eager batch (selectin or subquery) ran: note its relationship."""
    path = getattr(getattr(statement, "_compile_options", None), "_current_path", None)
    prop = getattr(path, "prop", None) or (path[-1] if path is not None and len(path) else None)
    if getattr(prop, "direction", None) is None:
        return
    binds = getattr(context.compiled, "binds", None) or {}
    strategy = "selectin" if "primary_keys" in binds else "subquery"
    _note(scope, prop, strategy, stack, context.statement, 1)


def on_query(scope: Scope, context: Any, stack: tuple[CallSite, ...], oid: int) -> None:
    """An ORM query ran: note the relationships it joins eagerly (``joinedload``)."""
    compile_state = getattr(context.compiled, "compile_state", None)
    for record in getattr(compile_state, "create_eager_joins", None) or ():
        path = next((item for item in record if isinstance(item, PathRegistry)), None)
        prop = getattr(path, "prop", None)
        if getattr(prop, "direction", None) is not None:
            _note(scope, prop, "joined", stack, context.statement, 0, oid)
