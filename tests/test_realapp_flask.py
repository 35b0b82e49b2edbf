"""A Flask + Flask-SQLAlchemy blog (``tests/realapps/flask_blog``: app factory, blueprints,
Jinja2 templates, a token API, a repository layer) and its own test suite, written the way the
Flask tutorial writes one, run through the pytest plugin in fail mode (issue 16, item 7): the
clean tests pass, each planted N+1 fails its test naming the request, the file and the line
(a template's own line), and two runs give the same findings."""

from __future__ import annotations

from pathlib import Path

import pytest
from databases import Kind, resolve_url
from lines import line_of
from realapps import failed, found, lay_out, run_suite

pytest_plugins = ("pytester",)

APP = "flask_blog"
ARCHIVE = "tests/test_posts.py::test_archive"
PROFILE = "tests/test_posts.py::test_profile"
NOTIFY = [f"tests/test_api.py::test_notify_authors[{run}]" for run in range(20)]
MODEL_TESTS = {
    f"tests/test_models.py::ModelCase::{name}"
    for name in ("test_comments_with_authors", "test_delete_post_deletes_comments")
}


def planted(root: Path) -> dict[str, list[tuple[str, str, str, str, int]]]:
    """The planted N+1s: failing test -> ``(kind, unit, location, loop, count)``."""
    template = "blog/templates/posts/archive.html"
    api = "blog/api.py"
    archive = (
        "n_plus_one",
        "GET /archive",
        f"{template}:{line_of(str(root / template), 'post.author.name')}",
        f"{template}:{line_of(str(root / template), '{% for post in posts %}')}",
        3,  # three authors: the identity map serves the other three posts' authors
    )
    notify = (
        "n_plus_one",
        "POST /api/notify",
        f"{api}:{line_of(str(root / api), 'session.get_one(Post, post_id)')}",
        f"{api}:{line_of(str(root / api), 'for post_id in request.get_json()')}",
        10,  # one loop (loop view): 5 gets and 5 lazy loads, one per item's session
    )
    included = "blog/templates/posts/_post.html"
    profile = "blog/templates/posts/profile.html"
    profile_page = (
        "n_plus_one",
        "GET /u/<username>",  # Flask's rule, not /u/alice
        # In the template included once per post, its own line; the loop in the includer.
        f"{included}:{line_of(str(root / included), 'post.comments | length')}",
        f"{profile}:{line_of(str(root / profile), '{% for post in user.posts %}')}",
        3,
    )
    return {ARCHIVE: [archive], PROFILE: [profile_page], **{test: [notify] for test in NOTIFY}}


def check_suite(
    pytester: pytest.Pytester, root: Path, *, server: bool = False
) -> dict[str, list[object]]:
    """Run the suite; check the outcomes and findings; return each test's findings."""
    result, tests = run_suite(pytester)
    expected = planted(root)
    assert failed(result) == sorted(expected), result.stdout.str()
    assert len(tests) == 49
    findings: dict[str, list[object]] = {}
    overhead = set()
    for nodeid, test in tests.items():
        findings[nodeid] = list(found(test))
        # On a server each transaction costs BEGIN/COMMIT round trips (and the pool's ROLLBACK
        # on return): a statistic at info, the only one allowed, and only where it is true.
        if any(kind == "transaction_overhead" for kind, *_ in findings[nodeid]):
            overhead.add(nodeid)
        warnings = [f for f in findings[nodeid] if f[1] != "info"]
        assert len(warnings) + (nodeid in overhead) == len(findings[nodeid]), nodeid
        if nodeid not in expected:
            assert warnings == [], nodeid  # no false finding
            continue
        assert [
            (kind, unit, location, loop, count)
            for kind, _, unit, location, loop, count, _ in warnings
        ] == expected[nodeid], nodeid
    # A session per item is a transaction per item (the notify request's 6 transactions); the
    # unittest model tests commit 3 times through the repository (4 transactions: 11 of the 22
    # round trips on PostgreSQL). On SQLite, transactions cost no round trips: none at all.
    assert (overhead <= {*NOTIFY, *MODEL_TESTS}) if server else (overhead == set())
    archive = tests[ARCHIVE]["report"]["findings"][0]
    assert archive["message"].startswith(
        "N+1: Post.author lazy-loaded 3x, once per Post (3 parents); the Post rows came from "
        "the query at blog/repository.py:"
    )
    assert archive["location"]["function"] == "block content"
    (notify,) = [f for f in tests[NOTIFY[0]]["report"]["findings"] if f["kind"] == "n_plus_one"]
    assert notify["relationship"] == "Post.author"
    assert notify["message"].startswith(
        "N+1 loop: this loop issues 2 queries per iteration (10 for N=5): repeated query: 5x "
    )
    assert "N+1: Post.author lazy-loaded 5x, once per Post (5 parents)" in notify["message"]
    assert "GET /archive: N+1: Post.author lazy-loaded 3x" in result.stdout.str()
    (comments,) = tests[PROFILE]["report"]["findings"]
    views = "blog/posts.py"
    query = line_of(str(root / views), "User.query.filter_by(username=username)")
    assert comments["message"] == (
        "N+1: Post.comments lazy-loaded 3x, once per Post (3 parents); the Post rows came from "
        f"User.posts (3 rows) of the query at {views}:{query}"
    )
    assert comments["fix"] == (
        "add .options(selectinload(User.posts).selectinload(Post.comments)) to the query at "
        f"{views}:{query}"
    )
    return findings


def test_flask_blog_suite(pytester: pytest.Pytester) -> None:
    """On SQLite files: 27 clean tests pass (create, edit and list; the same route many
    times; the same rows reloaded by every request; a token per API request; commits in
    separate requests; a redirect followed; pages walked; unittest model tests with an app
    context pushed in ``setUp``); the template N+1s (in a loop; in a template included per
    item) and the per-item-session N+1 fail, with the templates' lines; the per-item-session
    case is the same finding in each of 20 runs, and a second run of the suite finds exactly
    what the first did."""
    root = lay_out(pytester, APP)
    first = check_suite(pytester, root)
    assert len({tuple(first[test]) for test in NOTIFY}) == 1  # 20 runs, one result
    assert check_suite(pytester, root) == first


@pytest.mark.parametrize("kind", ["mysql", "postgresql"])
def test_flask_blog_suite_on_servers(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, kind: Kind
) -> None:
    """The same suite on MariaDB and PostgreSQL: the same verdicts and locations."""
    monkeypatch.setenv("BLOG_DATABASE_URL", resolve_url(kind))
    root = lay_out(pytester, APP)
    check_suite(pytester, root, server=True)
