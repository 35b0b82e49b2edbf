"""Which frame of a finding's stack repeats its statements: the innermost one inside a loop.

A loop finding (an N+1, a repeated query, a write loop...) groups statements whose whole
application stack is the same; the loop is in one of those frames. The innermost frame whose
line lies in the body of a ``for``/``while`` loop or in a comprehension is it, and the finding
names that loop statement's line beside the statement's own. Python files are parsed with
``ast`` (once per file, when a finding needs it, never per statement); Jinja2 templates are
scanned for the ``{% for %}`` enclosing the line.
"""

from __future__ import annotations

import ast
import linecache
import re
import threading
from collections.abc import Sequence

from sqlaudit.model.records import CallSite

__all__ = ["loop_of"]

#: Files whose loops are remembered (a finding's stack names a handful).
_MAX_FILES = 256
_loops: dict[str, tuple[tuple[int, int, int], ...]] = {}
#: The innermost loop header of each (file, line) asked about (None: in no loop), read from
#: ``_loops``: a service reports the same loop finding unit after unit, and scanning every loop
#: of its file for each frame of its stack cost more than the rest of the unit's close (issue 20).
_MAX_LINES = 4096
_headers: dict[tuple[str, int], int | None] = {}
#: Whether a line is in the body of a loop, by (file, loop header, line): an N+1's parents'
#: query against the loop that runs over its rows (``_in_body``), unit after unit as well.
_bodies: dict[tuple[str, int, int], bool] = {}
_UNKNOWN = object()
_parsing = threading.Lock()
_TEMPLATE_TAG = re.compile(r"\{%-?\s*(for|endfor)\b")


def loop_of(stack: Sequence[CallSite], origin: CallSite | None = None) -> CallSite | None:
    """The loop statement that repeats a statement issued from ``stack`` (innermost frame
    first), or None when no frame's line is inside a loop (or the source is unavailable).

    ``origin``: for lazy loads, where their parents' query ran. When that query's function is
    on the stack inside a loop that began after the query (the query not in its body), that
    loop runs over the rows: it is named even if a callee also loops (a helper walking the
    parts of ``"customer.name"``, a serializer looping over fields, once per row). A loop
    around the query itself repeats the parents' loading, not the loads: the innermost then.
    """
    if origin is not None:
        looped = _over_rows(stack, origin)
        if looped is not None:
            return looped
    for site in stack:
        header = _loop_line(site.file, site.line)
        if header is not None:
            return CallSite(site.file, header, site.function)
    return None


def _over_rows(stack: Sequence[CallSite], origin: CallSite) -> CallSite | None:
    """The loop of the frame that ran the parents' query, if it loops over their rows."""
    for site in stack:
        if (site.file, site.function) != (origin.file, origin.function):
            continue
        header = _loop_line(site.file, site.line)
        if header is None or _in_body(site.file, header, origin.line):
            return None
        return CallSite(site.file, header, site.function)
    return None


def _in_body(file: str, header: int, line: int) -> bool:
    """Whether ``line`` runs once per iteration of the loop whose header is at ``header``."""
    key = (file, header, line)
    known = _bodies.get(key)  # one read: another thread may clear it
    if known is not None:
        return known
    spans = _loops.get(file) if file.endswith((".py", ".pyw")) else None
    if spans is None:  # a template, or the file's loops forgotten since: not remembered
        return False
    inside = any(h == header and start <= line <= end for h, start, end in spans)
    if len(_bodies) >= _MAX_LINES:
        _bodies.clear()
    _bodies[key] = inside
    return inside


def _loop_line(file: str, line: int) -> int | None:
    if file.endswith((".py", ".pyw")):
        key = (file, line)
        known = _headers.get(key, _UNKNOWN)  # one read: another thread may clear it
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]  # int | None once known
        spans = _loops.get(file)
        if spans is None:
            spans = _python_loops(file)
            if len(_loops) >= _MAX_FILES:
                _loops.clear()
                _headers.clear()
                _bodies.clear()
            _loops[file] = spans
        inside = [(start, header) for header, start, end in spans if start <= line <= end]
        header = max(inside)[1] if inside else None
        if len(_headers) >= _MAX_LINES:
            _headers.clear()
        _headers[key] = header
        return header
    return _template_loop(file, line)


def _python_loops(file: str) -> tuple[tuple[int, int, int], ...]:
    """``(header line, first line, last line)`` of the part of each loop that runs once per
    iteration: a ``for``/``while`` body, a comprehension's element and conditions."""
    source = "".join(linecache.getlines(file))
    if not source:
        return ()
    try:
        # One parse at a time: CPython 3.11's AST constructor keeps its recursion depth in
        # interpreter-wide state, and threads parsing at once get a SystemError
        # ("AST constructor recursion depth mismatch", python/cpython#106905).
        with _parsing:
            tree = ast.parse(source)
    except (SyntaxError, ValueError, SystemError, RecursionError):
        return ()
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While)) and node.body:
            first, last = node.body[0], node.body[-1]
            spans.append((node.lineno, first.lineno, last.end_lineno or last.lineno))
        elif isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            spans.append((node.lineno, node.lineno, node.end_lineno or node.lineno))
    return tuple(spans)


def _template_loop(file: str, line: int) -> int | None:
    """The line of the ``{% for %}`` enclosing ``line`` in a Jinja2 template, if any."""
    lines = linecache.getlines(file)
    if not lines or line > len(lines):
        return None
    depth = 0
    for number in range(line, 0, -1):
        text = lines[number - 1]
        tags = _TEMPLATE_TAG.findall(text)
        if number == line:
            # A ``{% for x in y %}`` on the statement's own line evaluates ``y`` once per
            # iteration of the loop around it, not of itself: only earlier lines count.
            tags = []
        for tag in reversed(tags):
            if tag == "endfor":
                depth += 1
            elif depth:
                depth -= 1
            else:
                return number
    return None
