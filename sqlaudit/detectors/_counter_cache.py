"""Counter caches: a ``repeated_query`` that is one aggregate per parent row gets its own fix.

A loop that shows a count (or a sum) per row, ``session.scalar(select(func.count(Comment.id))
.where(Comment.user_id == user.id))``, issues the same ungrouped aggregate, filtered by the
parent's key, once per parent. Loading the rows at once (``IN (...)``) is not the cure: the
numbers are. The fix is one grouped query before the loop, or the aggregate on the parent
query itself (a correlated scalar subquery, or a ``column_property`` mapped once): what Rails
calls a counter cache, without a cached column to keep in sync.

The shape is read from the statement's fingerprint: one aggregate (``count``, ``sum``,
``avg``, ``min``, ``max``, optionally inside ``coalesce(..., ?)``) of one table, with
conditions joined by AND of which one is the parent key (``col = ?``). For ORM statements
capture names the relationship and its key pair (``OrmLoad.reason == "aggregate"``,
``capture.aggregates``), so the fix is written in the application's own class names;
otherwise it is written in SQL.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlaudit.sql.cache import Memo
from sqlaudit.sql.fingerprint import fingerprint, short

if TYPE_CHECKING:
    from sqlaudit.model.records import QueryRecord

__all__ = ["counter_cache"]

_NAME = r"[\w$]+(?:\.[\w$]+)*|\"[^\"]+\"(?:\.\"[^\"]+\")*"
_SHAPE = re.compile(
    rf"^SELECT (?P<expr>(?P<wrap>coalesce\()?(?P<fn>count|sum|avg|min|max)\((?P<arg>\*|{_NAME})\)"
    rf"(?(wrap), \?\)))(?: AS [\w$]+)? FROM (?P<table>{_NAME})(?: AS [\w$]+)? "
    r"WHERE (?P<where>[^()]+)$",
    re.IGNORECASE,
)
_EQ = re.compile(rf"^(?P<column>{_NAME}) = \?$")
_SPLIT = re.compile(r" AND ", re.IGNORECASE)
#: PostgreSQL casts psycopg's dialect adds to placeholders (``%(user_id_1)s::INTEGER``).
_CAST = re.compile(r"\?::\w+(?:\([^()]*\))?")


def _last(name: str) -> str:
    return name.rsplit(".", 1)[-1].strip('"')


#: ``_aggregate`` of each shape asked about: a service's loop repeats the same few shapes unit
#: after unit, and matching them cost more than the rest of the finding's text (issue 20).
#: A statement-text memo (``sql.cache``): bounded, and let go with the last audit.
_MATCHES: Memo[re.Match[str] | None] = Memo(
    lambda match: 0 if match is None else len(match.string), max_entries=1024
)
_UNKNOWN = object()


def _aggregate(shape: str) -> re.Match[str] | None:
    """The match of ``_SHAPE`` on ``shape`` when it is one aggregate filtered by ANDed
    conditions, else None."""
    known = _MATCHES.data.get(shape, _UNKNOWN)
    if known is not _UNKNOWN:
        return known  # type: ignore[return-value]  # a match or None once known
    match = _SHAPE.match(_CAST.sub("?", shape))
    if match is not None and re.search(r"\bOR\b", match["where"], re.IGNORECASE):
        match = None
    return _MATCHES.put(shape, match)


def counter_cache(record: QueryRecord, n: int) -> tuple[str, str] | None:
    """``(message, fix)`` for ``n`` repeats of ``record`` when it is an aggregate per parent
    row, else None (the repeated_query finding keeps its general message and fix)."""
    match = _aggregate(fingerprint(record.sql, record.dialect))
    if match is None:
        return None
    conjuncts = _SPLIT.split(match["where"])
    keys = [m["column"] for c in conjuncts if (m := _EQ.match(c)) is not None]
    orm = record.orm
    pair = orm.attributes if orm is not None and orm.reason == "aggregate" else ()
    if len(pair) == 2:
        keys = [k for k in keys if _last(k) == pair[1].rsplit(".", 1)[1]] or keys
    if len(keys) > 1:
        keys = [k for k in keys if _last(k).lower().endswith("id")]
    if len(keys) != 1:
        return None
    key = keys[0]
    fn = match["fn"].lower()
    others = [c for c in conjuncts if c != f"{key} = ?"]
    head = f"repeated query: {n}x {short(record.sql, 70)}: one {fn.upper()}() per"
    if len(pair) == 2 and orm is not None and orm.relationship and orm.mapper:
        parent = orm.relationship.split(".", 1)[0]
        message = f"{head} {parent} row ({orm.relationship}), a counter queried in a loop"
        fix = _orm_fix(match, orm.mapper, orm.relationship, pair, fn)
        if others:
            fix += f" (keep the query's other conditions: {' AND '.join(others)})"
        return message, fix
    condition = " AND ".join([f"{_last(key)} IN (...)", *others])
    expr = match["expr"]
    table = match["table"]
    message = f"{head} parent row, a counter queried in a loop"
    fix = (
        f"issue one grouped query before the loop instead of one per parent: `SELECT "
        f"{_last(key)}, {expr} FROM {table} WHERE {condition} GROUP BY {_last(key)}`; or compute "
        f"it in the parent query, as a correlated subquery in its select list: `(SELECT {expr} "
        f"FROM {table} WHERE {key} = <parent table>.<key>)`"
    )
    return message, fix


def _orm_fix(
    match: re.Match[str], child: str, relationship: str, pair: tuple[str, ...], fn: str
) -> str:
    """The fix in the application's names, e.g. for ``User.comments``:
    ``select(Comment.user_id, func.count(Comment.id))...group_by(Comment.user_id)``."""
    parent_key, foreign = pair[0], pair[1]
    parent, attribute = relationship.split(".", 1)
    arg = match["arg"]
    inner = "" if arg == "*" else f"{child}.{_last(arg)}"
    aggregate = f"func.{fn}({inner})"
    if match["wrap"]:
        aggregate = f"func.coalesce({aggregate}, 0)"
    scalar = f"select({aggregate}).where({foreign} == {parent_key})"
    name = f"{attribute}_{fn}"
    return (
        f"issue one grouped query before the loop instead of one per {parent}: `totals = "
        f"dict(session.execute(select({foreign}, {aggregate}).where({foreign}.in_(keys))"
        f".group_by({foreign})).all())` with keys the {parent_key} values, then read "
        f"totals.get(key, 0); or load it with the {parent} rows: add "
        f"`{scalar}.scalar_subquery()` to the {parent} query's columns, or map it once: "
        f"`{name} = column_property({scalar}.correlate_except({child}).scalar_subquery())` "
        f"on {parent}"
    )
