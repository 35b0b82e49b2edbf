"""ORM capture: the ORM context of each statement, and class-level ``Session`` listeners
(they cover ``AsyncSession`` too).

==============================  =========================================  ===================
hook                            what is recorded                           cost
==============================  =========================================  ===================
an ORM statement's cursor       its ORM context: lazy load (relationship,  in a scope only:
execute (``statement_load``,    parent), eager batch, column load, the     ~1 µs per ORM
called by ``_capture``)         query that loads objects (``_origins``)    statement
``InstanceEvents.load``         which query loaded each object             per object loaded
(``Mapper``, raw)               (``_origins``)
``after_begin``                 a transaction began on a session; its      per transaction
                                Connection -> session
``after_commit``                the session committed                      per commit
``after_rollback``              the session's database transaction rolled  per rollback
                                back
``after_flush``                 read-modify-writes of an autocommit        per flush
                                session (``hazards.flushed``)
==============================  =========================================  ===================

Why not ``SessionEvents.do_orm_execute``: any ``do_orm_execute`` listener makes SQLAlchemy run
``orm_pre_session_exec`` twice per ORM statement (session.py, "part of #13301"), +5 to +8 µs
on every ORM statement of the process, audit open or not (measured, benchmarks/overhead.py).
The same facts are on the statement the ORM hands to the Connection, read only inside a scope
from the cursor execute's ``ExecutionContext``: ``invoked_statement`` (the ORM statement;
``_propagate_attrs["plugin_subject"]`` is its mapper, ``_compile_options._current_path`` the
relationship path of a lazy or eager load, ``_for_refresh_state`` a column load) and the
``_sa_orm_load_options`` execution option (``_lazy_loaded_from``, ``_populate_existing``),
exactly what ``ORMExecuteState.lazy_loaded_from``, ``loader_strategy_path``,
``is_relationship_load`` and ``is_column_load`` return. These names are SQLAlchemy-internal;
they are read with ``getattr`` defaults, tested on 2.0 and 2.1, and a statement whose ORM
context cannot be read is recorded as plain SQL.

The session of a statement: ``after_begin`` maps the Connection it hands over to its session
for the scope (dropped when the session's transaction ends).

On error inside sqlaudit: logged once, counted on the report, never raised into the session.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column
from sqlalchemy.orm import Session
from sqlalchemy.sql import visitors

from sqlaudit._internal import contain
from sqlaudit.capture.aggregates import aggregate, key_pair
from sqlaudit.capture.eager import on_batch, on_query
from sqlaudit.capture.guard import listener
from sqlaudit.capture.hazards import flushed
from sqlaudit.capture.identity import on_select, on_session_begin
from sqlaudit.capture.origins import on_lazy, on_load, relationship_info
from sqlaudit.capture.origins import on_select as on_origin
from sqlaudit.capture.transactions import session_begin, session_end
from sqlaudit.model.records import OrmLoad, StatementKind

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import SessionTransaction

    from sqlaudit.capture.scope import Scope
    from sqlaudit.model.records import CallSite

__all__ = ["LISTENERS", "detail", "on_load", "statement_load"]

#: True while the ORM detail listeners are attached (``capture.claims``): ``statements.record``
#: then reads each ORM statement's context with ``statement_load``.
detail = False


def _relationship(path: Any) -> Any:
    """The RelationshipProperty a lazy or eager load's path ends in (None if not found)."""
    prop = getattr(path, "prop", None)  # a path ending in a property (PropRegistry)
    if prop is not None and getattr(prop, "direction", None) is not None:
        return prop
    if path is None or len(path) < 2:
        return None
    prop = path[-1]
    if getattr(prop, "parent", None) is None or getattr(prop, "key", None) is None:
        return None
    return prop


def _column_load(
    scope: Scope, statement: Any, session: Any, mapper: Any, mapper_name: str | None
) -> OrmLoad:
    """A deferred or expired column load: which attributes, and why they were not loaded."""
    primary = {c.key for c in mapper.primary_key} if mapper is not None else set()
    attributes = tuple(
        sorted(
            key
            for c in getattr(statement, "selected_columns", ())
            if (key := getattr(c, "key", None)) is not None and key not in primary
        )
    )
    reason = "expired" if session is not None and session in scope.committed else "deferred"
    return OrmLoad("column", mapper_name, None, None, attributes, 0, reason)


#: Mapper -> its dynamic/write-only collections. Held weakly, like every cache here keyed by
#: mapped things: a class created at run time (a test's, a plugin's) must die with its registry.
_Collection = tuple[str, str, frozenset[Any], tuple[str, ...]]
_collections: weakref.WeakKeyDictionary[Any, tuple[_Collection, ...]] = weakref.WeakKeyDictionary()


def _collection_query(statement: Any, mapper: Any) -> tuple[str, str, tuple[str, ...]] | None:
    """For a plain SELECT of ``mapper``'s class filtered on the foreign key of a
    ``lazy="dynamic"`` or write-only relationship: that relationship and its strategy; for an
    ungrouped aggregate (COUNT/SUM... of the children of one parent, issue 22) filtered on a
    relationship's foreign key: that relationship, ``"aggregate"`` and its key pair
    (``("User.id", "Comment.user_id")``)."""
    candidates = _collections.get(mapper)
    if candidates is None:
        found = []
        for other in mapper.registry.mappers:
            for prop in other.relationships:
                if prop.mapper is mapper and not prop.secondary:
                    name = f"{other.class_.__name__}.{prop.key}"
                    pairs = key_pair(other, mapper, prop)
                    found.append((name, str(prop.lazy), frozenset(prop.remote_side), pairs))
        candidates = _collections[mapper] = tuple(found)
    if not candidates:
        return None
    where = getattr(statement, "whereclause", None)
    if where is None:
        return None
    columns = {e for e in visitors.iterate(where) if isinstance(e, Column)}
    matched = [c for c in candidates if c[2] & columns]
    paired = sorted((c for c in matched if c[3]), key=lambda c: c[1] in ("dynamic", "write_only"))
    if paired and aggregate(statement):
        return paired[0][0], "aggregate", paired[0][3]
    for name, lazy, _, _ in matched:
        if lazy in ("dynamic", "write_only"):
            return name, lazy, ()
    return None


_new_load = tuple.__new__
_ref = weakref.ref
_SELECT = StatementKind.SELECT


#: What a compiled ORM statement is, by compiled object (the compiled cache hands the same
#: object to every execution of one statement shape; the loader path, the column-load flag
#: and the entity are part of its cache key): (mapper, its class, the class name, the
#: relationship of a lazy or eager load as ``relationship_info()``, is an eager batch, is a
#: column load, dynamic collection).
_Shape = tuple[
    Any,
    "type | None",
    "str | None",
    "tuple[str, bool, str] | None",
    bool,
    bool,
    "tuple[str, str, tuple[str, ...]] | None",
]
#: Keyed weakly: a compiled statement refers to its mapper and class, and lives only as long as
#: its engine's compiled cache keeps it.
_shapes: weakref.WeakKeyDictionary[Any, _Shape] = weakref.WeakKeyDictionary()
_SHAPES = 512
#: Its dict (weak reference -> shape), read without a method call (cleared in place only).
_shape_data: dict[Any, _Shape] = _shapes.data  # type: ignore[attr-defined]


def _shape(compiled: Any, statement: Any, attrs: Any) -> _Shape:
    """What ``statement`` is (see ``_Shape``), cached by its compiled object; called on a
    ``_shapes`` miss."""
    mapper = getattr(attrs.get("plugin_subject"), "mapper", None)
    cls = None if mapper is None else mapper.class_
    mapper_name = None if cls is None else cls.__name__
    compile_options = getattr(statement, "_compile_options", None)
    path = getattr(compile_options, "_current_path", None)
    eager = path is not None and not path.is_root
    prop = _relationship(path) if eager else None
    column = bool(getattr(compile_options, "_for_refresh_state", False))
    collection = None
    if mapper is not None and not eager and not column:
        collection = _collection_query(statement, mapper)
    info = None if prop is None else relationship_info(prop)
    shape = (mapper, cls, mapper_name, info, eager, column, collection)
    if compiled is not None:
        if len(_shapes) >= _SHAPES:
            _shapes.clear()
        _shapes[compiled] = shape
    return shape


def statement_load(
    scope: Scope,
    context: Any,
    statement: Any,
    kind: str,
    stack: tuple[CallSite, ...],
    rowcount: int = -1,
) -> OrmLoad | None:
    """The ORM context of ``statement`` (the ``invoked_statement`` of ``context``, which
    ``statements.record`` has found to carry propagate attributes), or None for Core."""
    attrs = statement._propagate_attrs
    if attrs.get("compile_state_plugin") != "orm":
        return None
    try:
        if kind != _SELECT and kind not in StatementKind.WRITES:
            return None
        compiled = context.compiled
        # _shapes.get(compiled), without the method call (per ORM statement).
        shape = (compiled is not None and _shape_data.get(_ref(compiled))) or _shape(
            compiled, statement, attrs
        )
        mapper, cls, mapper_name, info, eager, column, collection = shape
        if kind != _SELECT:
            return _new_load(OrmLoad, ("query", mapper_name, None, None, (), 0, ""))
        if eager:
            # A lazy load is one too: its statement carries the relationship's loader path
            # (LazyLoader._emit_lazyload), so a plain query never reads the load options here.
            options = context.execution_options.get("_sa_orm_load_options")
            parent = getattr(options, "_lazy_loaded_from", None)
            if parent is not None:
                return on_lazy(scope, statement, parent, cls, mapper_name, info, stack)
            oid = on_origin(scope, statement, "eager", cls, mapper_name, info, stack)
            if scope.eager_reads is not None:  # unused_eager_loads: opted in
                on_batch(scope, context, statement, stack)
            relationship = None if info is None else info[0]
            return _new_load(OrmLoad, ("eager", mapper_name, relationship, None, (), oid, ""))
        conn = context.root_connection  # _session(), inlined
        entry = scope.sessions.get(id(conn))
        session = None if entry is None or entry[0] is not conn else entry[1]
        if column:
            return _column_load(scope, statement, session, mapper, mapper_name)
        oid = on_origin(scope, statement, "query", cls, mapper_name, None, stack)
        if scope.eager_reads is not None:  # unused_eager_loads: opted in
            on_query(scope, context, stack, oid)
        if mapper is None:
            return _new_load(OrmLoad, ("query", mapper_name, None, None, (), oid, ""))
        if session is not None and session.identity_map:  # else it holds nothing to re-read
            options = context.execution_options.get("_sa_orm_load_options")
            populate = bool(getattr(options, "_populate_existing", False))
            on_select(scope, session, populate, mapper, stack, statement, context, rowcount, oid)
        if collection is None:
            return _new_load(OrmLoad, ("query", mapper_name, None, None, (), oid, ""))
        return _new_load(
            OrmLoad, ("query", mapper_name, collection[0], None, collection[2], oid, collection[1])
        )
    except Exception as exc:
        contain("orm.statement", exc, scope)
        return None


@listener("orm.after_begin")
def _on_after_begin(
    scope: Scope,
    session: Session,
    transaction: SessionTransaction,
    connection: Connection,
) -> None:
    if transaction.nested:
        return
    scope.sessions[id(connection)] = (connection, session)
    session_begin(scope, session, transaction, connection)
    on_session_begin(scope, session, connection)


@listener("orm.after_commit")
def _on_after_commit(scope: Scope, session: Session) -> None:
    scope.committed.add(session)
    session_end(scope, session, "commit")


@listener("orm.after_rollback")
def _on_after_rollback(scope: Scope, session: Session) -> None:
    scope.flush_load = None
    session_end(scope, session, "rollback")


@listener("orm.after_transaction_end")
def _on_after_transaction_end(
    scope: Scope, session: Session, transaction: SessionTransaction
) -> None:
    if transaction.parent is None and not transaction.nested:
        # Ended with neither commit nor rollback: the session was closed (or its transaction
        # discarded); a no-op when commit/rollback already ended it.
        session_end(scope, session, "closed")
        sessions = scope.sessions
        for key in [k for k, (_, s) in sessions.items() if s is session]:
            del sessions[key]


@listener("orm.before_flush")
def _on_before_flush(scope: Scope, session: Session, flush_context: Any, instances: Any) -> None:
    scope.flush_seq += 1
    scope.flush_load = OrmLoad("flush", None, None, scope.flush_seq)


@listener("orm.after_flush")
def _on_after_flush(scope: Scope, session: Session, flush_context: Any) -> None:
    flushed(scope, session)  # read-modify-writes on an autocommit session


@listener("orm.after_flush_postexec")
def _on_after_flush_postexec(scope: Scope, session: Session, flush_context: Any) -> None:
    scope.flush_load = None


#: The class-level ``Session`` listeners (attached by ``capture.claims``).
LISTENERS: tuple[tuple[str, Any], ...] = (
    ("after_begin", _on_after_begin),
    ("after_commit", _on_after_commit),
    ("after_rollback", _on_after_rollback),
    ("after_transaction_end", _on_after_transaction_end),
    ("before_flush", _on_before_flush),
    ("after_flush", _on_after_flush),
    ("after_flush_postexec", _on_after_flush_postexec),
)
