"""The shortcuts that make a unit's close cheap (issue 20) give exactly what the full path
gives: records and findings built without their ``__init__`` (``model.frozen``) against their
constructors and ``dataclasses.replace``; the test that tells a quiet unit without
partitioning it (``_facts.quiet``) against ``may_find`` run in full; the default detectors'
triage against the same detectors passed as another sequence; and the memo of loop headers
against scanning the file's loops again. Hypothesis on units of random statements."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from records import q, site, unit

from sqlaudit import AuditConfig, CallSite, OrmLoad, _internal
from sqlaudit._internal import count_into
from sqlaudit.capture import loops
from sqlaudit.detectors import DEFAULT_DETECTORS, _facts, run_detectors
from sqlaudit.detectors._facts import Facts, may_find, quiet
from sqlaudit.detectors._grouping import group, loads_in, partition, shaped, sited
from sqlaudit.detectors.n_plus_one import _groups
from sqlaudit.model import fields as model_fields
from sqlaudit.model.findings import Finding, Severity
from sqlaudit.model.frozen import evolve
from sqlaudit.model.records import QueryRecord
from sqlaudit.sql.fingerprint import fingerprint


def fields_of(obj: object) -> dict[str, object]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]


FINDING = Finding(
    kind="repeated_query",
    severity=Severity.WARNING,
    message="repeated query: 3x SELECT",
    count=3,
    location=site(10),
    fix="issue it once",
    fingerprint="SELECT a FROM t WHERE id = ?",
    sql="SELECT a FROM t WHERE id = ?",
    db_time=0.25,
    relationship="User.addresses",
    statements=(1, 2, 3),
    unit="GET /",
    stack=(site(10), site(3, "main")),
    loop=site(9),
    allowed=None,
    origin=site(2),
)


def test_only_plain_frozen_dataclasses_are_evolved() -> None:
    """A dataclass whose ``__init__`` does more than set its fields is refused."""
    with pytest.raises(TypeError, match="without its __init__"):
        evolve(AuditConfig(), max_records=3)  # __post_init__ validates
    with pytest.raises(TypeError, match="without its __init__"):
        evolve(site(1), line=2)  # a NamedTuple, not a dataclass


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"loop": None},
        {"loop": site(4)},
        {"stack": (site(1),), "unit": None},
        {"statements": ()},
        {"allowed": 'allow_sql "x"'},
        {"kind": "n_plus_one", "severity": Severity.ERROR, "origin": None},
    ],
    ids=repr,
)
def test_evolve_is_dataclasses_replace(changes: dict[str, object]) -> None:
    """``evolve`` gives what ``dataclasses.replace`` gives, including the fields left out of
    equality (``sql``, ``origin``)."""
    evolved = evolve(FINDING, **changes)
    replaced = dataclasses.replace(FINDING, **changes)  # type: ignore[arg-type]
    assert evolved == replaced
    assert fields_of(evolved) == fields_of(replaced)
    assert evolved is not FINDING


@pytest.mark.parametrize("loop", [site(4), site(9), CallSite("t.html", 3, "<template>")], ids=repr)
def test_evolve_loop_is_dataclasses_replace(loop: CallSite) -> None:
    """``evolve`` (the constructor, from the values in field order) gives what
    ``dataclasses.replace`` gives, every field (``sql``, ``origin`` too) in its place; a
    subclass of Finding stays of its class, with its own fields."""
    looped = evolve(FINDING, loop=loop)
    assert fields_of(looped) == fields_of(dataclasses.replace(FINDING, loop=loop))
    assert type(looped) is Finding

    @dataclasses.dataclass(frozen=True, slots=True)
    class Tagged(Finding):
        tag: str = "t"

    tagged = Tagged(**{**fields_of(FINDING), "tag": "mine"})
    assert fields_of(evolve(tagged, loop=loop)) == fields_of(dataclasses.replace(tagged, loop=loop))
    assert type(evolve(tagged, loop=loop)) is Tagged


def test_evolve_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no field 'nope'"):
        evolve(FINDING, nope=1)


FRAMES = [(), (site(10),), (site(11),), (site(10), site(3, "main")), (site(11), site(3, "main"))]
LOADS = [None, "query", "lazy", "column", "eager"]


@st.composite
def records(draw: st.DrawFn) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(draw(st.integers(0, 12))):
        load = draw(st.sampled_from(LOADS))
        orm = None if load is None else OrmLoad(load, "Child", "Parent.children", i % 3)
        out.append(
            q(
                draw(st.sampled_from(["SELECT a FROM t WHERE id = ?", "SELECT b FROM u"])),
                draw(st.sampled_from(["select", "insert", "update", "other", "transaction"])),
                at=draw(st.sampled_from(FRAMES)),
                start=float(i),
                duration=draw(st.sampled_from([0.0001, 0.002, 0.9])),
                orm=orm,
                suppressed=draw(st.sampled_from([(), ("repeated_query",)])),
                batch=draw(st.sampled_from([1, 1, 3])),
            )
        )
    return out


CONFIGS = st.builds(
    AuditConfig,
    n_plus_one_min=st.integers(2, 4),
    repeated_query_min=st.integers(2, 4),
    deferred_reload_min=st.integers(2, 4),
    expired_reload_min=st.integers(2, 4),
    write_loop_min=st.integers(2, 4),
    min_group_ms=st.sampled_from([0.0, 1.0]),
    slow_query_ms=st.sampled_from([None, 1.0, 500.0]),
)


@settings(max_examples=300, deadline=None)
@given(records(), CONFIGS)
def test_quiet_units_skip_only_what_may_find_would_skip(recs: list, config: AuditConfig) -> None:  # type: ignore[type-arg]
    """A unit ``quiet`` tells apart gets the detectors ``may_find`` gives when it partitions
    every unit."""
    u = unit(recs, config=config)
    fast = may_find(u, Facts(u, u.own_statements))
    with mock.patch.object(_facts, "quiet", return_value=False):
        full = may_find(u, Facts(u, u.own_statements))
    assert fast == full
    if quiet(u.own_statements):
        assert not any(r.orm is not None and r.orm.load in ("lazy", "column") for r in recs)


@settings(max_examples=300, deadline=None)
@given(records(), CONFIGS, st.sampled_from([frozenset(), frozenset({"repeated_query"})]))
def test_default_detectors_find_what_the_same_detectors_find(
    recs: list,  # type: ignore[type-arg]
    config: AuditConfig,
    ignore: frozenset[str],
) -> None:
    """``DEFAULT_DETECTORS`` (triaged before the detector loop) finds what the same detectors
    passed as a list (triaged in it) find."""
    u = unit(recs, config=config.replace(ignore=ignore))
    assert run_detectors(u) == run_detectors(u, list(DEFAULT_DETECTORS))


def test_quiet_unit() -> None:
    """Ten statements from ten lines are quiet; two from one line, or a lazy load, are not."""
    assert quiet([q(at=(site(line),)) for line in range(10)])
    assert quiet([q(at=()), q(at=())])  # no frame: no group
    assert not quiet([q(at=(site(1),)), q(at=(site(1), site(2)))])
    assert not quiet([q(orm=OrmLoad("lazy", "C", "P.c", 1))])
    assert not quiet([q(orm=OrmLoad("column", "C", None, None))])
    query, eager = OrmLoad("query", "C", None, None), OrmLoad("eager", "C", "P.c", 1)
    assert quiet([q(orm=query, at=(site(1),)), q(orm=eager, at=(site(2),))])


SOURCE = """\
def f(rows):
    total = 0
    for row in rows:
        total += row
        while total > 10:
            total -= 1
    values = [
        g(x)
        for x in rows
    ]
    return total, values
"""


def test_loop_headers_are_those_scanned_again(tmp_path: Path) -> None:
    """Every line's loop header read through the memo is the one scanning the file's loops
    gives, asked once or twice, before and after the memo is emptied."""
    path = tmp_path / "loopy.py"
    path.write_text(SOURCE, encoding="utf-8")
    file = str(path)
    lines = range(1, SOURCE.count("\n") + 2)

    def scanned(line: int) -> int | None:
        loops._headers.clear()
        loops._loops.pop(file, None)
        return loops._loop_line(file, line)

    expected = {line: scanned(line) for line in lines}
    assert expected[4] == 3 and expected[6] == 5 and expected[8] == 7 and expected[2] is None
    loops._headers.clear()
    for _ in range(2):
        assert {line: loops._loop_line(file, line) for line in lines} == expected
    stack = (CallSite(file, 6, "f"), CallSite(file, 4, "f"))
    assert loops.loop_of(stack) == CallSite(file, 5, "f")
    assert loops.loop_of(stack) == CallSite(file, 5, "f")


def test_loop_bodies_are_those_scanned_again(tmp_path: Path) -> None:
    """Whether a line is in a loop's body, read through the memo, is what scanning the
    file's loops gives, asked once or twice, before and after the memo is emptied; a file
    whose loops are not known (yet, or any longer) is remembered as nothing."""
    path = tmp_path / "loopy.py"
    path.write_text(SOURCE, encoding="utf-8")
    file = str(path)
    lines = range(1, SOURCE.count("\n") + 2)
    assert loops._in_body(file, 3, 4) is False  # not parsed yet
    loops._loop_line(file, 1)
    spans = loops._loops[file]
    expected = {
        (header, line): any(h == header and s <= line <= e for h, s, e in spans)
        for header in lines
        for line in lines
    }
    assert expected[3, 4] and expected[5, 6] and expected[3, 6] and not expected[5, 4]
    for _ in range(2):
        assert {key: loops._in_body(file, *key) for key in expected} == expected
    loops._bodies.clear()
    assert {key: loops._in_body(file, *key) for key in expected} == expected
    stack = (CallSite(file, 4, "f"),)
    assert loops.loop_of(stack, CallSite(file, 2, "f")) == CallSite(file, 3, "f")
    assert loops.loop_of(stack, CallSite(file, 4, "f")) == CallSite(file, 3, "f")


def partition_by_loop(recs: list) -> dict[str, list]:  # type: ignore[type-arg]
    """``partition`` as it was written before issue 20: one Python pass over the records."""
    parts: dict[str, list] = {"lazy": [], "column": [], "read": [], "write": []}  # type: ignore[type-arg]
    for item in enumerate(recs):
        load = None if item[1].orm is None else item[1].orm.load
        if load in ("lazy", "eager", "column"):
            if load in ("lazy", "column"):
                parts[load].append(item)
        elif item[1].kind in ("select", "other"):
            parts["read"].append(item)
        elif item[1].kind in ("insert", "update", "delete"):
            parts["write"].append(item)
    return parts


def read_key(record: QueryRecord) -> tuple[str, CallSite] | None:
    """``repeated_query``'s grouping key before issue 20."""
    if record.kind not in ("select", "other") or not record.stack:
        return None
    if record.orm is not None and record.orm.load in ("lazy", "eager", "column"):
        return None
    return (record.sql, record.stack[0])


@settings(max_examples=300, deadline=None)
@given(records())
def test_partition_and_read_groups_are_those_of_the_loops(recs: list) -> None:  # type: ignore[type-arg]
    """``partition`` (reads and writes in C when no ORM load is partitioned) and ``sited``
    give the parts and groups the Python loops give, in the same order."""
    parts = partition(recs)
    assert parts == partition_by_loop(recs)
    assert partition(recs, loads_in(recs)) == parts  # the loads Facts read once for both
    assert quiet(recs, loads_in(recs)) == quiet(recs)
    read = parts["read"]
    assert list(sited(read).items()) == list(group(read, read_key).items())


def write_key(record: QueryRecord) -> tuple[str, CallSite] | None:
    """``write_loop``'s grouping key before the read and write groupings became one."""
    if record.kind not in ("insert", "update", "delete") or record.batch > 1 or not record.stack:
        return None
    return (record.sql, record.stack[0])


def shaped_by_loop(recs: list, minimum: int, key=read_key) -> list:  # type: ignore[no-untyped-def,type-arg]
    """``by_shape_and_stack`` as it was before issue 20 (every group split by stack)."""
    shapes: dict = {}  # type: ignore[type-arg]
    for (sql, site_), items in group(recs, key).items():
        shapes.setdefault((fingerprint(sql, items[0][1].dialect), site_), []).extend(items)
    out = []
    for (shape, _), items in shapes.items():
        items.sort(key=lambda item: item[0])
        if len(items) < minimum:
            continue
        stacks: dict = {}  # type: ignore[type-arg]
        for item in items:
            stacks.setdefault(item[1].stack, []).append(item)
        out += [((shape, s), m) for s, m in stacks.items() if len(m) >= minimum]
    return out


@settings(max_examples=300, deadline=None)
@given(records(), st.integers(2, 4))
def test_read_groups_by_shape_and_stack_are_those_of_the_loop(recs: list, minimum: int) -> None:  # type: ignore[type-arg]
    """``shaped(sited(...))`` (a group of one stack yielded whole) gives the groups, in the
    order, of grouping every record by text, frame, shape and stack in Python."""
    read = partition(recs)["read"]
    assert list(shaped(sited(read), minimum)) == shaped_by_loop(read, minimum)


@settings(max_examples=300, deadline=None)
@given(records(), st.integers(2, 4))
def test_write_groups_are_those_of_the_old_write_key(recs: list, minimum: int) -> None:  # type: ignore[type-arg]
    """``write_loop``'s single-row writes through ``sited`` and ``shaped`` give the groups of
    its former key (kind, batch and frame tested per record) in the same order."""
    write = partition(recs)["write"]
    single = [item for item in write if item[1].batch <= 1]
    assert list(shaped(sited(single), minimum)) == shaped_by_loop(write, minimum, write_key)


def test_record_field_getters_read_their_named_fields() -> None:
    """Each getter of ``model.fields`` reads the field it is named after."""
    record = QueryRecord(*(object() for _ in QueryRecord._fields))
    load = OrmLoad(*(object() for _ in OrmLoad._fields))
    for name in model_fields.__all__:
        getter = getattr(model_fields, name)
        field = name.removesuffix("_of")
        source = record if field in QueryRecord._fields else load
        assert getter(source) is getattr(source, field), name


def repeats_by_loop(items: list, minimum: int) -> bool:  # type: ignore[type-arg]
    """``_facts._repeats`` as it was before issue 20: a Python count, stopping at ``minimum``."""
    seen: dict[CallSite, int] = {}
    for _, record in items:
        if record.stack:
            seen[record.stack[0]] = seen.get(record.stack[0], 0) + 1
            if seen[record.stack[0]] >= minimum:
                return True
    return False


@settings(max_examples=300, deadline=None)
@given(records(), st.integers(2, 4))
def test_repeats_counted_in_c_are_those_of_the_loop(recs: list, minimum: int) -> None:  # type: ignore[type-arg]
    """The per-part test of ``may_find`` gives what counting frame by frame gives."""
    for items in partition(recs).values():
        assert _facts._repeats(items, minimum) == repeats_by_loop(items, minimum)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=2), st.integers(0, 5)), st.lists(st.text(max_size=2)))
def test_count_into_counts_as_the_python_loop(start: dict[str, int], items: list[str]) -> None:
    """``count_into`` (CPython's C helper where there is one) adds what the fallback adds."""
    fast, slow = dict(start), dict(start)
    count_into(fast, iter(items))
    _internal._count_by_loop(slow, iter(items))
    assert fast == slow
    assert sum(fast.values()) == sum(start.values()) + len(items)


@settings(max_examples=300, deadline=None)
@given(records(), st.lists(st.sampled_from([None, "P.c", "P.d"]), min_size=12, max_size=12))
def test_lazy_load_groups_are_those_of_the_loop(recs: list, names: list) -> None:  # type: ignore[type-arg]
    """``n_plus_one._groups`` (one group told by ``list.count``) gives the groups, in the
    order, of grouping every lazy load of a named relationship by relationship and stack."""
    lazy = [
        (i, q(r.sql, r.kind, at=r.stack, orm=r.orm._replace(relationship=names[i])))
        for i, r in partition(recs)["lazy"]
    ]
    by_loop: dict = {}  # type: ignore[type-arg]
    for item in lazy:
        if item[1].orm.relationship is not None:
            by_loop.setdefault((item[1].orm.relationship, item[1].stack), []).append(item)
    assert list(_groups(lazy).items()) == list(by_loop.items())


SHAPES = [
    "SELECT count(comment.id) AS count_1 FROM comment WHERE comment.user_id = ?",
    "SELECT sum(comment.votes) FROM comment WHERE comment.user_id = ? AND comment.hidden = ?",
    "SELECT count(*) FROM comment WHERE comment.user_id = ? OR comment.author_id = ?",
    "SELECT max(comment.id) FROM comment WHERE comment.user_id = ? AND comment.post_id = ?",
    "SELECT parent.id, parent.name, parent.created_at FROM parent WHERE parent.id = ?",
    "SELECT a FROM t WHERE id = ? " + "AND b = ? " * 20,
]


@pytest.mark.parametrize("order", [SHAPES, SHAPES[::-1]], ids=["forward", "backward"])
def test_finding_text_memos_give_the_text_computed_afresh(order: list[str]) -> None:
    """A repeated query's message and fix, and each shape's parts, are the same read from
    the per-shape memos (``_counter_cache._MATCHES``, ``repeated_query._HEADS``) as computed
    with them empty; each shape is its own key (a counter shape's match is not another's)."""
    from sqlaudit.detectors import _counter_cache, repeated_query
    from sqlaudit.sql.fingerprint import elide

    def texts() -> list[object]:
        out: list[object] = []
        for shape in order:
            match = _counter_cache._aggregate(shape)
            out += [
                None if match is None else match.groupdict(),
                repeated_query._elided(shape),
                _counter_cache.counter_cache(q(shape), 7),
            ]
        return out

    _counter_cache._MATCHES.clear()
    repeated_query._HEADS.clear()
    fresh = texts()
    assert len(repeated_query._HEADS) == len(SHAPES) <= len(_counter_cache._MATCHES)
    assert texts() == fresh  # every one read from the memos now
    assert fresh[1::3] == [elide(shape, 80) for shape in order]
    by_shape = dict(zip(order, fresh[2::3], strict=True))
    assert by_shape[SHAPES[0]] is not None and by_shape[SHAPES[1]] is not None
    assert by_shape[SHAPES[0]] != by_shape[SHAPES[1]]
    assert by_shape[SHAPES[2]] is None  # OR: not a counter, though counted like one
    assert by_shape[SHAPES[4]] is None and by_shape[SHAPES[5]] is None


@pytest.mark.parametrize("limit", [None, 0, 1, 3])
@pytest.mark.parametrize("allowed", [None, 'allow_sql "x"'])
def test_one_finding_is_ranked_as_by_the_sort(limit: int | None, allowed: str | None) -> None:
    """``rank`` of one finding (no sort) gives what the sort and split give: it, unless the
    cap is 0; and of none, none."""
    from sqlaudit.detectors import rank

    finding = evolve(FINDING, allowed=allowed)
    by_sort = [finding][:limit] if limit is not None else [finding]
    assert rank([finding], limit) == by_sort
    assert rank(iter([finding]), limit) == by_sort
    assert rank([], limit) == []
    other = evolve(FINDING, db_time=9.0)  # worse: first of the findings not allowed
    expected = [other, finding]
    if limit is not None:  # an allowed finding is capped on its own
        expected = (
            [other, finding][:limit] if allowed is None else [other][:limit] + [finding][:limit]
        )
    assert rank([finding, other], limit) == expected
