"""SQLModel's documentation overrides the dependency with the test's own session: every
request of the test then shares one session (and its identity map) with the test."""

from collections.abc import Iterator

import pytest
from app.db import get_session
from app.main import app
from app.models import Hero, Team
from fastapi.testclient import TestClient
from sqlmodel import Session


@pytest.fixture(name="shared_client")
def shared_client_fixture(session: Session) -> Iterator[TestClient]:
    def get_session_override() -> Session:
        return session

    app.dependency_overrides[get_session] = get_session_override
    client = TestClient(app)
    yield client
    app.dependency_overrides.clear()


def test_heroes_of_a_team(session: Session, shared_client: TestClient):
    team = Team(name="Preventers", headquarters="Sharp Tower")
    session.add(team)
    session.commit()
    for name in ("Deadpond", "Rusty-Man", "Spider-Boy"):
        response = shared_client.post(
            "/heroes/", json={"name": name, "secret_name": "?", "team_id": team.id}
        )
        assert response.status_code == 200
    for hero_id in (1, 2, 3, 1):
        assert shared_client.get(f"/heroes/{hero_id}").json()["team"]["name"] == "Preventers"
    shared_client.patch(f"/teams/{team.id}", json={"headquarters": "Sister Margaret's Bar"})
    data = shared_client.get(f"/teams/{team.id}").json()
    assert data["headquarters"] == "Sister Margaret's Bar"
    assert len(data["heroes"]) == 3


def test_delete_hero(session: Session, shared_client: TestClient):
    hero_1 = Hero(name="Deadpond", secret_name="Dive Wilson")
    session.add(hero_1)
    session.commit()

    response = shared_client.delete(f"/heroes/{hero_1.id}")

    hero_in_db = session.get(Hero, hero_1.id)

    assert response.status_code == 200

    assert hero_in_db is None
