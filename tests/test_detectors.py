"""Each detector on SQLite, MariaDB and PostgreSQL: the true positive and its false-positive
trap, through real sessions and real connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from models import Author, Book, Review, prepared
from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.orm import Session, joinedload, selectinload
from timing import UNTIMED, Clock, kinds

import sqlaudit
from sqlaudit import AuditFailed, Severity


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        yield eng


def line_of(marker: str) -> int:
    """The line number in this file of the line containing ``marker`` (a unique comment)."""
    with open(__file__, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if marker in line and "line_of(" not in line:
                return number
    raise AssertionError(marker)


def test_n_plus_one_lazy_load_per_parent(db: Engine) -> None:
    """A lazy relationship touched once per parent row is one n_plus_one finding naming the
    relationship, the count and the line that triggered the loads."""
    with sqlaudit.audit("list", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        for author in session.scalars(select(Author)):
            assert author.books  # marker: n+1 trigger
    assert kinds(report) == ["n_plus_one"]
    finding = report.findings[0]
    assert finding.relationship == "Author.books"
    assert finding.count == 5
    assert finding.location is not None
    assert finding.location.file == __file__
    assert finding.location.line == line_of("marker: n+1 trigger")
    assert "selectinload(Author.books)" in finding.fix
    assert report.query_count == 6


def test_many_to_one_n_plus_one(db: Engine) -> None:
    """Lazy many-to-one loads of distinct parents are an N+1 too."""
    with sqlaudit.audit("books", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        names = [book.author.name for book in session.scalars(select(Book))]
    assert len(names) == 10
    assert kinds(report) == ["n_plus_one"]
    assert report.findings[0].relationship == "Book.author"
    assert report.findings[0].count == 5  # identity-map hits issue no SQL


def test_two_unrelated_gets_are_not_a_finding(db: Engine) -> None:
    """Two ``session.get()`` calls on different lines are two queries, not a repeated one."""
    with sqlaudit.audit("gets", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        first = session.get(Author, 1)
        second = session.get(Author, 2)
    assert first is not None and second is not None
    assert report.query_count == 2
    assert kinds(report) == []


def test_selectinload_over_1200_parents_is_silent(engine: Engine) -> None:
    """``selectinload`` over 1,200 parents runs several IN batches: the cure, not an N+1."""
    with prepared(engine, authors=1200, books_each=1, reviews_each=0) as db:
        with (
            sqlaudit.audit("eager", on_finding="ignore", **UNTIMED) as report,
            Session(db) as session,
        ):
            authors = session.scalars(select(Author).options(selectinload(Author.books))).all()
            assert sum(len(a.books) for a in authors) == 1200
        assert report.query_count == 4  # 1 + ceil(1200 / 500) batches
        assert kinds(report) == []
        eager = [r for r in report.statements if r.orm is not None and r.orm.load == "eager"]
        assert len(eager) == 3


def test_joinedload_is_silent(db: Engine) -> None:
    """``joinedload`` is one statement and no finding."""
    with sqlaudit.audit("joined", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        stmt = select(Author).options(joinedload(Author.books))
        authors = session.scalars(stmt).unique().all()
        assert all(a.books for a in authors)
    assert report.query_count == 1
    assert kinds(report) == []


def test_nested_n_plus_one_is_two_findings(db: Engine) -> None:
    """Lazy loads two levels deep are reported per relationship."""
    with sqlaudit.audit("nested", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        stars = [
            review.stars
            for author in session.scalars(select(Author))
            for book in author.books
            for review in book.reviews
        ]
    assert len(stars) == 10
    assert {f.relationship for f in report.findings} == {"Author.books", "Book.reviews"}


def test_repeated_query_from_one_line(db: Engine) -> None:
    """The same SELECT shape from the same line three times is a repeated_query."""
    with sqlaudit.audit("loop", on_finding="ignore", **UNTIMED) as report, db.connect() as conn:
        for author_id in (1, 2, 3):
            conn.execute(select(Author.name).where(Author.id == author_id)).all()
    assert kinds(report) == ["repeated_query"]
    assert report.findings[0].count == 3
    assert "?" in (report.findings[0].fingerprint or "")


def test_repeated_query_threshold_not_reached(db: Engine) -> None:
    """Twice from the same line is below the default threshold of three."""
    with sqlaudit.audit("twice", on_finding="ignore", **UNTIMED) as report, db.connect() as conn:
        for author_id in (1, 2):
            conn.execute(select(Author.name).where(Author.id == author_id)).all()
    assert kinds(report) == []


def test_write_loop_of_single_inserts(db: Engine) -> None:
    """Five single-row INSERTs from one line are a write_loop."""
    with sqlaudit.audit("writes", on_finding="ignore", **UNTIMED) as report, db.begin() as conn:
        for i in range(100, 105):
            conn.execute(insert(Author).values(id=i, name=f"a{i}"))
    assert kinds(report) == ["write_loop"]
    assert report.findings[0].count == 5
    assert report.counts["insert"] == 5


def test_executemany_is_not_a_write_loop(db: Engine) -> None:
    """One ``execute(stmt, [rows])`` is one batched statement, never a loop finding."""
    rows = [{"id": i, "name": f"a{i}"} for i in range(100, 200)]
    with sqlaudit.audit("batch", on_finding="ignore", **UNTIMED) as report, db.begin() as conn:
        conn.execute(insert(Author), rows)
    assert kinds(report) == []
    assert report.query_count <= 2  # insertmanyvalues may split into batches
    assert sum(r.batch for r in report.statements) >= 1


def test_query_budget_exceeded_raises_with_report(db: Engine) -> None:
    """With ``on_finding="raise"`` a blown budget raises AuditFailed carrying the report."""
    with pytest.raises(AuditFailed) as failure:
        with (
            sqlaudit.audit("budget", max_queries=2, on_finding="raise", **UNTIMED),
            db.connect() as conn,
        ):
            conn.execute(select(func.count()).select_from(Author)).scalar()
            conn.execute(select(func.count()).select_from(Book)).scalar()
            conn.execute(select(func.count()).select_from(Review)).scalar()
    report = failure.value.report
    assert kinds(report) == ["query_budget"]
    assert report.findings[0].severity is Severity.ERROR
    assert "3 statements, budget 2" in report.findings[0].message
    assert "query budget exceeded" in str(failure.value)


def test_budget_not_exceeded_and_transaction_control_not_counted(db: Engine) -> None:
    """Savepoints are transaction control: not counted against the budget."""
    with sqlaudit.audit("ok", max_queries=1, on_finding="raise", **UNTIMED) as report:
        with Session(db) as session, session.begin():
            with session.begin_nested():
                session.get(Author, 1)
    assert report.query_count == 1
    assert report.counts.get("transaction", 0) >= 2  # SAVEPOINT + RELEASE
    assert kinds(report) == []


def test_application_exception_wins_over_budget(db: Engine) -> None:
    """The application's own exception propagates; the audit does not replace it."""
    with pytest.raises(KeyError):
        with (
            sqlaudit.audit("boom", max_queries=0, on_finding="raise", **UNTIMED),
            db.connect() as conn,
        ):
            conn.execute(select(Author.id)).all()
            raise KeyError("app")


def test_slow_query(db: Engine, clock: Clock) -> None:
    """A statement over ``slow_query_ms`` is a slow_query; fast ones under it are not (the
    clock is the test's: the slow statement takes 60 ms, the others none)."""
    with sqlaudit.audit("slow", slow_query_ms=40, on_finding="ignore") as report:
        with db.connect() as conn:
            clock.step = 0.06  # every clock read moves 60 ms: the statement takes 60 ms
            conn.execute(select(Author.name).where(Author.id == 1)).all()
            clock.step = 0.0
            conn.execute(select(Author.id)).all()
    assert kinds(report, timing=True) == ["slow_query"]
    assert report.findings[0].count == 1
    assert "up to 60 ms" in report.findings[0].message
    assert "WHERE sqlaudit_t_author.id = ?" in (report.findings[0].fingerprint or "")


def test_ignore_suppresses_kind_but_counts_statements(db: Engine) -> None:
    """Inside ``sqlaudit.ignore("n_plus_one")`` lazy loads still count but are not flagged."""
    with (
        sqlaudit.audit("ignored", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        with sqlaudit.ignore("n_plus_one"):
            for author in session.scalars(select(Author)):
                assert author.books
    assert report.query_count == 6
    assert kinds(report) == []


def test_config_ignore_skips_detector(db: Engine) -> None:
    """``AuditConfig(ignore=...)`` turns a detector off for the whole unit."""
    config = sqlaudit.AuditConfig(ignore=frozenset({"n_plus_one"}), on_finding="ignore", **UNTIMED)
    with sqlaudit.audit("cfg", config) as report, Session(db) as session:
        for author in session.scalars(select(Author)):
            assert author.books
    assert kinds(report) == []


def test_one_flush_writing_row_by_row_is_not_a_write_loop(db: Engine) -> None:
    """``add_all`` + one commit is one flush, even when the dialect sends one INSERT per row."""
    with sqlaudit.audit("flush", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        session.add_all([Author(id=i, name=f"a{i}") for i in range(200, 208)])
        session.commit()
    assert kinds(report) == []


def test_flush_per_row_loop_is_a_write_loop_with_flush_hint(db: Engine) -> None:
    """``add(); flush()`` per row flushes row by row: a write_loop whose fix says so."""
    with (
        sqlaudit.audit("flushes", on_finding="ignore", **UNTIMED) as report,
        Session(db) as session,
    ):
        for i in range(300, 306):
            session.add(Author(id=i, name=f"a{i}"))
            session.flush()
        session.commit()
    assert kinds(report) == ["write_loop"]
    assert "add_all" in report.findings[0].fix
    assert "6 flushes" in report.findings[0].message


def test_orm_bulk_insert_and_update_statements_are_recorded(db: Engine) -> None:
    """ORM-enabled INSERT/UPDATE through ``Session.execute`` are captured, not broken."""
    with sqlaudit.audit("bulk", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        session.execute(insert(Author), [{"id": 400, "name": "x"}, {"id": 401, "name": "y"}])
        session.execute(update(Author).where(Author.id == 400).values(name="z"))
        session.commit()
    assert report.counts.get("insert", 0) >= 1
    assert report.counts["update"] == 1
    assert report.internal_errors == 0


class _Probe:
    """A detector that only notes that it ran; ``needs`` set as built-in detectors do."""

    def __init__(self, kind: str, needs: str | None) -> None:
        self.kind = kind
        self.ran = 0
        if needs is not None:
            self.needs = needs

    def detect(self, unit: object, records: object) -> Iterator[sqlaudit.Finding]:
        self.ran += 1
        return iter(())


def test_detectors_with_nothing_to_look_at_are_skipped(db: Engine) -> None:
    """Built-in detectors name what they look at (``needs``); a unit without it skips them
    (a unit of SELECTs runs no write, lazy-load or transaction-write detector). A detector
    without ``needs`` always runs; the skip changes no finding."""
    probes = {
        need: _Probe(f"probe_{need or 'none'}", need)
        for need in ("lazy", "column", "read", "write", "tx_writes", "transactions")
    }
    always = _Probe("probe_always", None)
    unknown = _Probe("probe_unknown", "something_new")
    detectors = (*probes.values(), always, unknown, *sqlaudit.detectors.DEFAULT_DETECTORS)
    with Session(db) as session:
        with sqlaudit.audit("reads", on_finding="ignore", **UNTIMED, detectors=detectors) as reads:
            for i in (1, 2, 3):
                session.scalars(select(Book).where(Book.id == i)).all()
        ran = {need: p.ran for need, p in probes.items()}
        assert ran == {
            "lazy": 0,
            "column": 0,
            "read": 1,
            "write": 0,
            "tx_writes": 0,
            "transactions": 1,
        }
        assert (always.ran, unknown.ran) == (1, 1)
        assert "repeated_query" in kinds(reads)
        with sqlaudit.audit("lazy", on_finding="ignore", **UNTIMED, detectors=detectors) as lazy:
            for author in session.scalars(select(Author)).all():
                len(author.books)
        assert probes["lazy"].ran == 1
        assert "n_plus_one" in kinds(lazy)
        with sqlaudit.audit("writes", on_finding="ignore", **UNTIMED, detectors=detectors):
            session.execute(update(Book).where(Book.id == 1).values(title="renamed"))
            session.rollback()
        assert (probes["write"].ran, probes["tx_writes"].ran) == (1, 1)
