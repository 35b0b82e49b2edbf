"""sqlaudit's peers, as ``units.py`` drives them: one recording window per unit of work.

Each peer is optional (``pip install -r benchmarks/requirements-peers.txt``, into a virtualenv
of its own: two of them are pytest plugins that load themselves into every pytest run, and
pytest-querycount then listens on every ``Engine`` of the process). A peer that is not
installed is listed as missing with the reason; the benchmark runs without it.

How each is driven, per unit (read from their installed source, versions in
requirements-peers.txt):

* **queryspy**: ``with queryspy.no_n_plus_one():`` around the unit, its documented test
  API. Each window attaches class-level listeners (``Session.do_orm_execute``,
  ``Engine.before/after_cursor_execute``) when it opens and removes them when it closes;
  the findings are computed and rendered when the window closes; ``NPlusOneError`` (an
  ``AssertionError``) is caught here where pytest would fail the test.
* **pytest-queryguard**: ``pytest_queryguard.listeners.install()`` once per process (its
  ``pytest_configure`` does it), then ``with record_queries() as log:`` around the unit and
  ``log.assert_no_nplusone()`` after it, the public API that runs the plugin's own detectors
  with its default thresholds.
* **pytest-querycount**: ``backends.install_all()`` once per process (its
  ``pytest_configure``), then per unit what its ``querycount(no_n_plus_one=True)`` fixture
  block does: a ``Recorder`` pushed for the unit, popped, and ``checks.enforce`` with
  ``Budget(no_n_plus_one=True)``.

Process-wide state and fairness: every peer listens on the ``Engine`` *class*. SQLAlchemy's
``ConnectionEvents._listen`` then sets ``Engine._has_events = True`` on the class, and
``event.remove`` never clears it (sqlalchemy/engine/events.py), so from then on every engine
of the process takes SQLAlchemy's slow path (DESIGN "Measured facts": +3.5 to +4.4 µs per
Core statement). Inside a peer's cell that is the peer's real cost and it is measured. After
the cell, ``teardown`` removes the peer's process-level listeners and restores the flag, so
that the other variants' engines (plain, floor, sqlaudit) are not charged for it;
``leftovers()`` proves it before every cell.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event

#: A unit of work: ``run(engine, i)`` issues the unit's statements (the ``i``-th unit).
UnitFn = Callable[[Engine, int], None]

_ENGINE_FLAG = Engine._has_events


@dataclass(eq=False)
class Peer:
    """One installed peer: how to set it up per process, and how to run units under it."""

    key: str
    distribution: str
    version: str
    #: How the peer is driven, one line for the report.
    how: str
    #: Process-level installation (outside the timed region).
    setup: Callable[[], None]
    #: Undo ``setup`` and the class-level state the peer left behind.
    teardown: Callable[[], None]
    #: ``batch(run, engine, start, n)``: ``n`` units, each in its own window. Returns
    #: (units the peer flagged, statements the peer counted in the last unit).
    batch: Callable[[UnitFn, Engine, int, int], tuple[int, int]]
    #: The listeners the peer may leave on classes: (target, event name, function).
    listeners: Callable[[], list[tuple[Any, str, Any]]]

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"


def _remove(listeners: list[tuple[Any, str, Any]]) -> None:
    for target, name, fn in listeners:
        if event.contains(target, name, fn):
            event.remove(target, name, fn)


def restore_engine_flag() -> None:
    """Put ``Engine._has_events`` back to what it was before any peer listened on ``Engine``."""
    Engine._has_events = _ENGINE_FLAG


def _queryspy() -> Peer:
    import queryspy
    from queryspy import _recorder

    def batch(run: UnitFn, engine: Engine, start: int, n: int) -> tuple[int, int]:
        flagged = counted = 0
        for i in range(start, start + n):
            try:
                with queryspy.no_n_plus_one() as recorder:
                    run(engine, i)
            except queryspy.NPlusOneError:
                flagged += 1
            counted = recorder.query_count
        return flagged, counted

    def listeners() -> list[tuple[Any, str, Any]]:
        from sqlalchemy.orm import Session

        return [
            (Session, "do_orm_execute", _recorder._on_orm_execute),
            (Engine, "before_cursor_execute", _recorder._on_cursor_execute),
            (Engine, "after_cursor_execute", _recorder._on_cursor_execute_done),
        ]

    def teardown() -> None:
        # queryspy removes its listeners when its last window closes; only the class flag
        # (see the module docstring) stays behind.
        _remove(listeners())
        restore_engine_flag()

    return Peer(
        "queryspy",
        "queryspy",
        importlib.metadata.version("queryspy"),
        "with queryspy.no_n_plus_one(): <unit>  (listeners attached per window)",
        lambda: None,
        teardown,
        batch,
        listeners,
    )


def _queryguard() -> Peer:
    import pytest_queryguard
    from pytest_queryguard import listeners as qg

    def batch(run: UnitFn, engine: Engine, start: int, n: int) -> tuple[int, int]:
        flagged = counted = 0
        for i in range(start, start + n):
            with pytest_queryguard.record_queries() as log:
                run(engine, i)
            try:
                log.assert_no_nplusone()
            except pytest_queryguard.NPlusOneDetected:
                flagged += 1
            counted = log.count
        return flagged, counted

    def listeners() -> list[tuple[Any, str, Any]]:
        from sqlalchemy.orm import Session

        return [
            (Session, "do_orm_execute", qg._on_orm_execute),
            (Session, "do_orm_execute", qg._on_orm_execute_heal),
            (Session, "after_begin", qg._on_after_begin),
            (Session, "after_flush", qg._on_after_flush),
            (Engine, "before_cursor_execute", qg._on_cursor_execute),
            (Engine, "after_cursor_execute", qg._on_timing_after),
        ]

    def teardown() -> None:
        _remove(listeners())
        qg._installed = False  # install() attaches once per process otherwise
        restore_engine_flag()

    return Peer(
        "queryguard",
        "pytest-queryguard",
        importlib.metadata.version("pytest-queryguard"),
        "install() once; with record_queries() as log: <unit>; log.assert_no_nplusone()",
        qg.install,
        teardown,
        batch,
        listeners,
    )


def _querycount() -> Peer:
    from pytest_querycount import DuplicateQueryError, Recorder, backends
    from pytest_querycount.backends import sqlalchemy as backend
    from pytest_querycount.checks import Budget, enforce

    budget = Budget(no_n_plus_one=True)

    def batch(run: UnitFn, engine: Engine, start: int, n: int) -> tuple[int, int]:
        flagged = counted = 0
        for i in range(start, start + n):
            recorder = Recorder(explain=budget.needs_explain)
            backends.push(recorder)
            try:
                run(engine, i)
            finally:
                backends.pop(recorder)
            try:
                enforce(budget, recorder, label="This unit")
            except DuplicateQueryError:
                flagged += 1
            counted = recorder.count
        return flagged, counted

    def listeners() -> list[tuple[Any, str, Any]]:
        return [
            (Engine, "before_cursor_execute", backend._before_cursor_execute),
            (Engine, "after_cursor_execute", backend._after_cursor_execute),
        ]

    def setup() -> None:
        backends.install_all()

    def teardown() -> None:
        _remove(listeners())
        backend._installed = False  # install() attaches once per process otherwise
        backends._installed.clear()
        restore_engine_flag()

    return Peer(
        "querycount",
        "pytest-querycount",
        importlib.metadata.version("pytest-querycount"),
        "install_all() once; Recorder pushed per unit; enforce(Budget(no_n_plus_one=True))",
        setup,
        teardown,
        batch,
        listeners,
    )


#: Peer key -> (distribution, loader).
PEERS: dict[str, tuple[str, Callable[[], Peer]]] = {
    "queryspy": ("queryspy", _queryspy),
    "queryguard": ("pytest-queryguard", _queryguard),
    "querycount": ("pytest-querycount", _querycount),
}


def load(keys: list[str]) -> tuple[list[Peer], dict[str, str]]:
    """The installed peers among ``keys``, and for the others the reason they are missing."""
    found: list[Peer] = []
    missing: dict[str, str] = {}
    for key in keys:
        distribution, loader = PEERS[key]
        try:
            importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            missing[distribution] = (
                "not installed (pip install -r benchmarks/requirements-peers.txt)"
            )
            continue
        try:
            found.append(loader())
        except Exception as exc:  # an incompatible release: say so, measure the others
            missing[distribution] = f"installed but cannot be driven: {exc!r}"
    return found, missing


def leftovers(peers: list[Peer]) -> list[str]:
    """Process-wide state a peer left behind (must be empty before every cell)."""
    problems = []
    if Engine._has_events != _ENGINE_FLAG:
        problems.append("Engine._has_events is set on the class")
    for peer in peers:
        for target, name, fn in peer.listeners():
            if event.contains(target, name, fn):
                problems.append(f"{peer.distribution}: {target.__name__}.{name} listener")
    return problems
