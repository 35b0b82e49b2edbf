"""Call sites (``sqlaudit.capture.callsite``): the application frames behind a statement.

Findings point at the line that issued the statements, so the walk must skip SQLAlchemy,
sqlaudit, the standard library and installed packages, and honour ``configure(app_paths=...)``.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from lines import marked_line
from sqlalchemy import Engine, event, text

import sqlaudit
from sqlaudit import CallSite
from sqlaudit.capture import callsite as _callsite
from sqlaudit.capture.callsite import capture, configure, is_app_file

HERE = __file__


def line_of(marker: str) -> int:
    """The line of this file that ends with the comment ``# <marker>``."""
    return marked_line(HERE, marker)


@pytest.fixture
def restore_configuration() -> Iterator[None]:
    """Put ``configure()``'s global state back as it was, whatever the test set."""
    saved = (_callsite._app_paths, _callsite._ignore_paths)
    try:
        yield
    finally:
        configure(app_paths=saved[0], ignore_paths=saved[1])


def test_capture_returns_the_calling_test_line() -> None:
    """``capture(1)`` starts at its caller: a test function's own file, line and name."""
    stack = capture(1)  # capture-here
    assert stack[0] == CallSite(
        HERE, line_of("capture-here"), "test_capture_returns_the_calling_test_line"
    )


def inner() -> tuple[CallSite, ...]:
    return capture()  # default depth: starts at the caller of inner()


def middle() -> tuple[CallSite, ...]:
    return inner()  # middle-calls-inner


def outer() -> tuple[CallSite, ...]:
    return middle()  # outer-calls-middle


def test_default_depth_skips_the_direct_caller() -> None:
    """``capture()`` (depth 2) starts one frame above the function that called it."""
    stack = middle()
    assert stack[0] == CallSite(HERE, line_of("middle-calls-inner"), "middle")


def test_keeps_every_application_frame_innermost_first() -> None:
    """Every application frame is kept, innermost first, up to the runner's call of the test
    (``stop_at``: pytest's frames are the same for every statement)."""
    stack = outer()  # test-calls-outer
    assert [(s.line, s.function) for s in stack] == [
        (line_of("middle-calls-inner"), "middle"),
        (line_of("outer-calls-middle"), "outer"),
        (line_of("test-calls-outer"), "test_keeps_every_application_frame_innermost_first"),
    ]


class CapturesWhenCopied:
    """``copy.deepcopy`` (pure-Python stdlib) calls ``__deepcopy__``, which captures."""

    stack: tuple[CallSite, ...] = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> CapturesWhenCopied:
        CapturesWhenCopied.stack = capture(1)  # in-deepcopy
        return self


def test_stdlib_frames_are_skipped() -> None:
    """Frames in the standard library (``copy.py``) between two application frames are skipped."""
    copy.deepcopy(CapturesWhenCopied())  # calls-deepcopy
    assert [(s.line, s.function) for s in CapturesWhenCopied.stack[:2]] == [
        (line_of("in-deepcopy"), "__deepcopy__"),
        (line_of("calls-deepcopy"), "test_stdlib_frames_are_skipped"),
    ]
    assert all(s.file == HERE for s in CapturesWhenCopied.stack)


def test_stdlib_frames_before_the_first_application_frame_are_skipped() -> None:
    """Starting inside ``json``'s pure-Python encoder, the walk skips it to reach the caller."""
    stacks: list[tuple[CallSite, ...]] = []

    def default(obj: object) -> str:
        stacks.append(capture(2))  # depth 2: start in the encoder that called default()
        return "x"

    json.dumps({"a": [object()]}, default=default, indent=1)  # calls-json
    assert stacks[0][0] == CallSite(
        HERE,
        line_of("calls-json"),
        "test_stdlib_frames_before_the_first_application_frame_are_skipped",
    )


def test_callback_from_builtin_reduce() -> None:
    """``functools.reduce`` (C, no frame of its own) leaves the callback and its caller."""

    def step(acc: tuple[CallSite, ...], _: int) -> tuple[CallSite, ...]:
        return capture(1)  # in-reduce

    stack = functools.reduce(step, [1, 2], ())  # calls-reduce
    assert [s.line for s in stack[:2]] == [line_of("in-reduce"), line_of("calls-reduce")]


def test_sqlalchemy_frames_are_skipped(sqlite_engine: Engine) -> None:
    """Starting inside SQLAlchemy's execution path, the first frame found is the executing line."""
    stacks: list[tuple[CallSite, ...]] = []

    def before_cursor_execute(*args: Any) -> None:
        stacks.append(capture(2))  # depth 2: start in SQLAlchemy's dispatch of this listener

    event.listen(sqlite_engine, "before_cursor_execute", before_cursor_execute)
    with sqlite_engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # executes
    assert stacks[0][0] == CallSite(HERE, line_of("executes"), "test_sqlalchemy_frames_are_skipped")


def test_recorded_statement_points_at_the_executing_line(sqlite_engine: Engine) -> None:
    """Through the real capture path, a statement's call site is the line that executed it."""
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        with sqlaudit.audit("callsite", reporters=()) as report:
            with sqlite_engine.connect() as connection:
                connection.execute(text("SELECT 1"))  # audited-execute
    finally:
        handle.remove()
    selects = [r for r in report.statements if r.sql == "SELECT 1"]
    assert selects[0].callsite == CallSite(
        HERE, line_of("audited-execute"), "test_recorded_statement_points_at_the_executing_line"
    )


@pytest.mark.usefixtures("restore_configuration")
def test_app_paths_restrict_application_frames(tmp_path: Path) -> None:
    """With ``app_paths`` set, only files under them count: this test file no longer does."""
    configure(app_paths=[str(tmp_path)])
    assert capture(1) == ()
    assert is_app_file(str(tmp_path / "pkg" / "views.py"))
    assert not is_app_file(HERE)


@pytest.mark.usefixtures("restore_configuration")
def test_app_paths_select_frames_from_a_module_file(tmp_path: Path) -> None:
    """Code compiled from a file under ``app_paths`` is reported; the test calling it is not."""
    app_file = tmp_path / "app" / "views.py"
    app_file.parent.mkdir()
    source = "def view(capture):\n    return capture(1)\n"
    app_file.write_text(source)
    namespace: dict[str, Any] = {}
    exec(compile(source, str(app_file), "exec"), namespace)
    configure(app_paths=[str(tmp_path / "app")])
    assert namespace["view"](capture) == (CallSite(str(app_file), 2, "view"),)


@pytest.mark.usefixtures("restore_configuration")
def test_configure_resets_decisions() -> None:
    """Reconfiguring drops cached per-code decisions, and ``configure()`` restores the default."""
    assert capture(1)
    configure(app_paths=[os.path.join(os.sep, "nowhere")])
    assert capture(1) == ()
    configure()
    assert capture(1)


@pytest.mark.usefixtures("restore_configuration")
def test_ignore_paths(tmp_path: Path) -> None:
    """Files under ``ignore_paths`` are never application code, even under ``app_paths``."""
    configure(app_paths=[str(tmp_path)], ignore_paths=[str(tmp_path / "vendor")])
    assert is_app_file(str(tmp_path / "views.py"))
    assert not is_app_file(str(tmp_path / "vendor" / "lib.py"))


SITE = os.path.join(os.sep, "usr", "lib", "python3", "site-packages", "requests", "api.py")
DIST = os.path.join(os.sep, "usr", "lib", "python3", "dist-packages", "yaml", "parser.py")

APP_FILES = [
    pytest.param(SITE, False, id="site-packages"),
    pytest.param(DIST, False, id="dist-packages"),
    pytest.param(sqlalchemy.__file__, False, id="sqlalchemy"),
    pytest.param(sqlaudit.__file__, False, id="sqlaudit-init"),
    pytest.param(_callsite.__file__, False, id="sqlaudit-callsite"),
    pytest.param(json.__file__, False, id="stdlib-package"),
    pytest.param(copy.__file__, False, id="stdlib-module"),
    pytest.param(pytest.__file__, False, id="installed-pytest"),
    pytest.param("<string>", False, id="string"),
    pytest.param("<frozen runpy>", False, id="frozen"),
    pytest.param("", False, id="empty"),
    pytest.param(HERE, True, id="this-test-file"),
    pytest.param(
        os.path.join(os.sep, "srv", "my-site-packages-tool", "app.py"), True, id="lookalike-dir"
    ),
]


@pytest.mark.parametrize(("filename", "expected"), APP_FILES)
def test_is_app_file(filename: str, expected: bool) -> None:
    """Libraries, sqlaudit itself and pseudo-files are not application code; the rest is."""
    assert is_app_file(filename) is expected


@pytest.mark.parametrize("name", ["app.py", "pkg/views.py"])
def test_is_app_file_tmp_files(tmp_path: Path, name: str) -> None:
    """A file in a temporary directory (outside any library) is application code."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("")
    assert is_app_file(str(path))


@pytest.mark.usefixtures("restore_configuration")
def test_app_paths_match_whole_directories(tmp_path: Path) -> None:
    """``app_paths=[".../app"]`` covers ``.../app/x.py``, not the sibling ``.../application.py``."""
    configure(app_paths=[str(tmp_path / "app")])
    assert is_app_file(str(tmp_path / "app" / "x.py"))
    assert not is_app_file(str(tmp_path / "application.py"))


#: A recursive function whose frames are not application code (pseudo-file name).
DEEP = compile(
    "def deep(n, callback):\n    return callback() if n == 0 else deep(n - 1, callback)\n",
    "<library>",
    "exec",
)


@pytest.mark.parametrize(
    ("library_frames", "found"),
    [
        pytest.param(_callsite.MAX_WALK - 10, True, id="within-bound"),
        pytest.param(_callsite.MAX_WALK + 10, False, id="beyond-bound"),
    ],
)
def test_walk_is_bounded(library_frames: int, found: bool) -> None:
    """At most ``MAX_WALK`` frames are examined, so a deep framework stack has a bounded cost."""
    namespace: dict[str, Any] = {}
    exec(DEEP, namespace)
    stack = namespace["deep"](library_frames, functools.partial(capture, 1))  # calls-deep
    assert bool(stack) is found
    if found:
        assert stack[0] == CallSite(HERE, line_of("calls-deep"), "test_walk_is_bounded")


def test_application_frames_above_library_frames_are_kept() -> None:
    """Application frames above a library's frames (a serializer, a template engine, a
    framework calling back into the application) belong to the stack too."""
    namespace: dict[str, Any] = {}
    exec(DEEP, namespace)

    def near() -> tuple[CallSite, ...]:
        return capture(1)  # in-near

    far = namespace["deep"](20, near)  # calls-far
    assert [s.line for s in far[:2]] == [line_of("in-near"), line_of("calls-far")]


def nest(levels: int) -> tuple[CallSite, ...]:
    if levels:
        return nest(levels - 1)  # nest-recurses
    return capture(1)  # nest-captures


@pytest.mark.parametrize("bound", [1, 2, 3, _callsite.MAX_APP])
def test_at_most_max_app_frames_are_kept_innermost_first(
    monkeypatch: pytest.MonkeyPatch, bound: int
) -> None:
    """A stack of more application frames than ``MAX_APP`` keeps the innermost ``MAX_APP``
    (the first frame is taken before the walk's loop: the bound holds from one frame on)."""
    monkeypatch.setattr(_callsite, "MAX_APP", bound)
    stack = nest(40)
    assert [s.line for s in stack] == [line_of("nest-captures")] + [line_of("nest-recurses")] * (
        bound - 1
    )


def helper_query() -> tuple[CallSite, ...]:
    return capture(1)  # helper-line


def test_four_calls_of_one_helper_from_four_lines_are_four_stacks() -> None:
    """The same helper called from four lines of a test: four call stacks (only the innermost
    frames used to count, which made these one "loop")."""
    stacks = [
        helper_query(),  # call-1
        helper_query(),  # call-2
        helper_query(),  # call-3
        helper_query(),  # call-4
    ]
    assert len(set(stacks)) == 4
    assert [s[1].line for s in stacks] == [line_of(f"call-{n}") for n in (1, 2, 3, 4)]
    assert {s[0].line for s in stacks} == {line_of("helper-line")}


def test_stack_ends_at_the_line_that_opened_the_audit(sqlite_engine: Engine) -> None:
    """Frames above the ``with sqlaudit.audit()`` block are not part of a statement's stack."""
    handle = sqlaudit.instrument(sqlite_engine)

    def unit_of_work() -> Any:
        with sqlaudit.audit("job", on_finding="ignore") as report:  # opens-audit
            run_select(sqlite_engine.connect())  # inside-audit
        return report

    try:
        report = unit_of_work()  # calls-unit
    finally:
        handle.remove()
    (record,) = report.statements
    assert [s.line for s in record.stack] == [line_of("helper-executes"), line_of("inside-audit")]


def test_remembered_offsets_never_misattribute_across_entry_points() -> None:
    """Statements issued through SQLAlchemy entry points of different depths, alternating,
    directly and through a stdlib callback, each keep the exact line that issued them."""
    import functools

    from sqlalchemy import create_engine, select, text
    from sqlalchemy.orm import Session

    import sqlaudit

    engine = create_engine("sqlite://")
    handle = sqlaudit.instrument(engine)

    def via_reduce(conn: object) -> None:
        functools.reduce(lambda acc, _: conn.execute(text("SELECT 3")), [0], None)  # type: ignore[attr-defined]  # reduce-line

    try:
        with sqlaudit.audit("mix", on_finding="ignore") as report:
            with engine.connect() as conn, Session(engine) as session:
                for _ in range(3):
                    conn.execute(select(1))  # core-line
                    conn.exec_driver_sql("SELECT 2")  # driver-line
                    session.execute(text("SELECT 4"))  # session-line
                    via_reduce(conn)
    finally:
        handle.remove()
    expected = {
        "SELECT 1": line_of("core-line"),
        "SELECT 2": line_of("driver-line"),
        "SELECT 4": line_of("session-line"),
    }
    for record in report.statements:
        assert record.callsite is not None, record.sql
        if record.sql == "SELECT 3":
            assert record.callsite.function == "<lambda>"
            assert record.callsite.line == line_of("reduce-line")
        else:
            assert record.callsite.line == expected[record.sql], record.sql


def run_select(connection: Any) -> None:
    connection.execute(text("SELECT 1"))  # helper-executes


def first_caller(connection: Any, times: int) -> None:
    for _ in range(times):
        run_select(connection)  # first-caller


def second_caller(connection: Any, times: int) -> None:
    for _ in range(times):
        run_select(connection)  # second-caller


def test_remembered_frames_keep_each_callers_stack(sqlite_engine: Engine) -> None:
    """Statements from one frame in a loop reuse the stack found for it (a cache by frame
    id); a helper whose frames come and go at the same address for different callers, and
    different lines of one loop, still get their own stacks."""
    handle = sqlaudit.instrument(sqlite_engine)
    try:
        with (
            sqlaudit.audit("frames", on_finding="ignore") as report,
            sqlite_engine.connect() as connection,
        ):
            for _ in range(3):
                first_caller(connection, 3)  # test-first-caller
                second_caller(connection, 2)  # test-second-caller
                connection.execute(text("SELECT 2"))  # loop-line-a
                connection.execute(text("SELECT 3"))  # loop-line-b
    finally:
        handle.remove()
    lines = [tuple(site.line for site in r.stack) for r in report.statements]
    helper = line_of("helper-executes")
    first, second = line_of("first-caller"), line_of("second-caller")
    test_first, test_second = line_of("test-first-caller"), line_of("test-second-caller")
    loop = [(line_of("loop-line-a"),), (line_of("loop-line-b"),)]
    expected = ([(helper, first, test_first)] * 3 + [(helper, second, test_second)] * 2 + loop) * 3
    assert lines == expected


@pytest.mark.skipif(_callsite._module_at is None, reason="sys._getframemodulename: Python 3.12+")
def test_module_probe_counts_frames_as_getframe_does(sqlite_engine: Engine) -> None:
    """On Python 3.12+ ``capture`` reads the module of the frame below the application's
    (``sys._getframemodulename``) instead of materialising it: at every depth of a real
    statement's stack it names the module of the frame ``sys._getframe`` gives."""
    import sys

    seen: list[tuple[list[str | None], list[str | None]]] = []

    def listener(*args: Any) -> None:
        depths = range(40)
        assert _callsite._module_at is not None
        probed = [_callsite._module_at(d) for d in depths]
        framed: list[str | None] = []
        for d in depths:
            try:
                framed.append(sys._getframe(d).f_globals.get("__name__"))
            except ValueError:
                framed.append(None)
        seen.append((probed, framed))

    event.listen(sqlite_engine, "before_cursor_execute", listener)
    try:
        with sqlite_engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            functools.reduce(lambda acc, _: connection.execute(text("SELECT 2")), [0], None)
    finally:
        event.remove(sqlite_engine, "before_cursor_execute", listener)
    assert len(seen) == 2
    for probed, framed in seen:
        assert probed == framed
        assert any(name and name.startswith("sqlalchemy.") for name in probed)
