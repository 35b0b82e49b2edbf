"""Shared fixtures: real databases for sqlaudit's own tests.

Databases (see ``databases.py`` beside this file and DESIGN.md, "Databases"): SQLite in
memory always; MariaDB/MySQL and PostgreSQL from ``SQLAUDIT_TEST_MYSQL_URL`` /
``SQLAUDIT_TEST_POSTGRES_URL``, else testcontainers, else the test is skipped (or fails when
``SQLAUDIT_REQUIRE_SERVERS=1``, as in CI). ``.ci/run`` starts the local servers and sets all
three variables.

Tables: the server databases are shared by every test (and by earlier runs), so each test
creates the tables it needs itself, e.g. ``Base.metadata.create_all(engine)``, drops them with
``Base.metadata.drop_all(engine)`` at teardown, and names them with the prefix
``sqlaudit_t_`` (``databases.TABLE_PREFIX``). Requesting the ``clean_db`` fixture drops every
``sqlaudit_t_*`` table at teardown even when the test failed half-way; tables left behind by an
interrupted run are dropped when a server is first reached in a session.

Async: ``async_engine`` is a plain (sync) fixture; a test drives it with ``asyncio.run(...)``
itself (pytest-asyncio is not a dependency).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Iterator

import databases
import pytest
import timing
from databases import Kind, drop_prefixed_tables, resolve_url, stop_containers
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool, StaticPool

# sqlaudit's own tests run strict: internal errors re-raise instead of being swallowed. Set at
# conftest import, before any test module imports sqlaudit.
os.environ.setdefault("SQLAUDIT_STRICT", "1")

DB_KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]
ASYNC_DB_KINDS: list[Kind] = ["sqlite", "mysql", "postgresql"]

# The SQLAlchemy dialects of every test engine, imported here, before any test. An in-process
# ``pytester`` run (the plugin and realapp tests) drops from ``sys.modules`` every module first
# imported during it, while SQLAlchemy's process-wide registries (dialects, GenericFunctions)
# keep what those modules registered: a dialect first imported inside such a run would be
# imported again by the next test that needs it, and the PostgreSQL dialect's second
# registration of ``_regconfig_fn`` warns (an error here). tests/test_suite_isolation.py.
for _kind in DB_KINDS:
    importlib.import_module(f"sqlalchemy.dialects.{_kind}")


#: ``SQLAUDIT_TEST_CLOCK=slow``: sqlaudit's clock moves ten seconds at every read (see timing.py).
SLOW_CLOCK = os.environ.get("SQLAUDIT_TEST_CLOCK", "") == "slow"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "real_clock: the test measures real elapsed time itself (export waits, timestamps); "
        "SQLAUDIT_TEST_CLOCK=slow leaves its clock alone",
    )
    config.addinivalue_line(
        "markers",
        "heavy: a soak or memory-bound test of tens of seconds; .ci/run runs it in suite 2 "
        "only (it asserts no timing verdict and exercises sqlaudit's code, not SQLAlchemy's)",
    )
    config.addinivalue_line(
        "markers",
        "fresh_venv: builds virtualenvs of its own (whatever the suite's SQLAlchemy); .ci/run "
        "runs it in suite 2 only",
    )


@pytest.fixture(autouse=SLOW_CLOCK)
def _slow_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Under ``SQLAUDIT_TEST_CLOCK=slow``: every statement slow, every transaction long, unless
    the test controls time itself (the ``clock`` fixture) or measures real time (``real_clock``
    marker)."""
    if "clock" in request.fixturenames or request.node.get_closest_marker("real_clock"):
        yield
        return
    with timing.installed(timing.Clock(step=10.0)):
        yield


@pytest.fixture
def clock() -> Iterator[timing.Clock]:
    """sqlaudit's clock, controlled by the test: no time passes unless ``clock.advance(s)``."""
    with timing.installed(timing.Clock()) as controlled:
        yield controlled


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Iterator[None]:
    """Skips for a missing database server are reported at ``databases.py``, not at each test,
    so pytest's summary folds them into one line per backend."""
    report = yield
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple) and databases.SKIP_PREFIX in longrepr[2]:
        report.longrepr = (databases.__file__, 1, longrepr[2])
    return report


def pytest_sessionfinish() -> None:
    """Stop the database containers that testcontainers started, if any."""
    stop_containers()


def make_engine(kind: Kind) -> Engine:
    """A new engine on the test database of ``kind`` (skips/fails the test if there is none).

    SQLite is in memory behind a ``StaticPool`` (one shared connection, usable from any
    thread), so every connection and thread of the test sees the same database.
    """
    url = resolve_url(kind)
    if kind == "sqlite":
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    return create_engine(url)


def make_async_engine(kind: Kind) -> AsyncEngine:
    """A new async engine (aiosqlite, aiomysql or psycopg async) on the test database of
    ``kind``.

    MariaDB and PostgreSQL use ``NullPool``: each ``asyncio.run`` has its own event loop, and
    a pooled connection must not outlive the loop it was made in.
    """
    if kind == "sqlite":
        return create_async_engine("sqlite+aiosqlite://", poolclass=StaticPool)
    if kind == "postgresql":
        url = make_url(resolve_url(kind)).set(drivername="postgresql+psycopg_async")
        return create_async_engine(url, poolclass=NullPool)
    if kind == "mysql":
        url = make_url(resolve_url(kind)).set(drivername="mysql+aiomysql")
        return create_async_engine(url, poolclass=NullPool)
    raise ValueError(f"no async test engine for {kind!r}")


@pytest.fixture(params=DB_KINDS, ids=DB_KINDS)
def db_kind(request: pytest.FixtureRequest) -> Kind:
    """The database kind of ``engine``; parametrize ``db_kind`` to narrow it for one test."""
    kind: Kind = request.param
    return kind


@pytest.fixture
def engine(db_kind: Kind) -> Iterator[Engine]:
    """A fresh engine for each of SQLite, MariaDB/MySQL and PostgreSQL; disposed afterwards."""
    eng = make_engine(db_kind)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def sqlite_engine() -> Iterator[Engine]:
    """A fresh in-memory SQLite engine (StaticPool), disposed afterwards."""
    eng = make_engine("sqlite")
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def mysql_engine() -> Iterator[Engine]:
    """A fresh MariaDB/MySQL (PyMySQL) engine, disposed afterwards."""
    eng = make_engine("mysql")
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A fresh PostgreSQL (psycopg 3) engine, disposed afterwards."""
    eng = make_engine("postgresql")
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(params=ASYNC_DB_KINDS, ids=ASYNC_DB_KINDS)
def async_engine(request: pytest.FixtureRequest) -> Iterator[AsyncEngine]:
    """A fresh ``AsyncEngine`` on SQLite (aiosqlite) and PostgreSQL (psycopg async).

    Use it from a sync test with ``asyncio.run(...)``; it is disposed afterwards in its own
    ``asyncio.run``.
    """
    kind: Kind = request.param
    eng = make_async_engine(kind)
    try:
        yield eng
    finally:
        asyncio.run(eng.dispose())


@pytest.fixture
def clean_db(engine: Engine) -> Iterator[Engine]:
    """``engine``; at teardown every table named ``sqlaudit_t_*`` in its database is dropped."""
    yield engine
    with engine.connect() as connection:
        drop_prefixed_tables(connection)
