"""Where the test suite finds its databases.

``resolve_url(kind)`` returns a SQLAlchemy URL for ``"sqlite"``, ``"mysql"`` or
``"postgresql"``, or ends the calling test:

* sqlite: ``sqlite://`` (in memory), or ``SQLAUDIT_TEST_SQLITE_URL`` when set.
* mysql / postgresql, in this order:

  1. the URL in ``SQLAUDIT_TEST_MYSQL_URL`` / ``SQLAUDIT_TEST_POSTGRES_URL``;
  2. the local servers (``LOCAL_URL``: MariaDB as root on 127.0.0.1:3306, PostgreSQL as
     postgres on 127.0.0.1:5432, database ``test``), when they answer (``.ci/run`` starts
     them and sets the URLs of a database of its own, ``sqlaudit_ci``: case 1);
  3. a container started through ``testcontainers`` (``mariadb:10.11`` with PyMySQL,
     ``postgres:16`` with psycopg 3), once per session, when that package imports and a
     Docker engine answers;
  4. otherwise ``pytest.skip`` with a one-line reason naming how to provide a server (the
     skips of one backend fold into one line of pytest's summary), or ``pytest.fail`` when
     ``SQLAUDIT_REQUIRE_SERVERS=1`` (CI sets it).

A server URL is only handed out once a connection to it has answered ``SELECT 1``; the
outcome (URL or reason) is cached per kind for the session. On that first connection, tables
left behind by an earlier, interrupted run (names starting with ``TABLE_PREFIX``) are dropped.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, get_args

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, make_url

Kind = Literal["sqlite", "mysql", "postgresql"]
KINDS: tuple[Kind, ...] = get_args(Kind)

#: Tests name their tables with this prefix; ``drop_prefixed_tables`` removes them.
TABLE_PREFIX = "sqlaudit_t_"

REQUIRE_ENV = "SQLAUDIT_REQUIRE_SERVERS"
URL_ENV: dict[Kind, str] = {
    "sqlite": "SQLAUDIT_TEST_SQLITE_URL",
    "mysql": "SQLAUDIT_TEST_MYSQL_URL",
    "postgresql": "SQLAUDIT_TEST_POSTGRES_URL",
}
_DRIVERNAME: dict[Kind, str] = {
    "sqlite": "sqlite",
    "mysql": "mysql+pymysql",
    "postgresql": "postgresql+psycopg",
}
#: The servers ``.ci/run`` starts (and ``bash .ci/run --services-only`` starts alone).
LOCAL_URL: dict[Kind, str] = {
    "sqlite": "sqlite://",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
}
#: Every skip for a missing server starts with this (conftest folds them per backend).
SKIP_PREFIX = "sqlaudit test database: "
_CONNECT_TIMEOUT_S = 10
_LOCAL_TIMEOUT_S = 2
_LOCK_TIMEOUT_S = 15


@dataclass(frozen=True)
class _Resolution:
    url: str | None
    reason: str | None


# kind -> outcome of the first resolution; tests may swap this dict to start afresh.
_resolved: dict[Kind, _Resolution] = {}
# kind -> started testcontainers container (kept apart from _resolved: never started twice).
_containers: dict[Kind, Any] = {}


def servers_required() -> bool:
    """True when a missing server must fail the test instead of skipping it."""
    return os.environ.get(REQUIRE_ENV, "").strip() == "1"


def resolve_url(kind: Kind) -> str:
    """The URL of an answering database of ``kind``, else skip (or fail) the calling test."""
    if kind not in KINDS:
        raise ValueError(f"unknown database kind {kind!r}; expected one of {KINDS}")
    resolution = _resolved.get(kind)
    if resolution is None:
        resolution = _resolve(kind)
        _resolved[kind] = resolution
    if resolution.url is None:
        _give_up(resolution.reason or f"no {kind} database")
    return resolution.url


def reset_cache() -> None:
    """Forget every cached resolution (started containers are kept)."""
    _resolved.clear()


def stop_containers() -> None:
    """Stop the containers started by ``resolve_url``; called once at the end of the session."""
    while _containers:
        _kind, container = _containers.popitem()
        with contextlib.suppress(Exception):  # best effort at session end
            container.stop()


def drop_prefixed_tables(connection: Connection, prefix: str = TABLE_PREFIX) -> list[str]:
    """Drop every table of the connection's default schema whose name starts with ``prefix``.

    Foreign keys between those tables do not matter (checks are switched off, or ``CASCADE``
    is used). Commits; returns the names dropped.
    """
    names = sorted(n for n in inspect(connection).get_table_names() if n.startswith(prefix))
    # The inspector may have begun a transaction; end it before changing session settings.
    connection.commit()
    if not names:
        return names
    dialect = connection.dialect.name
    quote = connection.dialect.identifier_preparer.quote
    quoted = ", ".join(quote(n) for n in names)
    if dialect == "postgresql":
        connection.exec_driver_sql(f"SET lock_timeout = '{_LOCK_TIMEOUT_S}s'")
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quoted} CASCADE")
        connection.exec_driver_sql("RESET lock_timeout")
    elif dialect in ("mysql", "mariadb"):
        connection.exec_driver_sql(f"SET SESSION lock_wait_timeout = {_LOCK_TIMEOUT_S}")
        connection.exec_driver_sql("SET SESSION foreign_key_checks = 0")
        try:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quoted}")
        finally:
            connection.exec_driver_sql("SET SESSION foreign_key_checks = 1")
            connection.exec_driver_sql("SET SESSION lock_wait_timeout = DEFAULT")
    elif dialect == "sqlite":
        fk_on = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()
        connection.commit()
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")
        try:
            for name in names:
                connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")
            connection.commit()
        finally:
            if fk_on:
                connection.exec_driver_sql("PRAGMA foreign_keys = ON")
    else:
        for name in names:
            connection.exec_driver_sql(f"DROP TABLE IF EXISTS {quote(name)}")
    connection.commit()
    return names


def _give_up(reason: str) -> NoReturn:
    if servers_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(reason)


def _resolve(kind: Kind) -> _Resolution:
    env_name = URL_ENV[kind]
    url = os.environ.get(env_name, "").strip()
    if url:
        origin = f"${env_name}"
    elif kind == "sqlite":
        url, origin = "sqlite://", "default"
    elif _check(LOCAL_URL[kind], _LOCAL_TIMEOUT_S) is None:
        return _Resolution(LOCAL_URL[kind], None)
    else:
        try:
            url = _container_url(kind)
        except _NoContainerError as exc:
            return _Resolution(
                None,
                f"{SKIP_PREFIX}no {kind} server: set {env_name} (e.g. {LOCAL_URL[kind]}) or "
                f"start the local one with `bash .ci/run --services-only` ({exc})",
            )
        origin = "testcontainers"
    error = _check(url)
    if error is not None:
        return _Resolution(
            None,
            f"{SKIP_PREFIX}{kind} server at {_shown(url)} (from {origin}) did not answer: {error}",
        )
    return _Resolution(url, None)


def _check(url: str, timeout: int = _CONNECT_TIMEOUT_S) -> str | None:
    """None when ``url`` answers ``SELECT 1`` (and stale test tables were dropped)."""
    try:
        parsed = make_url(url)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() in ("mysql", "mariadb", "postgresql"):
            connect_args["connect_timeout"] = timeout
        engine = create_engine(parsed, connect_args=connect_args)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1")).scalar_one()
                if parsed.get_backend_name() != "sqlite":
                    _drop_stale_tables(connection)
        finally:
            engine.dispose()
    except Exception as exc:  # any failure becomes the skip reason
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {first_line}"
    return None


def _drop_stale_tables(connection: Connection) -> None:
    try:
        drop_prefixed_tables(connection)
    except Exception as exc:  # e.g. a lock held elsewhere: the tests can still run
        connection.rollback()
        warnings.warn(
            f"could not drop stale {TABLE_PREFIX}* tables: {type(exc).__name__}: {exc}",
            stacklevel=2,
        )


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: show it as given
        return url


class _NoContainerError(Exception):
    """testcontainers cannot provide a server here; the message says why."""


def _container_url(kind: Kind) -> str:
    container = _containers.get(kind)
    if container is None:
        container = _start_container(kind)
        _containers[kind] = container
    raw = str(container.get_connection_url())
    return make_url(raw).set(drivername=_DRIVERNAME[kind]).render_as_string(hide_password=False)


def _start_container(kind: Kind) -> Any:
    try:
        docker = importlib.import_module("docker")
        container_class = _mysql_container_class() if kind == "mysql" else _postgres_class()
    except ImportError as exc:
        raise _NoContainerError(f"testcontainers not importable: {exc}") from exc
    try:
        docker.from_env(timeout=5).ping()
    except Exception as exc:  # no engine, no socket, no permission...
        raise _NoContainerError("no Docker engine for testcontainers") from exc
    try:
        if kind == "mysql":
            try:
                container = container_class("mariadb:10.11", dialect="pymysql")
            except TypeError:  # no ``dialect`` in older releases; the URL is rewritten anyway
                container = container_class("mariadb:10.11")
        else:
            container = container_class("postgres:16", driver="psycopg")
        container.start()
    except Exception as exc:  # pull or start failure
        raise _NoContainerError(f"container did not start: {type(exc).__name__}: {exc}") from exc
    return container


def _mysql_container_class() -> Any:
    try:
        from testcontainers.community.mysql import MySqlContainer
    except ImportError:  # older testcontainers 4.x
        from testcontainers.mysql import MySqlContainer
    return MySqlContainer


def _postgres_class() -> Any:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # older testcontainers 4.x
        from testcontainers.postgres import PostgresContainer
    return PostgresContainer
