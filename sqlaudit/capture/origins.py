"""Parent-origin linkage: which query loaded each ORM object, so an N+1 finding can name
the query to change and the exact loader option chain.

===============================  ==========================================  ==============
hook                             what is recorded                            cost
===============================  ==========================================  ==============
an ORM SELECT's cursor execute   an ``Origin`` (call stack, load type,       ~1 µs per ORM
(in a scope, via ``_orm``)       relationship, the parent's origin), keyed   SELECT in a
                                 by the statement object executed            scope
``InstanceEvents.load``          object -> origin of the query that loaded   per object
(``Mapper``-wide, ``raw=True``)  it; rows per origin                         loaded
===============================  ==========================================  ==============

The link between the two is the statement object itself: the ORM executes it on the
Connection (``ExecutionContext.invoked_statement``) and then loads its rows through a
``QueryContext`` whose ``query`` is that same object. Nothing is added to what the ORM
executes. The scope maps the ``id()`` of the last ``RECENT`` (at least) statements to their
origin, so a result iterated later than the next query (``yield_per``, two results open)
still maps right. Only ids are kept: holding the statements themselves kept their object
graphs alive and cost ~7 µs per ORM statement in garbage-collector work (measured). An id is
reused only after its statement is gone, and a statement's own execution overwrites any older
entry under its id, so a lookup can only be wrong for rows of a statement executed outside the
audit (then the loaded class must still match the origin's, else nothing is linked).

A lazy load's origin points at the origin of the object it was loaded for (the lazy
loader's ``lazy_loaded_from``), so nested loads chain back to the root query:
``Country`` query -> ``Country.users`` lazy loads -> ``User.addresses`` lazy loads gives
``selectinload(Country.users).selectinload(User.addresses)`` at the ``Country`` query's line.
Objects loaded as joined eager children (their class is not the query's) have no chain.

On error inside sqlaudit: logged once, counted on the report, never raised into the ORM.
"""

from __future__ import annotations

import itertools
import os
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from sqlaudit._internal import contain
from sqlaudit.capture.scope import CURRENT, FALLBACK, current

if TYPE_CHECKING:
    from sqlalchemy.orm import InstanceState
    from sqlalchemy.orm.context import QueryContext

    from sqlaudit.capture.scope import Scope
    from sqlaudit.model.records import CallSite

__all__ = [
    "RECENT",
    "on_load",
    "on_select",
    "parent_key",
    "relationship_info",
    "row_of",
]

#: ORM statements a scope remembers (at least) for mapping loaded objects to their query.
RECENT = 256
#: Loaded objects whose origin a scope remembers (memory bound: origins themselves are
#: bounded by ``max_records``, one per recorded ORM SELECT; lazy loads of objects past this
#: many are not linked to their parent's query).
MAX_OBJECTS = 200_000
# Origin ids are unique in the process, so nested scopes can merge theirs into the parent's.
_ids = itertools.count(1)


# Objects without an identity yet (transient, pending): a serial per object, held weakly.
_serials = itertools.count(1)
_transient: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_SALT = os.urandom(16)


def row_of(state: InstanceState[Any]) -> Hashable:
    """The row an ORM object stands for: its identity key (mapped class, primary key, identity
    token), so that the same row loaded twice is one parent and two objects never share a key
    (``id()`` of a freed object is reused by the next one); for an object without an identity
    yet, a serial of its own."""
    key = state.key
    if key is not None:
        return key
    serial = _transient.get(state)
    if serial is None:
        serial = _transient[state] = next(_serials)
    return ("transient", serial)


def parent_key(state: InstanceState[Any]) -> int:
    """``OrmLoad.parent`` of a lazy load for ``state``: a salted hash of the row (the primary
    key values never leave this function), equal for the same row whatever object holds it."""
    key = state.key
    if key is None:
        return hash((_SALT, row_of(state)))
    cls = key[0]
    return hash((_SALT, cls.__module__, cls.__qualname__, *key[1:]))


#: Held weakly: a relationship property refers to its mapper and class.
_relationships: weakref.WeakKeyDictionary[Any, tuple[str, bool, str]] = weakref.WeakKeyDictionary()


def relationship_info(prop: Any) -> tuple[str, bool, str]:
    """``(name, many_to_one, lazy strategy)`` of a relationship property (cached)."""
    info = _relationships.get(prop)
    if info is None:
        many_to_one = getattr(prop.direction, "name", "") == "MANYTOONE"
        name = f"{prop.parent.class_.__name__}.{prop.key}"
        info = _relationships[prop] = (name, many_to_one, str(prop.lazy))
    return info


def on_select(
    scope: Scope,
    statement: Any,
    load: str,
    cls: type | None,
    mapper_name: str | None,
    info: tuple[str, bool, str] | None,
    stack: tuple[CallSite, ...],
    parent: int = 0,
) -> int:
    """Create the origin of an ORM SELECT of ``cls`` (None if unknown) about to load rows
    through ``statement``; ``info`` is ``relationship_info()`` of a lazy or eager load's
    relationship, ``parent`` the origin id of the object a lazy load is for (0: unknown).
    Returns the new origin's id."""
    oid = next(_ids)
    if info is None:
        scope.origins[oid] = (load, mapper_name, None, False, None, parent, stack)
    else:
        scope.origins[oid] = (load, mapper_name, info[0], info[1], info[2], parent, stack)
    recent = scope.orm_statements
    key = id(statement)
    recent.pop(key, None)  # re-executed: move it to the end
    recent[key] = (oid, cls)
    if len(recent) > 2 * RECENT:
        # Keep the RECENT latest (in bulk: evicting one at a time from the front of a dict
        # costs a scan over its deleted slots).
        kept = list(recent.items())[-RECENT:]
        recent.clear()
        recent.update(kept)
    return oid


def on_load(state: InstanceState[Any], context: QueryContext) -> None:
    """``InstanceEvents.load`` (raw): remember which origin loaded this object."""
    # current()'s first tests inlined: this runs for every object the ORM loads.
    scope = CURRENT.get()
    if scope is None:
        if not FALLBACK:
            return
        scope = current()  # a fallback
        if scope is None:
            return
    elif scope.ended is not None:
        scope = current()  # the open ancestor of a unit this context outlived
        if scope is None:
            return
    try:
        entry = scope.orm_statements.get(id(context.query))
        if entry is None:
            return
        oid, cls = entry
        loaded = state.class_
        if cls is not None and loaded is not cls and not issubclass(loaded, cls):
            return  # a joined eager child: loaded by the query, but not what it selects
        rows = scope.origin_rows
        rows[oid] = rows.get(oid, 0) + 1
        origin_of = scope.origin_of
        if len(origin_of) < MAX_OBJECTS:
            key = state.key
            origin_of[row_of(state) if key is None else key] = oid
    except Exception as exc:
        contain("origins.load", exc, scope)
