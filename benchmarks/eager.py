"""What ``AuditConfig.unused_eager_loads`` costs, off and on (issue 22).

Run from the repository root::

    python benchmarks/eager.py            # about 30 seconds
    python benchmarks/eager.py --quick    # smoke test

One process, SQLite in memory, interleaved rounds (order shuffled per round), medians of
process CPU time. Two measurements:

1. Reading a loaded relationship attribute (``parent.children``, already in the instance
   ``__dict__``), per read:

   * ``plain``: SQLAlchemy's own ``InstrumentedAttribute.__get__`` (no audit watches it);
   * ``watched, in the audit``: while an audit with ``unused_eager_loads=True`` that loaded
     it eagerly is open, read inside that audit (the read is noted);
   * ``watched, no audit here``: the same attribute read from code outside any audit while
     the opted-in audit is open elsewhere (the cost every thread pays while it is watched);
   * ``restored``: after the audit closed (must equal ``plain``).

2. One unit of work (``selectinload`` of 50 parents, every ``children`` read: 2 statements),
   inside ``sqlaudit.audit()`` with the switch off and on, and plain SQLAlchemy.

It measures; it never fails.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import threading
import time
from collections.abc import Callable

from sqlalchemy import ForeignKey, String, create_engine, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.orm import selectinload as _selectinload
from sqlalchemy.pool import StaticPool

import sqlaudit


class Base(DeclarativeBase):
    pass


class Parent(Base):
    __tablename__ = "parent"

    id: Mapped[int] = mapped_column(primary_key=True)
    children: Mapped[list[Child]] = relationship()


class Child(Base):
    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("parent.id"))
    name: Mapped[str] = mapped_column(String(20))


PARENTS = 50
QUERY = select(Parent).order_by(Parent.id).options(_selectinload(Parent.children))


def make_engine() -> object:
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(Parent), [{"id": i} for i in range(1, PARENTS + 1)])
        conn.execute(
            insert(Child),
            [{"parent_id": p, "name": f"c{p}.{c}"} for p in range(1, PARENTS + 1) for c in (1, 2)],
        )
    return engine


def per_call_ns(fn: Callable[[], None], calls: int) -> float:
    gc.collect()
    start = time.process_time()
    fn()
    return (time.process_time() - start) / calls * 1e9


def reads(parent: Parent, n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            parent.children  # noqa: B018 - the read is what is measured

    return run


def in_thread(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run in a thread of its own (no audit there), joined."""

    def run() -> None:
        worker = threading.Thread(target=fn)
        worker.start()
        worker.join()

    return run


def measure_reads(engine: object, rounds: int, n: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {
        "plain": [],
        "watched, in the audit": [],
        "watched, no audit here": [],
        "restored": [],
    }
    with Session(engine) as session:  # type: ignore[arg-type]
        parent = session.scalars(QUERY).first()
        assert parent is not None
        for _ in range(rounds):
            samples["plain"].append(per_call_ns(reads(parent, n), n))
            with sqlaudit.audit("watch", unused_eager_loads=True, on_finding="ignore"):
                session.expunge_all()
                parent = session.scalars(QUERY).first()
                assert parent is not None
                variants = [
                    ("watched, in the audit", reads(parent, n)),
                    ("watched, no audit here", in_thread(reads(parent, n))),
                ]
                random.shuffle(variants)
                for name, fn in variants:
                    samples[name].append(per_call_ns(fn, n))
            samples["restored"].append(per_call_ns(reads(parent, n), n))
    return {name: statistics.median(values) for name, values in samples.items()}


def unit(engine: object, config: dict[str, object] | None) -> Callable[[], None]:
    def run() -> None:
        with Session(engine) as session:  # type: ignore[arg-type]
            if config is None:
                parents = session.scalars(QUERY).all()
                sum(len(p.children) for p in parents)
                return
            with sqlaudit.audit("unit", on_finding="ignore", **config):  # type: ignore[arg-type]
                parents = session.scalars(QUERY).all()
                sum(len(p.children) for p in parents)

    return run


def measure_units(engine: object, rounds: int, units: int) -> dict[str, float]:
    variants = {
        "plain SQLAlchemy": unit(engine, None),
        "audit, unused_eager_loads off": unit(engine, {}),
        "audit, unused_eager_loads on": unit(engine, {"unused_eager_loads": True}),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        order = list(variants.items())
        random.shuffle(order)
        for name, fn in order:

            def many(fn: Callable[[], None] = fn) -> None:
                for _ in range(units):
                    fn()

            samples[name].append(per_call_ns(many, units) / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test")
    args = parser.parse_args()
    rounds, n, units = (3, 20_000, 50) if args.quick else (15, 100_000, 200)
    engine = make_engine()
    sqlaudit.instrument(engine)
    unit(engine, {})()  # warm-up: compiled caches
    print(f"1. reading a loaded relationship attribute: ns per read ({rounds} rounds x {n})")
    for name, value in measure_reads(engine, rounds, n).items():
        print(f"   {name:<28} {value:8.1f}")
    print(f"2. one unit (selectinload of {PARENTS} parents, 2 statements, every collection read):")
    print(f"   µs per unit ({rounds} rounds x {units} units)")
    results = measure_units(engine, rounds, units)
    base = results["plain SQLAlchemy"]
    for name, value in results.items():
        print(f"   {name:<32} {value:8.1f}  (+{value - base:6.1f})")


if __name__ == "__main__":
    main()
