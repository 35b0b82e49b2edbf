import pytest
from sqlalchemy.orm import Session


@pytest.fixture
def session(engine):
    """One outer transaction per test, rolled back at teardown (SQLAlchemy's recipe)."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(connection, join_transaction_mode="create_savepoint")
    yield session
    session.close()
    outer.rollback()
    connection.close()
