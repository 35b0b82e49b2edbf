"""How sqlaudit shows a source file: relative to the working directory (the project root when
run from it), in ``/`` form, as every report, log record and JSON file writes it."""

from __future__ import annotations

import os
from functools import lru_cache

__all__ = ["relative"]


def relative(file: str) -> str:
    """``file`` relative to the working directory when it lies under it, else as it is."""
    return _relative(file, os.getcwd())


@lru_cache(maxsize=4096)
def _relative(file: str, cwd: str) -> str:
    # Cached per (file, working directory): call sites repeat, and the working directory is
    # part of the key, so a process that changes it (a test runner's tmp dirs) stays right.
    if not os.path.isabs(file):
        return file.replace(os.sep, "/")
    try:
        rel = os.path.relpath(file, cwd)
    except ValueError:  # another drive on Windows
        return file
    if rel == ".." or rel.startswith(".." + os.sep):
        return file
    return rel.replace(os.sep, "/")
