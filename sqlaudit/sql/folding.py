"""From a text whose values are found to its fingerprint: whitespace, operators and lists
folded (``folded``); and the fast path that does all of it for "plain" text (``plain``).

``fingerprint`` replaces what a dialect's lexer reads as a value by ``?`` and folds the rest
here. A plain text (ASCII, nothing any two dialects read differently) needs no lexer: one
pattern finds its values, the same under every dialect's rules. Texts that differ only in
their values (inlined literals: a new text each time) have one *skeleton*, the text with its
values replaced, whose shape is kept (bounded as every memo is, ``sql.cache``), so a new
text of a known skeleton costs one pattern and one dict lookup (issue 20).
"""

from __future__ import annotations

import re

from sqlaudit.sql.cache import Memo

__all__ = ["MARK", "folded", "plain"]

_COMMA = re.compile(r" ?, ?")
_OPERATOR = re.compile(r" ?(<=|>=|<>|!=|=|<|>) ?")
# Not after "%" / before "s": folding "%( a)s" or "%(a )s" would make a pyformat placeholder.
_PAREN_OPEN = re.compile(r"(?<!%)\( ")
_PAREN_CLOSE = re.compile(r" \)(?!s)")
_SPACES = re.compile(r"  +")
#: Where the five foldings above would change a text whose whitespace is already folded (one
#: space between words, none at either end): a space before ``,`` or ``)``, ``,`` without a
#: space after it, ``(`` with one; an operator run that does not start after a space, is not
#: one operator, or is not followed by a space and then something other than an operator.
#: Where none is found, each folding leaves the text unchanged, so they are not run. (The
#: space before ``,`` or ``)`` is looked behind for: a space is no candidate to start at.)
_UNFOLDED = re.compile(
    r",(?:(?<= ,)|(?! ))|\)(?<= \))|\( "
    r"|<(?:(?<![ <>=!].)|(?<![<>=!].)(?![=>]? (?![<>=!])))"
    r"|>(?:(?<![ <>=!].)|(?<![<>=!].)(?!=? (?![<>=!])))"
    r"|=(?:(?<![ <>=!].)|(?<![<>=!].)(?! (?![<>=!])))"
    r"|!(?:(?<![ <>=!].)|(?<![<>=!].)(?!= (?![<>=!])))"
)
#: Quoted identifiers are held aside as NUL while the folding patterns run (a NUL in the input
#: is whitespace to the lexer, so it never reaches this point otherwise).
MARK = "\x00"
_NAME = r"(?:[A-Za-z_][\w$]*|\x00)"
#: One value of a list: ``?``, with the bind cast PostgreSQL drivers add (``?::INTEGER``,
#: ``?::VARCHAR(?)``, ``?::TIMESTAMP WITHOUT TIME ZONE``, ``?::INTEGER[]``, ``?::"Enum"``).
_ITEM = rf"\?(?:::{_NAME}(?:\.{_NAME})?(?: [A-Za-z_][\w$]*)*(?:\(\?(?:, \?)*\))?(?:\[\])*)?"
_IN_LIST = re.compile(rf"\bIN \({_ITEM}(?:, {_ITEM})*\)", re.IGNORECASE)
_ROW = rf"\((?:{_ITEM}|\w+)(?:, (?:{_ITEM}|\w+))*\)"
_VALUES_LIST = re.compile(rf"\b(VALUES) ({_ROW})(?:, {_ROW})+", re.IGNORECASE)

#: What makes a text not "plain" (``plain``): what some dialect reads differently from another
#: (``lexer._DISAGREE``: ``"``, `````, ``[``, ``#``, ``\``, ``$``, ``/*``; ``q'`` is a quote
#: after a letter, see ``_PLAIN``) and ``--`` comments. One search for all of them (issue 20):
#: a ``-`` or ``/`` is no match unless a ``-`` or ``*`` follows.
_UNPLAIN = re.compile(r"[\"`\[#\\$/-](?:(?<=-)-|(?<=/)\*|(?<![-/]))")
#: The values of a plain text. Every dialect's lexer finds only values there: ``'...'``
#: strings, numbers, placeholders, a sign before them, and three kinds this pattern leaves to
#: the full path: prefixed strings (``N'..'``, ``X'..'``, ``E'..'``, ``U&'..'``: here a quote
#: after a letter or ``&`` is not opened, and is seen left in the result), ``TRUE`` and
#: ``FALSE``. Written as the lexer's tokens are (same rest for each first character, same
#: lookbehinds), but no letter is a candidate to start at: ``lex`` tries every letter that
#: could start a prefix or ``TRUE``.
_NUMBER = r"\w*(?:\.(?!\.)\w*)?(?:(?<=[eE])[-+]\d\w*)?"
_FRACTION = r"\d\w*(?:(?<=[eE])[-+]\d\w*)?"
_STRING = r"(?:[^']+|'')*(?:'|\Z)"
_PYFORMAT = r"(?:\([^()\s'?]{1,128}\)s|s)"
_COLON = r"(?<!::)[A-Za-z_]\w*"
_PLAIN = re.compile(
    r"[-'%?:.0-9](?:"
    rf"(?<=')(?<![A-Za-z&].){_STRING}"
    rf"|(?<=%){_PYFORMAT}"
    r"|(?<=\?)"
    rf"|(?<=:){_COLON}"
    rf"|(?<=[0-9])(?<![\w$?].){_NUMBER}"
    rf"|(?<=\.)(?<![\w$?].){_FRACTION}"
    r"|(?<=-)(?<![\w.?'$\"`)\]].)"
    rf"(?:'{_STRING}|%{_PYFORMAT}|\?|:{_COLON}|\d{_NUMBER}|\.{_FRACTION})"
    r")"
)
#: ``_plain_shape`` by skeleton (a plain text, its values replaced by ``_PLAIN``).
_SKELETON: Memo[str | None] = Memo(lambda shape: 0 if shape is None else len(shape))
_SKELETONS = _SKELETON.data
#: What ``_SKELETONS.get`` answers for a skeleton not kept (by identity: never a shape).
_UNSEEN = "\x00unseen"


def plain(text: str) -> str | None:
    """The fingerprint of a "plain" text (``_PLAIN``), the same under every dialect's rules;
    None for any other text."""
    if text.isascii() and _UNPLAIN.search(text) is None:
        # What follows is a function of the skeleton: kept, not computed for each text.
        skeleton = _PLAIN.sub("?", text)
        shape = _SKELETONS.get(skeleton, _UNSEEN)
        if shape is _UNSEEN:
            shape = _SKELETON.put(skeleton, _plain_shape(skeleton))
        return shape
    return None


def _plain_shape(skeleton: str) -> str | None:
    """``plain`` of a text whose values ``_PLAIN`` replaced in ``skeleton``."""
    shape = folded(skeleton)
    # A quote left over is one _PLAIN did not open (after a letter or "&": maybe a prefixed
    # string); TRUE and FALSE are literals it does not look for.
    upper = shape.upper()
    if "'" not in shape and "TRUE" not in upper and "FALSE" not in upper:
        return shape
    return None


def folded(text: str) -> str:
    """Literals already replaced: whitespace folded, lists collapsed, ``;`` dropped."""
    text = " ".join(text.split())  # whitespace folded, as str.split() reads it
    if _UNFOLDED.search(text) is not None:
        text = _fold(text)
    upper = text.upper()  # the list patterns run only where they can match
    if "IN (?" in upper:
        text = _IN_LIST.sub("IN (?)", text)
    if "VALUES (" in upper:
        text = _VALUES_LIST.sub(r"\1 \2", text)
    return text.rstrip("; ")


def _fold(text: str) -> str:
    """One space after a comma and around an operator, none inside parentheses."""
    text = _COMMA.sub(", ", text)
    text = _OPERATOR.sub(r" \1 ", text)
    text = _PAREN_CLOSE.sub(")", _PAREN_OPEN.sub("(", text))
    return _SPACES.sub(" ", text)
