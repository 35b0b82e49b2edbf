"""Job functions for the RQ tests: RQ's worker imports a job's function by its dotted path,
so they live in a module of their own. ``ENGINE`` is set by the test."""

from __future__ import annotations

from sqlalchemy import Engine, text

ENGINE: Engine | None = None


def export(times: int) -> int:
    """Issues the same statement ``times`` times from one line (a repeated query)."""
    assert ENGINE is not None
    with ENGINE.connect() as connection:
        for _ in range(times):
            connection.execute(text("SELECT 1"))
    return times


def broken() -> None:
    """Queries once, then fails."""
    assert ENGINE is not None
    with ENGINE.connect() as connection:
        connection.execute(text("SELECT 1"))
    raise RuntimeError("the job's own error")
