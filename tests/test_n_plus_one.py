"""N+1 precision on SQLite, MariaDB and PostgreSQL: the exact rule (parent origins), the
exact fix (loader option chain at the root query's line), column reloads, and the traps."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter

import pytest
from models import Author, Book, prepared
from sqlalchemy import Engine, ForeignKey, String, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    defer,
    immediateload,
    mapped_column,
    relationship,
    selectinload,
)
from timing import UNTIMED, kinds

import sqlaudit
from sqlaudit import AuditConfig, AuditReport, Finding


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def findings(report: AuditReport, kind: str) -> list[Finding]:
    return [f for f in report.findings if f.kind == kind]


def line(marker: str) -> str:
    with open(__file__, encoding="utf-8") as source:
        for number, text in enumerate(source, 1):
            if f"# {marker}" in text:
                return f"tests/test_n_plus_one.py:{number}"
    raise AssertionError(marker)


def test_one_plus_one_is_not_an_n_plus_one(db: Engine) -> None:
    """Two parents, each from its own single-row query on its own line, then their books:
    two lazy loads from one line, but no N+1 (nothing to batch at the source)."""
    with sqlaudit.audit("1+1", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        first = session.get_one(Author, 1)
        second = session.get_one(Author, 2)
        for author in (first, second):
            assert author.books
    assert report.query_count == 4
    assert kinds(report) == []


def test_loop_of_single_row_queries_is_an_n_plus_one(db: Engine) -> None:
    """Parents fetched one by one from one line, each lazy-loading: the origin line ran 3x."""
    with sqlaudit.audit("loop", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for author_id in (1, 2, 3):
            author = session.get_one(Author, author_id)
            assert author.books
    assert "n_plus_one" in kinds(report)


def test_finding_names_the_parent_query_and_its_rows(db: Engine) -> None:
    """The finding states N, the parent query's line and row count, and the fix there."""
    with sqlaudit.audit("list", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        authors = session.scalars(select(Author)).all()  # parent query
        for author in authors:
            assert author.books
    (finding,) = findings(report, "n_plus_one")
    assert f"the Author rows came from the query at {line('parent query')} (5 rows)" in (
        finding.message
    )
    assert finding.fix == (
        f"add .options(selectinload(Author.books)) to the query at {line('parent query')}"
    )
    assert finding.db_time > 0


def test_rows_loaded_after_a_later_query_still_name_their_own_query(db: Engine) -> None:
    """Objects are matched to the statement object that loaded them, not to the latest query:
    a result iterated after another query ran, a ``yield_per`` stream and one statement object
    executed twice all name their own line."""
    query = select(Author).order_by(Author.id)
    with sqlaudit.audit("late", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        early = session.scalars(select(Author).where(Author.id <= 4))  # early query
        session.scalars(select(Book).where(Book.id < 0)).all()  # a query in between
        for author in early:
            assert author.books
    (finding,) = findings(report, "n_plus_one")
    assert f"from the query at {line('early query')} (4 rows)" in finding.message

    if db.dialect.name != "mysql":  # PyMySQL cannot run a query while a stream is unread
        with (
            sqlaudit.audit("stream", on_finding="ignore", **UNTIMED) as report,
            Session(db) as session,
        ):
            streamed = session.scalars(query.execution_options(yield_per=2))  # streamed query
            session.get_one(Book, 1)  # runs while the stream is open
            for author in streamed:
                assert author.books
        (finding,) = findings(report, "n_plus_one")
        assert f"from the query at {line('streamed query')} (5 rows)" in finding.message

    with sqlaudit.audit("twice", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        session.scalars(query).all()  # same statement, first run
        session.expunge_all()
        for author in session.scalars(query).all():  # same statement, second run
            assert author.books
    (finding,) = findings(report, "n_plus_one")
    assert f"from the query at {line('same statement, second run')} (5 rows)" in (finding.message)


def test_nested_loads_chain_the_fix_to_the_root_query(db: Engine) -> None:
    """Lazy loads two levels deep: the fix chains both options at the root query's line."""
    with sqlaudit.audit("nested", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for author in session.scalars(select(Author)):  # root query
            for book in author.books:
                assert book.reviews
    (reviews,) = [f for f in findings(report, "n_plus_one") if f.relationship == "Book.reviews"]
    assert reviews.fix == (
        ".".join(
            [
                "add .options(selectinload(Author.books)",
                "selectinload(Book.reviews)) to the query at " + line("root query"),
            ]
        )
    )
    # The books came from Author.books (10 rows over the 5 loads), not from the root query,
    # which loaded authors; it said "the Book rows came from the query at ... (2 rows)".
    assert reviews.message.endswith(
        "; the Book rows came from Author.books (10 rows) of the query at " + line("root query")
    )


def test_eager_then_lazy_chains_through_the_eager_option(db: Engine) -> None:
    """selectinload(Author.books) then a lazy Book.reviews per book: chain from the eager."""
    with sqlaudit.audit("half", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        stmt = select(Author).options(selectinload(Author.books))
        for author in session.scalars(stmt):  # half-eager query
            for book in author.books:
                assert book.reviews
    (finding,) = findings(report, "n_plus_one")
    assert finding.relationship == "Book.reviews"
    assert "selectinload(Author.books).selectinload(Book.reviews)" in finding.fix


def test_many_to_one_gets_joinedload_unless_limited(db: Engine) -> None:
    """Many-to-one: joinedload; with a LIMIT on the parent query: selectinload."""
    with sqlaudit.audit("m2o", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        names = [b.author.name for b in session.scalars(select(Book))]
    assert len(names) == 10
    assert "joinedload(Book.author)" in findings(report, "n_plus_one")[0].fix
    with (
        sqlaudit.audit("m2o limit", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        names = [b.author.name for b in session.scalars(select(Book).limit(8))]
    assert "selectinload(Book.author)" in findings(report, "n_plus_one")[0].fix


def test_immediateload_is_an_n_plus_one(db: Engine) -> None:
    """``immediateload`` issues one SELECT per parent while loading them."""
    with (
        sqlaudit.audit("immediate", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        session.scalars(select(Author).options(immediateload(Author.books))).all()
    (finding,) = findings(report, "n_plus_one")
    assert "selectinload(Author.books)" in finding.fix


def test_identity_map_hits_issue_no_sql_and_no_finding(db: Engine) -> None:
    """Many-to-one targets already in the identity map load without SQL: nothing to flag."""
    with sqlaudit.audit("hits", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        authors = session.scalars(select(Author)).all()  # held: the identity map is weak
        names = [b.author.name for b in session.scalars(select(Book))]
    assert len(names) == 10
    assert len(authors) == 5
    assert report.query_count == 2
    assert kinds(report) == []


def test_deferred_column_loads(db: Engine) -> None:
    """A deferred column read per object is a column_reload with the undefer fix."""
    with (
        sqlaudit.audit("deferred", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        for author in session.scalars(select(Author).options(defer(Author.name))):
            assert author.name
    (finding,) = findings(report, "column_reload")
    assert "deferred name" in finding.message
    assert "undefer(Author.name)" in finding.fix


def test_expired_reloads_after_commit(db: Engine) -> None:
    """Attributes read after commit reload per object (expire_on_commit): column_reload."""
    with (
        sqlaudit.audit("expired", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        authors = session.scalars(select(Author)).all()
        session.commit()
        assert all(a.name for a in authors)
    (finding,) = findings(report, "column_reload")
    assert "after commit" in finding.message
    assert "expire_on_commit=False" in finding.fix


def test_few_column_loads_are_silent(db: Engine) -> None:
    """Below the thresholds (3 deferred, 5 expired) nothing is reported."""
    with sqlaudit.audit("few", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for author in session.scalars(select(Author).limit(2).options(defer(Author.name))):
            assert author.name
    assert kinds(report) == []


def test_in_list_chunks_and_page_walks_are_silent(db: Engine) -> None:
    """Hand-written IN-list chunks, LIMIT/OFFSET pages and keyset pages from one line are
    walks over a large set, not a repeated query."""
    ids = list(range(1, 11))
    with sqlaudit.audit("walks", on_finding="ignore", **UNTIMED) as report, db.connect() as conn:
        for start in range(0, 10, 4):
            conn.execute(select(Book.title).where(Book.id.in_(ids[start : start + 4]))).all()
        for page in range(3):
            conn.execute(select(Book.id).order_by(Book.id).limit(4).offset(page * 4)).all()
        last = 0
        for _ in range(3):
            rows = conn.execute(
                select(Book.id).where(Book.id > last).order_by(Book.id).limit(4)
            ).all()
            last = rows[-1][0] if rows else last
    assert report.query_count == 9
    assert kinds(report) == []


def test_limit_one_per_parent_is_still_a_repeated_query(db: Engine) -> None:
    """ "Latest book per author" with LIMIT 1 in a loop is not pagination: still flagged."""
    with sqlaudit.audit("latest", on_finding="ignore", **UNTIMED) as report, db.connect() as conn:
        for author_id in (1, 2, 3):
            conn.execute(
                select(Book.title).where(Book.author_id == author_id).order_by(Book.id).limit(1)
            ).all()
    assert kinds(report) == ["repeated_query"]


def test_loop_view_reports_one_loop_with_the_combined_fix(engine: Engine) -> None:
    """Two relationships lazy-loaded per row in one loop body: one "2N+1" finding whose fix
    adds both options to the parent query."""
    with prepared(engine, authors=5, books_each=1) as db:
        with (
            sqlaudit.audit("loop view", on_finding="ignore", **UNTIMED) as report,
            Session(db) as session,
        ):
            for book in session.scalars(select(Book).limit(5)):  # loop parent query
                assert book.author.name
                assert book.reviews
    (finding,) = findings(report, "n_plus_one")
    assert "this loop issues 2N+1 queries (11 for N=5)" in finding.message
    assert finding.relationship == "Book.author, Book.reviews"
    assert finding.fix == (
        "add .options(selectinload(Book.author), selectinload(Book.reviews)) to the query at "
        + line("loop parent query")
    )
    # 10 statements of two shapes: the text never says "10x" of one of them (it did).
    text = report.render()
    assert "10x SELECT" not in text
    assert text.count("  5x SELECT … FROM sqlaudit_t_") == 2  # the statements, by shape


def test_separate_loops_in_one_function_are_separate_findings(db: Engine) -> None:
    """Issue 14, row 13: four loops one after another, each repeating its own query, are four
    repeated queries, not one "4N+1" loop; none names a relationship."""
    with sqlaudit.audit("loops", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for _ in range(3):
            session.execute(select(Author.id).where(Author.id == 1)).all()
        for _ in range(3):
            session.execute(select(Author.name).where(Author.id == 1)).all()
        for _ in range(3):
            session.execute(select(Book.id).where(Book.id == 1)).all()
        for _ in range(3):
            session.execute(select(Book.title).where(Book.id == 1)).all()
    found = findings(report, "repeated_query")
    assert [f.count for f in found] == [3, 3, 3, 3]
    assert not any("N+1 loop" in f.message for f in found)
    assert [f.relationship for f in found] == [None, None, None, None]
    assert len({f.identity for f in found}) == 4


def test_one_loop_of_two_queries_is_one_finding_naming_no_kinds(db: Engine) -> None:
    """Two queries repeated in one loop body interleave: one finding, "2 queries per
    iteration" (no "+1": no query loaded what the loop runs over). Its relationship (what
    baselines key it by) names relationships only, here none: not finding kinds."""
    with sqlaudit.audit("loop", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for author_id in (1, 2, 3):
            session.execute(select(Author.name).where(Author.id == author_id)).all()
            session.execute(select(Author.id).where(Author.name == str(author_id))).all()
        for _ in range(3):  # a separate loop after it, with the same N
            session.execute(select(Book.id).where(Book.id == 1)).all()
    # Findings rank by DB time, which the machine's speed decides: pick them by size.
    alone, loop = sorted(findings(report, "repeated_query"), key=lambda f: f.count)
    assert "this loop issues 2 queries per iteration (6 for N=3)" in loop.message
    assert loop.relationship is None
    assert loop.identity[1] == loop.fingerprint
    assert alone.count == 3 and "N+1 loop" not in alone.message


def test_dynamic_relationship_loop_gets_an_explicit_in_query_fix(db: Engine) -> None:
    """A ``lazy="dynamic"`` relationship queried per parent has no loader option: the fix is
    one explicit IN query."""
    with (
        sqlaudit.audit("dynamic", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        for author in session.scalars(select(Author)):
            assert author.books_query.all()
    (finding,) = findings(report, "repeated_query")
    assert finding.relationship == "Author.books_query"
    assert "lazy='dynamic'" in finding.fix
    assert ".in_(" in finding.fix


def test_production_floors_hide_small_groups_and_cap_findings(db: Engine) -> None:
    """``AuditConfig.for_production()``: an N+1 over 4 parents (under the floor of 5) is not
    worth a log line in a service; the strict defaults report it."""
    with sqlaudit.audit("prod", AuditConfig.for_production()) as report, Session(db) as session:
        for author in session.scalars(select(Author).order_by(Author.id).limit(4)):
            assert author.books
    assert kinds(report) == []
    assert report.config.max_findings == 10
    with sqlaudit.audit("strict", on_finding="ignore", **UNTIMED) as strict, Session(db) as session:
        for author in session.scalars(select(Author).order_by(Author.id).limit(4)):
            assert author.books
    assert kinds(strict) == ["n_plus_one"]


class _InheritanceBase(DeclarativeBase):
    pass


class _Employee(_InheritanceBase):
    __tablename__ = "sqlaudit_t_employee"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    badges: Mapped[list[_Badge]] = relationship(back_populates="employee")
    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_identity": "employee"}


class _Manager(_Employee):
    __mapper_args__ = {"polymorphic_identity": "manager"}


class _Badge(_InheritanceBase):
    __tablename__ = "sqlaudit_t_badge"
    id: Mapped[int] = mapped_column(primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_employee.id"))
    employee: Mapped[_Employee] = relationship(back_populates="badges")


def test_subclass_rows_are_linked_to_the_base_class_query(sqlite_engine: Engine) -> None:
    """A query of a base class loading subclass instances (polymorphic loading): the lazy
    loads of those instances are traced back to that query, rows counted."""
    _InheritanceBase.metadata.create_all(sqlite_engine)
    with Session(sqlite_engine) as session:
        session.add_all([_Manager(id=i, kind="manager") for i in range(1, 5)])
        session.add_all([_Badge(id=i, employee_id=i) for i in range(1, 5)])
        session.commit()
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        with (
            sqlaudit.audit("staff", on_finding="ignore", **UNTIMED) as report,
            Session(sqlite_engine) as s,
        ):
            staff = s.scalars(select(_Employee).order_by(_Employee.id)).all()  # staff query
            assert {type(e) for e in staff} == {_Manager}
            for employee in staff:
                assert employee.badges
    finally:
        handle.remove()
    (finding,) = findings(report, "n_plus_one")
    assert f"the _Employee rows came from the query at {line('staff query')} (4 rows)" in (
        finding.message
    )
    assert finding.fix == (
        f"add .options(selectinload(_Employee.badges)) to the query at {line('staff query')}"
    )


def test_loads_by_library_code_only_are_located_at_the_parents_query(db: Engine) -> None:
    """Lazy loads with no application frame on their stack (library code read the
    relationship, as FastAPI does validating a ``response_model`` after the endpoint returned;
    here ``map(attrgetter(...))`` in a plain worker thread) are located at the query that loaded
    the parents, which the fix names too; they had no location at all."""
    with sqlaudit.audit("t", on_finding="ignore", all_threads=True, **UNTIMED) as report:
        with Session(db) as session:
            authors = session.scalars(select(Author)).all()  # parents of library loads
            with ThreadPoolExecutor(1) as pool:
                pool.submit(list, map(attrgetter("books"), authors)).result()
    (finding,) = findings(report, "n_plus_one")
    assert finding.stack == ()
    location = finding.to_dict()["location"]
    assert f"{location['file']}:{location['line']}" == line("parents of library loads")
    assert finding.message.endswith(
        "; loaded by library code only (e.g. serializing a response model)"
    )
    assert finding.fix.endswith(f"to the query at {line('parents of library loads')}")


def test_a_loop_that_loads_each_parent_itself_has_no_plus_one(db: Engine) -> None:
    """A ``session.get`` per id and a lazy load per item, a session each (the real apps'
    "notify" endpoint): one loop of 2 queries per iteration, 10 for N=5. No query before the
    loop loaded the parents: it was reported as "2N+1 queries (11 for N=5)"."""
    with sqlaudit.audit("loop", on_finding="ignore", **UNTIMED) as report:
        for book_id in (1, 3, 5, 7, 9):
            with Session(db) as session:
                assert session.get_one(Book, book_id).author.name
    (loop,) = findings(report, "n_plus_one")
    assert loop.message.startswith(
        "N+1 loop: this loop issues 2 queries per iteration (10 for N=5): repeated query: "
    )
    assert "N+1: Book.author lazy-loaded 5x, once per Book (5 parents)" in loop.message
    assert loop.count == 10
