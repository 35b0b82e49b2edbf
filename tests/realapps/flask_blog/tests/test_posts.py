import pytest
from blog.extensions import db
from blog.models import Post
from sqlalchemy import func, select


def test_index(client, auth):
    response = client.get("/")
    assert b"Log In" in response.data
    assert response.data.count(b'<article class="post">') == 6

    auth.login()
    response = client.get("/")
    assert b"Log Out" in response.data
    assert b"by Alice" in response.data
    assert b"2 comments" in response.data


@pytest.mark.parametrize("path", ["/create", "/1/update"])
def test_login_required(client, path):
    response = client.post(path)
    assert response.headers["Location"] == "/auth/login"


def test_author_required(client, auth):
    auth.login()
    assert client.post("/4/update").status_code == 403
    assert b'href="/4/update"' not in client.get("/4").data


@pytest.mark.parametrize("path", ["/99/update", "/99"])
def test_exists_required(client, auth, path):
    auth.login()
    assert client.post(path).status_code in (404, 405)


def test_create_edit_list(app, client, auth):
    auth.login()
    for number in range(3):
        response = client.post("/create", data={"title": f"Draft {number}", "body": "..."})
        assert response.status_code == 302
    client.post("/7/update", data={"title": "Draft 0, edited", "body": "Done."})
    assert b"Draft 0, edited" in client.get("/7").data
    listing = client.get("/").data
    assert listing.count(b'<article class="post">') == 9

    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Post)) == 9


def test_detail_pages(client):
    for post_id in range(1, 7):
        response = client.get(f"/{post_id}")
        assert response.status_code == 200
        assert b"re: 0" in response.data


def test_same_post_reloaded_and_commented(client, auth):
    auth.login("bob")
    for number in range(4):
        client.post("/1/comment", data={"body": f"comment {number}"})
        assert f"comment {number}".encode() in client.get("/1").data


def test_create_following_the_redirect(client, auth):
    auth.login("carol")
    for number in range(2):
        response = client.post(
            "/create", data={"title": f"Note {number}", "body": "..."}, follow_redirects=True
        )
        assert f"Note {number}".encode() in response.data
    assert len(response.history) == 1


def test_edit_form(client, auth):
    auth.login()
    assert b'value="Templates"' in client.get("/3/update").data


def test_archive(client):
    response = client.get("/archive")
    assert response.status_code == 200
    assert response.data.count(b"\n      by ") == 6


def test_profile(client):
    response = client.get("/u/alice")
    assert response.data.count(b'<article class="post">') == 3
    assert client.get("/u/mallory").status_code == 404
