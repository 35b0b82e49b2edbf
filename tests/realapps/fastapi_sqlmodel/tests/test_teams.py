import asyncio

import httpx
from app.main import app
from app.models import Hero, Team
from fastapi.testclient import TestClient
from sqlmodel import Session


def test_read_team_with_heroes(session: Session, client: TestClient):
    team = Team(name="Preventers", headquarters="Sharp Tower")
    session.add_all([Hero(name=f"Hero {n}", secret_name="?", team=team) for n in range(3)])
    session.commit()

    for _ in range(2):
        data = client.get(f"/teams/{team.id}").json()
        assert [h["name"] for h in data["heroes"]] == ["Hero 0", "Hero 1", "Hero 2"]


def test_teams_over_asgi_transport(client: TestClient):
    """The async client, as in FastAPI's "Async Tests" (the app's overrides stay in place)."""

    async def scenario() -> list[dict[str, object]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            for name in ("Preventers", "Z-Force", "Wolves"):
                response = await ac.post("/teams/", json={"name": name, "headquarters": "HQ"})
                assert response.status_code == 200
            await ac.patch("/teams/2", json={"headquarters": "Sister Margaret's Bar"})
            for team_id in (1, 2, 3, 2):
                assert (await ac.get(f"/teams/{team_id}")).status_code == 200
            return (await ac.get("/teams/")).json()

    teams = asyncio.run(scenario())
    assert [t["headquarters"] for t in teams] == ["HQ", "Sister Margaret's Bar", "HQ"]


def test_teams_with_heroes(session: Session, client: TestClient):
    teams = [Team(name=n, headquarters="HQ") for n in ("Preventers", "Z-Force", "Wolves")]
    session.add_all([*teams, Hero(name="Lone", secret_name="?", team=teams[0])])
    session.commit()

    data = client.get("/teams/full").json()
    assert [len(t["heroes"]) for t in data] == [1, 0, 0]
