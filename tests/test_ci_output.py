"""The pytest plugin's CI output: SARIF 2.1.0, GitHub Actions annotations, JUnit properties.

Each test runs pytest for real (``pytester``) on a small project with an N+1, and reads what
the plugin wrote: the SARIF file validated against the SARIF 2.1.0 JSON schema (vendored in
``tests/schemas``, see its README), the workflow commands on standard output, the
``--junitxml`` file parsed as XML.
"""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from plugin_cases.support import FEED, project, run

from sqlaudit.model.findings import KINDS
from sqlaudit.pytest_plugin.ci import escape_data, escape_property, sarif_log
from sqlaudit.pytest_plugin.rules import RULES

pytest_plugins = ("pytester",)

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "sarif-2.1.0-rtm.5.json").read_text(encoding="utf-8")
)
#: The line of feedlib.py that lazy-loads ``Stream.comments`` (where the N+1 points).
FEED_LINE = (
    FEED.splitlines().index(
        next(line for line in FEED.splitlines() if "len(stream.comments)" in line)
    )
    + 1
)

TESTS = """
import pytest
from feedlib import Session, feed

def test_n_plus_one(engine):
    with Session(engine) as session:
        feed(session)

def test_clean(engine):
    with Session(engine) as session:
        feed(session, eager=True)

@pytest.mark.sqlaudit(allow=["n_plus_one"])
def test_allowed(engine):
    with Session(engine) as session:
        feed(session)
"""


BUDGET = """import pytest
from feedlib import Session, feed

@pytest.mark.sqlaudit(max_queries=2, allow=['n_plus_one'])
def test_budget(engine):
    with Session(engine) as session:
        feed(session)
"""


def validate(log: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError unless ``log`` is valid SARIF 2.1.0 (formats checked)."""
    validator = jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    validator.validate(log)


def sarif(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, Any]]:
    result = run(pytester, "--sqlaudit-sarif=out/audit.sarif", *args)
    log = json.loads((pytester.path / "out" / "audit.sarif").read_text(encoding="utf-8"))
    return result, log


def test_sarif_file_validates_and_points_at_the_line(pytester: pytest.Pytester) -> None:
    """``--sqlaudit-sarif``: a valid SARIF 2.1.0 log with one result per finding (kind as
    ruleId, level from severity, diagnosis and fix, the file relative to the project root and
    the line), one rule per kind with help text; allowed findings are not exported."""
    project(pytester, TESTS)
    result, log = sarif(pytester, "--sqlaudit")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["sqlaudit: wrote out/audit.sarif (SARIF, 1 result)"])
    validate(log)
    assert log["version"] == "2.1.0"
    (run_,) = log["runs"]
    assert run_["tool"]["driver"]["name"] == "sqlaudit"
    (rule,) = run_["tool"]["driver"]["rules"]
    assert rule["id"] == "n_plus_one"
    assert "selectinload" in rule["help"]["text"]
    assert rule["defaultConfiguration"] == {"level": "warning"}
    (found,) = run_["results"]
    assert found["ruleId"] == "n_plus_one" and found["ruleIndex"] == 0
    assert found["level"] == "warning"
    text = found["message"]["text"]
    assert text.startswith("N+1: Stream.comments lazy-loaded 20x, once per Stream")
    assert "; fix: add .options(selectinload(Stream.comments))" in text
    (location,) = found["locations"]
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "feedlib.py", "uriBaseId": "PROJECTROOT"},
        "region": {"startLine": FEED_LINE},
    }
    assert location["logicalLocations"] == [{"name": "feed", "kind": "function"}]
    root = run_["originalUriBaseIds"]["PROJECTROOT"]["uri"]
    assert root == pytester.path.resolve().as_uri() + "/"
    assert found["properties"] == {
        "test": "test_feed.py::test_n_plus_one",
        "outcome": "failing",
        "fails": True,
    }
    assert found["occurrenceCount"] == 20
    assert "suppressions" not in found


def test_sarif_schema_check_can_fail(pytester: pytest.Pytester) -> None:
    """The validation above is not vacuous: the schema rejects the same log with a level,
    a region, a missing required property or a URI that SARIF does not allow (the URI
    formats are checked)."""
    assert {"uri", "uri-reference"} <= set(jsonschema.FormatChecker().checkers)
    project(pytester, TESTS)
    _, log = sarif(pytester, "--sqlaudit-report")
    validate(log)
    bad_level = copy.deepcopy(log)
    bad_level["runs"][0]["results"][0]["level"] = "warn"
    bad_line = copy.deepcopy(log)
    region = bad_line["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    region["startLine"] = 0
    no_driver = copy.deepcopy(log)
    del no_driver["runs"][0]["tool"]["driver"]
    bad_uri = copy.deepcopy(log)
    bad_uri["runs"][0]["originalUriBaseIds"]["PROJECTROOT"]["uri"] = "file:///a b/"
    for broken in (bad_level, bad_line, no_driver, bad_uri):
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_sarif_baseline_accepted_findings_are_suppressed(pytester: pytest.Pytester) -> None:
    """A finding the baseline accepts stays in the log with an external suppression (code
    scanning closes it); a finding that is only reported has level from its severity."""
    project(pytester, TESTS)
    run(pytester, "--sqlaudit-baseline=baseline.json", "--sqlaudit-update-baseline")
    result, log = sarif(pytester, "--sqlaudit-baseline=baseline.json")
    result.assert_outcomes(passed=3)
    validate(log)
    (found,) = log["runs"][0]["results"]
    assert found["properties"]["outcome"] == "accepted"
    assert found["suppressions"] == [
        {"kind": "external", "justification": "accepted by the baseline baseline.json"}
    ]


def test_sarif_finding_without_a_place_points_at_the_test(pytester: pytest.Pytester) -> None:
    """A finding with no application line (a blown budget of the whole unit) points at the
    test function, so that code scanning can show it."""
    project(pytester, BUDGET)
    result, log = sarif(pytester)
    result.assert_outcomes(failed=1)
    validate(log)
    (found,) = log["runs"][0]["results"]
    assert found["ruleId"] == "query_budget" and found["level"] == "error"
    (location,) = found["locations"]
    # pytest's location of a decorated function is its first decorator's line
    line = BUDGET.splitlines().index("@pytest.mark.sqlaudit(max_queries=2, allow=['n_plus_one'])")
    assert location["physicalLocation"] == {
        "artifactLocation": {"uri": "test_feed.py", "uriBaseId": "PROJECTROOT"},
        "region": {"startLine": line + 1},
    }


def test_sarif_under_xdist(pytester: pytest.Pytester) -> None:
    """Findings found on pytest-xdist workers reach the controller's SARIF file."""
    project(pytester, TESTS)
    result = run(
        pytester, "-n", "2", "--sqlaudit-report", "--sqlaudit-sarif=out.sarif", subprocess=True
    )
    result.assert_outcomes(passed=3)
    log = json.loads((pytester.path / "out.sarif").read_text(encoding="utf-8"))
    validate(log)
    assert [r["properties"]["test"] for r in log["runs"][0]["results"]] == [
        "test_feed.py::test_n_plus_one"
    ]


def test_every_kind_has_a_rule() -> None:
    """Each finding kind has a rule description and help text for code scanning."""
    assert set(RULES) == KINDS
    for severity, short, text in RULES.values():
        assert severity in ("info", "warning", "error")
        assert short and text.endswith(".")


@pytest.mark.parametrize(
    ("text", "data", "prop"),
    [
        pytest.param("plain", "plain", "plain", id="plain"),
        pytest.param("50% of 2", "50%25 of 2", "50%25 of 2", id="percent"),
        pytest.param("a\r\nb", "a%0D%0Ab", "a%0D%0Ab", id="newlines"),
        pytest.param("N+1: a, b", "N+1: a, b", "N+1%3A a%2C b", id="colon-comma"),
        pytest.param("%0A", "%250A", "%250A", id="escaped-looking"),
    ],
)
def test_workflow_command_escaping(text: str, data: str, prop: str) -> None:
    """Messages escape %, CR and LF; properties also ``:`` and ``,`` (``@actions/core``)."""
    assert escape_data(text) == data
    assert escape_property(text) == prop


def test_github_annotations(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under GitHub Actions each finding is a workflow command at its file and line:
    ``::error`` when it fails the test, ``::warning`` when only reported; allowed findings
    are not annotated."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(pytester.path))
    project(pytester, TESTS)
    result = run(pytester, "--sqlaudit")
    result.assert_outcomes(passed=2, failed=1)
    commands = [line for line in result.outlines if line.startswith("::")]
    assert len(commands) == 1
    head, message = commands[0].split("::", 2)[1:]
    assert head == f"error file=feedlib.py,line={FEED_LINE},title=sqlaudit n_plus_one"
    assert message.startswith("N+1: Stream.comments lazy-loaded 20x, once per Stream")
    assert "%0Afix: " in message and "\n" not in message
    assert message.endswith("%0Atest: test_feed.py::test_n_plus_one")

    result = run(pytester, "--sqlaudit-report")
    result.assert_outcomes(passed=3)
    commands = [line for line in result.outlines if line.startswith("::")]
    assert [c.split("::")[1] for c in commands] == [
        f"warning file=feedlib.py,line={FEED_LINE},title=sqlaudit n_plus_one"
    ]


def test_no_annotations_outside_github_actions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``GITHUB_ACTIONS=true`` (or with ``--sqlaudit-annotations=off``) no workflow
    command is printed; ``--sqlaudit-annotations=github`` prints them anywhere."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    project(pytester, TESTS)
    result = run(pytester, "--sqlaudit")
    assert not [line for line in result.outlines if line.startswith("::")]
    result = run(pytester, "--sqlaudit", "--sqlaudit-annotations=github")
    assert len([line for line in result.outlines if line.startswith("::error ")]) == 1
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run(pytester, "--sqlaudit", "--sqlaudit-annotations=off")
    assert not [line for line in result.outlines if line.startswith("::")]


def test_bad_annotations_and_sarif_settings_are_usage_errors(pytester: pytest.Pytester) -> None:
    """A bad ini value or a directory as the SARIF path stops the run with a usage error."""
    project(pytester, TESTS)
    pytester.makeini("[pytest]\nsqlaudit_annotations = always\n")
    result = run(pytester)
    result.stderr.fnmatch_lines(
        ["*sqlaudit: sqlaudit_annotations must be one of auto, github, off, got 'always'*"]
    )
    pytester.makeini("[pytest]\n")
    (pytester.path / "out").mkdir()
    result = run(pytester, "--sqlaudit-sarif=out")
    result.stderr.fnmatch_lines(["*sqlaudit_sarif must be the path of a file to write*"])


def _properties(xml: Path) -> dict[str, dict[str, str]]:
    tree = ET.parse(xml)
    return {
        case.get("name", ""): {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }


def test_junit_properties(pytester: pytest.Pytester) -> None:
    """``--junitxml`` shows each audited test's statement counts and findings as
    ``<properties>``; a test that is not audited has none."""
    project(pytester, TESTS)
    run(pytester, "--sqlaudit-report", "--junitxml=out/junit.xml")
    props = _properties(pytester.path / "out" / "junit.xml")
    n_plus_one = props["test_n_plus_one"]
    assert n_plus_one["sqlaudit_statements"] == "21"
    assert n_plus_one["sqlaudit_statements_select"] == "21"
    assert n_plus_one["sqlaudit_findings"] == "1"
    assert n_plus_one["sqlaudit_failing"] == "0"
    assert float(n_plus_one["sqlaudit_db_time_ms"]) >= 0
    clean = props["test_clean"]
    assert (clean["sqlaudit_statements"], clean["sqlaudit_findings"]) == ("2", "0")
    # allowed findings are not counted (they are never exported)
    assert props["test_allowed"]["sqlaudit_findings"] == "0"

    run(pytester, "--junitxml=out/plain.xml")
    plain = _properties(pytester.path / "out" / "plain.xml")
    assert plain["test_n_plus_one"] == {}
    assert plain["test_allowed"]["sqlaudit_statements"] == "21"  # its marker audits it


def test_one_annotation_per_finding_and_place(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same finding at the same line from several tests is one annotation naming the
    first test and how many more (GitHub shows only a few annotations per step); SARIF keeps
    one result per test."""
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    project(
        pytester,
        """
        from feedlib import Session, feed

        def test_a(engine):
            with Session(engine) as session:
                feed(session)

        def test_b(engine):
            with Session(engine) as session:
                feed(session)
        """,
    )
    result, log = sarif(pytester, "--sqlaudit")
    result.assert_outcomes(failed=2)
    commands = [line for line in result.outlines if line.startswith("::")]
    assert len(commands) == 1
    assert commands[0].startswith(f"::error file=feedlib.py,line={FEED_LINE},")
    assert commands[0].endswith("%0Atest: test_feed.py::test_a and 1 more")
    assert len(log["runs"][0]["results"]) == 2
    fingerprints = {
        r["partialFingerprints"]["sqlauditFinding/v1"] for r in log["runs"][0]["results"]
    }
    assert len(fingerprints) == 2


def test_sarif_paths_outside_the_root_and_unusual_names() -> None:
    """A file outside the project root is an absolute ``file:`` URI (no base id); a name with
    a space or ``#`` is percent-encoded; both validate."""
    finding = {
        "kind": "write_loop",
        "severity": "warning",
        "message": "write loop: 6 flushes",
        "fix": "batch the writes",
        "identity": ["write_loop", "INSERT", "x", "f"],
        "outcome": "reported",
        "count": 6,
        "line": 7,
        "function": "f",
    }
    tests = {
        "t.py::a": {"findings": [{**finding, "file": "/elsewhere/lib.py"}], "location": None},
        "t.py::b": {"findings": [{**finding, "file": "my app/#1.py"}], "location": ["t.py", 3]},
    }
    log = sarif_log(tests, root=Path("/project"), version="0.1")
    validate(log)
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]
    ]
    assert uris == [
        {"uri": "file:///elsewhere/lib.py"},
        {"uri": "my%20app/%231.py", "uriBaseId": "PROJECTROOT"},
    ]
