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
from sqlaudit.sql import folding, lexer
from sqlaudit.sql.cache import clear_all
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
    shape = folding.plain(text)
    for dialect in DIALECTS:
        full = fp._lexed(text, dialect)
        if shape is not None:
            assert shape == full, dialect
        assert fp._fingerprint(sql, dialect) == full


def test_plain_path_cases() -> None:
    for sql in TYPICAL:
        shape = folding.plain(sql)
        assert shape is not None, sql
        for dialect in DIALECTS:
            assert shape == fp._lexed(sql, dialect)
    assert folding.plain(TYPICAL[0]) == "SELECT id, name FROM parent WHERE id = ? AND name <> ?"
    assert folding.plain(TYPICAL[6]) == "INSERT INTO t (a, b) VALUES (?, ?)"
    for sql in NOT_PLAIN:
        assert folding.plain(sql) is None, sql


def test_plain_path_takes_most_plain_text() -> None:
    """Not vacuous: the differential test above sees the plain path at work."""
    draw = random.Random(20)
    texts = ["".join(draw.choices(PLAIN_PIECES, k=draw.randrange(41))) for _ in range(1000)]
    assert sum(folding.plain(unprintable(text)) is not None for text in texts) >= 100


#: ``_UNFOLDED`` as it was before issue 20's second round: a space before ``,`` or ``)``
#: matched from the space.
OLD_UNFOLDED = re.compile(r" [,)]|,(?! )|\( " + folding._UNFOLDED.pattern.split(r"|\( ", 1)[1])


@given(st.one_of(PLAIN_TEXT, ANY))
@settings(max_examples=300, deadline=None)
def test_unfolded_finds_what_it_found_before(sql: str) -> None:
    for text in (sql, " ".join(sql.split()), " ".join(fp._fingerprint(sql, "").split())):
        assert (folding._UNFOLDED.search(text) is None) == (OLD_UNFOLDED.search(text) is None)


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
    for start in ("update\n", "Delete ", "INSERTS ", "insert\t", "SELECT(", "deleted "):
        assert fp.statement_kind(start + sql) == old_kind(start + sql)


def test_kind_by_prefix_is_the_first_words() -> None:
    """Each seven-character prefix ``new_facts`` looks up is a verb its text starts with."""
    assert len(fp._STARTS) == 16
    for start, kind in fp._STARTS.items():
        for rest in ("", "x", "1 FROM t", "(SELECT 1)", " ; "):
            assert old_kind(start + rest) == kind == fp.new_facts(start + rest).kind


OLD_UNPLAIN = re.compile(r"[\"`\[#\\$]")


@given(st.one_of(PLAIN_TEXT, CLOSE_TEXT, ANY, st.text(st.sampled_from("-/*$#a'\"`[\\"))))
@settings(max_examples=300, deadline=None)
def test_unplain_is_one_search_for_what_three_found(sql: str) -> None:
    """``_UNPLAIN`` finds a text not plain exactly where its characters, ``--`` or ``/*`` were
    found apart before issue 20's third round."""
    found = OLD_UNPLAIN.search(sql) is not None or "--" in sql or "/*" in sql
    assert (folding._UNPLAIN.search(sql) is not None) == found


#: Values put into one statement's places: texts that share a skeleton (or nearly: a value
#: the plain path does not take, a sign, a quote after a letter).
VALUES = [
    *("1", "12345", "-5", "1.5e-3", ".5", "0x1F", "1e5", "'a'", "'it''s'", "''", "'x5'", "?"),
    *("%s", "%(a)s", ":a", "- 1", "'a\"b'", "'a--b'", "'/*'", "'é'", "TRUE", "N'a'", "x'1F'"),
]
TEMPLATE = st.lists(
    st.one_of(st.sampled_from(PLAIN_PIECES), st.just(None)), min_size=1, max_size=20
)


@given(TEMPLATE, st.lists(st.sampled_from(VALUES), min_size=20, max_size=20), st.randoms())
@settings(max_examples=300, deadline=None)
def test_texts_of_one_skeleton_share_its_shape(
    template: list[str | None], values: list[str], draw: random.Random
) -> None:
    """Texts that differ only in their values share one skeleton (``_PLAIN`` applied), whose
    shape the plain path keeps (issue 20): each text's plain fingerprint, computed first or
    after its siblings', is every dialect's, and the skeleton's shape as computed afresh."""
    texts = []
    for _ in range(3):
        picked = iter(draw.sample(values, len(values)))
        texts.append("".join(next(picked) if piece is None else piece for piece in template))
    for sql in texts:
        text = unprintable(sql)
        shape = folding.plain(text)
        if shape is not None:
            assert shape == folding._plain_shape(folding._PLAIN.sub("?", text))
            for dialect in DIALECTS:
                assert shape == fp._lexed(text, dialect), dialect
        for dialect in DIALECTS:
            assert fp._fingerprint(sql, dialect) == fp._lexed(text, dialect)


def test_skeletons_are_kept_once() -> None:
    """The literal workload's texts (issue 20) have one skeleton: kept once, its shape reused."""
    clear_all()
    for n in range(50):
        sql = f"SELECT id, name FROM parent WHERE id = {n} AND name <> 'x{n}'"
        assert (
            fp.fingerprint(sql, "sqlite")
            == "SELECT id, name FROM parent WHERE id = ? AND name <> ?"
        )
    assert folding._SKELETON.data == {
        "SELECT id, name FROM parent WHERE id = ? AND name <> ?": (
            "SELECT id, name FROM parent WHERE id = ? AND name <> ?"
        )
    }
    assert folding.plain('SELECT "a" FROM t WHERE id = 1') is None
    assert len(folding._SKELETON.data) == 1  # a text that is not plain has no skeleton
    clear_all()


def test_memo_of_each_dialect_is_its_familys() -> None:
    names = ["", "sqlite", "mysql", "mariadb", "postgresql", "mssql", "oracle", "unknown", "db2"]
    for name in [*names, "MySQL", "sqlite3", "postgres"]:
        assert fp._MEMO_OF.get(name, fp._UNKNOWN) is fp._FINGERPRINTS[lexer.family(name)]
