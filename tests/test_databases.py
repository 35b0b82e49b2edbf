"""The test databases themselves: fixtures reach real servers, resolution skips or fails."""

from __future__ import annotations

import asyncio
import threading

import databases
import pytest
from sqlalchemy import Column, Engine, ForeignKey, Integer, MetaData, Table, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

UNREACHABLE_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:1/test"


def test_engine_answers(engine: Engine) -> None:
    """Each configured server answers a trivial query."""
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


def test_async_engine_answers(async_engine: AsyncEngine) -> None:
    """Each async driver answers a trivial query inside its own event loop."""

    async def select_one() -> int:
        async with async_engine.connect() as connection:
            result = await connection.execute(text("SELECT 1"))
            return int(result.scalar_one())

    assert asyncio.run(select_one()) == 1
    # A second loop on the same engine works as well (tests may call asyncio.run repeatedly).
    assert asyncio.run(select_one()) == 1


def test_sqlite_engine_is_shared_across_threads(sqlite_engine: Engine) -> None:
    """The in-memory SQLite database is one database for every connection and thread."""
    with sqlite_engine.begin() as connection:
        connection.execute(text("CREATE TABLE sqlaudit_t_threads (x INTEGER)"))
    seen: list[int] = []

    def insert_and_count() -> None:
        with sqlite_engine.begin() as connection:
            connection.execute(text("INSERT INTO sqlaudit_t_threads VALUES (1)"))
            seen.append(
                connection.execute(text("SELECT count(*) FROM sqlaudit_t_threads")).scalar_one()
            )

    thread = threading.Thread(target=insert_and_count)
    thread.start()
    thread.join()
    assert seen == [1]


def test_clean_db_drops_prefixed_tables(clean_db: Engine) -> None:
    """Tables named sqlaudit_t_* (even linked by a foreign key) are dropped, others kept."""
    metadata = MetaData()
    Table("sqlaudit_t_parent", metadata, Column("id", Integer, primary_key=True))
    Table(
        "sqlaudit_t_child",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("parent_id", Integer, ForeignKey("sqlaudit_t_parent.id")),
    )
    other = MetaData()
    Table("keep_me_sqlaudit_t", other, Column("id", Integer, primary_key=True))
    metadata.create_all(clean_db)
    other.create_all(clean_db)
    try:
        with clean_db.connect() as connection:
            dropped = databases.drop_prefixed_tables(connection)
        assert dropped == ["sqlaudit_t_child", "sqlaudit_t_parent"]
        names = set(inspect(clean_db).get_table_names())
        assert "keep_me_sqlaudit_t" in names
        assert not {n for n in names if n.startswith(databases.TABLE_PREFIX)}
    finally:
        other.drop_all(clean_db)


@pytest.fixture
def fresh_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve from scratch; the session's cached resolutions come back afterwards."""
    monkeypatch.setattr(databases, "_resolved", {})


@pytest.mark.usefixtures("fresh_resolution")
def test_unreachable_server_fails_when_servers_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SQLAUDIT_TEST_MYSQL_URL", UNREACHABLE_MYSQL_URL)
    monkeypatch.setenv("SQLAUDIT_REQUIRE_SERVERS", "1")
    with pytest.raises(pytest.fail.Exception, match=r"127\.0\.0\.1:1/test"):
        databases.resolve_url("mysql")


@pytest.mark.usefixtures("fresh_resolution")
def test_unreachable_server_skips_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQLAUDIT_TEST_MYSQL_URL", UNREACHABLE_MYSQL_URL)
    monkeypatch.delenv("SQLAUDIT_REQUIRE_SERVERS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="did not answer"):
        databases.resolve_url("mysql")
    # The outcome is cached: the second call skips again without reconnecting.
    with pytest.raises(pytest.skip.Exception, match="did not answer"):
        databases.resolve_url("mysql")


@pytest.mark.usefixtures("fresh_resolution")
def test_missing_server_reason_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SQLAUDIT_TEST_POSTGRES_URL", raising=False)
    monkeypatch.delenv("SQLAUDIT_REQUIRE_SERVERS", raising=False)
    # No testcontainers fallback here, whatever this machine has.
    monkeypatch.setattr(databases, "_containers", {})

    def no_container(kind: databases.Kind) -> str:
        raise databases._NoContainerError("disabled for this test")

    monkeypatch.setattr(databases, "_container_url", no_container)
    # Nor the local server .ci/run uses: a port where nothing listens.
    monkeypatch.setitem(
        databases.LOCAL_URL, "postgresql", "postgresql+psycopg://postgres@127.0.0.1:1/test"
    )
    with pytest.raises(pytest.skip.Exception, match="SQLAUDIT_TEST_POSTGRES_URL"):
        databases.resolve_url("postgresql")
