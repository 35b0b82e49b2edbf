"""``sqlaudit demo``: the example BFF's planted problems are reported, its fixes are clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from databases import Kind, resolve_url
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
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
    pytest.param(
        "POST /streams/{stream_id}/gifts",
        "ineffective_rollback",
        "ineffective rollback while handling an exception: 2 write(s)",
        id="send_gift",
    ),
]
#: The autocommit endpoint's other findings: the whole of the seed's story.
GIFT_KINDS = ["autocommit_read_modify_write", "autocommit_writes", "stale_identity_map"]
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
    assert "6/6 planted problems flagged, 6/6 fixed versions clean." in out


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


def test_demo_tells_the_autocommit_story(capsys: pytest.CaptureFixture[str]) -> None:
    """The autocommit endpoint's planted version reports every part of the seed's story (not
    atomic, a rollback that undoes nothing, a stale entity, a lost update) and its fix none;
    both answer the same, and the planted one left the viewer charged."""
    code = cli.main(["demo", "--json", "--only", "send_gift"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    planted, fixed = map(json.loads, out.splitlines())
    judged = [f for f in planted["findings"] if f["severity"] != "info"]
    found = sorted(f["kind"] for f in judged if f["kind"] not in TIMING_KINDS)
    assert found == sorted(["ineffective_rollback", *GIFT_KINDS])
    kinds = [f["kind"] for f in fixed["findings"] if f["severity"] != "info"]
    assert [k for k in kinds if k not in TIMING_KINDS] == []


@pytest.mark.parametrize("kind", ["sqlite", "mysql", "postgresql"])
def test_autocommit_endpoint_really_loses_the_coins(kind: Kind) -> None:
    """What the planted endpoint's findings describe happens: the viewer is charged and the
    stamp stays although the gift failed; the fixed endpoint leaves both untouched."""
    sys.path.insert(0, str(cli.examples_dir()))
    try:
        from bff import gifts, seed
        from bff.models import Stamp, Wallet
    finally:
        sys.path.pop(0)
    engine = create_engine(resolve_url(kind))
    seed.reset_schema(engine)
    try:
        with Session(engine) as session:
            seed.seed(session)

        def state() -> tuple[int, int]:
            with Session(engine) as session:
                balance = session.get_one(Wallet, 2).balance
                return balance, len(
                    session.scalars(select(Stamp).where(Stamp.name == "gift")).all()
                )

        assert state() == (1000, 0)
        with Session(engine) as session:
            assert gifts.send_gift_fixed(session)["sent"] is False
        assert state() == (1000, 0)  # rolled back for real
        with Session(engine) as session:
            assert gifts.send_gift_planted(session)["sent"] is False
        assert state() == (500, 1)  # charged for a gift never delivered
    finally:
        seed.drop_schema(engine)
        engine.dispose()


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
        assert "6/6 planted problems flagged, 6/6 fixed versions clean." in out
