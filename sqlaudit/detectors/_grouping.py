"""Helpers shared by detectors: grouping statements and describing groups."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from contextvars import ContextVar, Token
from itertools import compress, repeat
from operator import eq, itemgetter
from typing import TypeVar

from sqlaudit.model.fields import duration_of, kind_of, load_of, orm_of, sql_of, stack_of
from sqlaudit.model.records import CallSite, QueryRecord, StatementKind, UnitRecord
from sqlaudit.sql.fingerprint import fingerprint

K = TypeVar("K", bound=Hashable)

__all__ = [
    "group",
    "index_of",
    "indexes",
    "innermost",
    "loads_in",
    "partition",
    "record_of",
    "retried",
    "shaped",
    "sharing",
    "sited",
    "total_time",
]


Part = list[tuple[int, QueryRecord]]
_READS = frozenset({StatementKind.SELECT, StatementKind.OTHER})
_WRITES = frozenset(StatementKind.WRITES)
_ORM_LOADS = frozenset({"lazy", "eager", "column"})
#: A record's tag in ``partition``: an ORM load of these, else (``dict.get``'s default) its
#: statement kind. No kind is a load's name, so the read and write kinds find no load.
_TAGS: dict[str | None, str] = {load: load for load in _ORM_LOADS}
#: Of an ``(index, record)`` pair: the index, the record.
index_of = itemgetter(0)
record_of = itemgetter(1)
#: Of a stack: its innermost frame.
innermost = itemgetter(0)
#: Partitions computed while ``run_detectors`` runs, by id of the records sequence.
_SHARED: ContextVar[dict[int, tuple[Sequence[QueryRecord], dict[str, Part]]] | None] = ContextVar(
    "sqlaudit_partitions", default=None
)


class sharing:  # noqa: N801 - used like a function: ``with sharing():``
    """While open, ``partition`` computes each records sequence's parts once for all
    detectors (``run_detectors`` opens it around the detectors of one unit). A class, not a
    ``contextmanager``: it is entered once per unit closed (issue 20)."""

    __slots__ = ("_token",)
    _token: Token[dict[int, tuple[Sequence[QueryRecord], dict[str, Part]]] | None]

    def __enter__(self) -> None:
        self._token = _SHARED.set({})

    def __exit__(self, *exc: object) -> None:
        _SHARED.reset(self._token)


def loads_in(records: Iterable[QueryRecord]) -> frozenset[str]:
    """The ``OrmLoad.load`` values of ``records`` (read in C)."""
    return frozenset(map(load_of, filter(None, map(orm_of, records))))


def partition(
    records: Sequence[QueryRecord], loads: AbstractSet[str] | None = None
) -> dict[str, Part]:
    """``(index, record)`` pairs by what detectors look at: ``"lazy"`` and ``"column"`` ORM
    loads, ``"read"`` (SELECT/other statements that are not ORM relationship or column loads)
    and ``"write"`` (INSERT/UPDATE/DELETE); eager-loader batches and transaction control are
    in none. One pass over the records, shared by the detectors of a unit (``sharing``).
    ``loads``: ``loads_in(records)`` when the caller has it."""
    shared = _SHARED.get()
    if shared is not None:
        cached = shared.get(id(records))
        if cached is not None and cached[0] is records:
            return cached[1]
    if loads is None:
        loads = loads_in(records)
    kinds = list(map(kind_of, records))
    if _ORM_LOADS.isdisjoint(loads):
        # No lazy, eager or column load (most units): reads and writes by kind alone.
        read = list(compress(enumerate(records), map(_READS.__contains__, kinds)))
        write = list(compress(enumerate(records), map(_WRITES.__contains__, kinds)))
        parts = {"lazy": [], "column": [], "read": read, "write": write}
    else:
        # Each record's tag: its load if a lazy, eager or column load, else its kind (None
        # for no ORM context); then each part by a mask of the tags: in C. A part whose
        # load no record has is not looked for.
        items = list(enumerate(records))
        each = map(getattr, map(orm_of, records), repeat("load"), repeat(None))
        tags = list(map(_TAGS.get, each, kinds))
        parts = {
            "lazy": list(compress(items, map(eq, tags, repeat("lazy")))) if "lazy" in loads else [],
            "column": (
                list(compress(items, map(eq, tags, repeat("column")))) if "column" in loads else []
            ),
            "read": list(compress(items, map(_READS.__contains__, tags))),
            "write": list(compress(items, map(_WRITES.__contains__, tags))),
        }
    if shared is not None:
        shared[id(records)] = (records, parts)
    return parts


def group(
    records: Iterable[tuple[int, QueryRecord]], key: Callable[[QueryRecord], K | None]
) -> dict[K, list[tuple[int, QueryRecord]]]:
    """Group ``(index, record)`` pairs by ``key``; records whose key is None are skipped."""
    groups: dict[K, list[tuple[int, QueryRecord]]] = {}
    get = groups.get
    for item in records:
        k = key(item[1])
        if k is not None:
            members = get(k)
            if members is None:
                groups[k] = [item]
            else:
                members.append(item)
    return groups


def sited(records: Sequence[tuple[int, QueryRecord]]) -> dict[tuple[str, CallSite], Part]:
    """``group(records, key)`` for the key (SQL text, innermost application frame), records
    with no frame skipped: the keys are read in C, one dict step per record is left."""
    framed = list(compress(records, map(stack_of, map(record_of, records))))
    texts = list(map(sql_of, map(record_of, framed)))
    sites = list(map(innermost, map(stack_of, map(record_of, framed))))
    n = len(framed)
    if n and texts.count(texts[0]) == n and sites.count(sites[0]) == n:
        return {(texts[0], sites[0]): framed}  # one text from one line (a loop): told in C
    groups: dict[tuple[str, CallSite], Part] = {}
    setdefault = groups.setdefault
    for key, item in zip(zip(texts, sites, strict=True), framed, strict=True):
        setdefault(key, []).append(item)
    return groups


def shaped(
    groups: dict[tuple[str, CallSite], Part], minimum: int
) -> Iterator[tuple[tuple[str, tuple[CallSite, ...]], list[tuple[int, QueryRecord]]]]:
    """Groups of >= ``minimum`` records by (shape, whole application stack), from records
    grouped by (SQL text, innermost application frame) (``sited``).

    Each distinct text is fingerprinted once, not each record. Split by the whole stack only
    where a group is large enough to matter: most records are in small groups."""
    shapes: dict[tuple[str, CallSite], list[tuple[int, QueryRecord]]] = {}
    merged: set[tuple[str, CallSite]] = set()
    for (sql, site), items in groups.items():
        shape_key = (fingerprint(sql, items[0][1].dialect), site)
        existing = shapes.get(shape_key)
        if existing is None:
            shapes[shape_key] = items
        else:
            existing.extend(items)
            merged.add(shape_key)
    for shape_key in merged:  # several texts of one shape: back into statement order
        shapes[shape_key].sort(key=index_of)
    for (shape, _site), items in shapes.items():
        if len(items) < minimum:
            continue
        if len(set(map(stack_of, map(record_of, items)))) == 1:  # a loop's group: one stack
            yield (shape, items[0][1].stack), items
            continue
        stacks: dict[tuple[CallSite, ...], list[tuple[int, QueryRecord]]] = {}
        for item in items:
            stack = item[1].stack
            members = stacks.get(stack)
            if members is None:
                stacks[stack] = [item]
            else:
                members.append(item)
        for stack, members in stacks.items():
            if len(members) >= minimum:
                yield (shape, stack), members


def total_time(items: Sequence[tuple[int, QueryRecord]]) -> float:
    total: float = sum(map(duration_of, map(record_of, items)))
    return total


def indexes(items: Sequence[tuple[int, QueryRecord]], limit: int = 1000) -> tuple[int, ...]:
    return tuple(map(index_of, items[:limit]))


_ROLLBACKS = frozenset({"rollback", "rollback_exception"})


def retried(items: Sequence[tuple[int, QueryRecord]], unit: UnitRecord) -> bool:
    """True when every two consecutive statements of a group are separated by a rollback of the
    unit: the same work re-run after a failed attempt (a deadlock or serialization retry,
    optimistic concurrency), a retry rather than a loop."""
    ends = sorted(
        tx.ended for tx in unit.own_transactions if tx.end in _ROLLBACKS and not tx.external
    )
    if not ends:
        return False
    starts = sorted(r.start for _, r in items)
    for before, after in itertools.pairwise(starts):
        # Some rollback ended after the earlier attempt began and before the later one.
        i = bisect.bisect_right(ends, before)
        if i == len(ends) or ends[i] > after:
            return False
    return True
