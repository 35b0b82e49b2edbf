"""Parameter signatures: placeholder roles in every paramstyle, and walks told from loops."""

from __future__ import annotations

from collections import UserList
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

import sqlaudit
from sqlaudit.sql.params import roles, signature, walk


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param("SELECT a FROM t WHERE id = ?", None, id="no-limit-no-in"),
        pytest.param(
            "SELECT a FROM t WHERE x = ? ORDER BY a LIMIT ? OFFSET ?",
            ((0, "eq"), (1, "limit"), (2, "offset")),
            id="qmark-limit-offset",
        ),
        pytest.param(
            "SELECT a FROM t ORDER BY a LIMIT %s, %s",
            ((0, "offset"), (1, "limit")),
            id="mysql-limit-comma",
        ),
        pytest.param(
            "SELECT a FROM t WHERE id > %(id_1)s::INTEGER ORDER BY a LIMIT %(param_1)s",
            (("id_1", "range"), ("param_1", "limit")),
            id="pyformat-keyset",
        ),
        pytest.param(
            "SELECT a FROM t WHERE id IN (:a, :b) AND s = :c",
            (("a", "in"), ("b", "in"), ("c", "eq")),
            id="named-in-list",
        ),
        pytest.param(
            "SELECT a FROM t WHERE id IN ($1, $2) AND name = 'LIMIT ?'",
            ((0, "in"), (1, "in")),
            id="numeric-and-quoted-text",
        ),
        pytest.param("SELECT a FROM t FETCH FIRST ? ROWS ONLY", ((0, "limit"),), id="fetch-first"),
    ],
)
def test_roles(sql: str, expected: object) -> None:
    """Each placeholder gets the role of the clause it sits in, in every paramstyle."""
    assert roles(sql) == expected


def _issue(sql: str, *params: tuple[object, ...]) -> list[tuple[str, tuple[int, ...] | None]]:
    return [(sql, signature(sql, p)) for p in params]


def test_offset_and_keyset_pages_are_page_walks() -> None:
    """Only LIMIT/OFFSET or a range bound changes: a page walk."""
    offset = "SELECT a FROM t WHERE s = ? ORDER BY a LIMIT ? OFFSET ?"
    assert walk(_issue(offset, ("x", 10, 0), ("x", 10, 10), ("x", 10, 20))) == "pages"
    keyset = "SELECT a FROM t WHERE id > ? ORDER BY id LIMIT ?"
    assert walk(_issue(keyset, (0, 10), (10, 10), (20, 10))) == "pages"


def test_equality_change_is_a_loop_not_a_walk() -> None:
    """ "Latest row per parent" changes an equality parameter: not pagination."""
    sql = "SELECT a FROM t WHERE parent = ? ORDER BY a LIMIT ? OFFSET ?"
    assert walk(_issue(sql, (1, 1, 0), (2, 1, 0), (3, 1, 0))) is None


def test_disjoint_in_chunks_are_a_chunk_walk_overlapping_are_not() -> None:
    """Disjoint IN lists of one size (the last may be short) are chunks; a value in two
    chunks, or a changing equality filter, is not."""
    four = "SELECT a FROM t WHERE id IN (?, ?, ?, ?)"
    two = "SELECT a FROM t WHERE id IN (?, ?)"
    chunks = _issue(four, (1, 2, 3, 4), (5, 6, 7, 8)) + _issue(two, (9, 10))
    assert walk(chunks) == "chunks"
    overlapping = _issue(four, (1, 2, 3, 4), (4, 5, 6, 7), (8, 9, 10, 11))
    assert walk(overlapping) is None
    filtered = "SELECT a FROM t WHERE s = ? AND id IN (?, ?)"
    assert walk(_issue(filtered, ("a", 1, 2), ("b", 3, 4))) is None


def test_the_same_statement_again_is_not_a_walk() -> None:
    """Identical parameters: a repeated query, whatever its LIMIT."""
    sql = "SELECT a FROM t ORDER BY a LIMIT ? OFFSET ?"
    assert walk(_issue(sql, (10, 0), (10, 0), (10, 0))) is None


def test_signature_never_holds_values() -> None:
    """The signature is salted hashes: a small int does not hash to itself."""
    sig = signature("SELECT a FROM t WHERE id IN (?, ?)", (5, 7))
    assert sig is not None
    assert 5 not in sig
    assert 7 not in sig


BIND_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(st.characters(codec=None)),
    st.binary(),
    st.binary().map(bytearray),
    st.binary().map(lambda b: memoryview(bytearray(b))),
    st.binary().map(memoryview),
    st.lists(st.integers(), max_size=5),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@given(st.lists(BIND_VALUES, min_size=3, max_size=3))
@settings(max_examples=300)
def test_signature_never_raises_for_any_bind_value(values: list[object]) -> None:
    """Any bind value (bytes-like, writable memoryview, unhashable, surrogate text) gets a
    signature of one int per placeholder, equal for equal values, in every parameter style."""
    sql_named = "SELECT a FROM t WHERE b IN (:p0, :p1) LIMIT :p2"
    sql_qmark = "SELECT a FROM t WHERE b IN (?, ?) LIMIT ?"
    named = signature(sql_named, {f"p{i}": v for i, v in enumerate(values)})
    positional = signature(sql_qmark, tuple(values))
    assert named is not None and positional is not None
    assert len(named) == len(positional) == 3
    assert all(isinstance(h, int) for h in named + positional)
    assert named == positional
    assert signature(sql_qmark, tuple(values)) == positional  # stable


@given(st.lists(BIND_VALUES, min_size=0, max_size=4))
@settings(max_examples=300)
def test_fast_path_hashes_like_the_general_path(values: list[object]) -> None:
    """dict, tuple and list parameters (what SQLAlchemy hands drivers) take a fast path; any
    other Mapping or Sequence the general one. Both give the same hashes, also when values
    are unhashable or a placeholder has no value (0 for a missing position)."""
    sql_named = "SELECT a FROM t WHERE b IN (:p0, :p1) LIMIT :p2"
    sql_qmark = "SELECT a FROM t WHERE b IN (?, ?) LIMIT ?"
    named = {f"p{i}": v for i, v in enumerate(values)}
    assert signature(sql_named, named) == signature(sql_named, MappingProxyType(named))
    general = signature(sql_qmark, UserList(values))
    assert signature(sql_qmark, tuple(values)) == general
    assert signature(sql_qmark, list(values)) == general


def test_bytes_like_bind_values_are_recorded(sqlite_engine: Engine) -> None:
    """Blobs as bytes, bytearray and writable memoryview in a statement with an IN list (so a
    signature is taken) are recorded like any other value: no internal error."""
    handle = sqlaudit.instrument(sqlite_engine)
    blobs = [b"\x00\xff", bytearray(b"\x01"), memoryview(bytearray(b"\x02"))]
    try:
        with sqlaudit.audit("blobs", on_finding="ignore") as report:
            with sqlite_engine.connect() as conn:
                for blob in blobs:
                    row = conn.execute(
                        text("SELECT :v IN (:a, :b) LIMIT 1"), {"v": blob, "a": blob, "b": b""}
                    ).one()
                    assert row[0] == 1
    finally:
        handle.remove()
    assert report.internal_errors == 0
    assert [r.params is not None for r in report.statements] == [True, True, True]


class Stop(BaseException):
    """A ``BaseException`` of the application's own (not an error, not a request to stop)."""


def raising(exc: type[BaseException]) -> object:
    """A string bind value whose ``__hash__`` and ``__repr__`` raise ``exc``."""

    class Value(str):
        def __hash__(self) -> int:
            raise exc("hash")

        def __repr__(self) -> str:
            raise exc("repr")

    return Value("a")


def test_a_bind_value_raising_a_base_exception_never_fails_the_statement(engine: Engine) -> None:
    """Issue 14, row 9: a value whose ``__hash__`` and ``__repr__`` raise a ``BaseException``
    subclass (here its own, and ``GeneratorExit``) is hashed as 0: the statement, which
    already ran, returns its rows, and the audit records it."""
    handle = sqlaudit.instrument(engine)
    try:
        for exc in (Stop, GeneratorExit):
            with sqlaudit.audit("values", on_finding="ignore") as report, engine.connect() as conn:
                sql = "SELECT 1 WHERE 'a' IN (:p) LIMIT 1"
                rows = conn.execute(text(sql), {"p": raising(exc)}).all()
            assert rows == [(1,)]
            assert report.query_count == 1
            assert report.statements[0].params == (0,)
    finally:
        handle.remove()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_a_request_to_stop_is_never_swallowed(exc: type[BaseException]) -> None:
    """``KeyboardInterrupt`` and ``SystemExit`` ask the process to stop, whoever raises them
    (a signal handler raises the first in whatever code runs): they propagate."""
    with pytest.raises(exc):
        signature("SELECT a FROM t WHERE b IN (:p)", {"p": raising(exc)})
    with pytest.raises(exc):
        signature("SELECT a FROM t WHERE b IN (?)", [raising(exc)])
