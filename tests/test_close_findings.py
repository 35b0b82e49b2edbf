"""The shortcuts that make closing a unit with findings cheap (issue 20) give what the plain
path gives: ``n_plus_one``'s groups and parent origins read in C against grouping record by
record and freezing each origin; the memo of ``where`` (a finding's ``file:line``) against
``os.path.relpath`` in the working directory of the moment, also after a ``chdir``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records import origin, q, unit

from sqlaudit import CallSite, OrmLoad
from sqlaudit.detectors import _tx
from sqlaudit.detectors._grouping import group, partition
from sqlaudit.detectors.n_plus_one import NPlusOne, _groups
from sqlaudit.model.frozen import evolve
from sqlaudit.model.records import FrozenOrigins, OriginRecord, QueryRecord, UnitRecord

STACKS = [(), (CallSite("/app/views.py", 12, "view"),), (CallSite("/app/views.py", 13, "view"),)]
RELATIONSHIPS = [None, "Parent.children", "Parent.owner"]


def old_key(record: QueryRecord) -> tuple[str, tuple[CallSite, ...]] | None:
    """``n_plus_one``'s grouping key before issue 20, for ``_grouping.group``."""
    orm = record.orm
    if orm is None or orm.load != "lazy" or orm.relationship is None:
        return None
    return (orm.relationship, record.stack)


@st.composite
def lazy_units(draw: st.DrawFn) -> UnitRecord:
    """Units of lazy loads (and a few other statements) whose origins link, or fail to link,
    to parent origins; origin ids collide in small hash tables, so set orders are exercised."""
    oids = st.integers(0, 40)
    origins: dict[int, OriginRecord] = {}
    for oid in draw(st.lists(st.integers(1, 40), max_size=12, unique=True)):
        load = draw(st.sampled_from(["query", "lazy", "eager"]))
        origins[oid] = origin(
            oid,
            load,
            relationship=None if load == "query" else draw(st.sampled_from(RELATIONSHIPS[1:])),
            many_to_one=draw(st.booleans()),
            parent=draw(oids),
            rows=draw(st.integers(0, 3)),
            at=draw(st.sampled_from(STACKS)),
        )
    records = []
    for i in range(draw(st.integers(0, 14))):
        load = draw(st.sampled_from(["lazy", "lazy", "lazy", "query", None]))
        orm = None
        if load is not None:
            relationship = draw(st.sampled_from(RELATIONSHIPS))
            orm = OrmLoad(load, "Child", relationship, draw(st.integers(1, 5)), (), draw(oids))
        records.append(q(at=draw(st.sampled_from(STACKS)), start=float(i), orm=orm))
    return unit(records, origins=origins, min_group_ms=0.0, n_plus_one_min=2)


def frozen(built: UnitRecord) -> UnitRecord:
    """``built`` with its origins as a closed unit holds them (``FrozenOrigins``)."""
    records = built.origin_records
    raw = {
        oid: (o.load, o.mapper, o.relationship, o.many_to_one, o.strategy, o.parent, o.stack)
        for oid, o in records.items()
    }
    return evolve(built, origin_records=FrozenOrigins(raw, {k: o.rows for k, o in records.items()}))


@settings(max_examples=400, deadline=None)
@given(lazy_units())
def test_n_plus_one_groups_are_those_of_the_record_by_record_key(built: UnitRecord) -> None:
    """``_groups`` gives the groups, keys and order of grouping the lazy part record by
    record with the key ``n_plus_one`` used before issue 20."""
    lazy = partition(built.statements)["lazy"]
    assert list(_groups(lazy).items()) == list(group(lazy, old_key).items())


@settings(max_examples=400, deadline=None)
@given(lazy_units())
def test_n_plus_one_finds_the_same_with_frozen_and_plain_origins(built: UnitRecord) -> None:
    """A closed unit's origins (``FrozenOrigins``, parents read without building records) give
    the findings, messages and fixes that a plain mapping of ``OriginRecord`` s gives."""
    plain = list(NPlusOne().detect(built, built.statements))
    closed = frozen(built)
    found = list(NPlusOne().detect(closed, closed.statements))
    assert [(f.message, f.fix, f.origin) for f in found] == [
        (f.message, f.fix, f.origin) for f in plain
    ]
    assert found == plain


def test_frozen_origins_parents_skip_unknown_ids() -> None:
    """``parents`` reads the parent of each known origin, in the order asked, skipping ids that
    are no origin, without building a record."""
    origins = FrozenOrigins(
        {3: ("lazy", "C", "P.c", False, None, 9, ()), 4: ("query", "P", None, False, None, 0, ())},
        {},
    )
    assert origins.parents([4, 7, 3, 3, 0]) == {0, 9}
    assert origins._done == {}


def relpath_then(file: str) -> str:
    """``where``'s file before issue 20: ``os.path.relpath`` asked each time."""
    rel = os.path.relpath(file)
    return rel if not rel.startswith("..") else file


@pytest.mark.parametrize(
    "name", ["app/views.py", "./app/views.py", "app/../views.py", "..hidden.py", "views.py"]
)
def test_where_follows_the_working_directory(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``where`` names a file as ``os.path.relpath`` does in the working directory of the
    moment: relative inside it, as given outside it, again after a ``chdir`` (the memo is per
    working directory, never the one of the first call)."""
    inside = tmp_path / "project"
    other = tmp_path / "elsewhere"
    (inside / "app").mkdir(parents=True)
    other.mkdir()
    for file in (str(inside / name), name):
        site = CallSite(file, 7, "view")
        for cwd in (inside, other, inside):
            monkeypatch.chdir(cwd)
            for _ in range(2):
                assert _tx.where(site) == f"{relpath_then(file)}:7"
    monkeypatch.chdir(inside)
    assert _tx.where(CallSite(str(inside / "app" / "views.py"), 3, "f")) == "app/views.py:3"
    monkeypatch.chdir(other)
    assert _tx.where(CallSite(str(inside / "app" / "views.py"), 3, "f")).startswith(str(inside))
    assert _tx.where(None) == "(unknown line)"
