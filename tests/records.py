"""Hand-built records for database-free detector tests: every detector is a pure function of a
``UnitRecord``, so each rule can be pinned with a table of small units built here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from sqlaudit import AuditConfig, CallSite, OrmLoad, QueryRecord, UnitRecord
from sqlaudit.model.records import OriginRecord, StaleRead, TransactionRecord

__all__ = ["lazy", "origin", "q", "site", "stack", "tx", "unit"]

#: The unit key the builders use (records belong to it unless told otherwise).
KEY = 1


def site(line: int, function: str = "view", file: str = "/app/views.py") -> CallSite:
    return CallSite(file, line, function)


def stack(*lines: int) -> tuple[CallSite, ...]:
    """Frames of one function at ``lines``, innermost first."""
    return tuple(site(line) for line in lines)


def q(
    sql: str = "SELECT a FROM t WHERE id = ?",
    kind: str = "select",
    *,
    at: tuple[CallSite, ...] = (site(10),),
    start: float = 0.0,
    duration: float = 0.001,
    rowcount: int = 1,
    batch: int = 1,
    orm: OrmLoad | None = None,
    dialect: str = "sqlite",
    suppressed: Iterable[str] = (),
    params: tuple[int, ...] | None = None,
    key: int = KEY,
) -> QueryRecord:
    """One statement record."""
    return QueryRecord(
        sql,
        kind,
        start,
        duration,
        rowcount,
        batch,
        None,
        at,
        orm,
        1,
        dialect,
        frozenset(suppressed),
        params,
        key,
    )


def lazy(relationship: str, parent: int, query: int = 0, mapper: str = "Child") -> OrmLoad:
    """The ORM context of a lazy load of ``relationship`` for parent row ``parent``."""
    return OrmLoad("lazy", mapper, relationship, parent, (), query)


def origin(
    oid: int,
    load: str = "query",
    *,
    mapper: str = "Parent",
    relationship: str | None = None,
    many_to_one: bool = False,
    parent: int = 0,
    rows: int = 5,
    at: tuple[CallSite, ...] = (site(5),),
) -> OriginRecord:
    return OriginRecord(oid, load, mapper, relationship, many_to_one, None, parent, rows, at)


def tx(
    *,
    end: str = "commit",
    statements: int = 1,
    writes: int = 0,
    rows: int = 0,
    autocommit: bool | None = False,
    started: float = 0.0,
    ended: float = 0.01,
    idle: float = 0.0,
    begin: tuple[CallSite, ...] = (site(20),),
    end_at: tuple[CallSite, ...] = (site(21),),
    external: bool = False,
    streaming: bool = False,
    dialect: str = "postgresql",
    source: str = "core",
    key: int = KEY,
) -> TransactionRecord:
    """One transaction record."""
    return TransactionRecord(
        source,
        autocommit,
        end,
        statements,
        writes,
        started,
        ended,
        0.001,
        idle,
        begin,
        end_at,
        external,
        streaming,
        dialect,
        0,
        rows,
        frozenset(),
        key,
        "driver",
    )


def unit(
    statements: Iterable[QueryRecord] = (),
    *,
    transactions: Iterable[TransactionRecord] = (),
    origins: Mapping[int, OriginRecord] | None = None,
    stale: Iterable[StaleRead] = (),
    config: AuditConfig | None = None,
    resets: int = 0,
    nested: bool = False,
    **overrides: Any,
) -> UnitRecord:
    """A closed unit holding ``statements`` (counts and DB time derived from them)."""
    records = tuple(sorted(statements, key=lambda r: r.start))
    counts = dict(Counter(r.kind for r in records))
    return UnitRecord(
        name="unit",
        config=config or AuditConfig(**overrides),
        statements=records,
        counts=counts,
        db_time=sum(r.duration for r in records if r.kind != "transaction"),
        overflow=0,
        transaction_records=tuple(transactions),
        origin_records=dict(origins or {}),
        stale_reads=tuple(stale),
        resets=resets,
        started=0.0,
        ended=1.0,
        key=KEY,
        nested=nested,
    )
