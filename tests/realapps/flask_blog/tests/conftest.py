from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from blog import create_app
from blog.extensions import db
from blog.models import ApiToken, Comment, Post, User
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import sqlaudit

# Every engine Flask-SQLAlchemy makes, for each test's app (sqlaudit's README, app factories).
sqlaudit.instrument(db)

USERS = [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")]
#: (title, author): alice wrote 1-3, bob 4-5, carol 6.
POSTS = [
    ("First post", 1), ("On testing", 1), ("Templates", 1),
    ("Bob's news", 2), ("More news", 2), ("Carol says hi", 3),
]  # fmt: skip


def seed() -> None:
    users = [User(username=u, name=n, email=f"{u}@example.org") for u, n in USERS]
    db.session.add_all(users)
    for title, author in POSTS:
        post = Post(title=title, body=f"{title}, the body.", author=users[author - 1])
        post.comments = [Comment(author=users[(author + k) % 3], body=f"re: {k}") for k in (0, 1)]
        db.session.add(post)
    db.session.add_all(ApiToken(token=f"token-{user.username}", user=user) for user in users)
    db.session.commit()


@pytest.fixture
def app(tmp_path: os.PathLike[str]) -> Iterator[Flask]:
    url = os.environ.get("BLOG_DATABASE_URL") or f"sqlite:///{tmp_path}/blog.sqlite"
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        db.drop_all()
        db.create_all()
        seed()
    yield app
    with app.app_context():
        db.drop_all()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class AuthActions:
    def __init__(self, client: FlaskClient) -> None:
        self._client = client

    def login(self, username: str = "alice") -> TestResponse:
        return self._client.post("/auth/login", data={"username": username})

    def logout(self) -> TestResponse:
        return self._client.get("/auth/logout")


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def api_headers() -> dict[str, str]:
    return {"Authorization": "Bearer token-alice"}
