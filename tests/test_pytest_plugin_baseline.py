"""The pytest plugin's baselines and its pytest-xdist support (run with ``pytester``)."""

from __future__ import annotations

import json

import pytest
from plugin_cases.support import project, run, section

from sqlaudit.pytest_plugin import baseline as _baseline
from sqlaudit.pytest_plugin.baseline import Entry

pytest_plugins = ("pytester",)

BASELINE = "sqlaudit-baseline.json"
FEED_FUNCTION = "feed"


def source(n_plus_one: bool = True, extra_select: bool = False) -> str:
    """Three tests; the first has an N+1 unless told otherwise, the second may query more."""
    extra = "session.scalars(select(Stream)).all()" if extra_select else "pass"
    return f"""
from sqlalchemy import select
from feedlib import Comment, Session, Stream, feed

def test_n_plus_one(engine):
    with Session(engine) as session:
        feed(session, eager={not n_plus_one})

def test_clean(engine):
    with Session(engine) as session:
        feed(session, eager=True)
        {extra}

def test_writes(engine):
    with Session(engine) as session, session.begin():
        session.add(Comment(stream_id=1, body="hello"))
"""


N_PLUS_ONE = ("n_plus_one", "Stream.comments", "feedlib.py", "feed")
LOOP = ("write_loop", "INSERT INTO t (a) VALUES (?)", "app.py", "save")


@pytest.mark.parametrize(
    ("entry", "counts", "found", "increases", "decreases", "new", "fixed"),
    [
        pytest.param(None, {"select": 3}, [N_PLUS_ONE], [], [], [N_PLUS_ONE], [], id="no-entry"),
        pytest.param(Entry({"select": 3}), {"select": 3}, [], [], [], [], [], id="same"),
        pytest.param(
            Entry({"select": 3}),
            {"select": 4, "insert": 1},
            [],
            [("insert", 0, 1), ("select", 3, 4)],
            [],
            [],
            [],
            id="more-and-new-kind",
        ),
        pytest.param(
            Entry({"select": 3, "delete": 1}, frozenset({N_PLUS_ONE})),
            {"select": 2},
            [LOOP],
            [],
            [("delete", 1, 0), ("select", 3, 2)],
            [LOOP],
            [N_PLUS_ONE],
            id="fewer-fixed-and-new",
        ),
    ],
)
def test_compare(
    entry: Entry | None,
    counts: dict[str, int],
    found: list[_baseline.Identity],
    increases: list[tuple[str, int, int]],
    decreases: list[tuple[str, int, int]],
    new: list[_baseline.Identity],
    fixed: list[_baseline.Identity],
) -> None:
    """Counts are ceilings per kind (a missing kind is 0); findings are compared as sets."""
    diff = _baseline.compare(entry, counts, found)
    assert diff.known is (entry is not None)
    assert list(diff.increases) == increases
    assert list(diff.decreases) == decreases
    assert list(diff.new_findings) == new
    assert list(diff.fixed_findings) == fixed


OLD = {
    "t::kept": Entry({"select": 5}, frozenset({N_PLUS_ONE})),
    "t::changed": Entry({"select": 5, "insert": 2}, frozenset({N_PLUS_ONE})),
    "t::stale": Entry({"select": 1}),
}
NOW = {
    "t::changed": Entry({"select": 7, "update": 1}, frozenset({LOOP})),
    "t::new": Entry({"select": 1}, frozenset({LOOP})),
}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param(
            "all",
            {"t::kept": OLD["t::kept"], "t::changed": NOW["t::changed"], "t::new": NOW["t::new"]},
            id="all",
        ),
        pytest.param(
            "tighten",
            {
                "t::kept": OLD["t::kept"],
                "t::changed": Entry({"select": 5}),
                "t::new": Entry({"select": 1}),
            },
            id="tighten",
        ),
    ],
)
def test_merge(mode: _baseline.Mode, expected: dict[str, Entry]) -> None:
    """``all`` takes this run's entries; ``tighten`` never raises a ceiling or accepts a
    finding; tests not run keep their entry; stale entries go."""
    assert _baseline.merge(OLD, NOW, mode, stale=["t::stale"]) == expected


def baseline(pytester: pytest.Pytester) -> dict[str, object]:
    data: dict[str, object] = json.loads((pytester.path / BASELINE).read_text())
    return data


def test_baseline_round_trip(pytester: pytest.Pytester) -> None:
    """Create, pass, regress, tighten: the whole life of a baseline, never written implicitly."""
    project(pytester, source())
    path = pytester.path / BASELINE

    missing = run(pytester, f"--sqlaudit-baseline={BASELINE}")
    missing.assert_outcomes(passed=2, failed=1)
    missing.stdout.fnmatch_lines(
        [
            f"sqlaudit: baseline {BASELINE} does not exist, so no finding is accepted yet; "
            f"create it with: pytest --sqlaudit-baseline={BASELINE} "
            "--sqlaudit-update-baseline=all"
        ]
    )
    assert not path.exists(), "the baseline is only ever written on request"

    created = run(pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline")
    created.assert_outcomes(passed=3)
    created.stdout.fnmatch_lines(
        [f"sqlaudit: wrote baseline {BASELINE} (3 tests; 3 added or changed, 0 removed; mode all)"]
    )
    assert baseline(pytester) == {
        "sqlaudit_baseline": 1,
        "tests": {
            "test_feed.py::test_clean": {"counts": {"select": 2}, "findings": []},
            "test_feed.py::test_n_plus_one": {
                "counts": {"select": 21},
                "findings": [
                    {
                        "file": "feedlib.py",
                        "function": FEED_FUNCTION,
                        "kind": "n_plus_one",
                        "subject": "Stream.comments",
                    }
                ],
            },
            "test_feed.py::test_writes": {"counts": {"insert": 1}, "findings": []},
        },
    }
    text = path.read_text()
    assert text.endswith("}\n") and text.index("test_clean") < text.index("test_writes")

    again = run(pytester, f"--sqlaudit-baseline={BASELINE}")
    again.assert_outcomes(passed=3)
    assert path.read_text() == text

    pytester.makepyfile(test_feed=source(extra_select=True))
    regressed = run(pytester, f"--sqlaudit-baseline={BASELINE}")
    regressed.assert_outcomes(passed=2, failed=1)
    failure = section(regressed, "test_clean")
    assert failure.startswith(
        "more statements than the baseline allows: select 2 -> 3; fix: see the baseline below\n"
    )
    assert failure.rstrip().endswith(
        f"baseline {BASELINE}, entry for this test:\n"
        "  select: ceiling 2, now 3 (+1)\n"
        f"accept these numbers (after review) with: pytest --sqlaudit-baseline={BASELINE} "
        "--sqlaudit-update-baseline=all test_feed.py::test_clean"
    )
    tightened = run(
        pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline=tighten"
    )
    tightened.assert_outcomes(passed=2, failed=1)
    assert path.read_text() == text, "tighten never accepts an increase"

    pytester.makepyfile(test_feed=source(n_plus_one=False))
    better = run(pytester, f"--sqlaudit-baseline={BASELINE}")
    better.assert_outcomes(passed=3)
    better.stdout.fnmatch_lines(
        [
            "sqlaudit: 1 baseline entries can be tightened (fewer statements or fixed findings): "
            "test_feed.py::test_n_plus_one",
            f"  tighten with: pytest --sqlaudit-baseline={BASELINE} "
            "--sqlaudit-update-baseline=tighten",
        ]
    )
    run(pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline=tighten")
    entries = baseline(pytester)["tests"]
    assert entries["test_feed.py::test_n_plus_one"] == {"counts": {"select": 2}, "findings": []}  # type: ignore[index]


def test_new_finding_fails_even_within_the_ceilings(pytester: pytest.Pytester) -> None:
    """A finding the entry does not list fails the test and is named in the baseline diff."""
    project(pytester, source(n_plus_one=False))
    run(pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline")
    data = baseline(pytester)
    data["tests"]["test_feed.py::test_n_plus_one"]["counts"]["select"] = 50  # type: ignore[index]
    (pytester.path / BASELINE).write_text(json.dumps(data))
    pytester.makepyfile(test_feed=source(n_plus_one=True))
    result = run(pytester, f"--sqlaudit-baseline={BASELINE}")
    result.assert_outcomes(passed=2, failed=1)
    failure = section(result, "test_n_plus_one")
    assert failure.startswith("N+1: Stream.comments lazy-loaded 20x")
    assert (
        f"\n  new finding: n_plus_one Stream.comments in feedlib.py {FEED_FUNCTION}()\n" in failure
    )
    assert "\n  select: ceiling 50, now 21 (tightenable)\n" in failure


def test_update_keeps_entries_of_tests_that_did_not_complete(pytester: pytest.Pytester) -> None:
    """On update, a test that failed by itself gets no entry and tests not run keep theirs."""
    project(pytester, source())
    run(pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline")
    before = baseline(pytester)["tests"]
    pytester.makepyfile(
        test_feed=source(extra_select=True) + "\ndef test_broken(engine):\n    raise RuntimeError\n"
    )
    result = run(
        pytester,
        f"--sqlaudit-baseline={BASELINE}",
        "--sqlaudit-update-baseline=all",
        "test_feed.py::test_clean",
        "test_feed.py::test_broken",
    )
    result.assert_outcomes(passed=1, failed=1)
    after = baseline(pytester)["tests"]
    assert after["test_feed.py::test_clean"]["counts"] == {"select": 3}  # type: ignore[index]
    for kept in ("test_feed.py::test_n_plus_one", "test_feed.py::test_writes"):
        assert after[kept] == before[kept]  # type: ignore[index]
    assert "test_feed.py::test_broken" not in after  # type: ignore[operator]


def test_stale_entries_reported_and_removed(pytester: pytest.Pytester) -> None:
    """Entries of deleted tests or files are stale; tests merely not selected are not."""
    project(pytester, source())
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    run(pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline")
    data = baseline(pytester)
    entries = data["tests"]
    for gone in ("test_feed.py::test_deleted", "test_gone.py::test_x"):
        entries[gone] = {"counts": {"select": 1}, "findings": []}  # type: ignore[index]
    (pytester.path / BASELINE).write_text(json.dumps(data))

    result = run(pytester, f"--sqlaudit-baseline={BASELINE}", "-k", "not test_writes")
    result.assert_outcomes(passed=3, failed=0, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "sqlaudit: 2 stale baseline entries (their tests no longer exist): "
            "test_feed.py::test_deleted, test_gone.py::test_x"
        ]
    )
    narrowed = run(pytester, f"--sqlaudit-baseline={BASELINE}", "test_feed.py::test_clean")
    narrowed.stdout.fnmatch_lines(["sqlaudit: 1 stale baseline entries *: test_gone.py::test_x"])

    run(
        pytester,
        f"--sqlaudit-baseline={BASELINE}",
        "--sqlaudit-update-baseline=tighten",
        "test_other.py",
    )
    assert sorted(baseline(pytester)["tests"]) == [  # type: ignore[call-overload]
        "test_feed.py::test_clean",
        "test_feed.py::test_deleted",
        "test_feed.py::test_n_plus_one",
        "test_feed.py::test_writes",
        "test_other.py::test_other",
    ], "an entry of a file not collected stays unless the file is gone"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "baseline */bad.json is not valid JSON (*); fix the file, or delete it and rerun *"),
        ("[]", "baseline */bad.json is not a sqlaudit baseline of format 1 *"),
        (
            '{"sqlaudit_baseline": 1, "tests": '
            '{"t::x": {"counts": {"select": -1}, "findings": []}}}',
            "baseline */bad.json: entry 't::x' is malformed "
            "(count of 'select' must be an int >= 0, got -1)*",
        ),
    ],
)
def test_unusable_baseline_is_a_usage_error(
    pytester: pytest.Pytester, content: str, message: str
) -> None:
    """A broken baseline file stops the run with the file, the problem and the fix."""
    (pytester.path / "bad.json").write_text(content)
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, "--sqlaudit-baseline=bad.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: sqlaudit: {message}"])


def test_update_flag_before_paths_is_refused(pytester: pytest.Pytester) -> None:
    """``--sqlaudit-update-baseline test_x.py`` would eat the path: argparse refuses it."""
    pytester.makepyfile("def test_nothing(): pass")
    result = run(
        pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline", "test_x.py"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*argument --sqlaudit-update-baseline: invalid choice: 'test_x.py'*"]
    )


WRITE_LOG = """
import sqlaudit.pytest_plugin.baseline

_write = sqlaudit.pytest_plugin.baseline.write
_role = []

def pytest_configure(config):
    _role.append(getattr(config, "workerinput", {}).get("workerid", "controller"))

def logged(path, entries):
    with open("writes.log", "a") as log:
        log.write(_role[0] + "\\n")
    _write(path, entries)

def pytest_unconfigure(config):
    sqlaudit.pytest_plugin.baseline.write = _write  # shared with the outer run

sqlaudit.pytest_plugin.baseline.write = logged
"""


def test_xdist_baseline_written_once_by_the_controller(pytester: pytest.Pytester) -> None:
    """Under ``-n 2`` workers judge and the controller alone writes the same baseline file."""
    project(pytester, source())
    pytester.makepyfile(test_other="def test_other():\n    pass\n")
    (pytester.path / "conftest.py").write_text(
        (pytester.path / "conftest.py").read_text() + WRITE_LOG
    )
    args = (f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline")
    run(pytester, *args).assert_outcomes(passed=4)
    single = (pytester.path / BASELINE).read_text()
    (pytester.path / BASELINE).unlink()
    (pytester.path / "writes.log").unlink()

    result = run(pytester, "-n", "2", *args, subprocess=True)
    result.assert_outcomes(passed=4)
    assert (pytester.path / BASELINE).read_text() == single
    assert (pytester.path / "writes.log").read_text() == "controller\n"


def test_xdist_failures_report_and_stale_entries(pytester: pytest.Pytester) -> None:
    """Under ``-n 2``: the diagnosis reaches the controller, the report covers every worker's
    tests, and stale entries are found from the workers' collections."""
    project(
        pytester,
        source()
        + """
import pytest

@pytest.mark.query_budget(3)
def test_budget(engine):
    with Session(engine) as session:
        feed(session)
""",
    )
    run(pytester, f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-update-baseline")
    data = baseline(pytester)
    data["tests"]["test_feed.py::test_deleted"] = {"counts": {}, "findings": []}  # type: ignore[index]
    (pytester.path / BASELINE).write_text(json.dumps(data))
    result = run(
        pytester, "-n", "2", f"--sqlaudit-baseline={BASELINE}", "--sqlaudit-report", subprocess=True
    )
    result.assert_outcomes(passed=3, failed=1)
    assert "\nquery budget exceeded: 21 statements (21 select), budget 3; fix: " in section(
        result, "test_budget"
    )
    result.stdout.fnmatch_lines(
        [
            "4 tests audited, 1 failed by sqlaudit (1 over its budget): 45 statements, * ms in "
            "the database",
            "2 findings in 2 tests: 0 failing, 2 accepted by the baseline",
            "sqlaudit: 1 stale baseline entries (their tests no longer exist): "
            "test_feed.py::test_deleted",
        ]
    )
