"""What capture observed beyond statements and transactions, as plain data: locking reads on
autocommit connections, read-modify-writes of a row on an autocommit connection, and eager
loads with whether the unit read them (issue 22). Detectors read these from ``UnitRecord``
and ``TransactionRecord``; nothing here holds SQLAlchemy objects or bind values.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlaudit.model.records import CallSite

__all__ = ["EagerLoad", "LockedRead", "ReadModifyWrite"]


class LockedRead(NamedTuple):
    """A ``SELECT ... FOR UPDATE`` / ``FOR SHARE`` / ``LOCK IN SHARE MODE`` (kept on its
    ``TransactionRecord.locks`` when that transaction's connection autocommits)."""

    #: The SQL sent to the driver (placeholders, never bind values).
    sql: str
    #: Where it was issued, innermost application frame first.
    stack: tuple[CallSite, ...]
    #: ``perf_counter()`` when it started (matches its ``QueryRecord.start``).
    start: float
    #: Finding kinds suppressed by ``sqlaudit.ignore`` when it ran.
    suppressed: frozenset[str] = frozenset()


class ReadModifyWrite(NamedTuple):
    """A row read and then written back with absolute values on an autocommit connection:
    numeric columns whose value was read are set to new numbers (``SET col = ?``)."""

    #: ``"orm"`` (an object's attributes flushed) or ``"core"`` (an UPDATE of a row read by
    #: the SELECT just before it on the same connection).
    source: str
    #: The mapped class (ORM), or the table (Core), e.g. ``"Wallet"`` / ``"wallets"``.
    target: str
    #: The columns (attributes) written back, sorted.
    columns: tuple[str, ...]
    #: Where the row was read (the query that loaded the object, or the SELECT).
    read_stack: tuple[CallSite, ...]
    #: Where it was written (the flush, commit or execute call).
    write_stack: tuple[CallSite, ...]
    #: The SQL of the read and of the write, when known (placeholders, never values).
    read_sql: str = ""
    write_sql: str = ""
    #: The key of the unit of work that issued the write (``UnitRecord.key``).
    unit: int = 0
    #: Finding kinds suppressed by ``sqlaudit.ignore`` where it was written.
    suppressed: frozenset[str] = frozenset()


class EagerLoad(NamedTuple):
    """A relationship the unit loaded eagerly (recorded only with
    ``AuditConfig.unused_eager_loads``), and whether the unit read it."""

    #: The relationship, e.g. ``"Author.books"``.
    relationship: str
    #: The loader: ``"selectin"``, ``"subquery"`` or ``"joined"``.
    strategy: str
    #: True when it is the relationship's own ``lazy=`` setting, False for a loader option.
    configured: bool
    #: Where the loading query ran.
    stack: tuple[CallSite, ...]
    #: Extra statements it issued (0 for a joined load: a JOIN in the parent's statement).
    statements: int
    #: Whether the unit read the relationship's attribute on any object.
    read: bool
    #: The SQL of one of its statements (or the parent query's, for a joined load).
    sql: str = ""
    #: The key of the unit of work that issued it (``UnitRecord.key``).
    unit: int = 0
    #: Finding kinds suppressed by ``sqlaudit.ignore`` where it was first loaded.
    suppressed: frozenset[str] = frozenset()
