"""The README's quickstart prints exactly the report the README shows (timings aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MS = re.compile(r"\d+\.\d ms")


def _blocks(text: str) -> list[str]:
    return re.findall(r"```(?:python|)\n(.*?)```", text, re.DOTALL)


def test_quickstart_output_matches_readme() -> None:
    """Running examples/quickstart.py prints the README's report, line for line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code, shown = _blocks(readme)[:2]
    assert code == (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    result = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert _MS.sub("N ms", result.stdout.rstrip()) == _MS.sub("N ms", shown.rstrip())
