"""Parameter signatures: placeholder roles in every paramstyle, and walks told from loops."""

from __future__ import annotations

import pytest

from sqlaudit._params import roles, signature, walk


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
