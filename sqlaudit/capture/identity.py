"""Stale identity maps: an ORM Session re-reading rows it already holds from an earlier
database transaction, so the values the database returns for them are ignored.

SQLAlchemy does not overwrite an object that is in the identity map and not expired when a
query returns its row again (unless ``populate_existing``). That is harmless inside one
transaction (the snapshot is the same) and wrong across transactions: under autocommit every
statement is its own transaction (the JetBrains Exposed #306 pattern), and a Session kept
past ``commit()`` with ``expire_on_commit=False`` (or a module-level Session in a web app)
carries objects into the next transaction.

====================================  ==============================================  =======
hook                                  what is recorded                                cost
====================================  ==============================================  =======
``SessionEvents.after_begin``         unexpired identities carried into the new       O(map)
(in a scope)                          transaction; whether it autocommits             per tx
a plain ORM SELECT's cursor execute   a candidate when the session holds carried      O(map)
(in a scope, via ``_orm``)            objects of the queried class                    per query
====================================  ==============================================  =======

A SELECT that begins the session's next transaction judges everything the session holds
(it all comes from an earlier transaction: a commit with ``expire_on_commit=False``, or a
module-level Session between requests). Sessions whose open transaction began before the
scope are not judged (the earlier unit's ``long_transaction`` finding covers a transaction
left open across units of work).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter

from sqlaudit.capture.transactions import detect_autocommit
from sqlaudit.model.records import StaleRead

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Mapper, Session

    from sqlaudit.capture.scope import Scope
    from sqlaudit.model.records import CallSite

__all__ = ["on_select", "on_session_begin"]


def _held(session: Session, cls: type | None = None) -> set[Any]:
    keys = set()
    for state in session.identity_map.all_states():
        key = state.key
        if key is None or state.expired:
            continue
        if cls is None or issubclass(key[0], cls):
            keys.add(key)
    return keys


def on_session_begin(scope: Scope, session: Session, connection: Connection) -> None:
    """Snapshot what the session carries into the transaction it just began."""
    try:
        dbapi = connection.connection.dbapi_connection
    except Exception:
        dbapi = None
    autocommit = bool(
        detect_autocommit(connection.dialect, dbapi, connection.get_execution_options())
    )
    scope.identity[session] = (autocommit, frozenset(_held(session)))


def on_select(
    scope: Scope,
    session: Session,
    populate_existing: bool,
    mapper: Mapper[Any],
    stack: tuple[CallSite, ...],
    statement: Any = None,
    context: Any = None,
    rowcount: int = -1,
    oid: int = 0,
) -> None:
    """Record a stale read of a plain ORM SELECT of ``mapper``'s class: rows the session held,
    unexpired, from an earlier transaction, that the SELECT returned again (their new values
    are then ignored). Which held rows came back is known exactly when the statement selects
    by primary key (``WHERE id = ?`` / ``IN``) or selects the whole table; otherwise, from the
    driver's rowcount minus the objects the query loaded new (counted at close); when neither
    tells, nothing is reported: a query returning only rows the session does not hold must
    stay silent. Called only when the session's identity map is not empty."""
    if populate_existing:
        return
    if not session.in_transaction():
        # This SELECT begins a new transaction (after a commit, or a session kept between
        # units of work): everything the session holds comes from an earlier one.
        autocommit, carried = False, None
    else:
        info = scope.identity.get(session)
        if info is None:
            return  # its transaction began before this scope: not judged here
        autocommit, carried = info
        if not autocommit and not carried:
            return  # nothing came into this transaction from an earlier one
    cls = mapper.class_
    held = _held(session, cls)
    if carried is not None and not autocommit:
        held &= carried
    if not held:
        return
    selected = _selected_identities(statement, context, mapper)
    if selected is _EVERY_ROW:
        reread = len(held)
    elif selected is not None:
        reread = sum(1 for key in held if key[1] in selected)
    elif rowcount >= 0 and oid and not getattr(statement, "_with_options", ()):
        # rowcount rows came back; those not loaded new were held: settled at close, once
        # the rows the query loaded are counted (``Scope.freeze``).
        read = StaleRead(cls.__name__, 0, autocommit, stack, scope.key)
        scope.stale_pending.append((read, oid, rowcount, len(held)))
        return
    else:
        return
    if reread:
        scope.stale_reads.append(StaleRead(cls.__name__, reread, autocommit, stack, scope.key))


#: ``_selected_identities``: the statement selects every row of the class.
_EVERY_ROW: frozenset[Any] = frozenset()


def _selected_identities(statement: Any, context: Any, mapper: Mapper[Any]) -> Any:
    """The primary-key identities (tuples) a plain ORM SELECT filters on, ``_EVERY_ROW`` when
    it has no WHERE, LIMIT, OFFSET, GROUP BY or join, None when it cannot be told."""
    if statement is None or context is None:
        return None
    if any(
        getattr(statement, attr, None)
        for attr in ("_limit_clause", "_offset_clause", "_group_by_clauses", "_setup_joins")
    ):
        return None
    where = getattr(statement, "whereclause", None)
    if where is None:
        return _EVERY_ROW
    primary = mapper.primary_key
    if len(primary) != 1:
        return None
    column = primary[0]
    clauses = getattr(where, "clauses", None)
    if clauses is None or getattr(where, "operator", None) is not operators.and_:
        clauses = (where,)
    for clause in clauses:
        values = _pk_values(clause, column, context)
        if values is not None:
            return frozenset((v,) for v in values)  # other conditions only narrow it down
    return None


def _pk_values(clause: Any, column: Any, context: Any) -> list[Any] | None:
    """The values of ``column = :x`` or ``column IN (:xs)`` in ``clause``, else None."""
    left, right = getattr(clause, "left", None), getattr(clause, "right", None)
    if left is None or getattr(left, "key", None) != column.key:
        return None
    if getattr(left, "table", None) is not column.table:
        return None
    operator = getattr(clause, "operator", None)
    if operator not in (operators.eq, operators.in_op) or not isinstance(right, BindParameter):
        return None
    value = right.effective_value
    if value is None:
        name = context.compiled.bind_names.get(right)
        params = context.compiled_parameters
        value = params[0].get(name) if name is not None and params else None
    if value is None:
        return None
    if operator is operators.in_op:
        return list(value) if isinstance(value, (list, tuple)) else None
    return [value]
