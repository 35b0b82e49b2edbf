"""The README's Install section and its "next steps after ``make demo``" block, run as a
newcomer runs them: in fresh virtualenvs of this Python, from a copy of the checkout.

* Install: into a virtualenv that already holds an application's pinned SQLAlchemy 2.0.23,
  ``git clone``, the checkout install, the git URL install and the import, each line as
  written (``<repository URL>`` and ``<tag or commit>`` name a git repository of the copy);
  the pin is still 2.0.23 afterwards (issue 19: it was moved to the newest release). Then the
  constraints line.
* Next steps: ``make demo`` in the copy (``PYTHON=`` this interpreter), then each line of the
  block in ``bash`` with the virtualenv activated. The PostgreSQL URL is replaced by the test
  server's. The two services (lines that say "serves") are started on free ports (other jobs
  share this machine's 8000 and 8001), asked for ``/streams`` and ``/_sqlaudit``, then stopped.

Slow by nature (about two minutes, pip's cache reused, nothing downloaded twice); the duration
of each step is printed (``pytest -s``)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from databases import LOCAL_URL, resolve_url

ROOT = Path(__file__).resolve().parent.parent
#: The application's pin the install must not move (the version of issue 19's report).
APP_PIN = "SQLAlchemy==2.0.23"
SERVES = re.compile(r"# serves http://127\.0\.0\.1:(\d+)/(\S+)")


def readme_block(after: str) -> list[str]:
    """The lines of the first ``sh`` block after the text ``after`` in the README."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(re.escape(after) + r".*?```sh\n(.*?)```", readme, re.S)
    assert match, f"no sh block after {after!r} in README.md"
    return [line for line in match.group(1).splitlines() if line.strip()]


def base_python() -> str:
    """This interpreter outside any virtualenv (``python -m venv`` from a venv's python makes
    one of the base interpreter; naming it makes that explicit)."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST", "VIRTUAL_ENV", "PYTHONPATH", "SQLAUDIT_TEST_CLOCK"))
        # `make test VENV=... SQLALCHEMY=...` (.ci/run) passes its command-line variables to
        # every make below it, through MAKEFLAGS and as environment variables of its
        # recipes (GNU make exports command-line variables): a user's `make demo` has none.
        and k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VENV", "SQLALCHEMY"}
        and k not in {"PYTEST_ARGS", "PYTHON"}
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_PROGRESS_BAR="off", **extra)
    return env


def sh(command: str, cwd: Path, *, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``command`` in bash, failing the test with its output when it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    print(f"{time.perf_counter() - started:6.1f} s  {command}")
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout's files (tracked, and new ones not ignored), as a git repository
    with one commit: what ``git clone`` gives a newcomer."""
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    copy = tmp_path_factory.mktemp("checkout") / "sqlaudit"
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy"]):
        subprocess.run([*git, *args], cwd=copy, check=True, capture_output=True)
    return copy


@pytest.mark.fresh_venv
def test_readme_install_section(checkout: Path, tmp_path: Path) -> None:
    """Every line of the Install block works in a fresh virtualenv, and none moves the
    application's pinned SQLAlchemy; the constraints line keeps it too."""
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True
    ).stdout.strip()
    sh(f"{shlex.quote(base_python())} -m venv venv", tmp_path)
    activate = ". venv/bin/activate && "
    sh(activate + f"pip install -q {APP_PIN}", tmp_path)
    lines = readme_block("## Install")
    assert lines[0].startswith("git clone <repository URL> sqlaudit")
    for line in lines:
        # file://localhost/...: pip's requirement parser wants a host in a VCS URL.
        command = line.replace("<repository URL>", f"file://localhost{checkout}")
        command = command.replace("<tag or commit>", commit)
        prefix = "" if command.startswith("git ") else activate
        out = sh(prefix + command, tmp_path).stdout
        if "import sqlaudit" in command:
            assert out.strip() == "0.1.0.dev0"
    version = sh(
        activate + "python -c 'import sqlalchemy; print(sqlalchemy.__version__)'", tmp_path
    )
    assert version.stdout.strip() == APP_PIN.split("==")[1]
    [pinned] = readme_block("your pins as constraints")
    (tmp_path / "constraints.txt").write_text(APP_PIN + "\n", encoding="utf-8")
    sh(activate + pinned.split("#")[0], tmp_path)
    version = sh(
        activate + "python -c 'import sqlalchemy; print(sqlalchemy.__version__)'", tmp_path
    )
    assert version.stdout.strip() == APP_PIN.split("==")[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served() -> Iterator[list[subprocess.Popen[str]]]:
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the README says
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def serve(command: str, cwd: Path, processes: list[subprocess.Popen[str]]) -> None:
    """Start a service line on a free port, ask for its pages as a browser would, stop it."""
    match = SERVES.search(command)
    assert match, command
    port = free_port()
    line = f". .venv/bin/activate && {command.split('#', 1)[0].strip()} --port {port}"
    process = subprocess.Popen(
        ["bash", "-c", line],
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    processes.append(process)
    started = time.perf_counter()
    url = f"http://127.0.0.1:{port}/{match.group(2)}"
    while True:
        assert process.poll() is None, (
            f"{command} exited:\n{process.stdout.read() if process.stdout else ''}"
        )
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                assert response.headers["X-SQL-Queries"], "development mode: the count is shown"
                break
        except OSError:
            assert time.perf_counter() - started < 120, f"{command}: {url} did not answer"
            time.sleep(0.5)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sqlaudit", timeout=5) as page:
        assert "GET /streams" in page.read().decode()
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)
    print(f"{time.perf_counter() - started:6.1f} s  {command}")


@pytest.mark.fresh_venv
def test_readme_next_steps_after_make_demo(
    checkout: Path, served: list[subprocess.Popen[str]]
) -> None:
    """``make demo`` in a fresh copy, then every line of the README's next steps."""
    sh(f"make demo PYTHON={shlex.quote(base_python())}", checkout, timeout=900)
    lines = readme_block("Next steps after `make demo`")
    assert lines[0].startswith(". .venv/bin/activate")
    out = sh(lines[0].split("#")[0] + " && python -c 'import sys; print(sys.prefix)'", checkout)
    assert Path(out.stdout.strip()).resolve() == (checkout / ".venv").resolve()
    for line in lines[1:]:
        if SERVES.search(line):
            serve(line, checkout, served)
            continue
        command = line.replace(LOCAL_URL["postgresql"], resolve_url("postgresql"))
        out = sh(". .venv/bin/activate && " + command, checkout, timeout=900)
        if "quickstart.py" in command:
            assert "N+1: User.comments lazy-loaded 3x" in out.stdout
        if "exposed_problem.py" in command:
            assert "the story played out as told" in out.stdout
    report = (checkout / "report.html").read_text(encoding="utf-8")
    assert "<html" in report
    assert "GET /streams" in report
