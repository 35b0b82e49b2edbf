"""The capture state of a unit and of a transaction starts whole and unshared: every field is
set when it is made (``Scope.__init__`` in bulk, ``TxState.__init__``), none left to a default."""

from __future__ import annotations

from sqlalchemy import create_engine

from sqlaudit.capture.scope import Scope
from sqlaudit.capture.transactions import TxState
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.records import TransactionRecord


def _fields(obj: object) -> dict[str, object]:
    return {name: getattr(obj, name) for name in type(obj).__slots__ if name != "__weakref__"}


def test_every_scope_field_is_set_and_no_container_is_shared() -> None:
    first = _fields(Scope("a", AuditConfig()))  # AttributeError if a field was left unset
    second = _fields(Scope("b", AuditConfig(unused_eager_loads=True)))
    containers = [n for n, v in first.items() if isinstance(v, (dict, list, set))]
    assert len(containers) >= 18
    for name in containers:
        assert first[name] == type(first[name])()
        assert first[name] is not second[name], name
    assert second["eager_reads"] == set()
    assert first["eager_reads"] is None
    assert (first["nested"], first["ended"], first["internal_errors"]) == (False, None, 0)


def test_every_transaction_field_is_set() -> None:
    """A new transaction's state has each slot set, from its arguments or a start value."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        tx = _fields(TxState(1.5, (), conn, 7, 9, session=3, external=True))
        assert tx["conn_ref"]() is conn and tx["connection"] == id(conn)
    assert (tx["started"], tx["last_end"], tx["dbapi"], tx["session"]) == (1.5, 1.5, 7, 3)
    assert (tx["dialect"], tx["driver"], tx["unit"]) == ("sqlite", "pysqlite", 9)
    assert tx["root"]() is None  # began with no root transaction given
    assert (tx["end"], tx["ended"], tx["exec_time"], tx["statements"]) == ("open", 0.0, 0.0, 0)
    assert tx["overflow"] is None and tx["locks"] == tx["write_sql"] == () and tx["external"]
    assert tx["listening"] is False and tx["last_read"] is None


def test_a_frozen_transaction_has_every_record_field() -> None:
    """``TxState.freeze`` builds the record's tuple itself: one value per field, in order."""
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        state = TxState(1.5, (), conn, 7, 9)
        state.write_sql = ("INSERT INTO t VALUES (1)",)
        state.finish("commit")
        record = state.freeze(99.0)
    assert len(record) == len(TransactionRecord._fields)
    assert (record.source, record.end, record.started, record.ended) == (
        "core",
        "commit",
        1.5,
        state.ended,
    )
    assert (record.unit, record.driver, record.locks) == (9, "pysqlite", ())
    assert (record.write_sql, record.connection) == (state.write_sql, state.connection)
