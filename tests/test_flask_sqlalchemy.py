"""``sqlaudit.instrument(db)``: one line for a Flask-SQLAlchemy extension and an app factory.

The engines of a Flask-SQLAlchemy app exist only once ``create_app()`` called
``db.init_app(app)``, and a unittest suite calls ``create_app()`` in every ``setUp``: the one
line must instrument every bind of every app made after it, and ``instrument()`` must say what
to pass when given something else."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from plugin_cases.support import run
from sqlalchemy import ForeignKey, String, create_engine, select, text
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    scoped_session,
    sessionmaker,
)
from timing import UNTIMED

import sqlaudit
from sqlaudit import ConfigError, ExtensionInstrumentation

pytest_plugins = ("pytester",)

#: The application of the pytester case: a module-level extension, one line of sqlaudit, an
#: app factory with two binds and an endpoint with an N+1.
APP = """
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

import sqlaudit


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
sqlaudit.instrument(db)  # every engine and bind of every app init_app() makes from now on


class Author(db.Model):
    __tablename__ = "sqlaudit_t_fsa_author"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    books: Mapped[list["Book"]] = relationship(order_by="Book.id")


class Book(db.Model):
    __tablename__ = "sqlaudit_t_fsa_book"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_fsa_author.id"))
    title: Mapped[str] = mapped_column(String(40))


class Event(db.Model):
    __bind_key__ = "events"
    __tablename__ = "sqlaudit_t_fsa_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    app.config["SQLALCHEMY_BINDS"] = {"events": "sqlite://"}
    db.init_app(app)

    @app.get("/authors")
    def authors():
        db.session.add(Event(name="listed"))
        db.session.commit()
        rows = db.session.scalars(select(Author).order_by(Author.id))
        return {a.name: [b.title for b in a.books] for a in rows}

    with app.app_context():
        db.create_all()
        for i in range(1, 4):
            books = [Book(title=f"b{i}.{j}") for j in (1, 2)]
            db.session.add(Author(id=i, name=f"a{i}", books=books))
        db.session.commit()
    return app
"""

TESTS = """
import unittest

import pytest

from app import create_app, db


class AuthorsTest(unittest.TestCase):
    def setUp(self):
        self.app = create_app()  # a new app, new engines, every test
        self.client = self.app.test_client()

    def tearDown(self):
        with self.app.app_context():
            for engine in db.engines.values():
                engine.dispose()

    def test_authors(self):
        self.assertEqual(len(self.client.get("/authors").json), 3)

    def test_authors_again(self):
        self.assertEqual(len(self.client.get("/authors").json), 3)

    @pytest.mark.query_budget(2)
    def test_authors_on_a_budget(self):
        self.assertEqual(len(self.client.get("/authors").json), 3)
"""


def test_app_factory_per_test_is_audited_through_one_line(pytester: pytest.Pytester) -> None:
    """A unittest suite whose setUp builds a new Flask-SQLAlchemy app per test: with the one
    ``sqlaudit.instrument(db)`` line every test's requests are audited on both binds, the
    N+1 fails each test under ``--sqlaudit``, and the budget counts the write to the second
    bind (before issue 19, ``instrument(db)`` raised ConfigError: nothing was audited)."""
    pytester.makepyfile(app=APP, test_authors=TESTS)
    result = run(pytester, "--sqlaudit")
    result.assert_outcomes(failed=3)
    out = result.stdout.str()
    assert out.count("GET /authors: N+1: Author.books lazy-loaded 3x, once per Author") >= 3
    # The INSERT on the "events" bind, the authors, 3 lazy loads.
    assert "query budget exceeded: 5 statements (1 insert, 4 select), budget 2" in out


class _Base(DeclarativeBase):
    pass


class _Thing(_Base):
    __tablename__ = "sqlaudit_t_fsa_thing"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class _Part(_Base):
    __tablename__ = "sqlaudit_t_fsa_part"
    id: Mapped[int] = mapped_column(primary_key=True)
    thing_id: Mapped[int] = mapped_column(ForeignKey("sqlaudit_t_fsa_thing.id"))
    thing: Mapped[_Thing] = relationship()


def _app(db: SQLAlchemy, binds: dict[str, str] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite://"
    app.config["SQLALCHEMY_BINDS"] = binds or {}
    db.init_app(app)
    return app


def _counts(app: Flask, db: SQLAlchemy) -> dict[str | None, int]:
    """Statements counted per bind key, one ``SELECT 1`` on each engine of ``app``."""
    out = {}
    with app.app_context():
        for key, engine in db.engines.items():
            with sqlaudit.audit(f"bind {key}", on_finding="ignore") as report:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            out[key] = report.query_count
    return out


@pytest.fixture
def db() -> Iterator[SQLAlchemy]:
    extension = SQLAlchemy()
    yield extension
    sqlaudit.instrument(extension, orm=False).remove()  # the test's handle, whichever it was


def test_engines_before_and_after_the_call_every_bind(db: SQLAlchemy) -> None:
    """Engines that exist when ``instrument(db)`` is called and those ``init_app`` creates
    later, every bind of each app, are audited; the handle lists the live ones."""
    early = _app(db, {"reports": "sqlite://"})
    handle = sqlaudit.instrument(db)
    assert isinstance(handle, ExtensionInstrumentation)
    late = _app(db, {"reports": "sqlite://", "archive": "sqlite://"})
    assert _counts(early, db) == {None: 1, "reports": 1}
    assert _counts(late, db) == {None: 1, "reports": 1, "archive": 1}
    assert len(handle.engines) == 5
    assert sqlaudit.instrument(db) is handle  # idempotent, like instrument(engine)
    assert all(h.active for h in handle)


def test_remove_stops_instrumenting_and_restores_the_extension(db: SQLAlchemy) -> None:
    """``remove()`` takes the listeners off every engine and gives the extension its own
    ``_make_engine`` back: an app made afterwards is not instrumented."""
    handle = sqlaudit.instrument(db)
    first = _app(db)
    handle.remove()
    handle.remove()  # idempotent
    assert "_make_engine" not in vars(db)
    assert not handle.active
    assert _counts(first, db) == {None: 0}
    assert _counts(_app(db), db) == {None: 0}
    again = sqlaudit.instrument(db)
    assert again is not handle
    assert _counts(first, db) == {None: 1}


def test_apps_of_finished_tests_are_not_kept(db: SQLAlchemy) -> None:
    """An app per test: the handle holds its engines weakly, so collected apps drop out."""
    handle = sqlaudit.instrument(db)
    for _ in range(5):
        _app(db)
    gc.collect()
    keep = _app(db)
    assert len(handle.engines) == 1
    assert _counts(keep, db) == {None: 1}


def test_orm_false_then_true_is_refused(db: SQLAlchemy) -> None:
    """As for an engine: an extension instrumented with ``orm=False`` is not silently
    upgraded."""
    sqlaudit.instrument(db, orm=False)
    with pytest.raises(ConfigError, match="already instrumented with orm=False"):
        sqlaudit.instrument(db)


@pytest.mark.parametrize(
    ("make", "advice"),
    [
        pytest.param(Session, "sqlaudit.instrument(session.get_bind())", id="session"),
        pytest.param(lambda e: scoped_session(sessionmaker(e)), "session.get_bind()", id="scoped"),
        pytest.param(sessionmaker, "the bind= of the sessionmaker", id="sessionmaker"),
        pytest.param(lambda e: e.connect(), "pass connection.engine", id="connection"),
        pytest.param(lambda e: e.url, "create the engine first", id="url"),
        pytest.param(
            lambda e: _flask_app_with_extension(),
            "pass the Flask-SQLAlchemy extension, sqlaudit.instrument(db)",
            id="flask-app",
        ),
        pytest.param(lambda e: Flask("bare"), "or its Flask-SQLAlchemy extension", id="bare-app"),
    ],
)
def test_unsupported_objects_say_what_to_pass(make: object, advice: str) -> None:
    """The ConfigError names what it got and what to pass instead."""
    engine = create_engine("sqlite://")
    thing = make(engine)  # type: ignore[operator]
    try:
        with pytest.raises(ConfigError) as error:
            sqlaudit.instrument(thing)
    finally:
        close = getattr(thing, "close", None)
        if callable(close):
            close()
        engine.dispose()
    assert str(error.value).startswith(
        "instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy extension"
    )
    assert f"got {type(thing).__module__}.{type(thing).__qualname__}: " in str(error.value)
    assert advice in str(error.value)


def _flask_app_with_extension() -> Flask:
    return _app(SQLAlchemy())


def test_app_factory_n_plus_one_inside_an_audit(db: SQLAlchemy) -> None:
    """The lazy loads of an app made after the call are ORM-attributed (relationship, fix)."""
    sqlaudit.instrument(db)
    app = _app(db)
    with app.app_context():
        _Base.metadata.create_all(db.engine)
        with Session(db.engine) as session:
            session.add_all([_Part(id=i, thing=_Thing(id=i, name=f"t{i}")) for i in (1, 2, 3)])
            session.commit()
        with (
            sqlaudit.audit("parts", on_finding="ignore", **UNTIMED) as report,
            Session(db.engine) as session,
        ):
            names = [part.thing.name for part in session.scalars(select(_Part))]
    assert names == ["t1", "t2", "t3"]
    [finding] = report.findings
    assert (finding.kind, finding.relationship) == ("n_plus_one", "_Part.thing")
    assert "joinedload(_Part.thing)" in finding.fix
