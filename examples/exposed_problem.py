"""The "Exposed problem" in SQLAlchemy terms, and what sqlaudit says about it.

JetBrains Exposed issue #306: an ORM's entity cache lives per transaction, so running it under
auto-commit shows entities in the wrong state, and a failed block no longer rolls back. The
same happens with SQLAlchemy when a service runs its Session on an AUTOCOMMIT engine to save
round trips:

1. the misuse: a points transfer (debit one user, credit another) on an autocommit Session;
   the credit fails half-way and ``rollback()`` is called, but the debit is already durable;
   and a re-read of the sender shows the balance held in the identity map, not the database's;
2. what goes wrong in the data: points vanish, and the code reads a stale balance;
3. sqlaudit's findings for it;
4. the corrected code: one real transaction per unit of work: no findings, no lost points.

Run: ``python examples/exposed_problem.py`` (embedded SQLite in a temporary file), or:
``python examples/exposed_problem.py mysql+pymysql://root@127.0.0.1:3306/test`` /
``python examples/exposed_problem.py postgresql+psycopg://postgres@127.0.0.1:5432/test``.
Exit code 0 when the story plays out as told (the misuse is flagged and loses points, the fix
is clean and loses none).
"""

from __future__ import annotations

import os
import sys
import tempfile

from sqlalchemy import Engine, String, create_engine, func, select, update
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import sqlaudit


class Base(DeclarativeBase):
    pass


class Wallet(Base):
    __tablename__ = "exposed_wallets"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(String(40))
    points: Mapped[int]


class TransferError(Exception):
    """The credit side of a transfer failed (a constraint, a crash, a timeout...)."""


def make_engine(url: str) -> Engine:
    if url == "sqlite://":
        # The story needs two connections (the transfer and a concurrent top-up), so the
        # embedded default is a file in a temporary directory, not one in-memory connection.
        path = os.path.join(tempfile.mkdtemp(prefix="sqlaudit-exposed-"), "wallets.db")
        return create_engine(f"sqlite:///{path}")
    return create_engine(url)


def reset(engine: Engine) -> None:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.add_all(
            [Wallet(id=1, owner="alice", points=100), Wallet(id=2, owner="bob", points=0)]
        )


def total_points(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.sum(Wallet.points))).scalar_one())


def top_up_elsewhere(engine: Engine) -> None:
    """A concurrent request credits alice 5 points in its own transaction."""
    with engine.begin() as conn:
        conn.execute(update(Wallet).where(Wallet.id == 1).values(points=Wallet.points + 5))


def transfer_misused(engine: Engine, amount: int) -> int:
    """The misuse: a long-lived Session on an autocommit engine (each statement commits on
    its own, the identity map outlives every one of those transactions)."""
    fast = engine.execution_options(isolation_level="AUTOCOMMIT")
    with Session(fast) as session:
        header = session.get_one(Wallet, 1)  # loaded earlier, e.g. for the page header
        top_up_elsewhere(engine)
        # The re-read returns the object already held: the top-up is invisible...
        sender = session.scalars(select(Wallet).where(Wallet.id == 1)).one()
        seen = sender.points
        try:
            sender.points -= amount  # ...and this UPDATE overwrites it (a lost update)
            session.flush()  # the debit: committed at once by autocommit
            raise TransferError("credit to bob failed")
        except TransferError:
            session.rollback()  # believes it undid the debit; it undid nothing
        del header
        return seen


def transfer_fixed(engine: Engine, amount: int) -> int:
    """The fix: one real transaction per unit of work, a fresh Session in each."""
    with Session(engine) as session:
        session.get_one(Wallet, 1)
    top_up_elsewhere(engine)
    seen = 0
    try:
        with Session(engine) as session, session.begin():
            sender = session.scalars(select(Wallet).where(Wallet.id == 1).with_for_update()).one()
            seen = sender.points
            sender.points -= amount
            session.flush()
            raise TransferError("credit to bob failed")
    except TransferError:
        pass  # session.begin() rolled the debit back for real
    return seen


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else "sqlite://"
    engine = make_engine(url)
    handle = sqlaudit.instrument(engine)
    ok = True
    try:
        for name, transfer in (("misused", transfer_misused), ("fixed", transfer_fixed)):
            reset(engine)
            with sqlaudit.audit(f"transfer ({name})", on_finding="ignore") as report:
                seen = transfer(engine, 30)
            total = total_points(engine)
            print(report.render(statements=False))
            print(f"  alice's balance as the transfer read it: {seen} (the database had 105)")
            print(f"  points in the system afterwards: {total} (should be 105: 100 + a top-up")
            print("  of 5, the failed transfer undone)\n")
            problems = {f.kind for f in report.findings if f.severity >= sqlaudit.Severity.WARNING}
            if name == "misused":
                ok &= {"ineffective_rollback", "stale_identity_map"} <= problems
                ok &= total != 105 and seen != 105
            else:
                ok &= not problems and total == 105 and seen == 105
    finally:
        handle.remove()
        Base.metadata.drop_all(engine)
        engine.dispose()
    print("the story played out as told" if ok else "UNEXPECTED: see the reports above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
