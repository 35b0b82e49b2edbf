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
from sqlaudit.model.records import OrmLoad

if TYPE_CHECKING:
    from sqlalchemy.orm import InstanceState
    from sqlalchemy.orm.context import QueryContext

    from sqlaudit.capture.scope import Scope
    from sqlaudit.model.records import CallSite

__all__ = [
    "RECENT",
    "on_lazy",
    "on_load",
    "on_select",
    "relationship_info",
    "row_of",
]

#: ORM statements a scope remembers (at least) for mapping loaded objects to their query.
RECENT = 256
_TRIM = 2 * RECENT  # trimmed back to RECENT past this many
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
_new_load = tuple.__new__  # OrmLoad's fields as one tuple: no keyword handling (per lazy load)


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
    if key in recent:  # re-executed: move it to the end
        del recent[key]
    recent[key] = (oid, cls)
    if len(recent) > _TRIM:
        # Keep the RECENT latest (in bulk: evicting one at a time from the front of a dict
        # costs a scan over its deleted slots).
        kept = list(recent.items())[-RECENT:]
        recent.clear()
        recent.update(kept)
    return oid


def on_lazy(
    scope: Scope,
    statement: Any,
    parent: InstanceState[Any],
    cls: type | None,
    mapper_name: str | None,
    info: tuple[str, bool, str] | None,
    stack: tuple[CallSite, ...],
) -> OrmLoad:
    """The ``OrmLoad`` of a lazy load of ``info``'s relationship (see ``on_select``) for
    ``parent``, whose origin chains to the origin of the query that loaded ``parent``.
    ``OrmLoad.parent`` is a salted hash of the parent's row (the primary key values never
    leave this function), equal for the same row whatever object holds it."""
    key = parent.key
    if key is None:
        row = row_of(parent)
        parent_hash = hash((_SALT, row))
    else:
        row = key
        # An identity key is (class, primary key tuple, identity token); its parts are
        # hashed named (a starred slice cost ~80 ns more per lazy load).
        owner, ident, token = key
        parent_hash = hash((_SALT, owner.__module__, owner.__qualname__, ident, token))
    parent_oid = scope.origin_of.get(row, 0)
    oid = on_select(scope, statement, "lazy", cls, mapper_name, info, stack, parent_oid)
    relationship = None if info is None else info[0]
    return _new_load(OrmLoad, ("lazy", mapper_name, relationship, parent_hash, (), oid, ""))


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
        if state.class_ is not cls and cls is not None and not issubclass(state.class_, cls):
            return  # a joined eager child: loaded by the query, but not what it selects
        rows = scope.origin_rows
        rows[oid] = rows.get(oid, 0) + 1
        origin_of = scope.origin_of
        if len(origin_of) < MAX_OBJECTS:
            # row_of(state), inlined for a persistent object (an identity key is a non-empty
            # tuple, so true)
            origin_of[state.key or row_of(state)] = oid
    except Exception as exc:
        contain("origins.load", exc, scope)
