"""The fingerprint's path for "plain" text (issue 20: one regular expression, no lexer) gives
exactly what every dialect's lexers give, on every text it takes; and the space-free
``_UNFOLDED`` finds a folding wherever the pattern it replaced did. Hypothesis, on SQL-like
text made of what the plain path takes and of what sits next to it (quotes after letters,
prefixed strings, ``TRUE``, comments, signs, numbers with exponents, placeholders), and on the
quoting-rich text of ``test_sql_shortcuts``."""

from __future__ import annotations

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlaudit.model.records import StatementKind
from sqlaudit.sql import fingerprint as fp
from sqlaudit.sql import lexer
from tests.test_sql_shortcuts import ANY

DIALECTS = ["", "sqlite", "mysql", "mariadb", "postgresql", "mssql", "oracle", "unknown"]
PLAIN_PIECES = [
    *"ab1 ,()=-+<>!;':?%s/*.eExXNnbBuU&_09\n\t\r\x00\x01\x1c\x7fqQtTfF",
    *("''", "TRUE", "false", "True1", "xTRUE", "FaLsE", "N'", "E'", "e'", "U&'", "u&", "q'"),
    *("nq'", "x'", "b'", "_utf8'", "1e5", "1.5e-3", "1.e+2", "1E-", ".5", "1..5", "0x1F", "1_0"),
    *("%s", "%(a)s", "%(a b)s", "%(", ")s", "%%", ":a", "::a", "::INTEGER", "?1", "??", "-5"),
    *("-'", "- ", "--", "-?", "-:a", "-%s", "-.5", "a-1", ")-1", "'a'5", "'a'.5", "'a'x'b'"),
    *(" IN (", "IN (?, ?)", "IN (%s, %s)", "VALUES (1, 2), (3, 4)", "<=", "<>", "!=", "<=>"),
    *(" = ", ", ", " , ", "( ", " )", ";", " ;", "SELECT", "WHERE", "\u00e9", "/", "*/"),
]
PLAIN_TEXT = st.lists(st.sampled_from(PLAIN_PIECES), max_size=40).map("".join)
#: Mostly taken by the plain path (no comment, TRUE or FALSE to refuse): quotes, signs,
#: numbers and placeholders next to each other.
CLOSE_TEXT = st.lists(st.sampled_from([*"'a1-.eE+?:%s()_ ,=xN&\n", "''", "::"]), max_size=30).map(
    "".join
)
#: The statements of ``benchmarks/units.py`` and their neighbours: the plain path's use.
TYPICAL = [
    "SELECT id, name FROM parent WHERE id = 123 AND name <> 'x123'",
    "SELECT parent.id, parent.name FROM parent WHERE parent.id = ?",
    "INSERT INTO child (parent_id, name) VALUES (?, ?)",
    "UPDATE parent SET name=%(name)s WHERE parent.id = %(id_1)s",
    "SELECT a FROM t WHERE b IN (1, 2, 3) AND c = -1.5e-3 LIMIT 10 OFFSET 20",
    "SELECT a FROM t WHERE b = :b AND c::INTEGER > 0 AND d = 'it''s'",
    "INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z');",
    "SELECT count(*) AS n FROM t\nWHERE x >= .5 AND y<>'a'",
]
#: Not taken: each holds what the plain pattern leaves to the lexers.
NOT_PLAIN = [
    'SELECT "a" FROM t',
    "SELECT `a` FROM t",
    "SELECT [a] FROM t",
    "SELECT a FROM t # c",
    "SELECT a FROM t -- c",
    "SELECT a /* c */ FROM t",
    "SELECT $1",
    "SELECT $$a$$",
    "SELECT 'a\\'' FROM t",
    "SELECT x'1F' FROM t",
    "SELECT N'a' FROM t",
    "SELECT E'a' FROM t",
    "SELECT U&'a' FROM t",
    "SELECT q'[a]' FROM t",
    "SELECT a FROM t WHERE b = TRUE",
    "SELECT a FROM t WHERE b = false",
    "SELECT 'caf\u00e9'",
]


def unprintable(sql: str) -> str:
    """``_fingerprint``'s first step: its text, control characters as spaces."""
    text = sql[: fp.MAX_SQL]
    return text if text.isascii() and text.isprintable() else fp._CONTROL.sub(" ", text)


@given(st.one_of(PLAIN_TEXT, CLOSE_TEXT, ANY))
@settings(max_examples=300, deadline=None)
def test_plain_path_is_every_dialects_fingerprint(sql: str) -> None:
    text = unprintable(sql)
    shape = fp._plain(text)
    for dialect in DIALECTS:
        full = fp._lexed(text, dialect)
        if shape is not None:
            assert shape == full, dialect
        assert fp._fingerprint(sql, dialect) == full


def test_plain_path_cases() -> None:
    for sql in TYPICAL:
        shape = fp._plain(sql)
        assert shape is not None, sql
        for dialect in DIALECTS:
            assert shape == fp._lexed(sql, dialect)
    assert fp._plain(TYPICAL[0]) == "SELECT id, name FROM parent WHERE id = ? AND name <> ?"
    assert fp._plain(TYPICAL[6]) == "INSERT INTO t (a, b) VALUES (?, ?)"
    for sql in NOT_PLAIN:
        assert fp._plain(sql) is None, sql


def test_plain_path_takes_most_plain_text() -> None:
    """Not vacuous: the differential test above sees the plain path at work."""
    draw = random.Random(20)
    texts = ["".join(draw.choices(PLAIN_PIECES, k=draw.randrange(41))) for _ in range(1000)]
    assert sum(fp._plain(unprintable(text)) is not None for text in texts) >= 100


#: ``_UNFOLDED`` as it was before issue 20's second round: a space before ``,`` or ``)``
#: matched from the space.
OLD_UNFOLDED = re.compile(r" [,)]|,(?! )|\( " + fp._UNFOLDED.pattern.split(r"|\( ", 1)[1])


@given(st.one_of(PLAIN_TEXT, ANY))
@settings(max_examples=300, deadline=None)
def test_unfolded_finds_what_it_found_before(sql: str) -> None:
    for text in (sql, " ".join(sql.split()), " ".join(fp._fingerprint(sql, "").split())):
        assert (fp._UNFOLDED.search(text) is None) == (OLD_UNFOLDED.search(text) is None)


def old_kind(sql: str) -> str:
    """``statement_kind`` as it was before issue 20's second round: the leading run first."""
    leading = fp._LEADING.match(sql, 0, 4096)
    match = fp._FIRST_WORD.match(sql, leading.end() if leading else 0)
    word = match.group().upper() if match else ""
    return fp._with_kind(sql) if word == "WITH" else fp._KINDS.get(word, StatementKind.OTHER)


@given(st.one_of(PLAIN_TEXT, CLOSE_TEXT, ANY, st.text(max_size=20)))
@settings(max_examples=300, deadline=None)
def test_statement_kind_matches_the_first_word_at_once(sql: str) -> None:
    """A text that starts with a letter has no leading run to skip: ``statement_kind`` takes
    its first word at once, and gives the kind it gave."""
    for text in (sql, "SELECT " + sql, "with " + sql, "(" + sql, "-- c\n" + sql, "x" + sql):
        assert fp.statement_kind(text) == old_kind(text)


def test_memo_of_each_dialect_is_its_familys() -> None:
    names = ["", "sqlite", "mysql", "mariadb", "postgresql", "mssql", "oracle", "unknown", "db2"]
    for name in [*names, "MySQL", "sqlite3", "postgres"]:
        assert fp._MEMO_OF.get(name, fp._UNKNOWN) is fp._FINGERPRINTS[lexer.family(name)]
