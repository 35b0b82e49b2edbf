"""Headless Chromium for tests that check what a person would see in a browser.

``render(url)`` returns the DOM after scripts ran and writes a screenshot. Chromium comes from
Debian's ``chromium`` package (``.ci/run`` installs it). Without it the test is skipped, or
fails under ``SQLAUDIT_REQUIRE_SERVERS=1`` as for the database servers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    """Path of the chromium binary, or skip/fail the test when there is none."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "headless Chromium not found: apt-get install chromium"
        if os.environ.get("SQLAUDIT_REQUIRE_SERVERS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def render(url: str, screenshot: Path | None = None, size: str = "1280,1600") -> str:
    """Load ``url`` in headless Chromium; return the DOM after scripts ran.

    When ``screenshot`` is given, a PNG of the page is written there too.
    """
    binary = chromium()
    with tempfile.TemporaryDirectory(prefix="sqlaudit-chromium-") as profile:
        flags = [binary, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={size}"]
        dom = subprocess.run(
            [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=90, check=True
        ).stdout
        if screenshot is not None:
            subprocess.run(
                [*flags, f"--screenshot={screenshot}", url],
                capture_output=True,
                timeout=90,
                check=True,
            )
    return dom
