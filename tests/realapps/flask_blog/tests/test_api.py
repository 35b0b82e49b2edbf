import pytest


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
def test_token_required(client, headers):
    assert client.get("/api/posts", headers=headers).status_code == 401


def test_list(client, api_headers):
    posts = client.get("/api/posts", headers=api_headers).json
    assert [p["author"] for p in posts] == ["carol", "bob", "bob", "alice", "alice", "alice"]


def test_create_update_list(client, api_headers):
    created = [
        client.post("/api/posts", json={"title": f"API {n}", "body": "."}, headers=api_headers)
        for n in range(3)
    ]
    assert [r.status_code for r in created] == [201, 201, 201]
    post_id = created[0].json["id"]
    response = client.patch(f"/api/posts/{post_id}", json={"title": "API 0!"}, headers=api_headers)
    assert response.json["title"] == "API 0!"
    titles = [p["title"] for p in client.get("/api/posts", headers=api_headers).json]
    assert titles[:3] == ["API 2", "API 1", "API 0!"]


def test_cannot_update_others_posts(client):
    response = client.patch(
        "/api/posts/1", json={"title": "x"}, headers={"Authorization": "Bearer token-bob"}
    )
    assert response.status_code == 403


def test_list_as_each_user(client):
    for user in ("alice", "bob", "carol", "alice"):
        response = client.get("/api/posts", headers={"Authorization": f"Bearer token-{user}"})
        assert len(response.json) == 6


def test_notify_one_post(client, api_headers):
    response = client.post("/api/notify", json={"posts": [4]}, headers=api_headers)
    assert response.json == {"sent": ["bob@example.org"]}


@pytest.mark.parametrize("run", range(20))
def test_notify_authors(client, api_headers, run):
    response = client.post("/api/notify", json={"posts": [1, 2, 3, 4, 5]}, headers=api_headers)
    assert len(response.json["sent"]) == 5


def test_walk_the_pages(client, api_headers):
    page, titles = 1, []
    while True:
        data = client.get(f"/api/posts/page/{page}", headers=api_headers).json
        titles += [p["title"] for p in data["posts"]]
        if page >= data["pages"]:
            break
        page += 1
    assert len(titles) == 6
