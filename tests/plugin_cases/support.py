"""Helpers for the plugin tests: build a small project in ``pytester`` and run pytest in it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import timing

from sqlaudit.capture import callsite as _callsite

CASES = Path(__file__).resolve().parent
#: Other installed plugins are not wanted in the inner runs (hypothesis alone costs ~2 s per
#: run); no cache files either.
ARGS = (
    "-p",
    "no:asyncio",
    "-p",
    "no:hypothesispytest",
    "-p",
    "no:anyio",
    "-p",
    "no:cacheprovider",
)

#: A feed with an N+1 unless ``eager``; imported by the inner test files.
FEED = """
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from myapp.models import Comment, Stream, add_streams


def feed(session, eager=False):
    query = select(Stream).order_by(Stream.id)
    if eager:
        query = query.options(selectinload(Stream.comments))
    page = []
    for stream in session.scalars(query):
        page.append((stream.title, len(stream.comments)))
    return page
"""

_MS = re.compile(r"\d+(\.\d+)? ms")


def case(name: str) -> str:
    """The text of ``plugin_cases/<name>``."""
    return (CASES / name).read_text(encoding="utf-8")


def project(
    pytester: pytest.Pytester, tests: str | None = None, conftest: str | None = None
) -> None:
    """``myapp/models.py``, a conftest (the README's by default) and ``test_feed.py``."""
    package = pytester.mkpydir("myapp")
    (package / "models.py").write_text(case("myapp_models.py"), encoding="utf-8")
    (pytester.path / "feedlib.py").write_text(FEED, encoding="utf-8")
    pytester.makeconftest(conftest if conftest is not None else case("readme_conftest.py"))
    if tests is not None:
        pytester.makepyfile(test_feed=tests)


def run(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> pytest.RunResult:
    """Run pytest in the project (in-process unless ``subprocess``, which xdist needs)."""
    if subprocess:
        return pytester.runpytest_subprocess(*ARGS, *args, timeout=120)
    # sqlaudit caches call sites by code object, and code objects compare equal whatever
    # their co_filename: the same feedlib.py in an earlier project would name that project's
    # file. Start each in-process run with empty caches (the defaults: no app_paths).
    _callsite.configure()
    # The inner run's timings are the test's (timing.py): each read of sqlaudit's clock moves
    # 10 µs, and more only when an inner test calls ``timing.active().advance(seconds)``, so no
    # verdict depends on the machine's speed.
    with timing.installed(timing.Clock(step=0.00001)):
        return pytester.runpytest(*ARGS, *args)


def section(result: pytest.RunResult, test: str) -> str:
    """The failure section of ``test`` (between its ``___ test ___`` header and the next)."""
    text = result.stdout.str()
    match = re.search(
        rf"_{{3,}} {re.escape(test)} _{{3,}}\n(.*?)(?=\n_{{3,}} |\n={{3,}} )", text, re.S
    )
    assert match, f"no failure section for {test} in:\n{text}"
    return match.group(1)


def no_ms(text: str) -> str:
    """``text`` with timings replaced by ``N ms`` (they differ between runs)."""
    return _MS.sub("N ms", text)
