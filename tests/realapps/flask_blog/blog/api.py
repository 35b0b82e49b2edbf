"""The JSON API, authenticated by a bearer token."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, g, request
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from blog.extensions import db
from blog.models import Post
from blog.repository import PostRepository, UserRepository

bp = Blueprint("api", __name__, url_prefix="/api")


def token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped(**kwargs: Any) -> Any:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user = UserRepository(db.session).for_token(token) if scheme == "Bearer" else None
        if user is None:
            abort(401)
        g.api_user = user
        return view(**kwargs)

    return wrapped


def as_json(post: Post) -> dict[str, Any]:
    return {"id": post.id, "title": post.title, "author": post.author.username}


@bp.get("/posts")
@token_required
def list_posts() -> Any:
    return [as_json(post) for post in PostRepository(db.session).recent()]


@bp.get("/posts/page/<int:page>")
@token_required
def page_of_posts(page: int) -> Any:
    query = select(Post).options(joinedload(Post.author)).order_by(Post.id)
    found = db.paginate(query, page=page, per_page=2, error_out=False)
    return {"posts": [as_json(post) for post in found.items], "pages": found.pages}


@bp.post("/posts")
@token_required
def create_post() -> Any:
    data = request.get_json()
    post = PostRepository(db.session).add(g.api_user, data["title"], data["body"])
    return as_json(post), 201


@bp.patch("/posts/<int:post_id>")
@token_required
def update_post(post_id: int) -> Any:
    repository = PostRepository(db.session)
    post = repository.get(post_id)
    if post is None:
        abort(404)
    if post.author_id != g.api_user.id:
        abort(403)
    data = request.get_json()
    repository.update(post, data.get("title", post.title), data.get("body", post.body))
    return as_json(post)


@bp.post("/notify")
@token_required
def notify() -> Any:
    """Tell the author of each listed post: a session per post, so that one failure does not
    undo the others' bookkeeping."""
    sent = []
    for post_id in request.get_json()["posts"]:
        with Session(db.engine) as session:
            post = session.get_one(Post, post_id)
            sent.append(post.author.email)  # per-item lazy load
    return {"sent": sent}
