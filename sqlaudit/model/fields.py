"""Getters of record fields for ``map()`` and sort keys on the close path: read in C, no
Python frame per record. Made from the field names of ``QueryRecord`` and ``OrmLoad``, so that
a change in field order moves them too (they were once ``itemgetter(7)`` in five modules)."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from sqlaudit.model.records import OrmLoad, QueryRecord

__all__ = [
    "duration_of",
    "kind_of",
    "load_of",
    "orm_of",
    "params_of",
    "parent_of",
    "query_of",
    "relationship_of",
    "sql_of",
    "stack_of",
    "suppressed_of",
]


def _getter(record_type: Any, name: str) -> itemgetter[Any]:
    return itemgetter(record_type._fields.index(name))


#: ``QueryRecord.sql``
sql_of = _getter(QueryRecord, "sql")
#: ``QueryRecord.kind``
kind_of = _getter(QueryRecord, "kind")
#: ``QueryRecord.duration``
duration_of = _getter(QueryRecord, "duration")
#: ``QueryRecord.stack``
stack_of = _getter(QueryRecord, "stack")
#: ``QueryRecord.orm``
orm_of = _getter(QueryRecord, "orm")
#: ``QueryRecord.suppressed``
suppressed_of = _getter(QueryRecord, "suppressed")
#: ``QueryRecord.params``
params_of = _getter(QueryRecord, "params")
#: ``OrmLoad.load``
load_of = _getter(OrmLoad, "load")
#: ``OrmLoad.relationship``
relationship_of = _getter(OrmLoad, "relationship")
#: ``OrmLoad.parent``
parent_of = _getter(OrmLoad, "parent")
#: ``OrmLoad.query``
query_of = _getter(OrmLoad, "query")
