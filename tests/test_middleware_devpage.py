"""The development page, loaded in headless Chromium from a real server, reads as it should."""

from __future__ import annotations

import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import render
from werkzeug.serving import BaseWSGIServer, make_server

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def server() -> Iterator[str]:
    """The Flask example (development settings, SQLite) on a real loopback HTTP server."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from flask_service import create_app

        app = create_app("sqlite://")
    finally:
        sys.path.remove(str(EXAMPLES))
    httpd: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


def wait_for_entries(server: str, count: int) -> None:
    """Wait until the page lists ``count`` requests: the server thread closes a request's
    audit after the client already has the response (PEP 3333 ``close()``)."""
    for _ in range(200):
        with urllib.request.urlopen(server + "/_sqlaudit", timeout=30) as response:
            if f"<title>sqlaudit: last {count} requests</title>" in response.read().decode():
                return
        time.sleep(0.05)
    raise AssertionError(f"the page never listed {count} requests")


def test_dev_page_in_headless_chromium(server: str, tmp_path: Path) -> None:
    """After real requests, Chromium shows a table of them, newest first, with their counts
    and finding kinds, and each finding's diagnosis and fix; no bind value appears."""
    audited = 0
    for path in ("/streams", "/streams/eager", "/streams/4", "/export.csv", "/health"):
        with urllib.request.urlopen(server + path, timeout=30) as response:
            response.read()
        if path != "/health":
            audited += 1
            wait_for_entries(server, audited)
    request = urllib.request.Request(
        server + "/streams/2/comments",
        data=b'{"bodies": ["secret-value-1", "b", "c", "d", "e"]}',
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    wait_for_entries(server, audited + 1)

    screenshot = tmp_path / "devpage.png"
    dom = render(server + "/_sqlaudit", screenshot)

    assert "<title>sqlaudit: last 5 requests</title>" in dom
    names = [
        "POST /streams/&lt;int:stream_id&gt;/comments",
        "GET /export.csv",
        "GET /streams/&lt;int:stream_id&gt;",
        "GET /streams/eager",
        "GET /streams",
    ]
    positions = [dom.index(f">{name}</a>") for name in names]
    assert positions == sorted(positions)  # newest first
    assert "/health" not in dom  # excluded
    assert '<span class="k warning">n_plus_one</span>' in dom
    assert '<span class="k error">query_budget</span>' in dom
    assert "N+1: Stream.streamer lazy-loaded 6x" in dom
    assert "fix: " in dom
    assert "write_loop" in dom
    assert "secret-value-1" not in dom
    assert "<script" not in dom
    assert screenshot.stat().st_size > 10_000
