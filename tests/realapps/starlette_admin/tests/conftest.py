from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from admin import create_app
from admin.models import Base, Customer, Order, Product
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.testclient import TestClient

import sqlaudit


def seed(session: Session) -> None:
    customers = [Customer(name=n, email=f"{n.lower()}@example.org") for n in ("Ada", "Ben", "Cy")]
    products = [Product(name=n, price=p) for n, p in (("Tea", 4), ("Cake", 3), ("Jam", 5))]
    session.add_all(customers + products)
    for number in range(6):
        session.add(
            Order(customer=customers[number % 2], product=products[number % 3], quantity=number + 1)
        )
    session.commit()


@pytest.fixture
def app(tmp_path: Path) -> Starlette:
    app = create_app(str(tmp_path / "shop.sqlite"))
    sqlaudit.instrument(app.state.engine)
    sqlaudit.instrument(app.state.async_engine)
    Base.metadata.create_all(app.state.engine)
    with Session(app.state.engine) as session:
        seed(session)
    return app


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client
