"""Table names of a fingerprint, by sqlparse (``fingerprint.tables`` memoises them per shape;
called only for statements shown to a person, so sqlparse's cost is paid once per shape)."""

from __future__ import annotations

__all__ = ["table_names"]


def table_names(text: str) -> tuple[str, ...]:
    import sqlparse
    from sqlparse.sql import Function, Identifier, IdentifierList
    from sqlparse.tokens import DML, Keyword

    found: list[str] = []
    for statement in sqlparse.parse(text):
        expect_table = False
        for token in statement.tokens:
            if token.is_whitespace:
                continue
            if token.ttype in Keyword and token.normalized in (
                "FROM",
                "JOIN",
                "INTO",
                "UPDATE",
                "TABLE",
                "INNER JOIN",
                "LEFT OUTER JOIN",
                "LEFT JOIN",
                "RIGHT JOIN",
                "RIGHT OUTER JOIN",
                "FULL OUTER JOIN",
                "CROSS JOIN",
            ):
                expect_table = True
                continue
            if token.ttype in DML and token.normalized == "UPDATE":
                expect_table = True
                continue
            if expect_table:
                items = (
                    token.get_identifiers()  # type: ignore[no-untyped-call]  # sqlparse is untyped
                    if isinstance(token, IdentifierList)
                    else [token]
                )
                for item in items:
                    if isinstance(item, (Identifier, Function)):
                        name = item.get_real_name()  # type: ignore[no-untyped-call]  # untyped
                        if name and name not in found:
                            found.append(name.strip('"`'))
                expect_table = False
    return tuple(found)
