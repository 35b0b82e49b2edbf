"""Pool listeners (engine level, +0.1 µs per checkout): which connections a scope checked out,
how they went back, and the ROLLBACKs the pool sent resetting them.

=======================  =====================================================================
event                    what is recorded
=======================  =====================================================================
``checkout``             the DBAPI connection was checked out inside the scope (transactions on
                         connections checked out earlier are ``external``)
``reset``                ``PoolResetState.transaction_was_reset``: the Connection closed with its
                         transaction still open (an implicit rollback); else the pool's own reset
                         ROLLBACK round trip is counted
``checkin``              the checkout ended: its open Core transaction is closed
=======================  =====================================================================

On error inside sqlaudit: logged once, counted on the report, never raised into the pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlaudit.capture.callsite import capture, offsets
from sqlaudit.capture.guard import listener
from sqlaudit.capture.scope import Scope

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry, PoolResetState

__all__ = ["POOL_LISTENERS"]

#: Where the application is found on this path (``callsite.offsets``).
_OFFSETS = offsets()


@listener("transactions.checkout")
def on_checkout(
    scope: Scope, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, proxy: Any
) -> None:
    scope.checkouts.add(id(dbapi_connection))


@listener("transactions.reset")
def on_reset(
    scope: Scope,
    dbapi_connection: DBAPIConnection,
    record: ConnectionPoolEntry,
    state: PoolResetState,
) -> None:
    was_reset = state.transaction_was_reset
    if not was_reset:
        scope.resets += 1  # the pool's reset-on-return ROLLBACK round trip
    tx = scope.tx_by_dbapi.get(id(dbapi_connection))
    if tx is None or tx.session:
        return
    end = tx.end
    if was_reset and end in ("open", "rollback"):
        # Connection.close() rolled back a transaction nobody ended (SQLAlchemy's pool docs,
        # PoolResetState.transaction_was_reset); our rollback listener, if attached, saw that
        # rollback first and took it for an explicit one.
        tx.end = "open"
        tx.finish("closed", capture(3, scope.opener, _OFFSETS))
    elif end == "open":  # else finish() keeps the end it saw: no stack to take
        tx.finish("closed" if tx.writes == 0 else end, capture(3, scope.opener, _OFFSETS))


@listener("transactions.checkin")
def on_checkin(
    scope: Scope, dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry
) -> None:
    # Only connections checked out now are kept: the set stays as small as the pool.
    key = id(dbapi_connection)
    scope.checkouts.discard(key)
    tx = scope.tx_by_dbapi.pop(key, None)
    if tx is not None and not tx.session:
        if tx.end == "open":
            tx.finish("closed", ())
        # ``tx.connection`` is the id() of its Connection: while the entry is this state, no
        # other Connection has taken that id for a statement of this scope.
        key = tx.connection
        if scope.tx_by_conn.get(key) is tx:
            del scope.tx_by_conn[key]


POOL_LISTENERS = (("checkout", on_checkout), ("reset", on_reset), ("checkin", on_checkin))
