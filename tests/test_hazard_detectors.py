"""The issue-22 detectors (autocommit_lock, autocommit_read_modify_write, split_transaction,
unused_eager_load, the counter-cache fix of repeated_query) on hand-built records: no
database, one row per behaviour, each finding beside the trap that must stay silent."""

from __future__ import annotations

from typing import Any

import pytest

from sqlaudit import AuditConfig, Finding, Severity
from sqlaudit.detectors import run_detectors
from sqlaudit.model.hazards import EagerLoad, LockedRead, ReadModifyWrite
from sqlaudit.model.records import CallSite, OrmLoad, QueryRecord, TransactionRecord, UnitRecord
from sqlaudit.sql.locking import is_locking
from sqlaudit.sql.rowkeys import SelectShape, UpdateShape, select_shape, update_shape

KEY = 7
TEST = CallSite("test_app.py", 3, "test_it")


def site(line: int, function: str = "handler", file: str = "app.py") -> CallSite:
    return CallSite(file, line, function)


def tx(**fields: Any) -> TransactionRecord:
    """A committed Core transaction with one write, begun by the unit ``KEY``."""
    values: dict[str, Any] = {
        "source": "core", "autocommit": False, "end": "commit", "statements": 1, "writes": 1,
        "started": 0.0, "ended": 0.0, "exec_time": 0.001, "max_gap": 0.0, "begin_stack": (),
        "end_stack": (), "external": False, "streaming": False, "dialect": "sqlite",
        "session": 0, "rows_written": 1, "suppressed": frozenset(), "unit": KEY,
    }  # fmt: skip
    values.update(fields)
    return TransactionRecord(**values)


def query(sql: str, stack: tuple[CallSite, ...], start: float = 0.0, **fields: Any) -> QueryRecord:
    values: dict[str, Any] = {
        "sql": sql, "kind": "select", "start": start, "duration": 0.001, "rowcount": 1,
        "batch": 1, "error": None, "stack": stack, "orm": None, "connection": 1,
        "dialect": "sqlite", "suppressed": frozenset(), "unit": KEY,
    }  # fmt: skip
    values.update(fields)
    return QueryRecord(**values)


def unit(**fields: Any) -> UnitRecord:
    values: dict[str, Any] = {
        "name": "unit", "config": AuditConfig(slow_query_ms=None), "statements": (),
        "counts": {"select": 1}, "db_time": 0.0, "overflow": 0, "transaction_records": (),
        "origin_records": {}, "stale_reads": (), "resets": 0, "started": 0.0, "ended": 1.0,
        "key": KEY,
    }  # fmt: skip
    values.update(fields)
    return UnitRecord(**values)


def findings(record: UnitRecord, kind: str) -> list[Finding]:
    found, failures = run_detectors(record)
    assert failures == 0
    return [f for f in found if f.kind == kind]


# -- autocommit_lock ---------------------------------------------------------------------

LOCK_SQL = "SELECT wallets.id, wallets.points FROM wallets WHERE wallets.id = %(id_1)s FOR UPDATE"
LOCK = LockedRead(LOCK_SQL, (site(12), TEST), 0.5)


@pytest.mark.parametrize(
    ("transaction", "expected"),
    [
        pytest.param(tx(autocommit=True, locks=(LOCK,)), 1, id="autocommit-lock"),
        pytest.param(
            tx(autocommit=True, locks=(LOCK, LOCK._replace(start=0.6))),
            1,
            id="two-locks-one-line-one-finding",
        ),
        pytest.param(tx(autocommit=False, locks=(LOCK,)), 0, id="real-transaction"),
        pytest.param(tx(autocommit=None, writes=0, locks=(LOCK,)), 0, id="autocommit-unknown"),
        pytest.param(tx(autocommit=True, locks=(LOCK,), external=True), 0, id="external"),
        pytest.param(
            tx(autocommit=True, locks=(LOCK._replace(suppressed=frozenset({"autocommit_lock"})),)),
            0,
            id="ignored",
        ),
        pytest.param(tx(autocommit=True, locks=(LOCK,), unit=KEY + 1), 0, id="nested-unit"),
    ],
)
def test_autocommit_lock(transaction: TransactionRecord, expected: int) -> None:
    """A locking read kept on an autocommit transaction is an error naming the read's line;
    the same read in a real transaction, elsewhere or ignored is not."""
    record = unit(transaction_records=(transaction,), nested=transaction.unit != KEY)
    found = findings(record, "autocommit_lock")
    assert len(found) == expected
    if found:
        assert found[0].severity is Severity.ERROR
        assert found[0].location == site(12)
        assert found[0].count == len(transaction.locks)
        assert "the lock ends with the statement" in found[0].message
        assert "with engine.begin() as conn:" in found[0].fix


@pytest.mark.parametrize(
    ("sql", "locking"),
    [
        ("SELECT a.id FROM a WHERE a.id = ? FOR UPDATE", True),
        ("SELECT a.id FROM a WHERE a.id = %(id_1)s FOR UPDATE NOWAIT", True),
        ("SELECT a.id FROM a FOR UPDATE OF a SKIP LOCKED", True),
        ("SELECT a.id FROM a FOR NO KEY UPDATE", True),
        ("SELECT a.id FROM a FOR SHARE", True),
        ("SELECT a.id FROM a FOR KEY SHARE", True),
        ("SELECT a.id FROM a LOCK IN SHARE MODE", True),
        ("select a.id from a\nwhere a.id = 1\nfor   update", True),
        ("SELECT a.id FROM a WHERE a.note = 'for update'", False),
        ("SELECT a.last_update FROM a -- FOR UPDATE", False),
        ("SELECT a.id FROM a WHERE a.shared = ?", False),
        ("SELECT a.id FROM a", False),
    ],
)
def test_is_locking(sql: str, locking: bool) -> None:
    """Lock clauses are told from the SQL text, never from a literal or a comment."""
    assert is_locking(sql) is locking
    assert is_locking(sql) is locking  # cached


# -- autocommit_read_modify_write ---------------------------------------------------------

READ = (site(20), TEST)
WRITE = (site(22), TEST)
RMW = ReadModifyWrite("orm", "Wallet", ("points",), READ, WRITE, unit=KEY)
CORE_RMW = ReadModifyWrite(
    "core", "wallets", ("points",), READ, WRITE,
    read_sql="SELECT wallets.id, wallets.points FROM wallets WHERE wallets.id = ?",
    write_sql="UPDATE wallets SET points=? WHERE wallets.id = ?", unit=KEY,
)  # fmt: skip


@pytest.mark.parametrize(
    ("rmws", "expected"),
    [
        pytest.param((RMW,), ["Wallet.points"], id="orm"),
        pytest.param((CORE_RMW,), ["wallets.points"], id="core"),
        pytest.param((RMW, RMW), ["Wallet.points"], id="a-loop-is-one-finding"),
        pytest.param(
            (RMW, RMW._replace(write_stack=(site(30), TEST))),
            ["Wallet.points", "Wallet.points"],
            id="two-write-sites",
        ),
        pytest.param((RMW._replace(unit=KEY + 1),), [], id="nested-unit"),
        pytest.param(
            (RMW._replace(suppressed=frozenset({"autocommit_read_modify_write"})),),
            [],
            id="ignored",
        ),
        pytest.param((), [], id="none"),
    ],
)
def test_autocommit_read_modify_write(
    rmws: tuple[ReadModifyWrite, ...], expected: list[str]
) -> None:
    """Each read-modify-write (by write site) is one warning naming the read, the write and
    both fixes (a locking transaction, an atomic SET col = col + ?)."""
    record = unit(read_modify_writes=rmws, nested=any(r.unit != KEY for r in rmws))
    found = findings(record, "autocommit_read_modify_write")
    assert [f.relationship for f in found] == expected
    for finding in found:
        assert finding.severity is Severity.WARNING
        assert "Wallet" in finding.message or "wallets" in finding.message
        assert "read at app.py:20, then written back" in finding.message
        assert "on an autocommit connection" in finding.message
        assert finding.location in (site(22), site(30))
        assert "with_for_update()" in finding.fix
        assert "+ delta" in finding.fix or "points = points + ?" in finding.fix


def test_core_read_modify_write_names_the_statements() -> None:
    """A Core read-modify-write points at its UPDATE statements and writes the atomic SQL."""
    write = query(CORE_RMW.write_sql, WRITE, kind="update")
    record = unit(
        statements=(query(CORE_RMW.read_sql, READ), write), read_modify_writes=(CORE_RMW,)
    )
    [finding] = findings(record, "autocommit_read_modify_write")
    assert finding.statements == (1,)
    assert "UPDATE wallets SET points = ?" in finding.message
    assert "`UPDATE wallets SET points = points + ? WHERE ...`" in finding.fix


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        ("UPDATE w SET points=? WHERE w.id = ?", UpdateShape("w", (("points", 0),), (("id", 1),))),
        (
            'UPDATE "W" SET "points"=%(points)s WHERE "W".id = %(id_1)s',
            UpdateShape("w", (("points", "points"),), (("id", "id_1"),)),
        ),
        (
            "UPDATE w SET points=$1 WHERE w.id = $2 AND w.v = $3",
            UpdateShape("w", (("points", 0),), (("id", 1), ("v", 2))),
        ),
        (
            "UPDATE w SET points=%(points)s::NUMERIC(10, 2) WHERE w.id = %(id_1)s::INTEGER",
            UpdateShape("w", (("points", "points"),), (("id", "id_1"),)),
        ),
        ("UPDATE w SET points=(w.points + ?) WHERE w.id = ?", None),
        ("UPDATE w SET points=? WHERE w.id = ? OR w.id = ?", None),
        ("UPDATE w SET points=? FROM x WHERE w.id = x.id", None),
        ("UPDATE w SET points=?", None),
        ("UPDATE w SET points=5 WHERE w.id = ?", None),
    ],
)
def test_update_shape(sql: str, shape: UpdateShape | None) -> None:
    """Only a single-table UPDATE keyed by AND-ed equalities, setting a column to one
    placeholder, is a write-back."""
    assert update_shape(sql) == shape


@pytest.mark.parametrize(
    ("sql", "shape"),
    [
        (
            "SELECT w.id, w.points FROM w WHERE w.id = ?",
            SelectShape("w", frozenset({"id", "points"}), (("id", 0),)),
        ),
        (
            "SELECT * FROM w AS x WHERE x.id = :id FOR UPDATE",
            SelectShape("w", frozenset({"*"}), (("id", "id"),)),
        ),
        (
            "SELECT w.points AS p FROM w WHERE w.id = %s LIMIT %s",
            SelectShape("w", frozenset({"points"}), (("id", 0),)),
        ),
        ("SELECT w.id FROM w JOIN x ON w.id = x.w_id WHERE w.id = ?", None),
        ("SELECT count(*) FROM w WHERE w.id = ?", None),
        ("SELECT w.id FROM w WHERE w.owner = ? GROUP BY w.id", None),
        ("SELECT w.id FROM w", None),
    ],
)
def test_select_shape(sql: str, shape: SelectShape | None) -> None:
    """Only a single-table SELECT of plain columns keyed by equalities names a row."""
    assert select_shape(sql) == shape


# -- split_transaction --------------------------------------------------------------------

DEBIT = (site(5, "debit", "repo.py"), site(10, "transfer", "service.py"), TEST)
CREDIT = (site(9, "credit", "repo.py"), site(11, "transfer", "service.py"), TEST)
SPLIT = [tx(begin_stack=DEBIT, started=1.0), tx(begin_stack=CREDIT, started=2.0)]
AUDIT_INSERT = "INSERT INTO audit_log (message) VALUES (?)"


@pytest.mark.parametrize(
    ("transactions", "expected"),
    [
        pytest.param(SPLIT, 1, id="service-calls-two-committing-methods"),
        pytest.param(
            [
                SPLIT[0],
                SPLIT[1],
                tx(begin_stack=DEBIT, started=3.0),
                tx(begin_stack=CREDIT, started=4.0),
            ],
            1,
            id="in-a-loop",
        ),
        pytest.param([SPLIT[0], SPLIT[1]._replace(end="rollback")], 0, id="second-rolled-back"),
        pytest.param([SPLIT[0], SPLIT[1]._replace(autocommit=True)], 0, id="autocommit"),
        pytest.param([SPLIT[0], SPLIT[1]._replace(writes=0)], 0, id="read-only"),
        pytest.param([SPLIT[0], SPLIT[1]._replace(external=True)], 0, id="external"),
        pytest.param([SPLIT[0], tx(begin_stack=DEBIT, started=2.0)], 0, id="retry-same-stack"),
        pytest.param(
            [
                tx(begin_stack=(site(10, "transfer", "service.py"), TEST), started=1.0),
                tx(begin_stack=(site(11, "transfer", "service.py"), TEST), started=2.0),
            ],
            0,
            id="two-blocks-in-the-function-itself",
        ),
        pytest.param(
            [
                tx(begin_stack=(site(5, "debit", "repo.py"), TEST), started=1.0),
                tx(begin_stack=(site(9, "credit", "repo.py"), TEST._replace(line=4)), started=2.0),
            ],
            0,
            id="the-units-entry-calls-two-things",
        ),
        pytest.param(
            [SPLIT[0], SPLIT[1]._replace(write_sql=(AUDIT_INSERT,))],
            0,
            id="audit-log-insert-in-its-own-transaction",
        ),
        pytest.param(
            [
                SPLIT[0],
                SPLIT[1]._replace(
                    write_sql=(
                        "INSERT INTO order_events (kind) VALUES (?)",
                        "INSERT INTO outbox (body) VALUES (?)",
                    )
                ),
            ],
            0,
            id="outbox-and-event-inserts",
        ),
        pytest.param(
            [
                SPLIT[0],
                SPLIT[1]._replace(
                    write_sql=("UPDATE audit_log SET message=? WHERE audit_log.id = ?",)
                ),
            ],
            1,
            id="an-update-of-a-log-is-not-an-append",
        ),
        pytest.param(
            [SPLIT[0], SPLIT[1]._replace(write_sql=("INSERT INTO catalog (name) VALUES (?)",))],
            1,
            id="catalog-is-not-a-log",
        ),
        pytest.param(
            [SPLIT[0]._replace(suppressed=frozenset({"split_transaction"})), SPLIT[1]],
            0,
            id="ignored",
        ),
    ],
)
def test_split_transaction(transactions: list[TransactionRecord], expected: int) -> None:
    """Two committed transactions begun below two call lines of one function are one info
    finding at the first line; deliberate splits (own blocks, retries, logs) are quiet."""
    found = findings(unit(transaction_records=tuple(transactions)), "split_transaction")
    assert len(found) == expected
    if found:
        [finding] = found
        assert finding.severity is Severity.INFO
        assert finding.location == site(10, "transfer", "service.py")
        assert finding.message.startswith(
            "split transaction: transfer() committed its writes in "
        ), finding.message
        assert "line 10 (debit()), line 11 (credit())" in finding.message
        assert "pass the session or connection to debit() and credit()" in finding.fix
        assert finding.stack == (site(10, "transfer", "service.py"), TEST)


# -- unused_eager_load --------------------------------------------------------------------

BATCH_SQL = "SELECT b.author_id, b.id FROM b WHERE b.author_id IN (__[POSTCOMPILE_primary_keys])"
EAGER = EagerLoad("Author.books", "selectin", False, (site(40), TEST), 1, False, BATCH_SQL, KEY)


@pytest.mark.parametrize(
    ("load", "fix"),
    [
        pytest.param(
            EAGER,
            "remove selectinload(Author.books) from the options of the query at app.py:40 (or",
            id="selectinload",
        ),
        pytest.param(
            EAGER._replace(strategy="joined", statements=0),
            "remove joinedload(Author.books)",
            id="joinedload",
        ),
        pytest.param(
            EAGER._replace(strategy="subquery"),
            "remove subqueryload(Author.books)",
            id="subqueryload",
        ),
        pytest.param(
            EAGER._replace(configured=True),
            "Author.books is lazy='selectin': add .options(lazyload(Author.books))",
            id="lazy-selectin",
        ),
        pytest.param(EAGER._replace(read=True), None, id="read"),
        pytest.param(EAGER._replace(unit=KEY + 1), None, id="nested-unit"),
        pytest.param(
            EAGER._replace(suppressed=frozenset({"unused_eager_load"})), None, id="ignored"
        ),
    ],
)
def test_unused_eager_load(load: EagerLoad, fix: str | None) -> None:
    """An eager load never read is a warning whose fix names the option to remove (or the
    relationship's lazy= setting to override); a read one is silent."""
    record = unit(eager_loads=(load,), nested=load.unit != KEY)
    found = findings(record, "unused_eager_load")
    if fix is None:
        assert found == []
        return
    [finding] = found
    assert finding.relationship == "Author.books"
    assert finding.location == site(40)
    assert "but the unit never read it" in finding.message
    assert fix in finding.fix


# -- counter cache (repeated_query) -------------------------------------------------------

LOOP = (site(50), TEST)
COUNT = "SELECT count(comments.id) AS count_1 FROM comments WHERE comments.user_id = ?"
AGGREGATE = OrmLoad(
    "query", "Comment", "User.comments", None, ("User.id", "Comment.user_id"), 0, "aggregate"
)


@pytest.mark.parametrize(
    ("sql", "orm", "message", "fix"),
    [
        pytest.param(
            COUNT,
            AGGREGATE,
            "one COUNT() per User row (User.comments)",
            "select(Comment.user_id, func.count(Comment.id)).where(Comment.user_id.in_("
            "keys)).group_by(Comment.user_id)",
            id="orm-count",
        ),
        pytest.param(
            COUNT,
            AGGREGATE,
            "a counter queried in a loop",
            "comments_count = column_property(select(func.count(Comment.id)).where("
            "Comment.user_id == User.id).correlate_except(Comment).scalar_subquery())",
            id="orm-column-property",
        ),
        pytest.param(
            "SELECT coalesce(sum(p.amount), ?) AS s FROM p WHERE p.user_id = %(u)s",
            None,
            "one SUM() per parent row",
            "SELECT user_id, coalesce(sum(p.amount), ?) FROM p WHERE user_id IN (...) "
            "GROUP BY user_id",
            id="core-sum",
        ),
        pytest.param(
            "SELECT count(*) AS n FROM c WHERE c.post_id = ? AND c.hidden = ?",
            None,
            "one COUNT() per parent row",
            "WHERE post_id IN (...) AND c.hidden = ? GROUP BY post_id",
            id="core-count-with-a-condition",
        ),
        pytest.param(
            "SELECT count(c.id) AS n FROM c WHERE c.post_id = %(post_id_1)s::INTEGER "
            "AND c.kind = %(kind_1)s::VARCHAR(10)",
            None,
            "one COUNT() per parent row",
            "WHERE post_id IN (...) AND c.kind = ? GROUP BY post_id",
            id="postgresql-casts",
        ),
        pytest.param(
            "SELECT c.id FROM c WHERE c.post_id = ?",
            None,
            "repeated query: 3x",
            "load every row the loop needs in one query",
            id="not-an-aggregate",
        ),
        pytest.param(
            "SELECT count(*) AS n FROM c WHERE c.a = ? OR c.b = ?",
            None,
            "repeated query: 3x",
            "load every row",
            id="or-is-no-parent-key",
        ),
        pytest.param(
            "SELECT c.post_id, count(*) AS n FROM c WHERE c.post_id = ? GROUP BY c.post_id",
            None,
            "repeated query: 3x",
            "load every row",
            id="already-grouped",
        ),
        pytest.param(
            "SELECT count(*) AS n FROM c JOIN p ON p.id = c.post_id WHERE p.owner = ?",
            None,
            "repeated query: 3x",
            "load every row",
            id="a-join",
        ),
    ],
)
def test_counter_cache_fix(sql: str, orm: OrmLoad | None, message: str, fix: str) -> None:
    """A repeated aggregate filtered by one parent key gets a grouped-query / column_property
    fix written for its relationship; other repeated shapes keep the general fix."""
    records = tuple(query(sql, LOOP, start=i, orm=orm) for i in range(3))
    [finding] = findings(unit(statements=records, counts={"select": 3}), "repeated_query")
    assert message in finding.message, finding.message
    assert fix in finding.fix, finding.fix
