from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, redirect, render_template, request, url_for

from blog.auth import login_required
from blog.extensions import db
from blog.models import Post, User
from blog.repository import PostRepository

bp = Blueprint("posts", __name__)


def get_post(post_id: int, check_author: bool = True) -> Post:
    post = PostRepository(db.session).get(post_id)
    if post is None:
        abort(404, f"Post id {post_id} doesn't exist.")
    if check_author and post.author_id != g.user.id:
        abort(403)
    return post


@bp.route("/")
def index() -> Any:
    return render_template("posts/index.html", posts=PostRepository(db.session).recent())


@bp.route("/archive")
def archive() -> Any:
    return render_template("posts/archive.html", posts=PostRepository(db.session).archive())


@bp.route("/u/<username>")
def profile(username: str) -> Any:
    user = User.query.filter_by(username=username).first_or_404()
    return render_template("posts/profile.html", user=user)


@bp.route("/<int:post_id>")
def detail(post_id: int) -> Any:
    return render_template("posts/detail.html", post=get_post(post_id, check_author=False))


@bp.route("/create", methods=("GET", "POST"))
@login_required
def create() -> Any:
    if request.method == "POST":
        PostRepository(db.session).add(g.user, request.form["title"], request.form["body"])
        return redirect(url_for("posts.index"))
    return render_template("posts/form.html", post=None)


@bp.route("/<int:post_id>/update", methods=("GET", "POST"))
@login_required
def update(post_id: int) -> Any:
    post = get_post(post_id)
    if request.method == "POST":
        PostRepository(db.session).update(post, request.form["title"], request.form["body"])
        return redirect(url_for("posts.detail", post_id=post.id))
    return render_template("posts/form.html", post=post)


@bp.route("/<int:post_id>/comment", methods=("POST",))
@login_required
def comment(post_id: int) -> Any:
    post = get_post(post_id, check_author=False)
    PostRepository(db.session).comment(post, g.user, request.form["body"])
    return redirect(url_for("posts.detail", post_id=post.id))
