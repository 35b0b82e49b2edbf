"""One request's statements in execution order, grouped by database transaction.

What the development page keeps of a request's statements: plain data built once when the
request closes, bounded (``MAX_STEPS`` statements per request), holding fingerprints (never the
SQL as sent, which may carry inlined literals, and never bind values), durations and the
application stacks the records already hold.

A statement belongs to the transaction of its connection (``QueryRecord.connection`` ==
``TransactionRecord.connection``) that had started and not yet ended when the statement
started: one connection runs one transaction at a time. Statements of transactions that were
not recorded (past ``max_records``) form blocks of their own, in order.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlaudit.model.records import CallSite
from sqlaudit.sql.fingerprint import fingerprint

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlaudit.model.findings import Finding
    from sqlaudit.model.records import QueryRecord, TransactionRecord
    from sqlaudit.report import AuditReport

__all__ = ["IDLE_MS", "MAX_STEPS", "Block", "Step", "build"]

#: Statements kept per request on the page; the rest are counted only.
MAX_STEPS = 200
#: An idle stretch inside a transaction is shown from this many milliseconds.
IDLE_MS = 1.0

_ENDS = {
    "commit": "COMMIT",
    "rollback": "ROLLBACK",
    "rollback_exception": "ROLLBACK (exception)",
    "closed": "rolled back at close (nobody committed)",
    "open": "still open when the request ended",
    "ended": "ended (read only: commit or rollback not observed)",
}


@dataclass(frozen=True, slots=True)
class Step:
    """One statement on the timeline."""

    #: Its 1-based position in the request's statements (``report.statements``).
    number: int
    #: ``select``, ``insert``... (``StatementKind``).
    kind: str
    #: The fingerprint: literals and placeholders as ``?``; never values.
    shape: str
    #: The dialect that ran it (how ``shape`` quotes identifiers).
    dialect: str
    #: Seconds from the start of the request to its start, and its duration.
    offset: float
    duration: float
    #: Seconds its transaction sat idle before it (since the previous statement or the begin).
    idle: float
    rows: int
    batch: int
    error: str | None
    #: Application frames, innermost first.
    stack: tuple[CallSite, ...]
    #: What the ORM was doing (``"lazy load of User.addresses"``), or "".
    orm: str
    #: 1-based numbers of the request's findings that name this statement.
    findings: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Block:
    """A database transaction of the request (or statements outside any recorded one)."""

    #: 1-based among the request's blocks.
    number: int
    #: ``"core"``, ``"orm"`` or ``""`` (statements outside a recorded transaction).
    source: str
    autocommit: bool | None
    #: How it ended, for people (``"COMMIT"``, ``"ROLLBACK"``...), or "".
    end: str
    #: Seconds from the start of the request to its begin and to its end.
    begin: float
    finish: float
    #: Seconds between its last statement and its end (commit, rollback, close).
    idle_end: float
    writes: int
    steps: tuple[Step, ...]


def _orm(record: QueryRecord) -> str:
    load = record.orm
    if load is None:
        return ""
    subject = load.relationship or load.mapper or ""
    names = {"lazy": "lazy load", "eager": "eager load", "column": "column load", "query": "query"}
    text = names.get(load.load, load.load)
    if load.attributes and load.load == "column":
        subject = f"{subject} ({', '.join(load.attributes[:4])})"
    return f"ORM {text} of {subject}" if subject else f"ORM {text}"


def _owners(
    statements: Sequence[QueryRecord], transactions: Sequence[TransactionRecord]
) -> list[int]:
    """For each statement, the index of its transaction in ``transactions``, or -1."""
    by_conn: dict[int, list[tuple[float, int]]] = {}
    for index, tx in enumerate(transactions):
        by_conn.setdefault(tx.connection, []).append((tx.started, index))
    for pairs in by_conn.values():
        pairs.sort()
    starts = {conn: [s for s, _ in pairs] for conn, pairs in by_conn.items()}
    owners = []
    for record in statements:
        owner = -1
        found = by_conn.get(record.connection)
        if found is not None:
            at = bisect_right(starts[record.connection], record.start) - 1
            if at >= 0:
                index = found[at][1]
                if record.start <= transactions[index].ended:
                    owner = index
        owners.append(owner)
    return owners


def build(report: AuditReport, findings: Sequence[Finding]) -> tuple[tuple[Block, ...], int]:
    """The request's blocks in execution order, and how many statements were left out."""
    statements = report.statements[:MAX_STEPS]
    left_out = report.recorded_count - len(statements)
    transactions = report.transaction_records
    origin = report.started
    owners = _owners(statements, transactions)
    named: dict[int, list[int]] = {}
    for number, finding in enumerate(findings, 1):
        for index in finding.statements:
            named.setdefault(index, []).append(number)
    groups: dict[tuple[int, int], list[int]] = {}
    loose = 0
    for index, owner in enumerate(owners):
        if owner >= 0:
            loose += 1  # statements outside transactions on both sides of it: two blocks
            groups.setdefault((owner, 0), []).append(index)
        else:
            groups.setdefault((-1, loose), []).append(index)
    blocks = []
    for number, ((owner, _), indexes) in enumerate(groups.items(), 1):
        tx = transactions[owner] if owner >= 0 else None
        first = statements[indexes[0]]
        last = statements[indexes[-1]]
        previous_end = tx.started if tx is not None else first.start
        steps = []
        for index in indexes:
            record = statements[index]
            steps.append(
                Step(
                    number=index + 1,
                    kind=record.kind,
                    shape=fingerprint(record.sql, record.dialect),
                    dialect=record.dialect,
                    offset=record.start - origin,
                    duration=record.duration,
                    idle=max(0.0, record.start - previous_end),
                    rows=record.rowcount,
                    batch=record.batch,
                    error=record.error,
                    stack=record.stack,
                    orm=_orm(record),
                    findings=tuple(named.get(index, ())),
                )
            )
            previous_end = record.start + record.duration
        last_end = last.start + last.duration
        if tx is None:
            begin, finish = first.start - origin, last_end - origin
            blocks.append(Block(number, "", None, "", begin, finish, 0.0, 0, tuple(steps)))
            continue
        observed = tx.end not in ("open", "ended")
        blocks.append(
            Block(
                number=number,
                source=tx.source,
                autocommit=tx.autocommit,
                end=_ENDS.get(tx.end, tx.end),
                begin=min(tx.started, first.start) - origin,
                finish=max(tx.ended, last_end) - origin,
                idle_end=max(0.0, tx.ended - last_end) if observed else 0.0,
                writes=tx.writes,
                steps=tuple(steps),
            )
        )
    return tuple(blocks), max(0, left_out)
