"""What sqlaudit records per statement: plain tuples, cheap to create on the hot path.

Records never hold SQLAlchemy objects, frames or bind values. ``QueryRecord.sql`` is the SQL
text SQLAlchemy sent to the driver (placeholders, not values); it stays in the process and is
exported only as a fingerprint unless the user opts in.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["CallSite", "OrmLoad", "QueryRecord", "StatementKind"]


class StatementKind:
    """The statement kinds sqlaudit counts (plain strings, stable in JSON output)."""

    SELECT = "select"
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    DDL = "ddl"
    #: BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE: never counted in ``query_count``.
    TRANSACTION = "transaction"
    OTHER = "other"

    WRITES = frozenset({INSERT, UPDATE, DELETE})


class CallSite(NamedTuple):
    """One application frame: where a statement came from."""

    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}()"


class OrmLoad(NamedTuple):
    """What the ORM was doing when it issued a statement (read from its execution context)."""

    #: ``"query"`` (a user's ORM statement), ``"lazy"`` (a lazy load), ``"eager"`` (an
    #: eager-loader batch such as ``selectinload``), ``"column"`` (deferred or expired
    #: column load on an existing instance).
    load: str
    #: The mapped class issuing or receiving the load, e.g. ``"User"``.
    mapper: str | None
    #: For lazy and eager loads: the relationship, e.g. ``"User.addresses"``.
    relationship: str | None
    #: For lazy and column loads: an opaque in-process key of the parent instance.
    parent: int | None
    #: For column loads: the attributes being loaded, sorted.
    attributes: tuple[str, ...] = ()
    #: Key of the query's origin in ``report.origins`` (0: none): who loaded what.
    query: int = 0
    #: For column loads: ``"expired"`` (the session committed earlier in the unit, so
    #: ``expire_on_commit`` expired the object) or ``"deferred"``.
    reason: str = ""


class QueryRecord(NamedTuple):
    """One statement sent to the database inside an audit scope."""

    #: The SQL sent to the driver, with placeholders (never bind values).
    sql: str
    #: One of :class:`StatementKind`'s values.
    kind: str
    #: ``time.perf_counter()`` when the statement started.
    start: float
    #: Seconds spent in the driver's execute call.
    duration: float
    #: ``cursor.rowcount`` where the driver knows it, else -1.
    rowcount: int
    #: Parameter sets sent at once (``executemany``); 1 for a plain execute.
    batch: int
    #: Exception class name if the statement failed.
    error: str | None
    #: The first application frames, innermost first (may be empty).
    stack: tuple[CallSite, ...]
    #: ORM context, when the statement came from an ORM execute.
    orm: OrmLoad | None
    #: An opaque key of the connection, to tell transactions apart.
    connection: int
    #: The database dialect name, e.g. ``"sqlite"``, ``"mysql"``, ``"postgresql"``.
    dialect: str
    #: Finding kinds suppressed by :func:`sqlaudit.ignore` when this statement ran.
    suppressed: frozenset[str]
    #: For statements with LIMIT/OFFSET or an IN list: salted hashes of the bind values (never
    #: the values), to tell pagination and IN-list chunks from loops. Else None.
    params: tuple[int, ...] | None = None

    @property
    def callsite(self) -> CallSite | None:
        """The innermost application frame, or None when none was found."""
        return self.stack[0] if self.stack else None
