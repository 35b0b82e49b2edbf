"""Every detector's rule, database-free: tables of hand-built units (``records.py``), each
case the finding a rule must make or the trap it must stay silent on. The same rules run
against real databases in test_detectors.py, test_transactions.py, test_n_plus_one.py and
test_precision.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from records import lazy, origin, q, site, stack, tx, unit

from sqlaudit import OrmLoad, Severity, UnitRecord
from sqlaudit.detectors import (
    DEFAULT_DETECTORS,
    Detector,
    lift,
    run_detectors,
)
from sqlaudit.model.records import StaleRead


@dataclass(frozen=True)
class Case:
    """A unit, and what a detector must say about it: how many findings, and text each
    finding's message and fix contain."""

    build: Callable[[], UnitRecord]
    findings: int
    message: str = ""
    fix: str = ""


def detector(kind: str) -> Detector:
    (found,) = [d for d in DEFAULT_DETECTORS if d.kind == kind]
    return found


def check(kind: str, case: Case) -> None:
    built = case.build()
    found = list(detector(kind).detect(built, built.own_statements))
    assert len(found) == case.findings, [f.message for f in found]
    for finding in found:
        assert finding.kind == kind
        assert case.message in finding.message
        assert case.fix in finding.fix


# -- n_plus_one ---------------------------------------------------------------------------


def _parents(rows: int = 3, sql: str = "SELECT parent.id FROM parent") -> dict[int, object]:
    return {1: origin(1, rows=rows)} | {
        10 + p: origin(10 + p, "lazy", mapper="Child", relationship="Parent.children", parent=1)
        for p in (1, 2, 3)
    }


def _n_plus_one(
    parents: tuple[int, ...],
    *,
    origins: dict[int, object] | None = None,
    sql: str = "SELECT parent.id FROM parent",
    relationship: str = "Parent.children",
    at: Callable[[int], tuple[object, ...]] = lambda p: stack(12, 30),
) -> UnitRecord:
    root = q(sql, orm=OrmLoad("query", "Parent", None, None, (), 1), at=stack(5, 30))
    loads = [
        q(
            "SELECT c FROM child WHERE ? = child.parent_id",
            orm=lazy(relationship, p, 10 + p),
            at=at(p),
            start=0.1 * i + 0.1,
        )
        for i, p in enumerate(parents)
    ]
    return unit([root, *loads], origins=origins if origins is not None else _parents())  # type: ignore[arg-type]


N_PLUS_ONE = {
    "lazy-per-parent": Case(
        lambda: _n_plus_one((1, 2, 3)),
        1,
        "Parent.children lazy-loaded 3x, once per Parent (3 parents)",
        "add .options(selectinload(Parent.children)) to the query at /app/views.py:5",
    ),
    "same-row-twice-is-one-parent": Case(lambda: _n_plus_one((1, 1)), 0),
    "one-1+1-pair-of-single-row-queries-on-two-lines": Case(
        lambda: _n_plus_one(
            (1, 2),
            origins={
                1: origin(1, rows=1, at=stack(5)),
                2: origin(2, rows=1, at=stack(6)),
                11: origin(11, "lazy", relationship="Parent.children", parent=1),
                12: origin(12, "lazy", relationship="Parent.children", parent=2),
            },
        ),
        0,
    ),
    "different-call-stacks-are-not-one-loop": Case(
        lambda: _n_plus_one((1, 2), at=lambda p: stack(12, 30 + p)), 0
    ),
}


@pytest.mark.parametrize("case", N_PLUS_ONE.values(), ids=N_PLUS_ONE.keys())
def test_n_plus_one(case: Case) -> None:
    """Lazy loads of one relationship for >= 2 parent rows from one call stack, from a multi-row
    query or a loop of queries; the fix is the loader option at the root query's line."""
    check("n_plus_one", case)


def _many_to_one(sql: str) -> UnitRecord:
    origins = {1: origin(1, rows=3)} | {
        10 + p: origin(10 + p, "lazy", relationship="Parent.owner", many_to_one=True, parent=1)
        for p in (1, 2, 3)
    }
    return _n_plus_one((1, 2, 3), origins=origins, sql=sql, relationship="Parent.owner")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sql", "option"),
    [
        ("SELECT parent.id FROM parent", "joinedload"),
        ("SELECT parent.id FROM parent LIMIT ?", "selectinload"),
        ("SELECT parent.id FROM parent OFFSET ?", "selectinload"),
        ("SELECT parent.id FROM parent FETCH FIRST ? ROWS ONLY", "selectinload"),
    ],
    ids=["plain", "limit", "offset", "fetch-first"],
)
def test_n_plus_one_many_to_one_option(sql: str, option: str) -> None:
    """Many-to-one: joinedload, unless the parent query pages (selectinload follows pages)."""
    built = _many_to_one(sql)
    (finding,) = detector("n_plus_one").detect(built, built.statements)
    assert f"{option}(Parent.owner)" in finding.fix


# -- column_reload, repeated_query, write_loop, slow_query, query_budget ----------------------


def _column(n: int, reason: str) -> UnitRecord:
    load = OrmLoad("column", "Parent", None, None, ("bio",), 0, reason)
    return unit(q("SELECT bio FROM parent WHERE id = ?", orm=load, start=i) for i in range(n))


COLUMN_RELOAD = {
    "deferred-3": Case(lambda: _column(3, "deferred"), 1, "deferred bio loaded for 3", "undefer"),
    "deferred-2": Case(lambda: _column(2, "deferred"), 0),
    "expired-5": Case(lambda: _column(5, "expired"), 1, "after commit", "expire_on_commit"),
    "expired-4": Case(lambda: _column(4, "expired"), 0),
}


@pytest.mark.parametrize("case", COLUMN_RELOAD.values(), ids=COLUMN_RELOAD.keys())
def test_column_reload(case: Case) -> None:
    """Deferred columns loaded per object (>= 3), expired attributes reloaded (>= 5)."""
    check("column_reload", case)


def _repeats(n: int, **overrides: object) -> UnitRecord:
    return unit(q(start=float(i), **overrides) for i in range(n))  # type: ignore[arg-type]


REPEATED = {
    "three-from-one-stack": Case(lambda: _repeats(3), 1, "repeated query: 3x", "issue it once"),
    "two": Case(lambda: _repeats(2), 0),
    "three-stacks": Case(lambda: unit(q(at=stack(10, 20 + i), start=i) for i in range(3)), 0),
    "eager-batches": Case(
        lambda: _repeats(3, orm=OrmLoad("eager", "Child", "Parent.children", None)), 0
    ),
    "a-page-walk": Case(
        lambda: unit(
            q("SELECT a FROM t ORDER BY id LIMIT ? OFFSET ?", params=(5, offset), start=offset)
            for offset in (0, 1, 2)
        ),
        0,
    ),
    "retries-after-rollbacks": Case(
        lambda: unit(
            [q(start=0.0), q(start=1.0), q(start=2.0)],
            transactions=[tx(end="rollback", ended=0.5), tx(end="rollback", ended=1.5)],
        ),
        0,
    ),
    "one-rollback-is-not-a-retry-of-three": Case(
        lambda: unit(
            [q(start=0.0), q(start=1.0), q(start=2.0)],
            transactions=[tx(end="rollback", ended=0.5)],
        ),
        1,
    ),
}


@pytest.mark.parametrize("case", REPEATED.values(), ids=REPEATED.keys())
def test_repeated_query(case: Case) -> None:
    """The same read from one call stack >= 3 times; eager batches, page walks and retries
    after rollbacks are exempt."""
    check("repeated_query", case)


def _writes(sql: str, kind: str, n: int, batch: int = 1) -> UnitRecord:
    return unit(q(sql, kind, batch=batch, start=float(i)) for i in range(n))


WRITE_LOOP = {
    "insert": Case(
        lambda: _writes("INSERT INTO t (a) VALUES (?)", "insert", 5),
        1,
        "5x single-row",
        "executemany",
    ),
    "update": Case(
        lambda: _writes("UPDATE t SET a = ? WHERE id = ?", "update", 5), 1, "", "update(Model)"
    ),
    "delete": Case(
        lambda: _writes("DELETE FROM t WHERE id = ?", "delete", 5),
        1,
        "",
        "delete(Model).where(Model.id.in_(ids))",
    ),
    "four": Case(lambda: _writes("INSERT INTO t (a) VALUES (?)", "insert", 4), 0),
    "executemany": Case(lambda: _writes("INSERT INTO t (a) VALUES (?)", "insert", 5, 100), 0),
}


@pytest.mark.parametrize("case", WRITE_LOOP.values(), ids=WRITE_LOOP.keys())
def test_write_loop(case: Case) -> None:
    """The same single-row write from one call stack >= 5 times, with a fix for its kind."""
    check("write_loop", case)


SLOW = {
    "over": Case(lambda: unit([q(duration=0.2)]), 1, "up to 200 ms, threshold 100 ms", "EXPLAIN"),
    "under": Case(lambda: unit([q(duration=0.05)]), 0),
    "off": Case(lambda: unit([q(duration=5.0)], slow_query_ms=None), 0),
}


@pytest.mark.parametrize("case", SLOW.values(), ids=SLOW.keys())
def test_slow_query(case: Case) -> None:
    """A statement over ``slow_query_ms`` (time is data here: no clock involved)."""
    check("slow_query", case)


BUDGET = {
    "over": Case(lambda: _repeats(3, at=stack(1), sql="SELECT 1"), 0),
    "over-budget": Case(
        lambda: unit((q(start=i) for i in range(3)), max_queries=2),
        1,
        "3 statements, budget 2",
        "max_queries to 3",
    ),
    "transaction-control-is-free": Case(
        lambda: unit([q(), q("COMMIT", "transaction"), q("BEGIN", "transaction")], max_queries=1),
        0,
    ),
    "ignored-statements-are-free": Case(
        lambda: unit([q(), q(suppressed=["query_budget"])], max_queries=1), 0
    ),
}


@pytest.mark.parametrize("case", BUDGET.values(), ids=BUDGET.keys())
def test_query_budget(case: Case) -> None:
    """More statements than ``max_queries`` (transaction control and ignored ones excepted)."""
    check("query_budget", case)


# -- transactions ------------------------------------------------------------------------


AUTOCOMMIT_WRITES = {
    "two-checkouts": Case(
        lambda: unit(transactions=[tx(autocommit=True, writes=1), tx(autocommit=True, writes=1)]),
        1,
        "2 writes in 2 connection checkouts",
        "one transaction",
    ),
    "two-in-one": Case(
        lambda: unit(transactions=[tx(autocommit=True, writes=2)]),
        1,
        "2 writes in one connection checkout",
    ),
    "one-write": Case(lambda: unit(transactions=[tx(autocommit=True, writes=1)]), 0),
    "not-autocommit": Case(lambda: unit(transactions=[tx(writes=3)]), 0),
    "external": Case(lambda: unit(transactions=[tx(autocommit=True, writes=3, external=True)]), 0),
}


@pytest.mark.parametrize("case", AUTOCOMMIT_WRITES.values(), ids=AUTOCOMMIT_WRITES.keys())
def test_autocommit_writes(case: Case) -> None:
    """>= 2 writes of one unit committed one by one under autocommit, across checkouts."""
    check("autocommit_writes", case)


INEFFECTIVE = {
    "rolled-back-under-autocommit": Case(
        lambda: unit(transactions=[tx(autocommit=True, writes=1, end="rollback")]),
        1,
        "ineffective rollback",
        "real transaction",
    ),
    "real-rollback": Case(lambda: unit(transactions=[tx(writes=1, end="rollback")]), 0),
    "autocommit-commit": Case(lambda: unit(transactions=[tx(autocommit=True, writes=1)]), 0),
}


@pytest.mark.parametrize("case", INEFFECTIVE.values(), ids=INEFFECTIVE.keys())
def test_ineffective_rollback(case: Case) -> None:
    """A rollback after autocommitted writes undid nothing."""
    check("ineffective_rollback", case)


def _commits(rows: tuple[int, ...], end_at: tuple[object, ...] = stack(40, 50)) -> UnitRecord:
    return unit(
        transactions=[
            tx(writes=1 if n else 0, rows=n, end_at=end_at, ended=float(i))  # type: ignore[arg-type]
            for i, n in enumerate(rows)
        ]
    )


COMMIT_IN_LOOP = {
    "a-row-each": Case(lambda: _commits((1, 1, 1)), 1, "3 commits from one line, 1 row each"),
    "two-rows-each": Case(lambda: _commits((2, 2, 2)), 1, "2 rows each"),
    "batches-of-100": Case(lambda: _commits((100, 100, 100)), 0),
    "two-commits": Case(lambda: _commits((1, 1)), 0),
    "nothing-written": Case(lambda: _commits((0, 0, 0)), 0),
}


@pytest.mark.parametrize("case", COMMIT_IN_LOOP.values(), ids=COMMIT_IN_LOOP.keys())
def test_commit_in_loop(case: Case) -> None:
    """>= 3 commits from one call stack, each of a few rows (rowcount, not statements)."""
    check("commit_in_loop", case)


DISCARDED = {
    "closed-without-commit": Case(
        lambda: unit(transactions=[tx(writes=1, end="closed")]), 1, "discarded writes", "commit"
    ),
    "explicit-rollback": Case(lambda: unit(transactions=[tx(writes=1, end="rollback")]), 0),
    "external": Case(lambda: unit(transactions=[tx(writes=1, end="closed", external=True)]), 0),
    "autocommit": Case(lambda: unit(transactions=[tx(writes=1, end="closed", autocommit=True)]), 0),
}


@pytest.mark.parametrize("case", DISCARDED.values(), ids=DISCARDED.keys())
def test_discarded_writes(case: Case) -> None:
    """Writes rolled back because nobody committed."""
    check("discarded_writes", case)


LONG = {
    "open-2s": Case(lambda: unit(transactions=[tx(ended=2.0)]), 1, "open 2000 ms"),
    "idle-300ms": Case(lambda: unit(transactions=[tx(idle=0.3)]), 1, "idle 300 ms"),
    "streaming-2s": Case(lambda: unit(transactions=[tx(ended=2.0, streaming=True)]), 0),
    "streaming-but-idle": Case(
        lambda: unit(transactions=[tx(idle=0.3, streaming=True)]), 1, "idle 300 ms"
    ),
    "still-open": Case(lambda: unit(transactions=[tx(end="open")]), 1, "still open"),
    "still-open-switched-off": Case(
        lambda: unit(transactions=[tx(end="open")], open_transactions=False), 0
    ),
    "autocommit": Case(lambda: unit(transactions=[tx(ended=5.0, autocommit=True)]), 0),
}


@pytest.mark.parametrize("case", LONG.values(), ids=LONG.keys())
def test_long_transaction(case: Case) -> None:
    """Open too long (not while streaming), idle too long (streaming or not), or left open."""
    check("long_transaction", case)


STALE = {
    "held-row-read-again": Case(
        lambda: unit(stale=[StaleRead("User", 1, True, stack(70), 1)]),
        1,
        "re-read 1 User row(s)",
        "populate_existing",
    ),
    "a-nested-units-read": Case(
        lambda: unit(stale=[StaleRead("User", 1, True, (), 2)], nested=True), 0
    ),
    "none": Case(unit, 0),
}


@pytest.mark.parametrize("case", STALE.values(), ids=STALE.keys())
def test_stale_identity_map(case: Case) -> None:
    """Rows a session held from an earlier transaction, returned again."""
    check("stale_identity_map", case)


def _transactions(n: int, *, dialect: str = "postgresql", writes: int = 0) -> UnitRecord:
    reads = [q(start=float(i), dialect=dialect) for i in range(n)]
    writes_ = [q("INSERT INTO t (a) VALUES (?)", "insert") for _ in range(writes)]
    return unit(
        [*reads, *writes_],
        transactions=[tx(dialect=dialect, ended=float(i)) for i in range(n)],
    )


OVERHEAD = {
    "twelve-transactions": Case(lambda: _transactions(12), 1, "12 transactions", "AUTOCOMMIT"),
    "one-transaction": Case(lambda: _transactions(1), 0),
    "embedded-sqlite": Case(lambda: _transactions(12, dialect="sqlite"), 0),
}


@pytest.mark.parametrize("case", OVERHEAD.values(), ids=OVERHEAD.keys())
def test_transaction_overhead(case: Case) -> None:
    """Many transactions in one unit on a server; never for one small transaction."""
    check("transaction_overhead", case)


def test_transaction_overhead_never_advises_autocommit_when_the_unit_writes() -> None:
    built = _transactions(12, writes=1)
    (finding,) = detector("transaction_overhead").detect(built, built.statements)
    assert "AUTOCOMMIT" not in finding.fix
    assert finding.severity is Severity.INFO


# -- run_detectors ------------------------------------------------------------------------


def test_a_nested_units_statements_are_not_judged_again() -> None:
    """The enclosing unit judges its own statements only (records of key 1); a nested unit's
    repeated statements (key 2) were judged when it closed."""
    child = [q(start=float(i), key=2) for i in range(3)]
    own = [q("SELECT b FROM u", start=10.0 + i) for i in range(3)]
    found, failures = run_detectors(unit([*child, *own], nested=True))
    assert failures == 0
    (finding,) = found
    assert finding.kind == "repeated_query"
    assert finding.fingerprint == "SELECT b FROM u"
    # indexes point into all the unit's statements (the child's three come first)
    assert finding.statements == (3, 4, 5)


def test_lifted_findings_point_at_the_same_records() -> None:
    """A nested unit's finding, lifted into the enclosing unit, indexes the enclosing unit's
    statements; records it did not keep drop out."""
    records = [q(start=float(i), key=2) for i in range(3)]
    enclosing = unit([q("SELECT x", start=-1.0), *records], nested=True)
    found, _ = run_detectors(unit(records))
    (lifted,) = lift([(found[0], tuple(records[:2]))], enclosing)
    assert lifted.statements == (1, 2)


def test_suppressed_statements_are_hidden_from_their_kind_only() -> None:
    """Statements under ``sqlaudit.ignore("repeated_query")`` are invisible to that detector,
    and finding indexes still point into the unit's statements."""
    records = [q(start=0.0, suppressed=["repeated_query"])] + [q(start=float(i)) for i in (1, 2, 3)]
    found, _ = run_detectors(unit(records))
    (finding,) = found
    assert finding.count == 3
    assert finding.statements == (1, 2, 3)


def test_a_detector_that_raises_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing detector is counted, the others still report."""
    monkeypatch.setenv("SQLAUDIT_STRICT", "0")

    class Boom:
        kind = "n_plus_one"

        def detect(self, unit: object, records: object) -> list[object]:
            raise RuntimeError("boom")

    found, failures = run_detectors(_repeats(3), [Boom(), detector("repeated_query")])  # type: ignore[list-item]
    assert failures == 1
    assert [f.kind for f in found] == ["repeated_query"]


def test_site_helper() -> None:
    """The builders' own sanity: one frame per line."""
    assert stack(1, 2) == (site(1), site(2))
