"""``sqlaudit demo``: the example BFF's planted problems are reported, its fixes are clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from databases import Kind, resolve_url
from timing import TIMING_KINDS

from sqlaudit import cli

RULE = "=" * 78

#: route, finding kind the planted version must report, a line of that finding's text report.
PLANTED = [
    pytest.param(
        "GET /streams", "n_plus_one", "N+1 loop: this loop issues 2N+1 queries", id="streams"
    ),
    pytest.param(
        "GET /streams/{stream_id}", "repeated_query", "repeated query: 4x", id="stream_detail"
    ),
    pytest.param("POST /points/award", "write_loop", "write loop: 8 flushes", id="award_points"),
    pytest.param(
        "POST /streams/{stream_id}/stamps", "write_loop", "write loop: 6 flushes", id="send_stamps"
    ),
    pytest.param(
        "GET /me", "query_budget", "query budget exceeded: 6 statements, budget 3", id="me"
    ),
]
ROUTES = [p.values[0] for p in PLANTED]


def sections(output: str) -> dict[str, str]:
    """The text output split per audited unit: unit name -> its header, report and verdict."""
    lines = output.splitlines()
    starts = [
        i
        for i in range(len(lines) - 3)
        if lines[i] == RULE and lines[i + 3] == RULE and lines[i + 1].endswith("]")
    ]
    result = {}
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(lines)
        name = lines[start + 1].rsplit("    [", 1)[0]
        result[name] = "\n".join(lines[start:end]).split("\nSummary (")[0]
    return result


def test_demo_exits_0_when_every_planted_problem_is_flagged_and_every_fix_clean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The full demo on SQLite exits 0 and reports each planted kind and each clean fix."""
    code = cli.main(["demo"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert err == ""
    found = sections(out)
    assert sorted(found) == sorted(
        f"{route} ({variant})" for route in ROUTES for variant in ("planted", "fixed")
    )
    for param in PLANTED:
        route, kind, message = param.values
        planted = found[f"{route} (planted)"]
        assert message in planted, planted
        assert f"-> flagged as expected: {kind}" in planted, planted
        fixed = found[f"{route} (fixed)"]
        summary = [line for line in fixed.splitlines() if line.startswith("sqlaudit: ")]
        assert summary == [summary[0]], fixed
        assert summary[0].startswith(f"sqlaudit: {route} (fixed): "), fixed
        assert "-> clean as expected: 0 findings" in fixed, fixed
    assert "5/5 planted problems flagged, 5/5 fixed versions clean." in out


@pytest.mark.parametrize(("route", "kind", "message"), PLANTED)
def test_demo_json_lines_carry_each_reports_findings(
    capsys: pytest.CaptureFixture[str], route: str, kind: str, message: str
) -> None:
    """With --json each report is one to_dict() line: the planted one has its kind, the fix none."""
    code = cli.main(["demo", "--json", "--only", route])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    reports = {r["name"]: r for r in map(json.loads, out.splitlines())}
    assert list(reports) == [f"{route} (planted)", f"{route} (fixed)"]
    planted = reports[f"{route} (planted)"]
    assert kind in [f["kind"] for f in planted["findings"]]
    assert any(f["message"].startswith(message) for f in planted["findings"])
    fixed = reports[f"{route} (fixed)"]["findings"]
    assert [f["kind"] for f in fixed if f["kind"] not in TIMING_KINDS] == []
    assert "1/1 planted problems flagged, 1/1 fixed versions clean." in err


def test_python_m_sqlaudit_demo_only_runs_one_pair(tmp_path: Path) -> None:
    """``python -m sqlaudit demo --only NAME`` works from any directory and runs only that pair."""
    proc = subprocess.run(
        [sys.executable, "-m", "sqlaudit", "demo", "--only", "stream_detail"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(sections(proc.stdout)) == [
        "GET /streams/{stream_id} (fixed)",
        "GET /streams/{stream_id} (planted)",
    ]
    assert "-> flagged as expected: repeated_query" in proc.stdout
    assert "1/1 planted problems flagged, 1/1 fixed versions clean." in proc.stdout


def test_demo_without_examples_directory_explains_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Installed without the source checkout, the demo says where it ships and exits 2."""
    monkeypatch.setattr(cli, "examples_dir", lambda: tmp_path / "examples")
    code = cli.main(["demo"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "ships with sqlaudit's source checkout" in err
    assert str(tmp_path / "examples") in err


def test_demo_unknown_only_name_lists_the_choices_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--only`` with an unknown name exits 2 and names the endpoints that exist."""
    code = cli.main(["demo", "--only", "no_such_endpoint"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "no endpoint named 'no_such_endpoint'" in err
    assert "list_streams" in err


def test_version_flag_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``sqlaudit --version`` prints sqlaudit's version and returns 0 instead of exiting."""
    code = cli.main(["--version"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert out.startswith("sqlaudit 0.")


def test_cli_import_pulls_in_no_example_driver_or_test_modules() -> None:
    """Importing ``sqlaudit.cli`` loads no example service, DB driver, pytest or OpenTelemetry."""
    code = (
        "import sys, sqlaudit.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    loaded = set(proc.stdout.split())
    forbidden = {"bff", "pytest", "opentelemetry", "pymysql", "psycopg", "aiosqlite"}
    assert loaded & forbidden == set()


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_demo_on_database_servers(kind: Kind, capsys: pytest.CaptureFixture[str]) -> None:
    """On MariaDB and PostgreSQL the demo recreates its bff_* tables and gives the same verdicts."""
    url = resolve_url(kind)
    for _ in range(2):  # a second run must find a clean slate
        code = cli.main(["demo", "--url", url])
        out, err = capsys.readouterr()
        assert code == 0, out + err
        assert "5/5 planted problems flagged, 5/5 fixed versions clean." in out
