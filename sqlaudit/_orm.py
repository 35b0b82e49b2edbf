"""ORM capture: class-level ``Session`` listeners (they cover ``AsyncSession`` too).

=============================  =========================================  ===================
event (target: ``Session``)    what is recorded                           cost
=============================  =========================================  ===================
``do_orm_execute``             the ORM context of the next statement:     +~5 µs per ORM
                               lazy load (relationship, parent), eager    statement while
                               batch, column load; the call site          any engine is
                                                                          instrumented
``after_begin``                a transaction began on a session           per transaction
``after_commit``               the session committed                      per commit
``after_rollback``             the session's database transaction rolled  per rollback
                               back
=============================  =========================================  ===================

``do_orm_execute`` makes SQLAlchemy run ``orm_pre_session_exec`` twice per ORM statement
(session.py, "part of #13301"), which is where its cost comes from whether or not a scope is
open; the listeners are therefore attached only while at least one engine is instrumented,
and taken off when the last instrumentation is removed.

Correlation: ``do_orm_execute`` fires before the statement's cursor execute, in the same
context. It leaves its ORM context in the scope's ``pending_orm`` slot; the next cursor
execute of the same statement kind takes it (an autoflush in between is a write and does not
match a pending SELECT). This needs no execution option, so nothing the ORM executes changes.

On error inside sqlaudit: logged once, counted on the report, never raised into the session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, event
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql import visitors

from sqlaudit._callsite import capture
from sqlaudit._identity import on_select, on_session_begin
from sqlaudit._internal import internal_error
from sqlaudit._origins import on_load
from sqlaudit._origins import on_select as on_origin
from sqlaudit._records import OrmLoad, StatementKind
from sqlaudit._scope import current
from sqlaudit._transactions import session_begin, session_end

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import ORMExecuteState, SessionTransaction

    from sqlaudit._scope import AuditReport

__all__ = ["Token"]

_lock = threading.Lock()


def _relationship(path: Any) -> Any:
    """The RelationshipProperty a lazy or eager load's path ends in (None if not found)."""
    if path is None or len(path) < 2:
        return None
    prop = path[-1]
    if getattr(prop, "parent", None) is None or getattr(prop, "key", None) is None:
        return None
    return prop


def _column_load(
    scope: AuditReport, state: ORMExecuteState, mapper: Any, mapper_name: str | None
) -> OrmLoad:
    """A deferred or expired column load: which attributes, and why they were not loaded."""
    primary = {c.key for c in mapper.primary_key} if mapper is not None else set()
    attributes = tuple(
        sorted(
            key
            for c in getattr(state.statement, "selected_columns", ())
            if (key := getattr(c, "key", None)) is not None and key not in primary
        )
    )
    reason = "expired" if id(state.session) in scope.committed else "deferred"
    return OrmLoad("column", mapper_name, None, None, attributes, 0, reason)


_collections: dict[Any, tuple[tuple[str, str, frozenset[Any]], ...]] = {}


def _collection_query(state: ORMExecuteState, mapper: Any) -> tuple[str, str] | None:
    """For a plain SELECT of ``mapper``'s class filtered on the foreign key of a
    ``lazy="dynamic"`` or write-only relationship: that relationship and its strategy."""
    candidates = _collections.get(mapper)
    if candidates is None:
        found = []
        for other in mapper.registry.mappers:
            for prop in other.relationships:
                if prop.mapper is mapper and prop.lazy in ("dynamic", "write_only"):
                    name = f"{other.class_.__name__}.{prop.key}"
                    found.append((name, str(prop.lazy), frozenset(prop.remote_side)))
        candidates = _collections[mapper] = tuple(found)
    if not candidates:
        return None
    where = getattr(state.statement, "whereclause", None)
    if where is None:
        return None
    columns = {e for e in visitors.iterate(where) if isinstance(e, Column)}
    for name, lazy, remote in candidates:
        if remote & columns:
            return name, lazy
    return None


def _name(prop: Any) -> str | None:
    return None if prop is None else f"{prop.parent.class_.__name__}.{prop.key}"


def _on_orm_execute(state: ORMExecuteState) -> None:
    scope = current()
    if scope is None:
        return
    try:
        mapper = state.bind_mapper
        mapper_name = mapper.class_.__name__ if mapper is not None else None
        if not state.is_select:
            # lazy_loaded_from & co. raise for DML ("not against a SELECT statement").
            if state.is_insert:
                kind = StatementKind.INSERT
            elif state.is_update:
                kind = StatementKind.UPDATE
            elif state.is_delete:
                kind = StatementKind.DELETE
            else:
                return
            scope.pending_orm = (kind, OrmLoad("query", mapper_name, None, None), capture(2))
            return
        kind = StatementKind.SELECT
        parent = state.lazy_loaded_from
        stack = capture(2)
        # loader_strategy_path once: is_relationship_load would compute it again.
        path = state.loader_strategy_path
        if parent is not None:
            prop = _relationship(path)
            oid = on_origin(scope, state, "lazy", mapper_name, prop, stack)
            load = OrmLoad("lazy", mapper_name, _name(prop), id(parent), (), oid)
        elif path is not None and not path.is_root:
            prop = _relationship(path)
            oid = on_origin(scope, state, "eager", mapper_name, prop, stack)
            load = OrmLoad("eager", mapper_name, _name(prop), None, (), oid)
        elif state.is_column_load:
            load = _column_load(scope, state, mapper, mapper_name)
        else:
            oid = on_origin(scope, state, "query", mapper_name, None, stack)
            load = OrmLoad("query", mapper_name, None, None, (), oid)
            if mapper is not None:
                on_select(scope, state, mapper, stack)
                collection = _collection_query(state, mapper)
                if collection is not None:
                    load = load._replace(relationship=collection[0], reason=collection[1])
        scope.pending_orm = (kind, load, stack)
    except Exception as exc:
        scope.internal_errors += 1
        internal_error("orm.do_orm_execute", exc)


def _guarded(where: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: run a session listener only in a scope; contain its errors."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        def listener(session: Session, *args: Any) -> None:
            scope = current()
            if scope is None:
                return
            try:
                fn(scope, session, *args)
            except Exception as exc:
                scope.internal_errors += 1
                internal_error(where, exc)

        listener.__name__ = fn.__name__
        return listener

    return wrap


@_guarded("orm.after_begin")
def _on_after_begin(
    scope: AuditReport,
    session: Session,
    transaction: SessionTransaction,
    connection: Connection,
) -> None:
    if transaction.nested:
        return
    session_begin(scope, session, transaction, connection)
    on_session_begin(scope, session, connection)


@_guarded("orm.after_commit")
def _on_after_commit(scope: AuditReport, session: Session) -> None:
    scope.committed.add(id(session))
    session_end(scope, session, "commit")


@_guarded("orm.after_rollback")
def _on_after_rollback(scope: AuditReport, session: Session) -> None:
    scope.flush_load = None
    session_end(scope, session, "rollback")


@_guarded("orm.after_transaction_end")
def _on_after_transaction_end(
    scope: AuditReport, session: Session, transaction: SessionTransaction
) -> None:
    if transaction.parent is None and not transaction.nested:
        # Ended with neither commit nor rollback: the session was closed (or its transaction
        # discarded); a no-op when commit/rollback already ended it.
        session_end(scope, session, "closed")


@_guarded("orm.before_flush")
def _on_before_flush(
    scope: AuditReport, session: Session, flush_context: Any, instances: Any
) -> None:
    scope.flush_seq += 1
    scope.flush_load = OrmLoad("flush", None, None, scope.flush_seq)


@_guarded("orm.after_flush_postexec")
def _on_after_flush_postexec(scope: AuditReport, session: Session, flush_context: Any) -> None:
    scope.flush_load = None


_LISTENERS: tuple[tuple[str, Any], ...] = (
    ("do_orm_execute", _on_orm_execute),
    ("after_begin", _on_after_begin),
    ("after_commit", _on_after_commit),
    ("after_rollback", _on_after_rollback),
    ("after_transaction_end", _on_after_transaction_end),
    ("before_flush", _on_before_flush),
    ("after_flush_postexec", _on_after_flush_postexec),
)


# Two groups, each attached while at least one instrumentation wants it: the session
# transaction events (cheap: per transaction) for every instrumentation, and the ORM detail
# listeners (do_orm_execute, InstanceEvents.load: a cost on every ORM statement and loaded
# object in the process, scope or not) only for those created with ``orm=True``.
_DETAIL = frozenset({"do_orm_execute"})
_users = {"session": 0, "detail": 0}


def _attach(group: str) -> None:
    for name, fn in _LISTENERS:
        if (name in _DETAIL) == (group == "detail"):
            event.listen(Session, name, fn)
    if group == "detail":
        event.listen(Mapper, "load", on_load, raw=True)


def _detach(group: str) -> None:
    for name, fn in _LISTENERS:
        if (name in _DETAIL) == (group == "detail") and event.contains(Session, name, fn):
            event.remove(Session, name, fn)
    if group == "detail" and event.contains(Mapper, "load", on_load):
        event.remove(Mapper, "load", on_load)


def _acquire(groups: tuple[str, ...]) -> None:
    with _lock:
        for group in groups:
            _users[group] += 1
            if _users[group] == 1:
                _attach(group)


def _release(groups: tuple[str, ...]) -> None:
    with _lock:
        for group in groups:
            _users[group] -= 1
            if _users[group] == 0:
                _detach(group)


def listening(group: str = "session") -> bool:
    """True while the class-level listeners of ``group`` (session or detail) are attached."""
    return _users[group] > 0


class Token:
    """One instrumentation's claim on the shared class-level listeners; released once."""

    __slots__ = ("_groups", "_state")

    def __init__(self, orm: bool = True) -> None:
        self._state = 0  # 0 new, 1 acquired, 2 released
        self._groups = ("session", "detail") if orm else ("session",)

    def acquire(self) -> None:
        if self._state == 0:
            self._state = 1
            _acquire(self._groups)

    def release(self) -> None:
        if self._state == 1:
            self._state = 2
            _release(self._groups)
