import pytest
from myapp.models import Base, add_streams
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

import sqlaudit


@pytest.fixture
def engine():
    engine = create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )
    Base.metadata.create_all(engine)
    add_streams(engine, 20)
    sqlaudit.instrument(engine)  # the plugin audits tests; it never instruments engines
    yield engine
    engine.dispose()
