"""Line numbers of marked source lines, for tests that assert where a finding points."""

from __future__ import annotations


def line_of(path: str, marker: str) -> int:
    """The number of the line of ``path`` holding ``marker`` (a unique comment), skipping the
    line that asks for it."""
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if marker in line and "line_of(" not in line:
                return number
    raise AssertionError(f"{marker!r} not found in {path}")


def marked_line(path: str, marker: str) -> int:
    """The number of the line of ``path`` that ends with the comment ``# <marker>`` (exactly:
    ``# opener`` does not match a line marked ``# opener-again``)."""
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, start=1):
            if line.rstrip().endswith(f"# {marker}"):
                return number
    raise LookupError(marker)
