"""What a unit of work did, as plain data: statements, transactions, the queries that loaded
ORM objects, and the unit itself (``UnitRecord``, frozen when the unit closes).

Per-statement records are plain tuples, cheap to create on the hot path. Records never hold
SQLAlchemy objects, frames or bind values. ``QueryRecord.sql`` is the SQL text SQLAlchemy sent
to the driver (placeholders, not values); it stays in the process and is exported only as a
fingerprint unless the user opts in. Detectors are pure functions of a ``UnitRecord``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from sqlaudit.model.config import AuditConfig
    from sqlaudit.model.hazards import EagerLoad, LockedRead, ReadModifyWrite

__all__ = [
    "CallSite",
    "FrozenOrigins",
    "Origin",
    "OriginRecord",
    "OrmLoad",
    "QueryRecord",
    "StaleRead",
    "StatementKind",
    "TransactionRecord",
    "UnitRecord",
]


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
    #: For lazy loads: an opaque key of the parent row (a salted hash of its identity: the same
    #: row gives the same key whichever object holds it; never the key values).
    parent: int | None
    #: For column loads: the attributes being loaded, sorted. For an aggregate per parent
    #: (``reason == "aggregate"``): the parent key and the child's foreign key attributes.
    attributes: tuple[str, ...] = ()
    #: Key of the query's origin in ``report.origins`` (0: none): who loaded what.
    query: int = 0
    #: For column loads: ``"expired"`` (the session committed earlier in the unit, so
    #: ``expire_on_commit`` expired the object) or ``"deferred"``. For queries filtered on a
    #: relationship's foreign key: ``"dynamic"`` / ``"write_only"`` (its strategy), or
    #: ``"aggregate"`` (a COUNT/SUM... of one parent's children; ``relationship`` names it).
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
    #: The key of the unit of work that issued it (``UnitRecord.key``): a request's statements
    #: stay told apart from the test's own statements once merged into the test's unit.
    unit: int = 0

    @property
    def callsite(self) -> CallSite | None:
        """The innermost application frame, or None when none was found."""
        return self.stack[0] if self.stack else None

    def __repr__(self) -> str:
        # The text may hold literals the application inlined: never in a repr, which pytest
        # prints in assertion messages (issue 14, row 8). Its fingerprint is what to show.
        fields = ", ".join(
            f"{name}={value!r}" for name, value in zip(self._fields[1:], self[1:], strict=True)
        )
        return f"QueryRecord(sql=<{len(self.sql)} characters>, {fields})"


class TransactionRecord(NamedTuple):
    """One database transaction seen in a unit of work (plain data, no SQLAlchemy objects)."""

    #: ``"core"`` or ``"orm"`` (an ORM session's transaction).
    source: str
    #: True when the connection was in autocommit mode (None: no write, not checked).
    autocommit: bool | None
    #: ``"commit"``, ``"rollback"``, ``"rollback_exception"``, ``"closed"``, ``"open"``, or
    #: ``"ended"`` (a read-only transaction that ended unobserved: no listener was needed).
    end: str
    #: Statements executed in it (transaction control excluded).
    statements: int
    #: INSERT/UPDATE/DELETE statements among them.
    writes: int
    #: ``perf_counter()`` at its first statement (or at the session's begin).
    started: float
    #: ``perf_counter()`` when it ended (or when the scope closed, if still open).
    ended: float
    #: Seconds spent executing its statements.
    exec_time: float
    #: Longest time it sat idle: between two statements, or from its last statement to its
    #: commit / rollback / close (never the time a streamed result was being fetched).
    max_gap: float
    #: Where it began (the first statement's application frames).
    begin_stack: tuple[CallSite, ...]
    #: Where it ended (the commit or rollback call's application frames).
    end_stack: tuple[CallSite, ...]
    #: Not begun by the audited code (outer fixture transaction, pre-scope checkout).
    external: bool
    #: It streamed results (``stream_results`` / ``yield_per``): long by design.
    streaming: bool
    #: The dialect name.
    dialect: str
    #: An opaque key of the ORM session, or 0 for Core.
    session: int
    #: Rows written (sum of parameter sets of its writes).
    rows_written: int
    #: Finding kinds suppressed by ``sqlaudit.ignore`` where it began.
    suppressed: frozenset[str]
    #: The key of the unit of work it began in (``UnitRecord.key``).
    unit: int = 0
    #: The DBAPI driver (``psycopg``, ``pymysql``, ``asyncpg``...): advice depends on it.
    driver: str = ""
    #: Locking reads (``FOR UPDATE``/``FOR SHARE``) issued in it while its connection
    #: autocommitted (recorded only then; the first 16).
    locks: tuple[LockedRead, ...] = ()
    #: The distinct SQL texts of its writes (at most a few), to name the tables it wrote.
    write_sql: tuple[str, ...] = ()
    #: The opaque key of its connection, as in ``QueryRecord.connection`` (0: unknown): with
    #: ``started``/``ended`` it tells which recorded statements ran in it.
    connection: int = 0


class OriginRecord(NamedTuple):
    """A query that loaded ORM objects (plain data)."""

    #: Key of this origin in ``UnitRecord.origin_records`` (``OrmLoad.query`` points here).
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


class StaleRead(NamedTuple):
    """A SELECT that may return rows the session already holds from an earlier transaction."""

    #: The queried class, e.g. ``"User"``.
    mapper: str
    #: Rows the session held unexpired from an earlier transaction that the SELECT returned
    #: again (their newer values ignored).
    held: int
    #: True when the session's connection autocommits (each statement its own transaction).
    autocommit: bool
    #: Where the SELECT was issued.
    stack: tuple[CallSite, ...]
    #: The key of the unit of work that issued it (``UnitRecord.key``).
    unit: int = 0


#: An origin while its unit is open (capture's form): ``(load, mapper, relationship, many_to_one,
#: strategy, parent, stack)``, the fields of ``OriginRecord`` but ``oid`` (its key) and
#: ``rows`` (counted apart). A plain tuple: cheap to build, and the garbage
#: collector stops tracking it.
Origin = tuple[str, "str | None", "str | None", bool, "str | None", int, "tuple[CallSite, ...]"]


def freeze(oid: int, origin: Origin, rows: int) -> OriginRecord:
    """The plain-data record of an open origin."""
    load, mapper, relationship, many_to_one, strategy, parent, stack = origin
    return OriginRecord(oid, load, mapper, relationship, many_to_one, strategy, parent, rows, stack)


class FrozenOrigins(Mapping[int, OriginRecord]):
    """A closed unit's origins as ``OriginRecord`` s, each built when first read: a unit that
    issued thousands of ORM statements pays only for the origins a finding names."""

    __slots__ = ("_done", "_origins", "_rows")

    def __init__(self, origins: dict[int, Origin], rows: dict[int, int]) -> None:
        self._origins = origins
        self._rows = rows
        self._done: dict[int, OriginRecord] = {}

    def __getitem__(self, oid: int) -> OriginRecord:
        record = self._done.get(oid)
        if record is None:
            record = self._done[oid] = freeze(oid, self._origins[oid], self._rows.get(oid, 0))
        return record

    def __iter__(self) -> Iterator[int]:
        return iter(self._origins)

    def __len__(self) -> int:
        return len(self._origins)

    def __contains__(self, oid: object) -> bool:
        return oid in self._origins

    def parents(self, oids: Iterable[int]) -> set[int]:
        """The ``parent`` (an ``Origin``'s 6th field) of each of ``oids`` that is an origin."""
        return set(map(itemgetter(5), filter(None, map(self._origins.get, oids))))


_TRANSACTION = StatementKind.TRANSACTION
_ROLLED_BACK = ("rollback", "rollback_exception", "closed")


@dataclass(frozen=True, slots=True, eq=False)
class UnitRecord:
    """What one unit of work (a request, a job, a test) did, frozen when it closed.

    Detectors are functions of it (``Detector.detect(unit, records)``); ``AuditReport`` is the
    public view that reads it. Statements past ``config.max_records`` are in ``counts`` and
    ``db_time`` but not in ``statements``.

    A unit opened inside another (a request inside a test) is analysed on its own when it
    closes; its statements and transactions then also appear in the enclosing unit's record
    (``statements``, ``counts``, ``transaction_records``: everything, for budgets and
    reports), tagged with their unit's ``key``, so that the enclosing unit's detectors judge
    only its own (``own_statements``, ``own_transactions``).
    """

    #: The unit's name, e.g. ``"GET /users/{id}"``.
    name: str
    #: The configuration it was audited with.
    config: AuditConfig
    #: Recorded statements in the order they started (at most ``max_records``).
    statements: tuple[QueryRecord, ...]
    #: Statements per kind, recorded or not (``"transaction"``: BEGIN/COMMIT/SAVEPOINT...).
    counts: Mapping[str, int]
    #: Seconds spent executing statements, transaction control excluded.
    db_time: float
    #: Statements counted but not recorded (past ``max_records``).
    overflow: int
    #: Its database transactions.
    transaction_records: tuple[TransactionRecord, ...]
    #: The queries that loaded ORM objects, by id (``OrmLoad.query``).
    origin_records: Mapping[int, OriginRecord]
    #: SELECTs that may have re-read rows a session held from an earlier transaction.
    stale_reads: tuple[StaleRead, ...]
    #: ROLLBACKs the pool sent resetting connections returned during the unit.
    resets: int
    #: ``perf_counter()`` when it opened and when it closed (or was snapshotted).
    started: float
    ended: float
    #: sqlaudit errors swallowed while auditing it.
    internal_errors: int = 0
    #: Transactions past ``max_records`` (not in ``transaction_records``), as counts:
    #: ``transactions``, ``commits``, ``rollbacks`` (with writes), ``control`` (round trips).
    transactions_past_cap: Mapping[str, int] = field(default_factory=dict)
    #: Identifies the unit in its records' ``unit`` fields (unique in the process).
    key: int = 0
    #: Whether a unit was opened inside it (then not every record is its own).
    nested: bool = False
    #: Rows read, then written back with absolute values on an autocommit connection.
    read_modify_writes: tuple[ReadModifyWrite, ...] = ()
    #: Relationships loaded eagerly (only with ``config.unused_eager_loads``).
    eager_loads: tuple[EagerLoad, ...] = ()

    @property
    def own_statements(self) -> tuple[QueryRecord, ...]:
        """The statements this unit issued itself, outside any unit opened inside it."""
        if not self.nested:
            return self.statements
        key = self.key
        return tuple(r for r in self.statements if r.unit == key)

    @property
    def own_transactions(self) -> tuple[TransactionRecord, ...]:
        """The transactions that began in this unit itself."""
        if not self.nested:
            return self.transaction_records
        key = self.key
        return tuple(t for t in self.transaction_records if t.unit == key)

    @property
    def own_stale_reads(self) -> tuple[StaleRead, ...]:
        """The stale-read candidates of this unit itself."""
        if not self.nested:
            return self.stale_reads
        return tuple(r for r in self.stale_reads if r.unit == self.key)

    @property
    def query_count(self) -> int:
        """Statements issued, transaction control excluded."""
        return sum(self.counts.values()) - self.counts.get(_TRANSACTION, 0)

    @property
    def recorded_count(self) -> int:
        """Statements recorded in detail."""
        return len(self.statements)

    @property
    def db_time_ms(self) -> float:
        return self.db_time * 1000.0

    @property
    def duration(self) -> float:
        """Wall-clock seconds the unit was open."""
        return self.ended - self.started

    @property
    def transaction_count(self) -> int:
        """Transactions that ran at least one statement."""
        past = self.transactions_past_cap.get("transactions", 0)
        return past + sum(1 for t in self.transaction_records if t.statements)

    @property
    def commit_count(self) -> int:
        """Transactions that ended in a commit."""
        past = self.transactions_past_cap.get("commits", 0)
        return past + sum(1 for t in self.transaction_records if t.end == "commit")

    @property
    def rollback_count(self) -> int:
        """Transactions with writes that were rolled back (explicitly, on error or at close)."""
        past = self.transactions_past_cap.get("rollbacks", 0)
        return past + sum(1 for t in self.transaction_records if t.end in _ROLLED_BACK and t.writes)

    @property
    def round_trips(self) -> tuple[int, int]:
        """(transaction-control round trips, statement round trips), estimated per dialect:
        COMMIT/ROLLBACK per transaction, BEGIN on PostgreSQL, the pool's reset ROLLBACK per
        connection returned, and SAVEPOINT/RELEASE statements."""
        control = self.counts.get(_TRANSACTION, 0) + self.transactions_past_cap.get("control", 0)
        for tx in self.transaction_records:
            if not tx.statements or tx.autocommit:
                continue
            if tx.end != "open":
                control += 1  # COMMIT or ROLLBACK (also when a close ended it)
            if tx.dialect == "postgresql":
                control += 1  # BEGIN
        return control + self.resets, self.query_count
