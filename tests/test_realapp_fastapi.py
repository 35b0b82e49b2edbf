"""A FastAPI + SQLModel backend (``tests/realapps/fastapi_sqlmodel``: SQLModel's tutorial
models, routers, a request-scoped ``Depends(get_session)``) and its own suite in the style of
SQLModel's "Test Applications" chapter (``TestClient``, ``httpx.ASGITransport``, the session
dependency overridden per request, and as the documentation does, with the test's own session),
run through the pytest plugin in fail mode (issue 16, item 7): clean tests pass, the two planted
N+1s (one in the endpoint, one in FastAPI's serialization of a ``response_model``) fail their
tests at the right line, and a second run finds exactly what the first did."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy
from lines import line_of
from packaging.requirements import Requirement
from realapps import failed, lay_out, only_planted, run_suite

pytest_plugins = ("pytester",)

APP = "fastapi_sqlmodel"
ROSTER = "tests/test_heroes.py::test_roster"
TEAMS_FULL = "tests/test_teams.py::test_teams_with_heroes"


def _sqlmodel_unusable() -> str | None:
    """Why SQLModel cannot run here (None if it can): not installed (the ``test`` extra installs
    it from Python 3.11 on), or a release that does not support this SQLAlchemy."""
    try:
        requires = metadata.requires("sqlmodel") or []
    except metadata.PackageNotFoundError:
        return "sqlmodel is not installed (the test extra installs it on Python >= 3.11)"
    for text in requires:
        requirement = Requirement(text)
        if (
            requirement.name.lower() == "sqlalchemy"
            and not requirement.marker
            and not requirement.specifier.contains(sqlalchemy.__version__, prereleases=True)
        ):
            return (
                f"sqlmodel {metadata.version('sqlmodel')} does not support SQLAlchemy "
                f"{sqlalchemy.__version__} (it requires {requirement}); this test runs where "
                "they agree"
            )
    return None


def planted(root: Path) -> dict[str, tuple[str, str, str, str | None, int, str]]:
    """The planted N+1s: failing test -> ``(kind, unit, location, loop, count, headline)``."""

    def at(path: str, text: str) -> str:
        return f"{path}:{line_of(str(root / path), text)}"

    heroes, teams = "app/routes/heroes.py", "app/routes/teams.py"
    full_query = at(teams, "return list(session.exec(select(Team).order_by(Team.id)).all())")
    return {
        ROSTER: (
            "n_plus_one",
            "GET /heroes/roster",
            at(heroes, "# lazy load per hero"),
            at(heroes, "return ["),  # the comprehension
            2,  # two teams for four heroes: the identity map serves the other two
            "N+1: Hero.team lazy-loaded 2x, once per Hero (2 parents); the Hero rows came from "
            f"the query at {at(heroes, 'select(Hero).order_by(Hero.name)')} (4 rows)",
        ),
        TEAMS_FULL: (
            "n_plus_one",
            "GET /teams/full",
            # FastAPI reads Team.heroes validating the response_model after the endpoint
            # returned: no application frame issued the loads, the parents' query is named.
            full_query,
            None,
            3,
            "N+1: Team.heroes lazy-loaded 3x, once per Team (3 parents); the Team rows came "
            f"from the query at {full_query} (3 rows); loaded by library code only (e.g. "
            "serializing a response model)",
        ),
    }


def check_suite(pytester: pytest.Pytester, root: Path) -> dict[str, list[object]]:
    """Run the suite; check outcomes and findings; return each test's findings."""
    result, tests = run_suite(pytester, "-W", "ignore::DeprecationWarning")
    expected = planted(root)
    assert failed(result) == sorted(expected), result.stdout.str()
    assert len(tests) == 13
    findings: dict[str, list[object]] = dict(only_planted(tests, expected))
    for nodeid in expected:
        (finding,) = tests[nodeid]["report"]["findings"]
        assert finding["fix"].startswith("add .options(")
    return findings


def test_fastapi_sqlmodel_suite(pytester: pytest.Pytester) -> None:
    """Create, update and list; the same hero three times; teams over ``httpx.ASGITransport``;
    every request sharing the test's session (SQLModel's documented override): no finding. The
    roster's N+1 and the response model's fail their tests; two runs, the same findings."""
    reason = _sqlmodel_unusable()
    if reason is not None:
        pytest.skip(reason)
    root = lay_out(pytester, APP)
    first = check_suite(pytester, root)
    assert check_suite(pytester, root) == first
