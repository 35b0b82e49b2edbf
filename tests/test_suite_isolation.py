"""The suite's own isolation: a test that runs pytest in-process (``pytester``, as the plugin
and realapp tests do) cannot break a later test's engines, whatever the order.

An in-process run drops from ``sys.modules`` every module first imported during it, while
SQLAlchemy's registries keep what those modules registered. tests/conftest.py imports the
dialects of the test engines before any test, so no inner run is the first to import one. The
``fresh_*`` functions below check that in a new process, in this order (the suite's own run
never collects them): an inner run that makes the first engines of the process, then a test
that makes them again. Without the conftest's imports, the second imports the PostgreSQL
dialect again (``SAWarning: The GenericFunction '_regconfig_fn' is already registered``, an
error in this suite) and gets dialect classes of modules no longer in ``sys.modules``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.ext.asyncio import create_async_engine

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parent.parent

#: Never connected: making an engine imports its dialect and driver, and nothing more.
SYNC_URLS = [
    "postgresql+psycopg://sqlaudit@127.0.0.1:1/none",
    "mysql+pymysql://sqlaudit@127.0.0.1:1/none",
    "sqlite://",
]
ASYNC_URLS = [
    "postgresql+psycopg_async://sqlaudit@127.0.0.1:1/none",
    "mysql+aiomysql://sqlaudit@127.0.0.1:1/none",
    "sqlite+aiosqlite://",
]

#: The inner run's test: the sync engines, as the realapp suites make them.
INNER = f"""
from sqlalchemy import create_engine


def test_engines():
    for url in {SYNC_URLS!r}:
        create_engine(url).dispose()
"""


def fresh_inner_run_makes_the_first_engines(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_engines=INNER)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def fresh_later_engines_load_the_dialects_in_sys_modules() -> None:
    dialects = [type(create_async_engine(url).sync_engine.dialect) for url in ASYNC_URLS]
    dialects += [type(create_engine(url).dialect) for url in SYNC_URLS]
    for dialect in dialects:
        module = sys.modules.get(dialect.__module__)
        assert getattr(module, dialect.__name__, None) is dialect, dialect


def test_an_in_process_run_breaks_no_later_engine() -> None:
    """The ``fresh_*`` functions above pass in a new process, in one pytest run."""
    env = {**os.environ}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "no:randomly",
            "-o",
            "python_functions=fresh_*",
            str(Path(__file__).relative_to(ROOT)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
