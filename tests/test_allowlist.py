"""Allowlists by relationship, code path and SQL pattern (``AuditConfig.allow_*``, the pytest
ini keys and markers): an allowed finding neither fails nor is logged, and is always shown as
allowed (text report, JSON, the pytest summary), never hidden."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from models import Author, prepared
from plugin_cases.support import case, project, run
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
from sqlaudit import AuditConfig, ConfigError
from sqlaudit.model.paths import relative

pytest_plugins = ("pytester",)


@pytest.fixture
def library(sqlite_engine: Engine) -> Iterator[Engine]:
    with prepared(sqlite_engine, authors=4) as engine:
        yield engine


def shelf(engine: Engine, **config: object) -> sqlaudit.AuditReport:
    """Titles and review stars per author: an N+1 over ``Author.books`` and, in the same
    loop, one over ``Book.reviews`` (the combined loop finding of two relationships)."""
    settings = {"on_finding": "ignore", **UNTIMED, **config}
    with (
        sqlaudit.audit("shelf", **settings) as report,
        Session(engine) as session,
    ):
        for author in session.scalars(select(Author).order_by(Author.id)):
            for book in author.books:
                assert [r.stars for r in book.reviews]
    return report


def test_without_allowlists_both_relationships_are_findings(library: Engine) -> None:
    """The trap's baseline: both lazy relationships are reported, nothing allowed."""
    report = shelf(library)
    assert {f.relationship for f in report.findings} == {"Author.books", "Book.reviews"}
    assert report.allowed == ()


def test_allow_relationships_keeps_the_other_relationship_of_the_loop(library: Engine) -> None:
    """Allowing ``Author.books`` (a glob works too) sets that finding aside with its rule,
    while the loop's other relationship stays a finding: allowlists apply before one loop's
    findings are combined."""
    for pattern in ("Author.books", "Auth*.books"):
        report = shelf(library, allow_relationships=[pattern])
        assert [f.relationship for f in report.findings] == ["Book.reviews"]
        [allowed] = report.allowed
        assert allowed.relationship == "Author.books"
        assert allowed.allowed == f'allow_relationships "{pattern}"'


def test_allow_paths_and_allow_sql(library: Engine) -> None:
    """A glob on a file of the call stack, and a regular expression on the SQL fingerprint;
    patterns that match nothing allow nothing."""
    here = relative(__file__)
    report = shelf(library, allow_paths=[here])
    assert report.findings == ()
    assert {f.allowed for f in report.allowed} == {f'allow_paths "{here}"'}
    assert shelf(library, allow_paths=["app/legacy/*"]).allowed == ()
    report = shelf(library, allow_sql=[r"from sqlaudit_t_review\b"])  # case-insensitive
    assert [f.relationship for f in report.findings] == ["Author.books"]
    assert [f.allowed for f in report.allowed] == [r'allow_sql "from sqlaudit_t_review\b"']
    assert shelf(library, allow_sql=["FROM nowhere"]).allowed == ()


def test_allowed_findings_are_shown_never_logged_nor_raised(
    library: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The text report counts and lists the allowed findings, the JSON has them under
    ``allowed``; the log records and ``on_finding="raise"`` see only the others."""
    with caplog.at_level(logging.WARNING, logger="sqlaudit"):
        report = shelf(library, allow_relationships=["Author.books"], on_finding="log")
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1
    assert "Book.reviews" in logged[0]
    text = report.render()
    assert ", 1 finding (1 allowed)" in text.splitlines()[0]
    assert "Allowed by the config's allowlists (not failing, not logged):" in text
    assert '  - [allow_relationships "Author.books"] N+1: Author.books lazy-loaded' in text
    data = json.loads(json.dumps(report.to_dict()))
    assert [f["relationship"] for f in data["allowed"]] == ["Author.books"]
    assert data["allowed"][0]["allowed"] == 'allow_relationships "Author.books"'
    assert [f["allowed"] for f in data["findings"]] == [None]
    everything = ["Author.books", "Book.reviews"]
    shelf(library, allow_relationships=everything, on_finding="raise")  # raises nothing


def test_allowed_findings_never_take_the_place_of_others(library: Engine) -> None:
    """``max_findings`` caps the findings that count; an allowed one never uses a place."""
    report = shelf(library, allow_relationships=["Author.books"], max_findings=1)
    assert [f.relationship for f in report.findings] == ["Book.reviews"]
    assert len(report.allowed) == 1


def test_configuration() -> None:
    """A single str counts as one pattern, duplicates go, bad patterns fail when configured."""
    config = AuditConfig(allow_paths="app/*", allow_sql=("x", "x"))  # type: ignore[arg-type]
    assert (config.allow_paths, config.allow_sql) == (("app/*",), ("x",))
    assert AuditConfig(allow_relationships=["User.comments"]).allowlists
    assert not AuditConfig().allowlists
    with pytest.raises(ConfigError, match="allow_relationships must be relationships like"):
        AuditConfig(allow_relationships=["User"])
    with pytest.raises(ConfigError, match="allow_sql must be valid regular expressions"):
        AuditConfig(allow_sql=["(unclosed"])


ALLOWLIST_TESTS = """
import pytest
from feedlib import Session, feed


def test_feed(engine):
    with Session(engine) as session:
        feed(session)


@pytest.mark.sqlaudit(allow_sql=["FROM sqlaudit_t_comment"])
def test_feed_marker(engine):
    with Session(engine) as session:
        feed(session)


@pytest.mark.sqlaudit(allow=["n_plus_one"])
def test_feed_kind(engine):
    with Session(engine) as session:
        feed(session)
"""


def test_pytest_ini_keys_and_markers_report_what_they_allowed(pytester: pytest.Pytester) -> None:
    """``sqlaudit_allow_relationships`` in the ini file (the first rule that matches names
    the finding), ``allow_sql`` and ``allow=[kinds]`` in markers: each test passes, and the
    terminal summary lists every allowed finding by rule, with ``--sqlaudit`` and with markers
    alone."""
    project(pytester, ALLOWLIST_TESTS)
    ini = pytester.makeini("[pytest]\nsqlaudit_allow_relationships =\n    Stream.comments\n")
    result = run(pytester, "--sqlaudit")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "sqlaudit: 3 findings allowed (not failing, not logged):",
            '  allow_relationships "Stream.comments"  3 in 3 tests',
        ]
    )
    ini.unlink()
    result = run(pytester)  # markers only: no --sqlaudit, no ini
    result.assert_outcomes(passed=3)
    shown = case("readme_allowed.txt").splitlines()  # the README's example, exactly
    lines = result.stdout.lines
    start = lines.index(shown[0])
    assert lines[start : start + len(shown)] == shown
    result = run(pytester, "--sqlaudit")
    result.assert_outcomes(passed=2, failed=1)  # test_feed: nothing allows its N+1


def test_pytest_bad_ini_allowlist_is_a_usage_error(pytester: pytest.Pytester) -> None:
    """A bad pattern in the ini file stops the run at once, naming the ini key."""
    project(pytester, ALLOWLIST_TESTS)
    pytester.makeini("[pytest]\nsqlaudit_allow_sql =\n    (unclosed\n")
    result = run(pytester, "--sqlaudit")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*sqlaudit: sqlaudit_allow_sql must be valid regular expressions*"]
    )
