"""A baseline written on one Python passes on another (issue 19): CPython 3.12 inlines list,
dict and set comprehensions (PEP 709), so a statement issued in one has a ``<listcomp>`` frame
up to 3.11 and none from 3.12. Baselines key on the innermost named function instead.

The suite below runs under this interpreter (writing the baseline) and under another one (3.12,
or 3.11 when this is 3.12), in a virtualenv holding the same SQLAlchemy, sqlparse and pytest,
with the checkout on ``PYTHONPATH``. The other interpreter comes from ``PATH`` or pyenv, as
``.ci/run`` finds its own; without one the test is skipped (a failure under
``SQLAUDIT_REQUIRE_SERVERS=1``, as in CI). ``SQLAUDIT_TEST_OTHER_PYTHON=3.13`` (or ``3.10``)
checks against that version instead."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
from plugin_cases.support import project, run, section

pytest_plugins = ("pytester",)

ROOT = Path(__file__).resolve().parent.parent

CONFTEST = """
import pytest
from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.pool import StaticPool

import sqlaudit


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
    books: Mapped[list["Book"]] = relationship(order_by="Book.id")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str] = mapped_column(String(20))


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool)
    Base.metadata.create_all(engine)
    with Session(engine) as setup:
        for i in range(1, 4):
            setup.add(Author(id=i, name=f"a{i}", books=[Book(title=f"b{i}")]))
        setup.commit()
    sqlaudit.instrument(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()
"""

TESTS = """
from sqlalchemy import select

from conftest import Author


def authors(session):
    return session.scalars(select(Author).order_by(Author.id)).all()


def titles(session):
    return [[b.title for b in a.books] for a in authors(session)]  # <listcomp> up to 3.11


def test_list_comprehension(session):
    assert len(titles(session)) == 3


def test_dict_comprehension(session):
    assert len({a.name: len(a.books) for a in authors(session)}) == 3


def test_generator_expression(session):
    assert sum(len(a.books) for a in authors(session)) == 3


def test_lambda(session):
    assert sum(map(lambda a: len(a.books), authors(session))) == 3


def test_loop(session):
    for author in authors(session):
        assert author.books
"""

#: The plugin loaded by module, the same way under both interpreters (the other one has the
#: checkout on PYTHONPATH, not installed: no entry point).
PLUGIN = ("-p", "no:sqlaudit", "-p", "sqlaudit.pytest_plugin", "-p", "no:cacheprovider")


def other_python() -> str | None:
    """Python 3.12 (3.11 when this is 3.12), from PATH or pyenv, like ``.ci/run``; or the
    version named by ``SQLAUDIT_TEST_OTHER_PYTHON`` (``3.13``, ``3.10``)."""
    wanted = os.environ.get("SQLAUDIT_TEST_OTHER_PYTHON") or (
        "3.11" if sys.version_info[:2] == (3, 12) else "3.12"
    )
    candidates = [shutil.which(f"python{wanted}") or ""]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates += sorted(glob.glob(f"{root}/versions/{wanted}.*/bin/python{wanted}"))
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "-c", ""], check=False, capture_output=True).returncode
            == 0
        ):  # a pyenv shim without that version fails here
            return candidate
    return None


@pytest.fixture(scope="module")
def other_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv of the other Python with this environment's SQLAlchemy, sqlparse and
    pytest (pip's cache makes it a few seconds)."""
    python = other_python()
    if python is None:
        message = "no other Python (3.12, or 3.11 under 3.12) on PATH or in pyenv"
        if os.environ.get("SQLAUDIT_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    venv = tmp_path_factory.mktemp("other-python") / "venv"
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
    pins = [f"{name}=={version(name)}" for name in ("SQLAlchemy", "sqlparse", "pytest")]
    old = subprocess.run(
        [python, "-c", "import sys; print(sys.version_info < (3, 11))"],
        capture_output=True,
        text=True,
        check=True,
    )
    if old.stdout.strip() == "True":
        pins[0] = "SQLAlchemy>=2.0.23,<2.1"  # SQLAlchemy 2.1 requires Python 3.11
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pins],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    print(f"other Python's venv made in {time.perf_counter() - started:.1f} s")  # -s shows it
    return venv


def pytest_in(python: str, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("SQLAUDIT_TEST_CLOCK", None)  # the inner suite asserts no timing verdict
    return subprocess.run(
        [python, "-m", "pytest", "-q", *PLUGIN, "-p", "no:randomly", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_baseline_written_on_one_python_passes_on_another(tmp_path: Path, other_venv: Path) -> None:
    """Written here, the baseline names no anonymous function; under the other Python the
    same suite passes against it, and updating it there leaves the file byte for byte."""
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_feed.py").write_text(TESTS, encoding="utf-8")
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    baseline = "--sqlaudit-baseline=baseline.json"
    other = str(other_venv / "bin" / "python")

    adopt = pytest_in(sys.executable, tmp_path, baseline, "--sqlaudit-update-baseline")
    assert adopt.returncode == 0, adopt.stdout + adopt.stderr
    written = (tmp_path / "baseline.json").read_text(encoding="utf-8")
    entries = json.loads(written)["tests"]
    functions = {f["function"] for e in entries.values() for f in e["findings"]}
    assert functions == {"titles", "test_dict_comprehension", "test_generator_expression",
                         "test_lambda", "test_loop"}  # fmt: skip
    assert "<" not in written

    check = pytest_in(other, tmp_path, baseline)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "5 passed" in check.stdout
    assert "new finding" not in check.stdout

    again = pytest_in(other, tmp_path, baseline, "--sqlaudit-update-baseline")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "baseline.json").read_text(encoding="utf-8") == written

    # A new planted N+1 still fails there: the baseline accepts what it lists, no more.
    (tmp_path / "test_feed.py").write_text(
        TESTS + "\n\ndef test_new(session):\n    assert [a.books for a in authors(session)]\n",
        encoding="utf-8",
    )
    regress = pytest_in(other, tmp_path, baseline)
    assert regress.returncode == 1, regress.stdout + regress.stderr
    assert "1 failed, 5 passed" in regress.stdout


MARKED = """
import pytest
from feedlib import Session, feed


@pytest.mark.query_budget(2)
def test_budget(engine):
    with Session(engine) as session:
        feed(session)


def test_n_plus_one(engine):
    with Session(engine) as session:
        feed(session)
"""


def test_adopting_run_still_fails_a_marker_budget(pytester: pytest.Pytester) -> None:
    """The README's rule: a baseline accepts findings and counts, never a marker's budget. The
    adopting run fails the test over its ``query_budget`` (exit status 1) and still writes the
    baseline, with both tests' entries; the next run fails that test again, and only it."""
    project(pytester, MARKED)
    adopt = run(pytester, "--sqlaudit-baseline=b.json", "--sqlaudit-update-baseline")
    adopt.assert_outcomes(passed=1, failed=1)
    assert adopt.ret == pytest.ExitCode.TESTS_FAILED
    entries = json.loads((pytester.path / "b.json").read_text())["tests"]
    assert sorted(entries) == ["test_feed.py::test_budget", "test_feed.py::test_n_plus_one"]
    assert [f["kind"] for f in entries["test_feed.py::test_n_plus_one"]["findings"]] == [
        "n_plus_one"
    ]
    check = run(pytester, "--sqlaudit-baseline=b.json")
    check.assert_outcomes(passed=1, failed=1)
    assert "query budget exceeded: 21 statements" in section(check, "test_budget")
