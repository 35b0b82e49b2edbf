"""The pytest plugin: registration, markers, what counts, options (run with ``pytester``)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
from pathlib import Path

import pytest
from plugin_cases.support import project, run, section

import sqlaudit

pytest_plugins = ("pytester",)


def test_registered_through_pytest11_entry_point() -> None:
    """The distribution registers ``sqlaudit = sqlaudit.pytest_plugin`` under ``pytest11``."""
    points = importlib.metadata.entry_points(group="pytest11")
    assert {(p.name, p.value) for p in points if p.name == "sqlaudit"} == {
        ("sqlaudit", "sqlaudit.pytest_plugin")
    }


def test_only_the_plugin_package_imports_pytest() -> None:
    """Only ``sqlaudit/pytest_plugin/__init__.py`` imports pytest: its helper modules (policy,
    settings, session, fixture, baseline) are plain Python, testable without it."""
    package = Path(sqlaudit.__file__).resolve().parent
    importers = set()
    for path in sorted(package.rglob("*.py")):
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] in ("pytest", "_pytest") for n in names):
                importers.add(path.relative_to(package).as_posix())
    assert sorted(importers) == ["pytest_plugin/__init__.py"]


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def test_inert_until_asked_for(pytester: pytest.Pytester) -> None:
    """Without flag, ini key, marker or fixture no audit is opened and nothing is printed."""
    project(
        pytester,
        """
        import sqlaudit
        from feedlib import Session, feed

        def test_n_plus_one_unnoticed(engine):
            assert sqlaudit.current_report() is None
            with Session(engine) as session:
                feed(session)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*sqlaudit:*")
    result.stdout.no_fnmatch_line("*= sqlaudit =*")


def test_budget_failure_puts_the_diagnosis_first(pytester: pytest.Pytester) -> None:
    """A blown budget fails with the budget line, the N+1 and its fix, then the statements."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, feed

        @pytest.mark.query_budget(5, reason="landing page")
        def test_feed(engine):
            with Session(engine) as session:
                feed(session)

        @pytest.mark.query_budget(2)
        def test_feed_eager(engine):
            with Session(engine) as session:
                feed(session, eager=True)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    lines = section(result, "test_feed").splitlines()
    assert lines[0] == (
        "query budget exceeded: 21 statements (21 select), budget 5 (reason: landing page); "
        "fix: remove the statements the findings point at, or raise it to "
        "@pytest.mark.query_budget(21)"
    )
    assert lines[1].startswith("N+1: Stream.comments lazy-loaded 20x, once per Stream")
    assert "; fix: " in lines[1] and ".options(selectinload(Stream.comments))" in lines[1]
    assert lines[3].startswith("sqlaudit: test_feed.py::test_feed: 21 statements (21 select)")
    statements = lines[lines.index("Statements:") + 1 :]
    assert statements[0].startswith("     1  SELECT … FROM sqlaudit_t_stream ORDER BY")
    assert statements[1].startswith("     2  20x SELECT … FROM sqlaudit_t_comment WHERE")
    assert "Traceback" not in section(result, "test_feed")
    result.stdout.fnmatch_lines(["FAILED test_feed.py::test_feed - query budget exceeded: 21 *"])


@pytest.mark.parametrize(
    ("marker", "body", "first_line"),
    [
        pytest.param(
            "query_budget(50, select=3)",
            "feed(session)",
            "SELECT budget exceeded: 21 SELECT statements, budget 3; fix: eager-load *",
            id="select",
        ),
        pytest.param(
            "query_budget(50, writes=2)",
            "[session.add(Comment(stream_id=1, body='x')) or session.flush() for _ in range(3)]",
            "write budget exceeded: 3 INSERT/UPDATE/DELETE statements, budget 2; fix: batch *",
            id="writes",
        ),
        pytest.param(
            "query_budget(50, db_time_ms=0)",
            "feed(session, eager=True)",
            "DB time budget exceeded: * ms in the database, budget 0 ms; fix: *",
            id="db_time",
        ),
        pytest.param(
            "no_queries",
            "feed(session, eager=True)",
            "query budget exceeded: 2 statements (2 select), budget 0; fix: remove the "
            "statements below: @pytest.mark.no_queries says this code does not query",
            id="no_queries",
        ),
    ],
)
def test_budget_kinds(pytester: pytest.Pytester, marker: str, body: str, first_line: str) -> None:
    """Each ceiling of ``query_budget`` (and ``no_queries``) fails with its own message."""
    project(
        pytester,
        f"""
        import pytest
        from feedlib import Comment, Session, feed

        @pytest.mark.{marker}
        def test_it(engine):
            with Session(engine) as session:
                {body}
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([first_line])


def test_transaction_control_and_savepoints_never_count(pytester: pytest.Pytester) -> None:
    """BEGIN/COMMIT/SAVEPOINT/RELEASE are outside budgets and marked "not counted"."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Comment, Session

        @pytest.mark.query_budget(2)
        def test_savepoints(engine):
            with Session(engine) as session:
                for body in ("a", "b"):
                    with session.begin_nested():
                        session.add(Comment(stream_id=1, body=body))
                session.commit()

        @pytest.mark.query_budget(1)
        def test_shown(engine):
            with Session(engine) as session:
                for body in ("a", "b"):
                    with session.begin_nested():
                        session.add(Comment(stream_id=1, body=body))
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    text = section(result, "test_shown")
    assert text.startswith("query budget exceeded: 2 statements (2 insert), budget 1;")
    assert "SAVEPOINT sa_savepoint_1  at test_feed.py:" in text
    assert "  [not counted]" in text


def test_sqlaudit_marker_fails_on_findings_unless_allowed(pytester: pytest.Pytester) -> None:
    """``@pytest.mark.sqlaudit`` fails on findings; ``allow`` and config overrides apply."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, feed

        @pytest.mark.sqlaudit
        def test_n_plus_one(engine):
            with Session(engine) as session:
                feed(session)

        @pytest.mark.sqlaudit(allow=["n_plus_one"])
        def test_allowed(engine):
            with Session(engine) as session:
                feed(session)

        @pytest.mark.sqlaudit(n_plus_one_min=50)
        def test_threshold(engine):
            with Session(engine) as session:
                feed(session)

        @pytest.mark.sqlaudit(fail_on="error")
        class TestSeverity:
            @pytest.mark.sqlaudit(slow_query_ms=None)
            def test_class_marker_severity(self, engine):
                with Session(engine) as session:
                    feed(session)
        """,
    )
    result = run(pytester, "-rf")
    result.assert_outcomes(passed=3, failed=1)
    assert section(result, "test_n_plus_one").startswith(
        "N+1: Stream.comments lazy-loaded 20x, once per Stream"
    )


def test_closest_budget_marker_wins(pytester: pytest.Pytester) -> None:
    """A test's own budget marker overrides its class's and module's."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, feed

        pytestmark = pytest.mark.query_budget(100)

        @pytest.mark.no_queries
        class TestFeed:
            @pytest.mark.query_budget(2)
            def test_own(self, engine):
                with Session(engine) as session:
                    feed(session, eager=True)

            def test_class(self, engine):
                with Session(engine) as session:
                    feed(session, eager=True)

        def test_module(engine):
            with Session(engine) as session:
                feed(session)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_feed.py::TestFeed::test_class - query budget *"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("query_budget(-1)", "n must be an int >= 0, got -1"),
        ("query_budget('5')", "n must be an int >= 0, got '5'"),
        ("query_budget()", "query_budget needs exactly one statement budget n, e.g. query_*"),
        ("query_budget(1, selects=2)", "query_budget got unknown argument(s) selects; known: *"),
        (
            "query_budget(1, db_time_ms=-3)",
            "db_time_ms must be a finite number of milliseconds >= 0 or None, got -3",
        ),
        ("no_queries(3)", "no_queries takes no arguments; use query_budget(n) for n > 0"),
        ("sqlaudit(allow=['nope'])", "allow has unknown finding kind(s) 'nope'; allowed: *"),
        ("sqlaudit(max_queries=-1)", "max_queries must be an int >= 0 or None, got -1"),
        ("sqlaudit(on_finding='raise')", "on_finding is decided by the pytest plugin; *"),
        ("sqlaudit(5)", "sqlaudit marker takes keyword arguments only *"),
    ],
)
def test_markers_are_validated_at_collection(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    """A bad marker is a collection error naming the test and the problem: no test runs."""
    pytester.makepyfile(
        f"""
        import pytest

        def test_fine():
            pass

        @pytest.mark.{marker}
        def test_bad():
            pass
        """
    )
    result = run(pytester)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*_ ERROR collecting test_markers_are_validated_at_collection.py _*",
            "sqlaudit: invalid marker",
            f"  test_markers_are_validated_at_collection.py::test_bad: {message}",
        ]
    )


def test_fixture_blocks(pytester: pytest.Pytester) -> None:
    """``budget``, ``no_queries``, ``assert_num_queries`` and ``assert_max_queries`` check a
    block; failures use pytest-django's wording and point at the ``with`` line."""
    project(
        pytester,
        """
        import asyncio
        from feedlib import Session, feed

        def test_pass(engine, sqlaudit):
            with Session(engine) as session:
                with sqlaudit.budget(2, select=2) as block:
                    feed(session, eager=True)
                assert block.query_count == 2
                with sqlaudit.assert_max_queries(2):
                    feed(session, eager=True)
                with sqlaudit.no_queries():
                    pass
            assert sqlaudit.report.query_count == 4

        def test_exact(engine, sqlaudit):
            with Session(engine) as session, sqlaudit.assert_num_queries(3, info="feed page"):
                feed(session, eager=True)

        def test_max(engine, sqlaudit):
            with Session(engine) as session, sqlaudit.assert_max_queries(1):
                feed(session, eager=True)

        def test_no_queries(engine, sqlaudit):
            with Session(engine) as session, sqlaudit.no_queries():
                feed(session, eager=True)

        def test_async_budget(engine, sqlaudit):
            async def main():
                async with sqlaudit.budget(1):
                    with Session(engine) as session:
                        feed(session, eager=True)
            asyncio.run(main())
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines(
        [
            ">       with Session(engine) as session, sqlaudit.assert_num_queries(3, info=*",
            "E       sqlaudit.pytest_plugin.SqlauditFailure: Expected to perform 3 queries but 2 "
            "were done (transaction control not counted)",
            "E       feed page",
        ]
    )
    result.stdout.fnmatch_lines(
        ["E       *: Expected to perform 1 queries or less but 2 were done (transaction *"]
    )
    result.stdout.fnmatch_lines(
        [
            "E       *: query budget exceeded: 2 statements (2 select), budget 0; fix: remove the "
            "statements below: sqlaudit.no_queries() says this code does not query"
        ]
    )
    result.stdout.fnmatch_lines(
        ["E       *: query budget exceeded: 2 statements (2 select), budget 1;*"]
    )
    assert "Captured sqlaudit" not in result.stdout.str()


def test_assert_constant_queries_proves_the_n_plus_one(pytester: pytest.Pytester) -> None:
    """The statement count must not grow with the data; growth is diagnosed as the N+1, and
    only the first measured run counts towards the test's own budget."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, add_streams, feed

        def check(engine, sqlaudit, eager):
            def action():
                with Session(engine) as session:
                    feed(session, eager=eager)
            return sqlaudit.assert_constant_queries(
                lambda n: add_streams(engine, n), action, scales=(1, 3, 5)
            )

        @pytest.mark.query_budget(2)
        def test_constant(engine, sqlaudit):
            assert check(engine, sqlaudit, eager=True) == 2

        def test_grows(engine, sqlaudit):
            check(engine, sqlaudit, eager=False)
        """,
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E       *SqlauditFailure: statement count grows with the data "
            "(scale: statements 1: 22, 3: 25, 5: 30)",
            "E         21x -> 29x  SELECT … FROM sqlaudit_t_comment WHERE *"
            "  at feedlib.py:14 in feed()",
            "E       N+1: Stream.comments lazy-loaded 29x, once per Stream *; fix: *",
        ]
    )


def test_report_is_the_test_body_so_far(pytester: pytest.Pytester) -> None:
    """``sqlaudit.report`` grows as the test runs and excludes fixture setup."""
    project(
        pytester,
        """
        from feedlib import Session, feed

        def test_report(engine, sqlaudit):
            assert sqlaudit.report.query_count == 0
            with Session(engine) as session:
                feed(session, eager=True)
            assert sqlaudit.report.counts == {"select": 2}
            assert sqlaudit.report.name == "test_feed.py::test_report"
        """,
    )
    run(pytester).assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("scope", "outcomes"),
    [
        ("call", {"passed": 1}),
        ("setup+call", {"failed": 1}),
        ("all", {"passed": 1, "errors": 1}),
    ],
)
def test_fixture_setup_and_teardown_excluded_unless_configured(
    pytester: pytest.Pytester, scope: str, outcomes: dict[str, int]
) -> None:
    """By default only the test function counts; ``sqlaudit_scope`` adds setup (and teardown,
    judged after it and so reported as a teardown error)."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, feed

        @pytest.fixture
        def busy(engine):
            with Session(engine) as session:
                feed(session, eager=True)
            yield
            with Session(engine) as session:
                feed(session, eager=True)

        @pytest.mark.no_queries
        def test_quiet(busy):
            pass
        """,
    )
    pytester.makeini(f"[pytest]\nsqlaudit_scope = {scope}\n")
    result = run(pytester)
    result.assert_outcomes(**outcomes)
    if scope == "all":
        result.stdout.fnmatch_lines(
            ["*ERROR at teardown of test_quiet*", "query budget exceeded: 4 *"]
        )


def test_own_exception_wins_over_budget(pytester: pytest.Pytester) -> None:
    """A test that fails by itself shows its own error; the audit is attached as a section."""
    project(
        pytester,
        """
        import pytest
        from feedlib import Session, feed

        @pytest.mark.query_budget(1)
        def test_broken(engine):
            with Session(engine) as session:
                feed(session)
            raise KeyError("the test's own error")
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    text = section(result, "test_broken")
    assert 'KeyError: "the test\'s own error"' in text
    assert "query budget exceeded" not in text
    assert "- Captured sqlaudit call -" in text
    result.stdout.fnmatch_lines(["FAILED test_feed.py::test_broken - KeyError: *"])


def test_statements_from_threads_the_test_starts_count(pytester: pytest.Pytester) -> None:
    """A thread started by the test has no audit of its own: its statements are the test's."""
    project(
        pytester,
        """
        import threading
        import pytest
        from feedlib import Session, feed

        @pytest.mark.query_budget(2)
        def test_thread(engine):
            def work():
                with Session(engine) as session:
                    feed(session)
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        """,
    )
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert section(result, "test_thread").startswith("query budget exceeded: 21 statements")


FINDINGS = """
from feedlib import Session, feed

def test_n_plus_one(engine):
    with Session(engine) as session:
        feed(session)

def test_clean(engine):
    with Session(engine) as session:
        feed(session, eager=True)
"""


@pytest.mark.parametrize(
    ("args", "ini", "outcomes"),
    [
        pytest.param(("--sqlaudit",), "", {"passed": 1, "failed": 1}, id="flag"),
        pytest.param((), "sqlaudit = true", {"passed": 1, "failed": 1}, id="ini"),
        pytest.param(("--sqlaudit", "--sqlaudit-severity=error"), "", {"passed": 2}, id="sev"),
        pytest.param((), "sqlaudit = true\nsqlaudit_severity = error", {"passed": 2}, id="sev-ini"),
        pytest.param(("--sqlaudit-fail-on=repeated_query",), "", {"passed": 2}, id="kinds"),
        pytest.param(("--sqlaudit-fail-on=n_plus_one",), "", {"passed": 1, "failed": 1}, id="kind"),
        pytest.param(
            (), "sqlaudit_fail_on = write_loop, slow_query", {"passed": 2}, id="kinds-ini"
        ),
        pytest.param(("--sqlaudit-report",), "", {"passed": 2}, id="report-only"),
    ],
)
def test_audit_every_test(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, outcomes: dict[str, int]
) -> None:
    """``--sqlaudit`` / ``sqlaudit = true`` fail tests on findings at or above the severity,
    of the kinds in ``--sqlaudit-fail-on``; ``--sqlaudit-report`` alone only observes."""
    project(pytester, FINDINGS)
    pytester.makeini(f"[pytest]\n{ini}\n")
    run(pytester, *args).assert_outcomes(**outcomes)


@pytest.mark.parametrize(
    ("args", "outcomes"),
    [
        (("--sqlaudit",), {"passed": 1}),
        (("--sqlaudit-fail-on=all",), {"failed": 1}),
        (("--sqlaudit-fail-on=long_transaction",), {"failed": 1}),
    ],
)
def test_timing_kinds_fail_only_when_asked(
    pytester: pytest.Pytester, args: tuple[str, ...], outcomes: dict[str, int]
) -> None:
    """``long_transaction`` and ``slow_query`` depend on the machine's speed: they fail a
    test only when ``--sqlaudit-fail-on`` names them (or says ``all``)."""
    project(
        pytester,
        """
        import timing
        from feedlib import Comment, Session

        def test_idle_in_transaction(engine):
            with Session(engine) as session, session.begin():
                session.add(Comment(stream_id=1, body="a"))
                session.flush()
                timing.active().advance(0.3)  # sqlaudit's clock: 300 ms idle, exactly
                session.add(Comment(stream_id=1, body="b"))
        """,
    )
    result = run(pytester, *args)
    result.assert_outcomes(**outcomes)
    if "failed" in outcomes:
        result.stdout.fnmatch_lines(["long transaction: idle 300 ms without a statement *"])


def test_terminal_report_and_json(pytester: pytest.Pytester) -> None:
    """``--sqlaudit-report`` prints the worst tests and findings by kind; ``--sqlaudit-json``
    writes every audited test's counts, findings and full report."""
    project(pytester, FINDINGS)
    result = run(pytester, "--sqlaudit-report", "--sqlaudit-json=out/audit.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= sqlaudit =*",
            "2 tests audited, 0 failed by sqlaudit: 23 statements, * ms in the database",
            "1 finding in 1 test: 0 failing, 1 reported only",
            "most statements:",
            "      21  test_feed.py::test_n_plus_one  (21 select)",
            "       2  test_feed.py::test_clean  (2 select)",
            "most time in the database:",
            "findings by kind:",
            "  n_plus_one                1 in 1 tests",
            "sqlaudit: wrote out/audit.json (2 tests)",
        ]
    )
    data = json.loads((pytester.path / "out" / "audit.json").read_text())
    tests = {t["nodeid"]: t for t in data["tests"]}
    assert list(tests) == ["test_feed.py::test_clean", "test_feed.py::test_n_plus_one"]
    n_plus_one = tests["test_feed.py::test_n_plus_one"]
    assert n_plus_one["counts"] == {"select": 21}
    assert n_plus_one["findings"][0]["identity"] == [
        "n_plus_one",
        "Stream.comments",
        "feedlib.py",
        "feed",
    ]
    assert n_plus_one["report"]["query_count"] == 21


def test_hint_when_nothing_is_instrumented(pytester: pytest.Pytester) -> None:
    """A session that captured no statement at all says how to instrument engines."""
    pytester.makepyfile(
        """
        import sqlite3

        def test_raw():
            sqlite3.connect(":memory:").execute("select 1")
        """
    )
    result = run(pytester, "--sqlaudit-report")
    result.stdout.fnmatch_lines(
        ["sqlaudit: no statement was captured: call sqlaudit.instrument(engine) *"]
    )


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (("--sqlaudit-fail-on=nope",), "", "sqlaudit_fail_on has unknown finding kind(s) 'nope'*"),
        (
            ("--sqlaudit-update-baseline",),
            "",
            "--sqlaudit-update-baseline needs --sqlaudit-baseline*",
        ),
        (
            (),
            "sqlaudit_scope = body",
            "sqlaudit_scope must be one of call, setup+call, all, got 'body'",
        ),
        ((), "sqlaudit_severity = fatal", "sqlaudit_severity must be one of 'info', 'warning', *"),
    ],
)
def test_bad_options_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, message: str
) -> None:
    """A bad option or ini value stops the run with a message naming it and what is allowed."""
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: sqlaudit: {message}"])
