"""Small applications shaped like real open-source ones, each with the test suite its project
would write (issue 16, item 7), run through the pytest plugin in fail mode by
``tests/test_realapp_*.py``:

* ``flask_blog``: Flask + Flask-SQLAlchemy, an app factory, blueprints, Jinja2 templates, a
  token API, a repository layer; tests with ``app.test_client()`` (the Flask tutorial's shape);
* ``starlette_admin``: an admin-style CRUD on plain Starlette, sync handlers (run in worker
  threads) on a sync engine and async handlers on an aiosqlite engine, ``TestClient``;
* ``fastapi_sqlmodel``: FastAPI + SQLModel with a request-scoped ``Depends(get_session)``,
  ``TestClient`` and ``httpx.ASGITransport`` (FastAPI's "full stack" template's shape).

Each directory is a project root (its own ``pyproject.toml``, package and ``tests/``), copied
into ``pytester``'s directory and run there, so locations are relative to the project as a
user sees them. ``conftest.py`` beside this file keeps the outer run from collecting them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from plugin_cases.support import run
from timing import TIMING_KINDS

HERE = Path(__file__).resolve().parent

#: One finding as the tests compare it: everything but its timings.
Found = tuple[str, str, str | None, str | None, str | None, int, str]


def lay_out(pytester: pytest.Pytester, app: str) -> Path:
    """Copy the project ``app`` into ``pytester``'s directory (its root)."""
    shutil.copytree(
        HERE / app,
        pytester.path,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    return HERE / app


def run_suite(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    """Run the project's suite in fail mode (``--sqlaudit``); the result and each test's JSON
    summary by node id."""
    out = pytester.path / "audit.json"
    out.unlink(missing_ok=True)
    result = run(pytester, "--sqlaudit", f"--sqlaudit-json={out.name}", *args)
    tests = json.loads(out.read_text(encoding="utf-8"))["tests"]
    return result, {test["nodeid"]: test for test in tests}


def _where(site: dict[str, Any] | None) -> str | None:
    return None if site is None else f"{site['file']}:{site['line']}"


def found(test: dict[str, Any]) -> list[Found]:
    """The findings of a test's report (timing kinds left out: no test here controls time):
    ``(kind, severity, unit, location, loop, count, message)``."""
    return [
        (
            f["kind"],
            f["severity"],
            f["unit"],
            _where(f["location"]),
            _where(f["loop"]),
            f["count"],
            f["message"],
        )
        for f in test["report"]["findings"]
        if f["kind"] not in TIMING_KINDS
    ]


def failed(result: pytest.RunResult) -> list[str]:
    """Node ids of the tests that failed, sorted (an in-process run keeps its reports)."""
    reports = result.reprec.getfailures()  # type: ignore[attr-defined]
    return sorted({report.nodeid for report in reports})


def only_planted(tests: dict[str, Any], expected: dict[str, Any]) -> dict[str, list[Found]]:
    """Each test's findings, checked: none at all where nothing was planted (not even an info
    one), exactly the planted ``(kind, unit, location, loop, count, message)`` elsewhere."""
    findings: dict[str, list[Found]] = {}
    for nodeid, test in tests.items():
        findings[nodeid] = list(found(test))
        if nodeid not in expected:
            assert findings[nodeid] == [], nodeid
            continue
        assert [
            (kind, unit, location, loop, count, message)
            for kind, _, unit, location, loop, count, message in findings[nodeid]
        ] == [expected[nodeid]], nodeid
    return findings
