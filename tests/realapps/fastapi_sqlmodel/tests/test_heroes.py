from app.models import Hero, Team
from fastapi.testclient import TestClient
from sqlmodel import Session


def test_create_hero(client: TestClient):
    response = client.post("/heroes/", json={"name": "Deadpond", "secret_name": "Dive Wilson"})
    data = response.json()

    assert response.status_code == 200
    assert data["name"] == "Deadpond"
    assert data["secret_name"] == "Dive Wilson"
    assert data["age"] is None
    assert data["id"] is not None


def test_create_hero_incomplete(client: TestClient):
    response = client.post("/heroes/", json={"name": "Deadpond"})
    assert response.status_code == 422


def test_read_heroes(session: Session, client: TestClient):
    hero_1 = Hero(name="Deadpond", secret_name="Dive Wilson")
    hero_2 = Hero(name="Rusty-Man", secret_name="Tommy Sharp", age=48)
    session.add(hero_1)
    session.add(hero_2)
    session.commit()

    response = client.get("/heroes/")
    data = response.json()

    assert response.status_code == 200
    assert len(data) == 2
    assert data[0]["name"] == hero_1.name
    assert data[0]["secret_name"] == hero_1.secret_name
    assert data[0]["age"] == hero_1.age
    assert data[0]["id"] == hero_1.id
    assert data[1]["name"] == hero_2.name
    assert data[1]["secret_name"] == hero_2.secret_name
    assert data[1]["age"] == hero_2.age
    assert data[1]["id"] == hero_2.id


def test_read_hero(session: Session, client: TestClient):
    team = Team(name="Preventers", headquarters="Sharp Tower")
    hero_1 = Hero(name="Deadpond", secret_name="Dive Wilson", team=team)
    session.add(hero_1)
    session.commit()

    for _ in range(3):
        response = client.get(f"/heroes/{hero_1.id}")
        data = response.json()
        assert response.status_code == 200
        assert data["name"] == hero_1.name
        assert data["team"]["name"] == "Preventers"


def test_create_update_list(client: TestClient):
    team_id = client.post("/teams/", json={"name": "Z-Force", "headquarters": "Bar"}).json()["id"]
    ids = [
        client.post("/heroes/", json={"name": name, "secret_name": "?", "team_id": team_id}).json()[
            "id"
        ]
        for name in ("Spider-Boy", "Black Lion", "Princess Sure-E")
    ]
    for hero_id in ids:
        response = client.patch(f"/heroes/{hero_id}", json={"age": 20})
        assert response.json()["age"] == 20
    assert [h["age"] for h in client.get("/heroes/").json()] == [20, 20, 20]
    assert client.get("/teams/sizes").json() == {"Z-Force": 3}


def test_update_hero(session: Session, client: TestClient):
    hero_1 = Hero(name="Deadpond", secret_name="Dive Wilson")
    session.add(hero_1)
    session.commit()

    response = client.patch(f"/heroes/{hero_1.id}", json={"name": "Deadpuddle"})
    data = response.json()

    assert response.status_code == 200
    assert data["name"] == "Deadpuddle"
    assert data["secret_name"] == "Dive Wilson"
    assert data["age"] is None
    assert data["id"] == hero_1.id


def test_delete_hero(session: Session, client: TestClient):
    hero_1 = Hero(name="Deadpond", secret_name="Dive Wilson")
    session.add(hero_1)
    session.commit()

    hero_id = hero_1.id
    response = client.delete(f"/heroes/{hero_id}")

    session.expunge_all()  # the request deleted it in a session of its own
    hero_in_db = session.get(Hero, hero_id)

    assert response.status_code == 200

    assert hero_in_db is None


def test_roster(session: Session, client: TestClient):
    teams = [Team(name=n, headquarters="HQ") for n in ("Preventers", "Z-Force")]
    session.add_all([Hero(name=f"Hero {n}", secret_name="?", team=teams[n % 2]) for n in range(4)])
    session.commit()

    roster = client.get("/heroes/roster").json()
    assert [r["team"] for r in roster] == ["Preventers", "Z-Force"] * 2
