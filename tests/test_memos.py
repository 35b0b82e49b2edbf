"""Statement-text memos (``sqlaudit.sql.cache``): bounded while audits are open, emptied when
the last one ends (issue 14, row 4: module-level caches kept every statement text for good).

The figures (bytes retained per closed audit and per distinct statement, before and after)
are measured by ``benchmarks/memory.py``; these tests pin the behaviour: who holds a text, and
how many entries and characters a memo keeps.
"""

from __future__ import annotations

import gc
import sys
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import StaticPool
from timing import UNTIMED
from werkzeug.test import Client

import sqlaudit
from sqlaudit.sql.cache import RESIDUAL, Memo, memos, open_owners
from sqlaudit.sql.fingerprint import fingerprint, statement_kind
from sqlaudit.wsgi import WSGIAuditMiddleware


def held() -> int:
    """Entries in every memo."""
    return sum(len(memo) for memo in memos())


def unique_sql(size: int = 0) -> str:
    """A statement text no other test issues (a new object, never interned)."""
    return f"SELECT '{uuid.uuid4()}{'x' * size}' AS v WHERE 1 = 1"


@pytest.fixture(autouse=True)
def no_audit_open() -> None:
    """Memos are emptied when the *last* open audit ends. An audit an earlier test abandoned
    (never closed, waiting in a reference cycle for the collector) stays an owner until it is
    collected, and would keep them: collect first, and say so if one is really still open."""
    gc.collect()
    assert open_owners() == [], "an earlier test left an audit open"


@pytest.fixture
def quiet_engine(engine: Engine) -> Iterator[Engine]:
    """``engine``, or for SQLite one whose sqlite3 module keeps no statement cache of its own
    (it holds the last 128 texts itself)."""
    if engine.dialect.name != "sqlite":
        yield engine
        return
    own = create_engine("sqlite://", poolclass=StaticPool, connect_args={"cached_statements": 0})
    sqlaudit.instrument(own)
    try:
        yield own
    finally:
        own.dispose()


def test_texts_are_let_go_when_the_last_audit_ended(quiet_engine: Engine) -> None:
    """Statement texts issued in audits (kind, roles and fingerprint computed for each) have
    no reference left in sqlaudit once the audits ended (memos over ``RESIDUAL`` emptied) and
    their reports were dropped: their reference counts are what they were before."""
    sqlaudit.instrument(quiet_engine)
    texts = [unique_sql(30_000) for _ in range(3)]  # together over RESIDUAL
    before = [sys.getrefcount(sql) for sql in texts]
    with sqlaudit.audit("outer", on_finding="ignore", **UNTIMED) as outer:
        with (
            sqlaudit.audit("inner", on_finding="ignore", **UNTIMED),
            quiet_engine.connect() as conn,
        ):
            for i in range(9):
                conn.exec_driver_sql(texts[i % 3]).all()
        assert held() > 0  # the outer audit is still open: memos kept
        assert fingerprint(texts[0], quiet_engine.dialect.name) == "SELECT ? AS v WHERE ? = ?"
    assert outer.query_count == 9
    assert [f.kind for f in outer.findings] == ["repeated_query"]
    assert all(memo.chars <= RESIDUAL for memo in memos())
    del outer  # the report itself holds the records (and the texts) as long as it lives
    gc.collect()
    assert [sys.getrefcount(sql) for sql in texts] == before


def test_nothing_grows_across_closed_audits(quiet_engine: Engine) -> None:
    """Audit after audit of new texts (inlined literals): once each ends, no memo holds more
    than ``RESIDUAL`` characters; a compiled statement repeated by every audit stays
    memoised between them (not fingerprinted again for each request a service handles)."""
    sqlaudit.instrument(quiet_engine)
    compiled = "SELECT 1 AS one WHERE 2 = 2"
    for i in range(300):
        with sqlaudit.audit("request", on_finding="ignore"), quiet_engine.connect() as conn:
            conn.exec_driver_sql(compiled).all()
            for j in range(5):
                conn.exec_driver_sql(f"SELECT '{i}-{j}-{'x' * 200}' AS v").all()
        assert all(memo.chars <= RESIDUAL for memo in memos())
    with sqlaudit.audit("last", on_finding="ignore"), quiet_engine.connect() as conn:
        conn.exec_driver_sql(compiled).all()
    assert any(compiled in memo.data for memo in memos())


@pytest.mark.parametrize("db_kind", ["sqlite"])
def test_middleware_requests_let_their_texts_go(quiet_engine: Engine) -> None:
    """After each request through the WSGI middleware (development page on, so the page's
    summary is built from the statements too), its large statement text is let go."""
    sqlaudit.instrument(quiet_engine)
    issued: list[str] = []

    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        issued.append(unique_sql(RESIDUAL))
        with quiet_engine.connect() as conn:
            conn.exec_driver_sql(issued[-1]).all()
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"ok"]

    client = Client(WSGIAuditMiddleware(app, dev_page="/_sqlaudit", header=True))
    for _ in range(3):
        with client.get("/items/1") as response:
            assert response.headers["X-SQL-Queries"].startswith("1")
        del response  # it holds the body, which holds the request's report until dropped
        gc.collect()
        text = issued.pop()
        holders = sys.getrefcount(text)  # computed outside the assertion (pytest keeps values)
        assert holders == 2  # ``text`` and getrefcount's argument: sqlaudit holds none
        assert all(memo.chars <= RESIDUAL for memo in memos())


def test_memo_bounded_by_entries_and_characters() -> None:
    """A memo keeps at most ``max_entries`` entries and ``max_chars`` characters: the oldest
    half goes when either is reached; a text over a quarter of the budget is never kept."""
    memo: Memo[str] = Memo(len, max_entries=8, max_chars=4000)
    for i in range(20):
        memo.put(f"key {i}", "v")
    assert len(memo) <= 8
    assert "key 19" in memo.data and "key 0" not in memo.data
    memo.clear()
    for i in range(20):
        memo.put(f"{i:03d}" + "k" * 300, "v" * 100)
    assert memo.chars <= 4000
    assert 0 < len(memo) < 20
    assert memo.put("huge" + "k" * 1000, "v") == "v"
    assert "huge" + "k" * 1000 not in memo.data
    memo.clear()
    assert len(memo) == 0 and memo.chars == 0


def test_memos_stay_bounded_inside_one_long_audit(sqlite_engine: Engine) -> None:
    """Inside one open audit, 5,000 distinct texts (and a few 400 kB ones) keep every memo
    within its bounds (the statement log caps what is recorded: ``max_records``)."""
    sqlaudit.instrument(sqlite_engine)
    with (
        sqlaudit.audit("long", on_finding="ignore", max_records=100) as report,
        sqlite_engine.connect() as conn,
    ):
        for i in range(5000):
            conn.exec_driver_sql(f"SELECT {i} AS n").all()
        for _ in range(12):
            big = unique_sql(400_000)
            conn.exec_driver_sql(big).all()
            statement_kind(big)
        for memo in memos():
            assert len(memo) <= memo.max_entries
            assert memo.chars <= memo.max_chars
    assert report.query_count == 5012
    assert all(memo.chars <= RESIDUAL for memo in memos())


def _mapped_pair(n: int) -> tuple[type, type]:
    """A parent and child class of a registry of their own, created at run time (as a test
    suite's factories or a plugin's models are), with a lazy and a dynamic relationship."""
    from sqlalchemy import ForeignKey
    from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

    class Base(DeclarativeBase):
        pass

    parent = type(
        f"Parent{n}",
        (Base,),
        {
            "__tablename__": "parent",
            "id": mapped_column(primary_key=True),
            "__annotations__": {"id": Mapped[int]},
            "children": relationship(f"Child{n}", lazy="select"),
            "history": relationship(f"Child{n}", lazy="dynamic", viewonly=True),
        },
    )
    child = type(
        f"Child{n}",
        (Base,),
        {
            "__tablename__": "child",
            "id": mapped_column(primary_key=True),
            "parent_id": mapped_column(ForeignKey("parent.id")),
            "__annotations__": {"id": Mapped[int], "parent_id": Mapped[int]},
        },
    )
    return parent, child


def test_mapped_classes_created_at_run_time_are_not_kept_alive() -> None:
    """Issue 14, row 6: 300 mapped classes created at run time, each used in an audit (lazy
    loads, a dynamic collection, writes) on an engine of its own, then dropped: none survives
    garbage collection (the relationship, collection and statement-shape caches hold them
    weakly). The same workload without sqlaudit is the control: SQLAlchemy lets them all go."""
    import weakref

    from sqlalchemy.orm import Session

    def run(instrumented: bool) -> int:
        refs = []
        for n in range(300):
            parent, child = _mapped_pair(n)
            engine = create_engine("sqlite://", poolclass=StaticPool)
            if instrumented:
                sqlaudit.instrument(engine)
            parent.metadata.create_all(engine)
            with sqlaudit.audit(f"unit {n}", on_finding="ignore", **UNTIMED), Session(engine) as s:
                s.add_all([parent(id=1), parent(id=2), child(id=1, parent_id=1)])
                s.commit()
                for p in s.query(parent).all():
                    _ = p.children
                    _ = p.history.all()
            engine.dispose()
            refs.append(weakref.ref(parent))
            refs.append(weakref.ref(child))
            del parent, child, p, _, s, engine
        # A weak cache's entry goes in the collection that frees its key; the classes its
        # value held (in cycles, as classes are) in the next one.
        for _ in range(3):
            gc.collect()
        return sum(1 for r in refs if r() is not None)

    assert run(instrumented=False) == 0
    assert run(instrumented=True) == 0
