"""examples/exposed_problem.py tells its story on SQLite, MariaDB and PostgreSQL: the misuse
loses points and is flagged, the fix loses none and is clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from databases import resolve_url

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "exposed_problem.py"


@pytest.mark.parametrize("kind", ["sqlite", "mysql", "postgresql"])
def test_exposed_story(kind: str) -> None:
    """The example exits 0 (it checks the data and the findings itself) and prints both."""
    args = [sys.executable, str(EXAMPLE)]
    if kind != "sqlite":
        args.append(resolve_url(kind))  # type: ignore[arg-type]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    misused, fixed = out.split("sqlaudit: transfer (fixed)")
    assert "stale identity map" in misused
    assert "ineffective rollback" in misused
    assert "points in the system afterwards: 105" in fixed
    assert "the story played out as told" in out
