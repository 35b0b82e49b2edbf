"""The shortcuts that make a new text's fingerprint cheap (issue 20) give exactly what the
full path gives: the lexer's patterns against the way they were built before (one lookbehind
per token), the unknown dialect lexed once against every dialect's lexer and their agreement,
the skipped foldings against running them, and the substring checks that spare a text the
parameter-role pattern against that pattern. Hypothesis, on SQL-like text of every quoting
style, and on text made only of what the shortcuts take."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from sqlaudit.sql import fingerprint as fp
from sqlaudit.sql import folding, lexer, params
from sqlaudit.sql.lexer import _EVERY, _FREE, _SIGN, Spans, _agree, _in_class, _lex

PIECES = [
    *"ab1 ,()=-+<>!;[]'\"`:?$%s#/*\n\t.eExXNn\\&\x00é٣qQuUtTfFbB_09\x01\u200e\xa0\u017f",
    *("IN", "VALUES", "--", "/*", "*/", "$$", "$a$", "::", "''", "TRUE", "false", "FaL\u017fe"),
    *("%(", ")s", " IN (", "E'", "N'", "U&'", "0x", "1e5", "%s", ":a", "$1", "<=", "<>"),
    *(">=", "!=", " = ", " <> ", "<=>", "->>", "||", "!", ", ", " , ", "( ", " )", "%(a)s"),
    *("WITH", "SELECT", "UPDATE", "q'[", "]'", "x'", "\\'", "::INTEGER", "nq'", 'U&"', "-5"),
    *("-'", "1.5e-3", ".5", "?1", "a$1", "truex", "  ", " IN (?, ?)", "VALUES (1, 2), (3, 4)"),
]
#: Only what no two dialects read differently (``lexer._DISAGREE``): the one-lexer path.
AGREED = [p for p in PIECES if not re.search(r"[\"`\[#\\$]|/\*|[Qq]'", p)]
TEXT = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
AGREED_TEXT = st.lists(st.sampled_from(AGREED), max_size=40).map("".join)
ANY = st.one_of(TEXT, AGREED_TEXT, st.text(max_size=60))
DIALECTS = st.sampled_from(["", "sqlite", "mysql", "mariadb", "postgresql", "mssql", "oracle"])


def per_token_pattern(mode: lexer._Mode) -> re.Pattern[str]:
    """A mode's pattern as it was built before issue 20: every bound token behind its own
    lookbehind, then the free tokens, then the signed ones (same groups, same order)."""
    tokens = MODE_TOKENS[id(mode)]
    kinds = [""]
    branches = []
    for token in tokens:
        if not token.free:
            branches.append(f"(?<={token.first})(?:{token.rest})()")
            kinds.append(token.kind)
    free = [f"(?<={t.first})(?:{t.rest})()" for t in tokens if t.free]
    kinds += [t.kind for t in tokens if t.free]
    free_firsts = "".join(_in_class(t.first) for t in tokens if t.free)
    branches.append(f"(?<=[{free_firsts}]){_FREE}(?:{'|'.join(free)})")
    signed = [f"{t.first}(?:{t.rest})()" for t in tokens if t.signed]
    kinds += [t.kind for t in tokens if t.signed]
    branches.append(f"(?<=-){_SIGN}(?:{'|'.join(signed)})")
    firsts = sorted({_in_class(t.first) for t in tokens})
    OLD_KINDS[id(mode)] = tuple(kinds)
    return re.compile(f"[{''.join(firsts)}](?:{'|'.join(branches)})", re.DOTALL)


#: Each mode's settings, as ``lexer`` builds it (checked: same kinds).
MODE_SETTINGS: dict[int, dict[str, object]] = {
    id(lexer._SQLITE): {"dq": "sqlite", "backtick": True, "brackets": True},
    id(lexer._MYSQL): {"dq": "string", "backslash": True, "hash_comment": True, "backtick": True},
    id(lexer._MYSQL_NO_BACKSLASH): {"dq": "string", "hash_comment": True, "backtick": True},
    id(lexer._POSTGRESQL): {"nested": True, "dollar": True, "estring": True},
    id(lexer._POSTGRESQL_BACKSLASH): {
        "nested": True,
        "dollar": True,
        "estring": True,
        "backslash": True,
    },
    id(lexer._MSSQL): {"nested": True, "brackets": True},
    id(lexer._ORACLE): {"qquote": True},
}
DEFAULTS: dict[str, object] = {
    "backslash": False,
    "dq": "ident",
    "hash_comment": False,
    "nested": False,
    "dollar": False,
    "estring": False,
    "backtick": False,
    "brackets": False,
    "qquote": False,
}
MODE_TOKENS = {
    key: lexer._tokens(**{**DEFAULTS, **value})  # type: ignore[arg-type]
    for key, value in MODE_SETTINGS.items()
}
OLD_KINDS: dict[int, tuple[str, ...]] = {}
OLD_PATTERNS = {id(mode): per_token_pattern(mode) for mode in _EVERY}


def old_tokens(sql: str, mode: lexer._Mode) -> list[tuple[int, int, str]]:
    kinds = OLD_KINDS[id(mode)]
    pattern = OLD_PATTERNS[id(mode)]
    return [(m.start(), m.end(), kinds[m.lastindex or 0]) for m in pattern.finditer(sql)]


def new_tokens(sql: str, mode: lexer._Mode) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), mode.kinds[m.lastindex or 0]) for m in mode.pattern.finditer(sql)]


def test_every_mode_is_checked() -> None:
    assert set(MODE_SETTINGS) == {id(mode) for mode in _EVERY}
    for mode in _EVERY:  # the settings above are the modes' own: same tokens, same kinds
        assert sorted(OLD_KINDS[id(mode)]) == sorted(mode.kinds)


@given(ANY)
@settings(max_examples=300, deadline=None)
def test_patterns_match_as_one_lookbehind_per_token_did(sql: str) -> None:
    for mode in _EVERY:
        assert new_tokens(sql, mode) == old_tokens(sql, mode)


def every_lexer(sql: str) -> tuple[Spans, int]:
    """``lex(sql, "")`` the long way: every dialect's lexer, and where they disagree."""
    first = _lex(sql, _EVERY[0])
    safe = len(sql)
    for mode in _EVERY[1:]:
        safe = _agree(first, _lex(sql, mode), safe)
    return first, safe


@given(ANY)
@settings(max_examples=300, deadline=None)
def test_unknown_dialect_lexed_once_where_all_agree(sql: str) -> None:
    assert lexer.lex(sql, "") == every_lexer(sql)


@given(ANY, DIALECTS)
@settings(max_examples=300, deadline=None)
def test_foldings_skipped_only_where_they_change_nothing(sql: str, dialect: str) -> None:
    folded = " ".join(sql.split())
    if folding._UNFOLDED.search(folded) is None:
        assert folding._fold(folded) == folded
    # and on what the fingerprint folds: literals as ?, quoted identifiers held aside
    shape = fp._fingerprint(sql, dialect)
    spaced = " ".join(shape.split())
    if folding._UNFOLDED.search(spaced) is None:
        assert folding._fold(spaced) == spaced


def test_foldings_cases() -> None:
    for text in ["a = b", "a <> ?", "f(a, b)", "a >= ? AND b != ?", "x IN (?)"]:
        assert folding._UNFOLDED.search(text) is None
    for text in ["a =b", "a= b", "a , b", "a,b", "( a)", "(a )", "a = = b", "a <=> b", "a ! b"]:
        assert folding._UNFOLDED.search(text) is not None, text
    for text in ["a\x01b", "é\x85", "a\u200eb", "tab\there"]:  # control characters: replaced
        assert "\x01" not in fp._fingerprint(text, "sqlite")
        assert "\u200e" not in fp._fingerprint(text, "sqlite")


WORDS = st.sampled_from(["LIMIT", "limit", "OFFSET", "Fetch", "IN", "in", "iN", "(", " ", "\t"])
ROLE_TEXT = st.lists(st.one_of(WORDS, st.sampled_from(PIECES)), max_size=20).map("".join)


@given(st.one_of(ROLE_TEXT, ANY, st.text(st.characters(codec=None), max_size=30)))
@settings(max_examples=300, deadline=None)
def test_role_pattern_skipped_only_where_it_cannot_match(sql: str) -> None:
    """The substring tests before the pattern never refuse a text the pattern matches."""
    assert (params._roles(sql) is None) == (params._INTERESTING.search(sql) is None)


def test_role_pattern_cases() -> None:
    for sql in ["SELECT a FROM t", "SELECT a FROM t WHERE x = 'in'", "INSERT INTO t VALUES (?)"]:
        assert params._INTERESTING.search(sql) is None
    assert params._roles("SELECT a FROM t WHERE x = 1") is None
    assert params._roles("SELECT a FROM t WHERE x IN (1)") == ()
    assert params._roles("SELECT a FROM t WHERE x \u0130N (?)") == ((0, "in"),)  # the pattern
    assert params._INTERESTING.search("SELECT a FROM t WHERE x \u0130N (1)")  # reads İ as i
