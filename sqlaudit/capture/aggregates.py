"""Aggregates per parent row (issue 22): a ``repeated_query`` that counts or sums one
parent's children gets a fix written out for its relationship (``detectors._counter_cache``).
Both helpers run once per compiled statement shape (``orm._shape``) or per mapper."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["aggregate", "key_pair"]

_AGGREGATES = frozenset({"count", "sum", "avg", "min", "max"})


def key_pair(parent: Any, child: Any, prop: Any) -> tuple[str, ...]:
    """``("User.id", "Comment.user_id")`` for a one-column one-to-many relationship, else ()."""
    pairs = prop.local_remote_pairs
    if len(pairs) != 1 or getattr(prop.direction, "name", "") != "ONETOMANY":
        return ()
    local, remote = pairs[0]
    try:
        key = parent.get_property_by_column(local).key
        foreign = child.get_property_by_column(remote).key
    except UnmappedColumnError:  # a column not mapped to an attribute
        return ()
    return (f"{parent.class_.__name__}.{key}", f"{child.class_.__name__}.{foreign}")


def aggregate(statement: Any) -> bool:
    """One ungrouped aggregate column (``select(func.count(Comment.id))``)."""
    selected = list(getattr(statement, "selected_columns", ()))
    if len(selected) != 1 or getattr(statement, "_group_by_clauses", None):
        return False
    return any(
        isinstance(e, FunctionElement) and str(getattr(e, "name", "")).lower() in _AGGREGATES
        for e in visitors.iterate(selected[0])
    )
