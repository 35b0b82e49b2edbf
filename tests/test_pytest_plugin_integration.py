"""The pytest plugin with real setups: FastAPI's TestClient, the "outer transaction per test"
fixture on three databases, and the README's examples (run with ``pytester``)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from plugin_cases.support import case, no_ms, project, run, section
from sqlalchemy import Engine

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parent.parent

APP = """
from fastapi import FastAPI
from sqlalchemy.orm import Session

from feedlib import feed
from sqlaudit.asgi import ASGIAuditMiddleware


def make_app(engine, middleware=False):
    app = FastAPI()

    @app.get("/feed")
    def sync_feed(eager: bool = False):
        with Session(engine) as session:
            return feed(session, eager=eager)

    @app.get("/async-feed")
    async def async_feed(eager: bool = False):
        with Session(engine) as session:
            return feed(session, eager=eager)

    if middleware:
        app.add_middleware(ASGIAuditMiddleware, on_finding="ignore")
    return app
"""


def test_fastapi_testclient(pytester: pytest.Pytester) -> None:
    """Statements the app runs in TestClient's threads (sync endpoints in the threadpool, async
    ones on the portal's loop, audited by the ASGI middleware or not) count for the test, and
    each request is judged as a unit named after its route."""
    project(
        pytester,
        """
        import pytest
        from fastapi.testclient import TestClient
        from app import make_app

        @pytest.mark.parametrize("middleware", [False, True])
        @pytest.mark.parametrize("path", ["/feed", "/async-feed"])
        @pytest.mark.query_budget(2)
        def test_feed_page(engine, path, middleware):
            with TestClient(make_app(engine, middleware)) as client:
                assert len(client.get(path).json()) == 20

        @pytest.mark.query_budget(2)
        def test_feed_page_eager(engine):
            with TestClient(make_app(engine)) as client:
                assert client.get("/feed?eager=true").status_code == 200

        def test_blocks(engine, sqlaudit):
            client = TestClient(make_app(engine))
            with sqlaudit.budget(2):
                client.get("/feed?eager=true")
            with sqlaudit.assert_num_queries(21):
                client.get("/async-feed")
            assert sqlaudit.report.query_count == 23
        """,
    )
    pytester.makepyfile(app=APP)
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=4)
    for test_id, request in (
        ("test_feed_page[/feed-False]", "GET /feed: "),  # a unit per TestClient request
        ("test_feed_page[/async-feed-True]", "GET /async-feed: "),  # the middleware's unit
    ):
        failure = section(result, test_id)
        assert failure.startswith("query budget exceeded: 21 statements (21 select), budget 2;")
        assert f"\n{request}N+1: Stream.comments lazy-loaded 20x" in failure
        assert "  20x SELECT … FROM sqlaudit_t_comment WHERE " in failure


INNER_CONFTEST = """
import pytest
from sqlalchemy import create_engine, event

import sqlaudit
from myapp.models import Base, add_streams


@pytest.fixture(scope="session")
def engine():
    engine = create_engine({url!r})
    if engine.dialect.name == "sqlite":
        # pysqlite defers BEGIN and breaks SAVEPOINT: let SQLAlchemy emit BEGIN itself
        # (SQLAlchemy docs, pysqlite "Serializable isolation / Savepoints / Transactional DDL").
        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, record):
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection):
            connection.exec_driver_sql("BEGIN")

    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    add_streams(engine, 3)
    sqlaudit.instrument(engine)
    yield engine
    Base.metadata.drop_all(engine)
    engine.dispose()

"""

OUTER_TESTS = """
import pytest
from sqlalchemy import func, select

from myapp.models import Comment, Stream


@pytest.mark.query_budget(4)
def test_commit_savepoint_rollback(session):
    session.add(Stream(id=100, title="new"))
    session.commit()
    with session.begin_nested():
        session.add(Comment(id=100, stream_id=100, body="kept"))
    session.add(Comment(id=101, stream_id=100, body="rolled back"))
    session.flush()
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Stream)) == 4


def test_the_outer_transaction_was_rolled_back(session):
    assert session.scalar(select(func.count()).select_from(Stream)) == 3
"""

TRANSACTION_KINDS = {
    "autocommit_writes",
    "ineffective_rollback",
    "commit_in_loop",
    "discarded_writes",
    "long_transaction",
    "stale_identity_map",
}


def test_outer_transaction_per_test_pattern(pytester: pytest.Pytester, clean_db: Engine) -> None:
    """The README's "one outer transaction per test" fixture yields no transaction finding on
    SQLite, MariaDB and PostgreSQL, and its savepoints and commits are never counted."""
    url = clean_db.url.render_as_string(hide_password=False)
    project(
        pytester, OUTER_TESTS, INNER_CONFTEST.format(url=url) + case("readme_outer_transaction.py")
    )
    result = run(pytester, "--sqlaudit", "--sqlaudit-json=audit.json")
    result.assert_outcomes(passed=2)
    tests = json.loads((pytester.path / "audit.json").read_text())["tests"]
    assert [t["counts"] for t in tests] == [{"insert": 3, "select": 1}, {"select": 1}]
    for test in tests:
        kinds = {f["kind"] for f in test["findings"]}
        assert not kinds & TRANSACTION_KINDS, test["findings"]
        assert all(f["severity"] == "info" for f in test["findings"]), test["findings"]
        assert test["report"]["counts"].get("transaction", 0) >= (
            2 if "commit" in test["nodeid"] else 1
        )


def test_session_held_by_a_fixture_is_no_finding(pytester: pytest.Pytester) -> None:
    """A plain ``session`` fixture (created in setup, closed in teardown) is no misuse."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, feed

        @pytest.fixture
        def session(engine):
            with Session(engine) as session:
                yield session

        def test_feed(session):
            feed(session, eager=True)
        """,
    )
    run(pytester, "--sqlaudit-fail-on=all").assert_outcomes(passed=1)


def test_readme_examples_run_as_shown(pytester: pytest.Pytester) -> None:
    """The README's conftest and tests: only the planted N+1 fails, with the output shown."""
    project(pytester, case("readme_test_feed.py"))
    result = run(pytester)
    result.assert_outcomes(passed=5, failed=1)
    shown = case("readme_failure.txt")
    header, expected = shown.split("\n", 1)
    assert header == "_" * 34 + " test_feed " + "_" * 35
    assert no_ms(section(result, "test_feed")).strip() == no_ms(expected).strip()


def test_readme_configuration_and_commands(pytester: pytest.Pytester) -> None:
    """The README's pyproject.toml settings and every command line it lists are accepted."""
    project(pytester, case("readme_test_feed.py"))
    pytester.makepyprojecttoml(case("readme_pyproject.toml"))
    configured = run(pytester)
    configured.assert_outcomes(passed=5, failed=1)
    configured.stdout.fnmatch_lines(["sqlaudit: baseline sqlaudit-baseline.json does not exist, *"])
    (pytester.path / "pyproject.toml").unlink()
    for line in case("readme_commands.sh").splitlines():
        args = shlex.split(line, comments=True)
        assert args[0] == "pytest"
        result = run(pytester, *args[1:], subprocess="-n" in args)
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), line
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 6, line


def test_readme_pytest_section_quotes_the_cases() -> None:
    """The README's pytest section shows exactly the files these tests run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## pytest\b.*?(?=^## )", readme, re.M | re.S)
    if match is None:
        pytest.skip("README.md has no '## pytest' section yet")
    blocks = re.findall(r"```[a-z]*\n(.*?)```", match.group(0), re.S)
    expected = [
        case(name)
        for name in (
            "myapp_models.py",
            "readme_conftest.py",
            "readme_test_feed.py",
            "readme_failure.txt",
            "readme_outer_transaction.py",
            "readme_pyproject.toml",
            "readme_commands.sh",
            "readme_allowed.txt",
        )
    ]
    assert blocks == expected


UNITTEST_CASE = """
import unittest

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

import sqlaudit
from myapp.models import Base, Stream, add_streams


class FeedTest(unittest.TestCase):
    def setUp(self):
        # An app-factory suite: every test builds its database (DDL, PRAGMAs, seed rows).
        self.engine = create_engine("sqlite://", poolclass=StaticPool)
        self.handle = sqlaudit.instrument(self.engine)
        Base.metadata.create_all(self.engine)
        add_streams(self.engine, 3)

    def tearDown(self):
        Base.metadata.drop_all(self.engine)
        self.handle.remove()
        self.engine.dispose()

    @pytest.mark.query_budget(1)
    def test_titles(self):
        with Session(self.engine) as session:
            self.assertEqual(len(session.scalars(select(Stream)).all()), 3)
"""


@pytest.mark.parametrize(
    ("scope", "outcomes"),
    [
        ("call", {"passed": 1}),
        ("setup+call", {"failed": 1}),
        ("all", {"passed": 1, "errors": 1}),  # judged at teardown, like fixtures
    ],
)
def test_unittest_setup_and_teardown_are_setup(
    pytester: pytest.Pytester, scope: str, outcomes: dict[str, int]
) -> None:
    """A unittest TestCase's setUp and tearDown run inside pytest's call phase, but their
    statements (DDL, seed rows) are setup, as for fixtures: not counted with the default
    ``sqlaudit_scope=call``, counted with ``setup+call`` (setUp) and ``all``."""
    project(pytester, UNITTEST_CASE)
    result = run(pytester, "--sqlaudit", f"--sqlaudit-scope={scope}")
    result.assert_outcomes(**outcomes)
    if scope != "call":
        result.stdout.fnmatch_lines(["*query budget exceeded: * statements*budget 1*"])
