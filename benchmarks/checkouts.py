"""The checkouts a counting benchmark compares: this one and, with ``--against REF``, a git
worktree of REF made for the run and removed after it (``instructions.py``, ``bytecodes.py``)."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def checkouts(against: str | None) -> Iterator[dict[str, Path]]:
    """``{label: path}``: ``"this checkout"``, then ``against`` (a detached worktree of it)."""
    found = {"this checkout": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if against:
            ref = Path(tmp) / "ref"
            subprocess.run(
                ["git", "worktree", "add", "--detach", str(ref), against],
                cwd=ROOT, check=True, capture_output=True,
            )  # fmt: skip
            found[against] = ref
        try:
            yield found
        finally:
            if against:
                subprocess.run(
                    ["git", "worktree", "remove", "--force", str(found[against])],
                    cwd=ROOT, check=False, capture_output=True,
                )  # fmt: skip
