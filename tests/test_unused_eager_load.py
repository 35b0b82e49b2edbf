"""unused_eager_load (opt-in: ``unused_eager_loads=True``) on SQLite, MariaDB and PostgreSQL:
an eager load nobody reads is reported with the option to remove, a read one is not, and with
the switch off nothing is watched at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lines import line_of
from models import Author, Book, prepared
from sqlalchemy import Engine, ForeignKey, select
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    selectinload,
    subqueryload,
)
from sqlalchemy.orm.attributes import InstrumentedAttribute
from timing import UNTIMED, kinds

import sqlaudit
from sqlaudit import Finding

WATCH = {"unused_eager_loads": True, "on_finding": "ignore", **UNTIMED}


class _Base(DeclarativeBase):
    pass


class Shelf(_Base):
    __tablename__ = "sqlaudit_t_shelf"

    id: Mapped[int] = mapped_column(primary_key=True)
    items: Mapped[list[ShelfItem]] = relationship(lazy="selectin", order_by="ShelfItem.id")


class ShelfItem(_Base):
    __tablename__ = "sqlaudit_t_shelf_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    shelf_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_shelf.id"))


@pytest.fixture
def db(engine: Engine) -> Iterator[Engine]:
    with prepared(engine) as eng:
        _Base.metadata.create_all(eng)
        with Session(eng) as session, session.begin():
            session.add_all([Shelf(id=1, items=[ShelfItem(id=1), ShelfItem(id=2)])])
        try:
            yield eng
        finally:
            _Base.metadata.drop_all(eng)


def unused(report: sqlaudit.AuditReport) -> list[Finding]:
    return [f for f in report.findings if f.kind == "unused_eager_load"]


def plain(attribute: object) -> bool:
    """The attribute is SQLAlchemy's own class again (not watched)."""
    return type(attribute) is InstrumentedAttribute


def test_unread_selectinload_is_reported_with_the_option_to_remove(db: Engine) -> None:
    """selectinload(Author.books) whose books nobody reads: one warning at the query's line,
    its extra statement named, the fix removing exactly that option."""
    with sqlaudit.audit("unread", **WATCH) as report, Session(db) as session:
        query = select(Author).options(selectinload(Author.books))
        names = [a.name for a in session.scalars(query)]  # marker: selectin query
    assert len(names) == 5
    assert report.query_count == 2
    assert kinds(report) == ["unused_eager_load"]
    [finding] = unused(report)
    assert finding.relationship == "Author.books"
    assert finding.location is not None
    assert finding.location.line == line_of(__file__, "marker: selectin query")
    assert "loaded with selectinload()" in finding.message
    assert "(1 extra statement(s))" in finding.message
    assert finding.fix.startswith("remove selectinload(Author.books) from the options of")
    loads = [report.statements[i].orm for i in finding.statements]
    assert [load.load if load else None for load in loads] == ["eager"]
    assert plain(Author.books)


def test_read_eager_loads_are_silent(db: Engine) -> None:
    """selectinload, joinedload and subqueryload whose attribute is read (on one object is
    enough) are the cure for an N+1, not a finding."""
    with sqlaudit.audit("read", **WATCH) as report, Session(db) as session:
        authors = session.scalars(select(Author).options(selectinload(Author.books))).all()
        assert authors[0].books
        session.expunge_all()
        books = session.scalars(select(Book).options(joinedload(Book.author))).all()
        assert {b.author.name for b in books}
        session.expunge_all()
        authors = session.scalars(select(Author).options(subqueryload(Author.books))).all()
        assert sum(len(a.books) for a in authors) == 10
    assert kinds(report) == []


@pytest.mark.parametrize(
    ("option", "relationship", "expected"),
    [
        pytest.param(joinedload(Book.author), "Book.author", "joinedload", id="joinedload"),
        pytest.param(subqueryload(Book.reviews), "Book.reviews", "subqueryload", id="subquery"),
    ],
)
def test_unread_joined_and_subquery_loads(
    db: Engine, option: object, relationship: str, expected: str
) -> None:
    """A joined load (a JOIN in the query itself) and a subquery load nobody reads name their
    own loader option."""
    with sqlaudit.audit("unread", **WATCH) as report, Session(db) as session:
        titles = [b.title for b in session.scalars(select(Book).options(option)).unique()]
    assert len(titles) == 10
    [finding] = unused(report)
    assert finding.relationship == relationship
    assert finding.fix.startswith(f"remove {expected}({relationship})")


def test_only_the_unread_link_of_a_chain_is_reported(db: Engine) -> None:
    """selectinload(Author.books).selectinload(Book.reviews) with only the books read: the
    reviews link is the one to drop."""
    with sqlaudit.audit("chain", **WATCH) as report, Session(db) as session:
        chain = selectinload(Author.books).selectinload(Book.reviews)
        authors = session.scalars(select(Author).options(chain)).all()
        assert sum(len(a.books) for a in authors) == 10
    assert [f.relationship for f in unused(report)] == ["Book.reviews"]


def test_relationship_lazy_selectin_names_its_setting(db: Engine) -> None:
    """A relationship configured lazy="selectin" and never read: the fix overrides it on the
    query (lazyload) or changes the default."""
    with sqlaudit.audit("configured", **WATCH) as report, Session(db) as session:
        assert [s.id for s in session.scalars(select(Shelf))] == [1]
    [finding] = unused(report)
    assert finding.relationship == "Shelf.items"
    assert "by its lazy='selectin' setting" in finding.message
    assert "add .options(lazyload(Shelf.items))" in finding.fix


def test_a_read_inside_a_nested_unit_counts(db: Engine) -> None:
    """Objects loaded by the outer unit and read in a unit opened inside it (a request in a
    test, here without the switch) were read."""
    with sqlaudit.audit("outer", **WATCH) as report, Session(db) as session:
        authors = session.scalars(select(Author).options(selectinload(Author.books))).all()
        with sqlaudit.audit("inner", on_finding="ignore", **UNTIMED):
            assert authors[0].books
    assert kinds(report) == []


def test_off_by_default_nothing_is_watched(db: Engine) -> None:
    """Without the switch the same unread load is not reported, the attribute is never
    swapped and no eager load is recorded: nothing is paid."""
    with sqlaudit.audit("off", on_finding="ignore", **UNTIMED) as report, Session(db) as session:
        session.scalars(select(Author).options(selectinload(Author.books))).all()
        assert plain(Author.books)
    assert kinds(report) == []
    assert report.unit is not None
    assert report.unit.eager_loads == ()


def test_attribute_is_restored_when_the_unit_fails(db: Engine) -> None:
    """An exception leaving the audit still restores the watched attribute's class."""
    with pytest.raises(RuntimeError), sqlaudit.audit("fails", **WATCH), Session(db) as session:
        session.scalars(select(Author).options(selectinload(Author.books))).all()
        assert type(Author.books) is not InstrumentedAttribute  # watched while open
        raise RuntimeError("boom")
    assert plain(Author.books)
