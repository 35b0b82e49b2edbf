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
    scope.identity[id(session)] = (autocommit, frozenset(_held(session)))


def on_select(
    scope: Scope,
    session: Session,
    populate_existing: bool,
    mapper: Mapper[Any],
    stack: tuple[CallSite, ...],
) -> None:
    """Record a stale-read candidate for a plain ORM SELECT of ``mapper``'s class."""
    if not session.identity_map or populate_existing:
        return
    if not session.in_transaction():
        # This SELECT begins a new transaction (after a commit, or a session kept between
        # units of work): everything the session holds comes from an earlier one.
        autocommit, carried = False, None
    else:
        info = scope.identity.get(id(session))
        if info is None:
            return  # its transaction began before this scope: not judged here
        autocommit, carried = info
        if not autocommit and not carried:
            return  # nothing came into this transaction from an earlier one
    cls = mapper.class_
    held = _held(session, cls)
    if carried is not None and not autocommit:
        held &= carried
    if held:
        scope.stale_reads.append(StaleRead(cls.__name__, len(held), autocommit, stack, scope.key))
