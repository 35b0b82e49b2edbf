from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for

from blog.extensions import db
from blog.repository import UserRepository

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.before_app_request
def load_logged_in_user() -> None:
    user_id = session.get("user_id")
    g.user = UserRepository(db.session).get(user_id) if user_id is not None else None


@bp.route("/login", methods=("GET", "POST"))
def login() -> Any:
    error = None
    if request.method == "POST":
        user = UserRepository(db.session).by_username(request.form["username"])
        if user is None:
            error = "Unknown user."
        else:
            session.clear()
            session["user_id"] = user.id
            return redirect(url_for("index"))
    return render_template("auth/login.html", error=error)


@bp.route("/logout")
def logout() -> Any:
    session.clear()
    return redirect(url_for("index"))


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapped_view(**kwargs: Any) -> Any:
        if g.user is None:
            return redirect(url_for("auth.login"))
        return view(**kwargs)

    return wrapped_view
