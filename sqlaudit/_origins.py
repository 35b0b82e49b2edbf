"""Parent-origin linkage: which query loaded each ORM object, so an N+1 finding can name
the query to change and the exact loader option chain.

===============================  ==========================================  ==============
hook                             what is recorded                            cost
===============================  ==========================================  ==============
``do_orm_execute`` of a SELECT   an ``Origin`` (call stack, load type,       ~3 µs per ORM
(in a scope, via ``_orm``)       relationship, the parent's origin) and the  SELECT in a
                                 execution option ``_sqlaudit_origin``       scope
``InstanceEvents.load``          object -> origin of the query that loaded   per object
(``Mapper``-wide, ``raw=True``)  it; rows per origin                         loaded
===============================  ==========================================  ==============

The execution option is the documented way to pass data from ``do_orm_execute`` to the
``QueryContext`` that loads the rows (``ORMExecuteState.update_execution_options``); it is
not part of the statement cache key and changes nothing the ORM executes.

A lazy load's origin points at the origin of the object it was loaded for
(``ORMExecuteState.lazy_loaded_from``), so nested loads chain back to the root query:
``Country`` query -> ``Country.users`` lazy loads -> ``User.addresses`` lazy loads gives
``selectinload(Country.users).selectinload(User.addresses)`` at the ``Country`` query's line.
Objects loaded as joined eager children (their class is not the query's) have no chain.

On error inside sqlaudit: logged once, counted on the report, never raised into the ORM.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlaudit._internal import internal_error
from sqlaudit._scope import current

if TYPE_CHECKING:
    from sqlalchemy.orm import InstanceState, ORMExecuteState
    from sqlalchemy.orm.context import QueryContext

    from sqlaudit._records import CallSite
    from sqlaudit._scope import AuditReport

__all__ = ["OPTION", "Origin", "OriginRecord", "on_load", "on_select"]

#: The execution option carrying an origin id from ``do_orm_execute`` to the loaded rows.
OPTION = "_sqlaudit_origin"
# Origin ids are unique in the process, so nested scopes can merge theirs into the parent's.
_ids = itertools.count(1)


class OriginRecord(NamedTuple):
    """A query that loaded ORM objects (plain data, at scope close)."""

    #: Key of this origin in ``report.origins``.
    oid: int
    #: ``"query"``, ``"lazy"`` or ``"eager"``.
    load: str
    #: The class the query loads, e.g. ``"User"``.
    mapper: str | None
    #: For lazy and eager loads, the relationship, e.g. ``"User.addresses"``.
    relationship: str | None
    #: Whether that relationship is many-to-one (``joinedload`` is then the usual cure).
    many_to_one: bool
    #: The relationship's ``lazy`` setting (``"select"``, ``"dynamic"``, ``"immediate"``...).
    strategy: str | None
    #: For lazy loads, the origin of the object the load was for (0: unknown).
    parent: int
    #: Objects of ``mapper`` it loaded.
    rows: int
    #: Where it was issued.
    stack: tuple[CallSite, ...]


class Origin:
    """Mutable origin while the scope is open (internal)."""

    __slots__ = (
        "load",
        "many_to_one",
        "mapper",
        "oid",
        "parent",
        "relationship",
        "rows",
        "stack",
        "strategy",
    )

    def __init__(
        self,
        oid: int,
        load: str,
        mapper: str | None,
        relationship: str | None,
        many_to_one: bool,
        strategy: str | None,
        parent: int,
        stack: tuple[CallSite, ...],
    ) -> None:
        self.oid = oid
        self.load = load
        self.mapper = mapper
        self.relationship = relationship
        self.many_to_one = many_to_one
        self.strategy = strategy
        self.parent = parent
        self.rows = 0
        self.stack = stack

    def freeze(self) -> OriginRecord:
        return OriginRecord(
            self.oid,
            self.load,
            self.mapper,
            self.relationship,
            self.many_to_one,
            self.strategy,
            self.parent,
            self.rows,
            self.stack,
        )


def on_select(
    scope: AuditReport,
    state: ORMExecuteState,
    load: str,
    mapper_name: str | None,
    prop: Any,
    stack: tuple[CallSite, ...],
) -> int:
    """Create the origin of an ORM SELECT and tag the execution with it; returns its id."""
    parent = 0
    if load == "lazy":
        parent_state = state.lazy_loaded_from
        if parent_state is not None:
            parent = scope.origin_of.get(id(parent_state), 0)
    many_to_one = prop is not None and getattr(prop.direction, "name", "") == "MANYTOONE"
    relationship = f"{prop.parent.class_.__name__}.{prop.key}" if prop is not None else None
    strategy = str(prop.lazy) if prop is not None else None
    oid = next(_ids)
    scope.origins[oid] = Origin(
        oid, load, mapper_name, relationship, many_to_one, strategy, parent, stack
    )
    state.update_execution_options(**{OPTION: oid})
    return oid


def on_load(state: InstanceState[Any], context: QueryContext) -> None:
    """``InstanceEvents.load`` (raw): remember which origin loaded this object."""
    scope = current()
    if scope is None:
        return
    try:
        oid = context.execution_options.get(OPTION)
        if not isinstance(oid, int):
            return
        origin = scope.origins.get(oid)
        if origin is None:
            return
        if origin.mapper is not None and state.class_.__name__ != origin.mapper:
            return  # a joined eager child: loaded by the query, but not what it selects
        origin.rows += 1
        scope.origin_of[id(state)] = oid
    except Exception as exc:
        scope.internal_errors += 1
        internal_error("origins.load", exc)
