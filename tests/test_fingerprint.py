"""Fingerprints, statement kinds and table names (``sqlaudit.sql.fingerprint``).

A fingerprint is what leaves the process and what findings are grouped by, so these tests pin
its shape (tables with ids) and its invariants (Hypothesis): idempotent, total, blind to values
and placeholder styles, and bounded in time.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlaudit.model.records import StatementKind
from sqlaudit.sql.fingerprint import fingerprint, statement_kind, tables

WHERE_X = "SELECT a FROM t WHERE x = ?"

FINGERPRINTS = [
    # placeholder styles: every one gives the same shape as a literal
    pytest.param("SELECT a FROM t WHERE x = ?", WHERE_X, id="qmark"),
    pytest.param("SELECT a FROM t WHERE x = %s", WHERE_X, id="format"),
    pytest.param("SELECT a FROM t WHERE x = %(x_1)s", WHERE_X, id="pyformat"),
    pytest.param("SELECT a FROM t WHERE x = :x_1", WHERE_X, id="named"),
    pytest.param("SELECT a FROM t WHERE x = $1", WHERE_X, id="numeric-dollar"),
    pytest.param("SELECT a FROM t WHERE x = $12", WHERE_X, id="numeric-dollar-two-digits"),
    pytest.param("SELECT a FROM t WHERE x = 42", WHERE_X, id="int-literal"),
    # string literals
    pytest.param("SELECT a FROM t WHERE x = 'abc'", WHERE_X, id="string"),
    pytest.param("SELECT a FROM t WHERE x = ''", WHERE_X, id="string-empty"),
    pytest.param("SELECT a FROM t WHERE x = 'it''s'", WHERE_X, id="string-doubled-quote"),
    pytest.param(r"SELECT a FROM t WHERE x = 'it\'s'", WHERE_X, id="string-backslash-quote"),
    pytest.param(r"SELECT a FROM t WHERE x = 'C:\\'", WHERE_X, id="string-escaped-backslash"),
    pytest.param(r"SELECT a FROM t WHERE x = E'a\nb'", WHERE_X, id="string-E-prefix"),
    pytest.param(r"SELECT a FROM t WHERE x = e'\''", WHERE_X, id="string-e-prefix-escape"),
    pytest.param("SELECT a FROM t WHERE x = N'abc'", WHERE_X, id="string-N-prefix"),
    pytest.param("SELECT a FROM t WHERE x = X'ff'", WHERE_X, id="string-X-prefix"),
    pytest.param("SELECT a FROM t WHERE x = 'a -- b /* c'", WHERE_X, id="string-comment-markers"),
    pytest.param("SELECT a FROM t WHERE x = ':y ? %s'", WHERE_X, id="string-placeholder-markers"),
    pytest.param("SELECT a FROM t WHERE x = 'héllo ✓'", WHERE_X, id="string-non-ascii"),
    # numbers and booleans
    pytest.param("SELECT a FROM t WHERE x = 1.5", WHERE_X, id="float"),
    pytest.param("SELECT a FROM t WHERE x = .5", WHERE_X, id="float-leading-dot"),
    pytest.param("SELECT a FROM t WHERE x = 1.", WHERE_X, id="float-trailing-dot"),
    pytest.param("SELECT a FROM t WHERE x = 1e10", WHERE_X, id="exponent"),
    pytest.param("SELECT a FROM t WHERE x = 2.5E-3", WHERE_X, id="exponent-negative"),
    pytest.param("SELECT a FROM t WHERE x = 1e+16", WHERE_X, id="exponent-plus"),
    pytest.param("SELECT a FROM t WHERE x = 0xFF", WHERE_X, id="hex"),
    pytest.param("SELECT a FROM t WHERE x = -5", WHERE_X, id="negative"),
    pytest.param("SELECT a FROM t WHERE x=-5", WHERE_X, id="negative-no-space"),
    pytest.param("SELECT a FROM t WHERE x = -2.5e3", WHERE_X, id="negative-exponent"),
    pytest.param("SELECT a FROM t WHERE x = TRUE", WHERE_X, id="true"),
    pytest.param("SELECT a FROM t WHERE x = false", WHERE_X, id="false-lowercase"),
    pytest.param("SELECT a FROM t WHERE x = -:x", WHERE_X, id="negative-placeholder"),
    pytest.param("SELECT a FROM t WHERE x = -'5'", WHERE_X, id="negative-string"),
    pytest.param("SELECT a - 1 FROM t", "SELECT a - ? FROM t", id="minus-is-operator"),
    pytest.param("SELECT a - :p FROM t", "SELECT a - ? FROM t", id="minus-placeholder-operator"),
    pytest.param("SELECT a-1 FROM t", "SELECT a-? FROM t", id="minus-after-operand"),
    pytest.param("SELECT f(x)-1 FROM t", "SELECT f(x)-? FROM t", id="minus-after-paren"),
    # comments and whitespace
    pytest.param("SELECT a -- why\nFROM t", "SELECT a FROM t", id="comment-dash"),
    pytest.param("SELECT a # why\nFROM t", "SELECT a FROM t", id="comment-hash"),
    pytest.param("SELECT /* why */ a FROM t", "SELECT a FROM t", id="comment-block"),
    pytest.param("SELECT /* a\n * b */a FROM t", "SELECT a FROM t", id="comment-block-multiline"),
    pytest.param("/* app=web */ SELECT a FROM t", "SELECT a FROM t", id="comment-leading"),
    pytest.param("SELECT a FROM t -- trailing", "SELECT a FROM t", id="comment-trailing"),
    pytest.param("SELECT a FROM t /* unterminated", "SELECT a FROM t", id="comment-unterminated"),
    pytest.param("SELECT a\n\t  FROM   t", "SELECT a FROM t", id="whitespace-folded"),
    pytest.param("  SELECT a FROM t ;  ", "SELECT a FROM t", id="whitespace-trimmed-semicolon"),
    pytest.param(
        "SELECT a , b FROM t WHERE x=? AND y>=?",
        "SELECT a, b FROM t WHERE x = ? AND y >= ?",
        id="comma-and-operator-spacing",
    ),
    pytest.param("SELECT f( a ) FROM t", "SELECT f(a) FROM t", id="paren-spacing"),
    # IN lists of any length
    pytest.param("SELECT a FROM t WHERE x IN (1)", "SELECT a FROM t WHERE x IN (?)", id="in-one"),
    pytest.param(
        "SELECT a FROM t WHERE x IN (1, 2, 3)", "SELECT a FROM t WHERE x IN (?)", id="in-three"
    ),
    pytest.param(
        "SELECT a FROM t WHERE x IN (?,?,?,?)", "SELECT a FROM t WHERE x IN (?)", id="in-qmark"
    ),
    pytest.param(
        "SELECT a FROM t WHERE x in ( :x_1_1 , :x_1_2 )",
        "SELECT a FROM t WHERE x IN (?)",
        id="in-named-lowercase",
    ),
    pytest.param(
        "SELECT a FROM t WHERE x IN (1, 'b', $3, %s, %(p)s, TRUE, -1.5)",
        "SELECT a FROM t WHERE x IN (?)",
        id="in-mixed",
    ),
    pytest.param(
        "SELECT a FROM t WHERE x IN (" + ", ".join(f":x_{i}" for i in range(1000)) + ")",
        "SELECT a FROM t WHERE x IN (?)",
        id="in-thousand",
    ),
    pytest.param(
        "SELECT a FROM t WHERE x IN (\n  1, /* two */ 2,\n  3 -- three\n)",
        "SELECT a FROM t WHERE x IN (?)",
        id="in-multiline-with-comments",
    ),
    pytest.param(
        "SELECT a FROM t WHERE x NOT IN (1, 2)",
        "SELECT a FROM t WHERE x NOT IN (?)",
        id="not-in",
    ),
    pytest.param(
        "SELECT a FROM t WHERE x IN (SELECT b FROM u WHERE c = 1)",
        "SELECT a FROM t WHERE x IN (SELECT b FROM u WHERE c = ?)",
        id="in-subquery-kept",
    ),
    # multi-row VALUES
    pytest.param(
        "INSERT INTO t (a, b) VALUES (?, ?)",
        "INSERT INTO t (a, b) VALUES (?, ?)",
        id="values-one-row",
    ),
    pytest.param(
        "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')",
        "INSERT INTO t (a, b) VALUES (?, ?)",
        id="values-three-rows",
    ),
    pytest.param(
        "INSERT INTO t (a, b) VALUES (%(a_m0)s, %(b_m0)s),(%(a_m1)s, %(b_m1)s)",
        "INSERT INTO t (a, b) VALUES (?, ?)",
        id="values-pyformat-rows",
    ),
    pytest.param(
        "INSERT INTO t (a, b) VALUES\n(1, 2),\n(3, 4)",
        "INSERT INTO t (a, b) VALUES (?, ?)",
        id="values-multiline-rows",
    ),
    pytest.param(
        "INSERT INTO t (a, b) VALUES (?, DEFAULT), (?, DEFAULT)",
        "INSERT INTO t (a, b) VALUES (?, DEFAULT)",
        id="values-default-rows",
    ),
    # PostgreSQL specifics
    pytest.param("SELECT a::int FROM t", "SELECT a::int FROM t", id="cast-kept"),
    pytest.param(
        "SELECT a FROM t WHERE x = :x::jsonb", "SELECT a FROM t WHERE x = ?::jsonb", id="cast-param"
    ),
    pytest.param(
        "SELECT a FROM t WHERE x = '1'::int", "SELECT a FROM t WHERE x = ?::int", id="cast-literal"
    ),
    pytest.param(
        "SELECT a FROM t WHERE x = 5::numeric(10, 2)",
        "SELECT a FROM t WHERE x = ?::numeric(?, ?)",
        id="cast-numeric-typmod",
    ),
    pytest.param("SELECT $$it's -- a body$$", "SELECT ?", id="dollar-quoted"),
    pytest.param("SELECT $fn$ a $$ b $fn$ FROM t", "SELECT ? FROM t", id="dollar-quoted-tagged"),
    pytest.param("SELECT $$unterminated", "SELECT ?", id="dollar-quoted-unterminated"),
    # identifiers are kept verbatim
    pytest.param("SELECT t1.c2 FROM t1", "SELECT t1.c2 FROM t1", id="identifier-digits"),
    pytest.param("SELECT a_1$ FROM t", "SELECT a_1$ FROM t", id="identifier-dollar"),
    pytest.param(
        'SELECT "col 1" FROM "t""2"', 'SELECT "col 1" FROM "t""2"', id="quoted-digits-quotes"
    ),
    pytest.param(
        'SELECT "a , b", "x=1", "IN (1, 2)" FROM t',
        'SELECT "a , b", "x=1", "IN (1, 2)" FROM t',
        id="quoted-not-folded",
    ),
    pytest.param("SELECT `a1` FROM `t``2`", "SELECT `a1` FROM `t``2`", id="backtick-quoted"),
    pytest.param("SELECT café1 FROM t", "SELECT café1 FROM t", id="identifier-non-ascii"),
    pytest.param("SELECT 1", "SELECT ?", id="select-one"),
    pytest.param("", "", id="empty"),
]


@pytest.mark.parametrize(("sql", "expected"), FINGERPRINTS)
def test_fingerprint(sql: str, expected: str) -> None:
    """Literals and placeholders become ``?``, noise folds away and lists collapse."""
    assert fingerprint(sql) == expected


KINDS = [
    pytest.param("SELECT 1", StatementKind.SELECT, id="select"),
    pytest.param("select a from t", StatementKind.SELECT, id="select-lowercase"),
    pytest.param("WITH x AS (SELECT 1) SELECT * FROM x", StatementKind.SELECT, id="with-select"),
    pytest.param(
        "WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x) SELECT n FROM x",
        StatementKind.SELECT,
        id="with-recursive-select",
    ),
    pytest.param(
        "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
        StatementKind.INSERT,
        id="with-insert",
    ),
    pytest.param(
        "WITH x AS (SELECT id FROM u) UPDATE t SET a = 1 WHERE id IN (SELECT id FROM x)",
        StatementKind.UPDATE,
        id="with-update",
    ),
    pytest.param("WITH x AS (SELECT 1) DELETE FROM t", StatementKind.DELETE, id="with-delete"),
    pytest.param(
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        StatementKind.DELETE,
        id="with-data-modifying-cte",
    ),
    pytest.param(
        "WITH x AS (SELECT 1) SELECT last_update, insert_ts FROM x",
        StatementKind.SELECT,
        id="with-select-verb-like-columns",
    ),
    pytest.param(
        'WITH x AS (SELECT 1) SELECT "delete" FROM x',
        StatementKind.SELECT,
        id="with-select-quoted-verb",
    ),
    pytest.param(
        "WITH x AS (SELECT id FROM t) SELECT * FROM x FOR UPDATE",
        StatementKind.SELECT,
        id="with-select-for-update",
    ),
    pytest.param("INSERT INTO t VALUES (1)", StatementKind.INSERT, id="insert"),
    pytest.param("REPLACE INTO t VALUES (1)", StatementKind.INSERT, id="replace"),
    pytest.param("UPDATE t SET a = 1", StatementKind.UPDATE, id="update"),
    pytest.param("DELETE FROM t", StatementKind.DELETE, id="delete"),
    pytest.param("CREATE TABLE t (a INT)", StatementKind.DDL, id="ddl-create"),
    pytest.param("DROP TABLE t", StatementKind.DDL, id="ddl-drop"),
    pytest.param("ALTER TABLE t ADD b INT", StatementKind.DDL, id="ddl-alter"),
    pytest.param("BEGIN", StatementKind.TRANSACTION, id="begin"),
    pytest.param("BEGIN (implicit)", StatementKind.TRANSACTION, id="begin-implicit"),
    pytest.param("START TRANSACTION", StatementKind.TRANSACTION, id="start-transaction"),
    pytest.param("COMMIT", StatementKind.TRANSACTION, id="commit"),
    pytest.param("ROLLBACK", StatementKind.TRANSACTION, id="rollback"),
    pytest.param("SAVEPOINT sa_savepoint_1", StatementKind.TRANSACTION, id="savepoint"),
    pytest.param("RELEASE SAVEPOINT x", StatementKind.TRANSACTION, id="release-savepoint"),
    pytest.param("ROLLBACK TO SAVEPOINT x", StatementKind.TRANSACTION, id="rollback-to-savepoint"),
    pytest.param("/* tag */ SELECT 1", StatementKind.SELECT, id="leading-block-comment"),
    pytest.param("-- note\nUPDATE t SET a = 1", StatementKind.UPDATE, id="leading-line-comment"),
    pytest.param("# note\nDELETE FROM t", StatementKind.DELETE, id="leading-hash-comment"),
    pytest.param("((SELECT 1) UNION (SELECT 2))", StatementKind.SELECT, id="leading-parens"),
    pytest.param(
        "  /* a */ ( -- b\n SELECT 1)", StatementKind.SELECT, id="leading-comments-and-parens"
    ),
    pytest.param("SHOW TABLES", StatementKind.OTHER, id="show"),
    pytest.param("PRAGMA foreign_keys = ON", StatementKind.OTHER, id="pragma"),
    pytest.param("", StatementKind.OTHER, id="empty"),
    pytest.param("/* only a comment", StatementKind.OTHER, id="only-comment"),
]


@pytest.mark.parametrize(("sql", "kind"), KINDS)
def test_statement_kind(sql: str, kind: str) -> None:
    """Statements are classified by their leading verb, looking through comments and parens."""
    assert statement_kind(sql) == kind


TABLES = [
    pytest.param(
        "SELECT u.id FROM users AS u JOIN addresses a ON a.user_id = u.id "
        "LEFT OUTER JOIN orders ON orders.uid = u.id",
        ("users", "addresses", "orders"),
        id="select-joins",
    ),
    pytest.param("SELECT * FROM a, b WHERE a.x = b.x", ("a", "b"), id="select-comma-join"),
    pytest.param("INSERT INTO items (a, b) VALUES (1, 2)", ("items",), id="insert-into"),
    pytest.param("UPDATE items SET a = 1 WHERE id = 2", ("items",), id="update"),
    pytest.param("DELETE FROM items WHERE id = :id", ("items",), id="delete-from"),
    pytest.param('SELECT * FROM "Odd Table"', ("Odd Table",), id="quoted"),
]


@pytest.mark.parametrize(("sql", "expected"), TABLES)
def test_tables(sql: str, expected: tuple[str, ...]) -> None:
    """``tables()`` names the tables a statement reads or writes, in order of appearance."""
    assert tables(sql) == expected


# -- invariants -----------------------------------------------------------------------------

#: Text likely to hit the tokenizer's edges: quotes, comment markers, placeholders, lists.
SQL_PIECES = st.sampled_from(
    [
        *"ab1 ,()=-+<>!;[]'\"`:?$%s#/*\n\t.eExXN\\&\x00é٣",
        *("IN", "VALUES", "--", "/*", "*/", "$$", "$a$", "::", "''", "TRUE", "false"),
        *("%(", ")s", " IN (", "E'", "N'", "U&'", "0x", "1e5", "%s", ":a", "$1", "<=", "<>"),
        *("WITH", "SELECT", "UPDATE", ", ", " , "),
    ]
)
SQLISH_TEXT = st.lists(SQL_PIECES, max_size=40).map("".join)
ANY_TEXT = st.text(st.characters(codec=None))  # surrogates and control characters included


@given(st.one_of(st.text(), SQLISH_TEXT))
@settings(max_examples=500)
def test_fingerprint_is_idempotent(sql: str) -> None:
    """Fingerprinting a fingerprint changes nothing, so stored fingerprints can be re-keyed."""
    once = fingerprint(sql)
    assert fingerprint(once) == once


@given(st.one_of(ANY_TEXT, SQLISH_TEXT))
@settings(max_examples=500)
def test_never_raises(sql: str) -> None:
    """Any ``str`` (surrogates, control characters, broken SQL) gets a fingerprint and a kind."""
    assert isinstance(fingerprint(sql), str)
    assert statement_kind(sql) in {
        StatementKind.SELECT,
        StatementKind.INSERT,
        StatementKind.UPDATE,
        StatementKind.DELETE,
        StatementKind.DDL,
        StatementKind.TRANSACTION,
        StatementKind.OTHER,
    }


def sql_string(text: str) -> str:
    """``text`` as a SQL string literal, quotes doubled and backslashes escaped (MySQL-safe)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
PLACEHOLDERS = st.one_of(
    st.just("?"),
    st.just("%s"),
    NAMES.map(lambda n: f"%({n})s"),
    NAMES.map(lambda n: f":{n}"),
    st.integers(1, 999).map(lambda n: f"${n}"),
)
LITERALS = st.one_of(
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(st.characters(codec="utf-8")).map(sql_string),
    st.text(st.characters(codec="utf-8")).map(lambda t: "E" + sql_string(t)),
    st.text(st.characters(codec="utf-8")).map(lambda t: "N" + sql_string(t)),
    st.sampled_from(["TRUE", "FALSE", "true", "0x1F", "1e-7", ".5"]),
)
VALUES = st.one_of(PLACEHOLDERS, LITERALS)

#: ``{}`` is one value, ``[]`` a list of one or more values (an IN list).
TEMPLATES = [
    "SELECT a FROM t WHERE x = {} AND y IN ([]) LIMIT {}",
    "SELECT a, b FROM t WHERE x BETWEEN {} AND {} ORDER BY a LIMIT {} OFFSET {}",
    "UPDATE t SET a = {}, b = {} WHERE id = {}",
    "INSERT INTO t (a, b, c) VALUES ({}, {}, {})",
    "INSERT INTO t (a, b) VALUES ({}, {}), ({}, {}), ({}, {})",
    "DELETE FROM t WHERE a IN ([]) OR b > {} OR c <> {}",
    "SELECT CASE WHEN a = {} THEN {} ELSE {} END FROM t",
    "SELECT a FROM t WHERE x = {}::int AND y = - {} AND z NOT IN ([])",
    "SELECT f({}, {}) FROM t WHERE (x, y) IN (({}, {}))",
]
SLOT = re.compile(r"\{\}|\[\]")


@st.composite
def filled_templates(draw: st.DrawFn) -> tuple[str, str, str]:
    """A template filled with placeholders only, and twice with independent values."""
    template = draw(st.sampled_from(TEMPLATES))

    def fill(slot: re.Match[str]) -> str:
        size = 1 if slot.group() == "{}" else draw(st.integers(1, 5))
        return ", ".join(draw(VALUES) for _ in range(size))

    return SLOT.sub("?", template), SLOT.sub(fill, template), SLOT.sub(fill, template)


@given(filled_templates())
@settings(max_examples=300)
def test_values_and_placeholder_style_do_not_change_fingerprint(
    case: tuple[str, str, str],
) -> None:
    """Two statements of one shape have one fingerprint, whatever values or placeholders fill it."""
    plain, first, second = case
    assert fingerprint(first) == fingerprint(second) == fingerprint(plain)


PATHOLOGICAL = [
    pytest.param("SELECT a FROM t WHERE x IN (" + "1, " * 350_000 + "1)", id="one-megabyte"),
    pytest.param("SELECT " + "(" * 10_000 + "1" + ")" * 10_000, id="nested-parens"),
    pytest.param("SELECT a FROM t WHERE x = '" + "ab\\" * 350_000, id="unterminated-quote"),
    pytest.param("SELECT a /* " + "x * / " * 200_000, id="unterminated-comment"),
    pytest.param('SELECT "' + "x" * 1_000_000, id="unterminated-identifier"),
    pytest.param("SELECT $$" + "$ " * 500_000, id="unterminated-dollar-quote"),
    pytest.param("SELECT " + "%(" * 500_000, id="many-unclosed-pyformat"),
    pytest.param("INSERT INTO t VALUES " + "(?, ?), " * 120_000, id="unclosed-values-list"),
]


@pytest.mark.parametrize("sql", PATHOLOGICAL)
def test_bounded_time(sql: str) -> None:
    """Huge or malformed statements are fingerprinted and classified well within a second."""
    sql = f"/* {uuid.uuid4()} */ {sql}"  # a new text: never a cache hit
    start = time.perf_counter()
    fingerprint(sql)
    statement_kind(sql)
    assert time.perf_counter() - start < 2.0
