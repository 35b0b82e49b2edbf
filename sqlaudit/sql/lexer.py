"""Where a dialect's SQL text holds literals, comments and quoted identifiers.

The fingerprint replaces every literal by ``?`` and drops every comment, so it must find them
exactly where the database does. Each dialect has its own quoting rules (cited below); where
the rules depend on a server setting sqlaudit cannot see (MySQL's ``NO_BACKSLASH_ESCAPES``,
PostgreSQL's ``standard_conforming_strings``), the text is lexed under each setting, and from
the first token on which they disagree everything is treated as a literal. An unknown dialect
is lexed under every known dialect's rules at once. So nothing that any of those servers would
read as a literal or a comment is ever kept: only text that is code under every setting is.

=============  ==========================================================================
dialect        literals, comments, quoted identifiers
=============  ==========================================================================
sqlite         ``'...'``, ``X'...'``; ``"..."`` is a string unless it names something, so
               it is kept only where a string cannot stand (``"t".c``, ``FROM "t"``,
               ``AS "a"``); ``[...]`` and `````...````` identifiers; ``--``, ``/* */``
               (sqlite.org/lang_keywords.html, sqlite.org/quirks.html#dblquote)
mysql          ``'...'`` and ``"..."`` strings, backslash escapes unless
mariadb        ``NO_BACKSLASH_ESCAPES``; ``X'..'``, ``B'..'``, ``0x..``, ``0b..``,
               ``N'..'``, ``_charset'..'``; ``#``, ``--``, ``/* */`` (``/*! */`` dropped
               too); `````...````` identifiers (dev.mysql.com/doc/refman/8.4/en/
               string-literals.html, comments.html)
postgresql     ``'...'`` (backslash escapes only if ``standard_conforming_strings`` is off),
               ``E'...'`` (always), ``B''``, ``X''``, ``U&''``, ``$tag$...$tag$`` (the tag
               may hold any non-ASCII letter); nested ``/* /* */ */``; ``"..."`` and
               ``U&"..."`` identifiers (postgresql.org/docs/current/sql-syntax-lexical.html)
mssql          ``'...'``, ``N'...'``; nested ``/* */``; ``[...]`` and ``"..."`` identifiers
oracle         ``'...'``, ``q'[...]'`` (any delimiter), ``N''``; ``"..."`` identifiers
=============  ==========================================================================

Numbers are a literal up to the end of the identifier-like run (``0b1011``, ``0x1F``,
``1_000``, MySQL's ``1abc``); ``TRUE``/``FALSE`` and every placeholder style are literals.
Unterminated quotes and comments run to the end of the text. Each lexer is one regular
expression scanned once (quotes whose end a regular expression cannot find, nested comments
and tagged quotes, are ended with ``str.find`` or a depth count): time is linear in the text.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["IDENT", "SPACE", "VALUE", "Spans", "family", "lex"]

#: A token's class. Where settings disagree on one token's class, the highest wins.
IDENT, SPACE, VALUE = 1, 2, 3
_DQ = 0  # SQLite's double-quoted token, resolved to IDENT or VALUE by its context


#: Spans of a text, as three lists: starts, ends and classes.
Spans = tuple[list[int], list[int], list[int]]


class _Mode(NamedTuple):
    pattern: re.Pattern[str]
    #: The kind of token each capture group marks (``match.lastindex``).
    kinds: tuple[str, ...]
    #: ``"..."`` is resolved by context (SQLite).
    sqlite_dq: bool
    #: Finds what can start a token whose end code must find (``/*`` that nests, ``$``,
    #: ``q'``), or None: without one, the text is lexed in one pass.
    special: re.Pattern[str] | None
    #: The class of each capture group (``_DQ`` too; -1 for the tokens code ends).
    classes: tuple[int, ...]


class _Token(NamedTuple):
    """One token kind: its first character (a regex character class), then the rest."""

    first: str
    rest: str
    #: ``space`` (a comment), ``value``, ``ident``, ``dq`` (SQLite's ``"..."``), or a token
    #: whose end is found by code: ``nest`` (nested comment), ``dollar``, ``qquote``.
    kind: str
    #: It cannot start inside an identifier (``t1``, ``a$1``, ``xE'..'``).
    free: bool = False
    #: A unary minus before it belongs to it (``-5``, ``-'5'``, ``-:p``).
    signed: bool = False


_CLASS = {"space": SPACE, "value": VALUE, "ident": IDENT, "dq": _DQ}

#: Not inside an identifier (identifiers hold letters, digits, ``_`` and ``$``), nor right
#: after ``?``: a literal that ended in a letter or digit reads as ``?`` in the fingerprint,
#: and what follows it must lex the same way in both (fingerprints are idempotent). Written
#: for the position after the token's first character.
_FREE = r"(?<![\w$?].)"
#: A minus is a sign unless the character before it can end an operand (``a-1`` and
#: ``f(x) - ?`` keep their minus). Written for the position after the minus.
_SIGN = r"(?<![\w.?'$\"`)\]].)"
#: PostgreSQL's dollar-quote tag: ``[A-Za-z\200-\377_][A-Za-z\200-\377_0-9]*`` on bytes
#: (scan.l ``dolq_start``/``dolq_cont``), i.e. any non-ASCII character.
_TAG = r"(?:[A-Za-z_\x80-\U0010ffff][A-Za-z_0-9\x80-\U0010ffff]*)?\$"
_EXPONENT = r"(?:(?<=[eE])[-+]\d\w*)?"


def _body(quote: str, backslash: bool) -> str:
    """The rest of a quoted token after its opening quote: the quote doubled inside; with
    ``backslash``, ``\\`` escapes any character. Unterminated: to the end."""
    if backslash:
        return rf"(?:[^{quote}\\]+|{quote}{quote}|\\.)*\\?(?:{quote}|\Z)"
    return rf"(?:[^{quote}]+|{quote}{quote})*(?:{quote}|\Z)"


def _tokens(
    *,
    backslash: bool = False,
    dq: str = "ident",
    hash_comment: bool = False,
    nested: bool = False,
    dollar: bool = False,
    estring: bool = False,
    backtick: bool = False,
    brackets: bool = False,
    qquote: bool = False,
) -> list[_Token]:
    string = _body("'", backslash)
    tokens = [
        _Token("-", r"-[^\n]*", "space"),
        _Token("/", r"\*", "nest") if nested else _Token("/", r"\*.*?(?:\*/|\Z)", "space"),
    ]
    if hash_comment:
        tokens.append(_Token("#", r"[^\n]*", "space"))
    tokens.append(_Token("'", string, "value", signed=True))
    if estring:  # PostgreSQL E'...': backslash escapes whatever the server setting
        tokens.append(_Token("[Ee]", "'" + _body("'", True), "value", free=True, signed=True))
    prefixes = "NnBbXx" if estring else "NnBbXxEe"
    tokens += [
        _Token(f"[{prefixes}]", "'" + string, "value", free=True, signed=True),
        _Token("[Uu]", "&'" + _body("'", False), "value", free=True, signed=True),
    ]
    if dq == "string":
        tokens.append(_Token('"', _body('"', backslash), "value", signed=True))
    elif dq == "ident":
        tokens += [
            _Token('"', _body('"', False), "ident"),
            _Token("[Uu]", '&"' + _body('"', False), "ident", free=True),
        ]
    else:
        tokens.append(_Token('"', _body('"', False), "dq"))
    if backtick:
        tokens.append(_Token("`", _body("`", False), "ident"))
    if brackets:
        tokens.append(_Token(r"\[", r"(?:[^\]]+|\]\])*(?:\]|\Z)", "ident"))
    if dollar:
        tokens.append(_Token(r"\$", _TAG, "dollar", free=True, signed=True))
    if qquote:
        tokens += [
            _Token("[Qq]", r"'\S", "qquote", free=True, signed=True),
            _Token("[Nn]", r"[Qq]'\S", "qquote", free=True, signed=True),
        ]
    tokens += [
        _Token("%", r"\([^()\s'?]{1,128}\)s|s", "value", signed=True),
        _Token(r"\?", "", "value", signed=True),
        _Token(":", r"(?<!::)[A-Za-z_]\w*", "value", signed=True),
        _Token(r"\$", r"\d+", "value", free=True, signed=True),
        _Token(r"\d", r"\w*(?:\.(?!\.)\w*)?" + _EXPONENT, "value", free=True, signed=True),
        _Token(r"\.", r"\d\w*" + _EXPONENT, "value", free=True, signed=True),
        _Token("[Tt]", r"(?i:RUE)(?![\w$])", "value", free=True, signed=True),
        _Token("[Ff]", r"(?i:ALSE)(?![\w$])", "value", free=True, signed=True),
    ]
    return tokens


def _mode(*, dq: str = "ident", **flags: bool) -> _Mode:
    """One lexer: ``[first characters]`` then, by a lookbehind on that character, the rest
    (``flags``: ``_tokens``'s).

    Starting with a character class lets the regular expression engine skip every other
    character in C (``re``'s charset prefix); each branch ends with an empty group whose
    index (``match.lastindex``) tells the token's kind.
    """
    tokens = _tokens(dq=dq, **flags)
    nested, dollar, qquote = (flags.get(name, False) for name in ("nested", "dollar", "qquote"))
    kinds = [""]  # group 0 is the whole match
    bound = []
    for token in tokens:
        if not token.free:
            bound.append(f"(?<={token.first})(?:{token.rest})()")
            kinds.append(token.kind)
    signed = []
    for token in tokens:
        if token.signed:
            signed.append(f"{token.first}(?:{token.rest})()")
            kinds.append(token.kind)
    free = []
    for token in tokens:
        if token.free:
            free.append(f"(?<={token.first})(?:{token.rest})()")
            kinds.append(token.kind)
    # Bound tokens (and signed ones: ``-`` is a bound first character) are tried behind one
    # lookbehind on their first characters, free ones behind one shared check that they do
    # not start inside an identifier: a letter or digit inside a word costs two lookbehinds,
    # whatever the number of tokens. No free token shares a first character with a bound
    # one, so the alternative that matches is the one it would be in token order.
    bound.append(f"(?<=-){_SIGN}(?:{'|'.join(signed)})")
    bound_firsts = "".join(sorted({_in_class(token.first) for token in tokens if not token.free}))
    branches = [
        f"(?<=[{bound_firsts}])(?:{'|'.join(bound)})",
        f"{_FREE}(?:{'|'.join(free)})",  # the first character is a free token's
    ]
    firsts = sorted({_in_class(token.first) for token in tokens})
    pattern = re.compile(f"[{''.join(firsts)}](?:{'|'.join(branches)})", re.DOTALL)
    triggers = [r"/\*"] if nested else []
    triggers += [r"\$"] if dollar else []
    triggers += ["[Qq]'"] if qquote else []
    special = re.compile("|".join(triggers)) if triggers else None
    classes = tuple(_CLASS.get(kind, -1) for kind in kinds)
    return _Mode(pattern, tuple(kinds), dq == "sqlite", special, classes)


def _in_class(first: str) -> str:
    """``first`` written inside a character class."""
    if first.startswith("["):
        return first[1:-1]
    return r"\-" if first == "-" else first


_SQLITE = _mode(dq="sqlite", backtick=True, brackets=True)
_MYSQL = _mode(dq="string", backslash=True, hash_comment=True, backtick=True)
_MYSQL_NO_BACKSLASH = _mode(dq="string", hash_comment=True, backtick=True)
_POSTGRESQL = _mode(nested=True, dollar=True, estring=True)
_POSTGRESQL_BACKSLASH = _mode(nested=True, dollar=True, estring=True, backslash=True)
_MSSQL = _mode(nested=True, brackets=True)
_ORACLE = _mode(qquote=True)

#: Each dialect's lexers: one per server setting that changes where a literal ends.
_DIALECTS: dict[str, tuple[_Mode, ...]] = {
    "sqlite": (_SQLITE,),
    "mysql": (_MYSQL, _MYSQL_NO_BACKSLASH),
    "mariadb": (_MYSQL, _MYSQL_NO_BACKSLASH),
    "postgresql": (_POSTGRESQL, _POSTGRESQL_BACKSLASH),
    "mssql": (_MSSQL,),
    "oracle": (_ORACLE,),
}
_EVERY = (
    _SQLITE,
    _MYSQL,
    _MYSQL_NO_BACKSLASH,
    _POSTGRESQL,
    _POSTGRESQL_BACKSLASH,
    _MSSQL,
    _ORACLE,
)
#: What some dialect reads differently from another: ``"``, ````` ``, ``[``, ``#``, ``\\``,
#: ``$`` (dollar quotes), ``/*`` (nested or not) and ``q'`` (Oracle). A text without any of
#: them lexes the same under every dialect's rules (and every setting), so it is lexed once.
_DISAGREE = re.compile(r"[\"`\[#\\$]|/\*|[Qq]'")
_NEST = re.compile(r"/\*|\*/")
_QCLOSE = {"[": "]", "(": ")", "{": "}", "<": ">"}
#: SQLite: before these words, or before or after ``.``, a double-quoted token can only be an
#: identifier (a string literal cannot stand there).
_SIGNED = re.compile(r"(?:^|[^\w.?'$\"`)\]])-\Z")
_NAME_BEFORE = re.compile(r"(?:\b(?i:FROM|JOIN|INTO|UPDATE|TABLE|AS|INDEX|VIEW)|\.)\s*\Z")


def family(dialect: str) -> str:
    """The key of ``dialect``'s quoting rules (``"mariadb"`` -> ``"mysql"``); "" if unknown."""
    return "mysql" if dialect == "mariadb" else dialect if dialect in _DIALECTS else ""


def lex(sql: str, dialect: str) -> tuple[Spans, int]:
    """The literal, comment and quoted-identifier spans of ``sql`` under ``dialect``'s rules,
    and where the text stops being safe to keep (``len(sql)`` if it all is): from there on
    the settings of the dialect (or the dialects, if unknown) disagree, and the caller must
    treat the rest as one literal. Text between spans is code (and whitespace)."""
    modes = _DIALECTS.get(dialect, _EVERY)
    if len(modes) == 2 and "\\" not in sql:
        modes = modes[:1]  # the settings differ only on backslashes
    elif modes is _EVERY and _DISAGREE.search(sql) is None:
        modes = modes[:1]  # nothing on which any two dialects' rules differ: all agree
    first = _lex(sql, modes[0])
    safe = len(sql)
    for mode in modes[1:]:
        safe = _agree(first, _lex(sql, mode), safe)
    return first, safe


def _agree(first: Spans, other: Spans, safe: int) -> int:
    """Keep in ``first`` the spans both lexers agree on (the higher class of each), up to
    where they first disagree; return that position (or ``safe``)."""
    starts, ends, classes = first
    other_starts, other_ends, other_classes = other
    if starts != other_starts or ends != other_ends:
        common = min(len(starts), len(other_starts))
        n = next(
            (i for i in range(common) if (starts[i], ends[i]) != (other_starts[i], other_ends[i])),
            common,
        )
        if n < len(starts):
            safe = min(safe, starts[n])
        if n < len(other_starts):
            safe = min(safe, other_starts[n])
        del starts[n:], ends[n:], classes[n:]
    if classes != other_classes[: len(classes)]:
        classes[:] = map(max, classes, other_classes)
    return safe


def _lex(sql: str, mode: _Mode) -> Spans:
    if mode.special is None or mode.special.search(sql) is None:
        # One pass, no token whose end code must find (the common case): comprehensions.
        matches = list(mode.pattern.finditer(sql))
        group_class = mode.classes
        starts = [match.start() for match in matches]
        ends = [match.end() for match in matches]
        classes = [group_class[match.lastindex] for match in matches]  # type: ignore[index]
        if mode.sqlite_dq and _DQ in classes:
            _resolve_dq(sql, (starts, ends, classes))
        return starts, ends, classes
    return _lex_special(sql, mode)


def _lex_special(sql: str, mode: _Mode) -> Spans:
    starts: list[int] = []
    ends: list[int] = []
    classes: list[int] = []
    pattern = mode.pattern
    kinds = mode.kinds
    pos = 0
    while True:
        for match in pattern.finditer(sql, pos):
            start, end = match.span()
            kind = kinds[match.lastindex]  # type: ignore[index]  # every branch has a group
            cls = _CLASS.get(kind)
            if cls is None:  # a token whose end no regular expression finds: restart after it
                cls = SPACE if kind == "nest" else VALUE
                end = _special_end(sql, match, kind)
                starts.append(start)
                ends.append(end)
                classes.append(cls)
                pos = end
                break
            starts.append(start)
            ends.append(end)
            classes.append(cls)
        else:
            break
    if mode.sqlite_dq and _DQ in classes:
        _resolve_dq(sql, (starts, ends, classes))
    return starts, ends, classes


def _special_end(sql: str, match: re.Match[str], kind: str) -> int:
    opener = match.group().lstrip("-")
    if kind == "nest":
        depth = 0
        for token in _NEST.finditer(sql, match.start()):
            depth += 1 if token.group() == "/*" else -1
            if depth == 0:
                return token.end()
        return len(sql)
    if kind == "dollar":
        close = sql.find(opener, match.end())
        return len(sql) if close < 0 else close + len(opener)
    delimiter = opener[-1]  # q'[...]': the delimiter, then the text, then its closer and '
    close = sql.find(_QCLOSE.get(delimiter, delimiter) + "'", match.end())
    return len(sql) if close < 0 else close + 2


def _resolve_dq(sql: str, spans: Spans) -> None:
    """SQLite reads ``"x"`` as an identifier if one by that name exists, else as a string
    (sqlite.org/quirks.html#dblquote): kept only where it must be a name."""
    starts, ends, classes = spans
    for i, cls in enumerate(classes):
        if cls != _DQ:
            continue
        after = sql[ends[i] : ends[i] + 64].lstrip()
        name = after.startswith(".") or _NAME_BEFORE.search(_code_before(sql, spans, i))
        classes[i] = IDENT if name else VALUE
        if not name and _SIGNED.match(sql, max(0, starts[i] - 2), starts[i]):
            starts[i] -= 1  # a unary minus belongs to the string, as to any other value


def _code_before(sql: str, spans: Spans, i: int) -> str:
    """Up to 64 characters of code before span ``i``, comments and whitespace skipped."""
    starts, ends, classes = spans
    end = starts[i]
    j = i - 1
    while j >= 0 and classes[j] == SPACE and not sql[ends[j] : end].strip():
        end = starts[j]
        j -= 1
    start = ends[j] if j >= 0 else 0
    return sql[max(start, end - 64) : end]
