import pytest
from myapp.models import Stream, add_streams
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload


def feed(session, eager=False):
    query = select(Stream).order_by(Stream.id)
    if eager:
        query = query.options(selectinload(Stream.comments))
    page = []
    for stream in session.scalars(query):
        page.append((stream.title, len(stream.comments)))
    return page


@pytest.mark.query_budget(2, reason="the landing page")
def test_feed(engine):
    with Session(engine) as session:
        assert len(feed(session)) == 20


@pytest.mark.query_budget(2)
def test_feed_eager(engine):
    with Session(engine) as session:
        assert len(feed(session, eager=True)) == 20


@pytest.mark.no_queries
def test_no_database():
    assert feed.__name__ == "feed"


@pytest.mark.sqlaudit(allow=["repeated_query"], n_plus_one_min=3)  # other findings fail
def test_feed_page_is_clean(engine):
    with Session(engine) as session:
        feed(session, eager=True)


def test_blocks(engine, sqlaudit):
    with Session(engine) as session:
        with sqlaudit.budget(2):
            feed(session, eager=True)
        with sqlaudit.assert_num_queries(2):  # pytest-django's django_assert_num_queries
            feed(session, eager=True)
    assert sqlaudit.report.query_count == 4


def test_feed_has_no_n_plus_one(engine, sqlaudit):
    def action():
        with Session(engine) as session:
            feed(session, eager=True)

    sqlaudit.assert_constant_queries(lambda n: add_streams(engine, n), action, scales=(2, 4))
