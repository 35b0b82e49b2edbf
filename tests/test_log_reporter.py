"""``LogReporter``: the records it writes, and no work for a level its logger drops (issue 20:
a finding's location and headline are formatted only for a record that is made)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

import sqlaudit
from sqlaudit import AuditReport, CallSite, Finding, QueryRecord, Severity, UnitRecord
from sqlaudit.reporters import LogReporter


class Counted(Finding):
    """A finding that counts the reads of its headline (what a record's message starts with)."""

    __slots__ = ()
    reads = 0

    @property
    def headline(self) -> str:
        Counted.reads += 1
        return Finding.headline.__get__(self)  # type: ignore[attr-defined,no-any-return]


class Yields:
    """A detector yielding given findings, for a unit of no statement."""

    kind = "slow_query"

    def __init__(self, *findings: Finding) -> None:
        self.findings = findings

    def detect(self, unit: UnitRecord, records: Sequence[QueryRecord]) -> Iterator[Finding]:
        yield from self.findings


def finding(severity: Severity, message: str, *, at: CallSite | None = None) -> Counted:
    return Counted(
        kind="slow_query",
        severity=severity,
        message=message,
        count=1,
        location=at,
        fix="add an index",
        fingerprint="SELECT a FROM t WHERE b = ?",
    )


@pytest.fixture
def closed(sqlite_engine: Engine) -> Callable[..., AuditReport]:
    """Closes a unit of one statement in which the detector finds ``findings``."""

    sqlaudit.instrument(sqlite_engine)

    def close(*findings: Finding, reporter: LogReporter) -> AuditReport:
        Counted.reads = 0
        with (
            sqlaudit.audit("GET /users", detectors=[Yields(*findings)], reporters=[reporter]) as r,
            sqlite_engine.connect() as conn,
        ):
            conn.execute(text("SELECT 1"))
        return r

    return close


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A file of the working directory (a temporary one)."""
    monkeypatch.chdir(tmp_path)
    return os.path.join(str(tmp_path), "app", "views.py")


def test_records_are_those_logged_before(
    here: str, closed: Callable[..., AuditReport], caplog: pytest.LogCaptureFixture
) -> None:
    """Enabled, each finding is one record at its severity's level, with the message, extras
    and call site (``LogReporter.report``) it always had; the summary line too."""
    logger = logging.getLogger("sqlaudit.test_records")
    findings = (
        finding(Severity.ERROR, "slow query: 2 s", at=CallSite(here, 12, "index")),
        finding(Severity.WARNING, "slow query: 1 s"),
    )
    with caplog.at_level(logging.INFO, logger=logger.name):
        report = closed(*findings, reporter=LogReporter(logger, summary=True))
    records = [r for r in caplog.records if r.name == logger.name]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.INFO, f"GET /users: 1 statements, {report.db_time_ms:.1f} ms DB time, 2 findings"),
        (
            logging.ERROR,
            "GET /users: slow query: 2 s at app/views.py:12 in index(); fix: add an index",
        ),
        (logging.WARNING, "GET /users: slow query: 1 s; fix: add an index"),
    ]
    for record in records:
        assert (record.funcName, os.path.basename(record.pathname)) == ("report", "log.py")
    assert [(r.sqlaudit_unit, r.sqlaudit_kind, r.sqlaudit_fingerprint) for r in records[1:]] == [  # type: ignore[attr-defined]
        ("GET /users", "slow_query", "SELECT a FROM t WHERE b = ?")
    ] * 2


def test_a_dropped_level_formats_nothing(
    here: str, closed: Callable[..., AuditReport], caplog: pytest.LogCaptureFixture
) -> None:
    """A finding at a level the logger drops is not formatted (its headline never read); the
    levels it keeps are logged, each headline read once."""
    logger = logging.getLogger("sqlaudit.test_dropped")
    findings = (
        finding(Severity.ERROR, "kept", at=CallSite(here, 1, "f")),
        finding(Severity.WARNING, "dropped", at=CallSite(here, 2, "f")),
        finding(Severity.INFO, "dropped too"),
    )
    with caplog.at_level(logging.ERROR, logger=logger.name):
        closed(*findings, reporter=LogReporter(logger, summary=True))
    assert [r.getMessage() for r in caplog.records if r.name == logger.name] == [
        "GET /users: kept at app/views.py:1 in f(); fix: add an index"
    ]
    assert Counted.reads == 1
    with caplog.at_level(logging.CRITICAL, logger=logger.name):
        closed(*findings, reporter=LogReporter(logger))
        assert Counted.reads == 0
        closed(*findings, reporter=LogReporter(logging.LoggerAdapter(logger, {})))  # type: ignore[arg-type]
        assert Counted.reads == 0
    logger.disabled = True
    try:
        closed(*findings, reporter=LogReporter(logger))
    finally:
        logger.disabled = False
    assert Counted.reads == 0
    assert [r.getMessage() for r in caplog.records if r.name == logger.name] == [
        "GET /users: kept at app/views.py:1 in f(); fix: add an index"
    ]


class Collecting:
    """A logger-like object (``log`` and ``info`` only) that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append((level, msg % args))

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args)


class Everything(logging.Logger):
    """A Logger whose own ``log`` keeps every record, whatever its level."""

    def __init__(self) -> None:
        super().__init__("sqlaudit.test_everything", logging.CRITICAL)
        self.kept: list[str] = []

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        self.kept.append(str(msg) % args)


def test_other_loggers_receive_every_finding(closed: Callable[..., AuditReport]) -> None:
    """A logger whose ``log`` is not the stdlib's is never asked ``isEnabledFor``: it receives
    every finding, whatever its level says."""
    findings = (finding(Severity.WARNING, "one"), finding(Severity.INFO, "two"))
    duck = Collecting()
    report = closed(*findings, reporter=LogReporter(duck, summary=True))  # type: ignore[arg-type]
    assert duck.calls == [
        (logging.INFO, f"GET /users: 1 statements, {report.db_time_ms:.1f} ms DB time, 2 findings"),
        (logging.WARNING, "GET /users: one; fix: add an index"),
        (logging.INFO, "GET /users: two; fix: add an index"),
    ]
    own = Everything()
    closed(*findings, reporter=LogReporter(own))
    assert own.kept == ["GET /users: one; fix: add an index", "GET /users: two; fix: add an index"]
    assert Counted.reads == 2


class Keeping(logging.Handler):
    """Keeps every record it handles."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


#: LogRecord attributes that differ between two records made at two moments.
_MOMENT = {"created", "msecs", "relativeCreated"}


def test_a_record_made_directly_is_the_one_logger_log_makes(
    here: str, closed: Callable[..., AuditReport], monkeypatch: pytest.MonkeyPatch
) -> None:
    """For a stdlib Logger, ``LogReporter`` makes each record without ``Logger.log`` (no
    ``findCaller``); a handler receives exactly the record ``logger.log`` made before: every
    attribute (name, level, msg, args, pathname, lineno, funcName, extras...) but the time."""
    from sqlaudit.reporters import log as log_reporter

    logger = logging.getLogger("sqlaudit.test_direct")
    logger.setLevel(logging.INFO)
    keeping = Keeping()
    logger.addHandler(keeping)
    findings = (
        finding(Severity.ERROR, "slow query: 2 s", at=CallSite(here, 12, "index")),
        finding(Severity.INFO, "slow query: 1 s"),
    )
    try:
        assert log_reporter._direct(logger)
        closed(*findings, reporter=LogReporter(logger))
        direct = keeping.records[:]
        keeping.records.clear()
        monkeypatch.setattr(log_reporter, "_direct", lambda logger: False)
        closed(*findings, reporter=LogReporter(logger))
        through_log = keeping.records[:]
    finally:
        logger.removeHandler(keeping)
        logger.setLevel(logging.NOTSET)
    assert len(direct) == len(through_log) == 2
    for made, logged in zip(direct, through_log, strict=True):
        assert type(made) is type(logged)
        same = {k: v for k, v in vars(made).items() if k not in _MOMENT}
        assert same == {k: v for k, v in vars(logged).items() if k not in _MOMENT}
        assert (made.funcName, os.path.basename(made.pathname)) == ("report", "log.py")


def test_records_go_through_logger_log_when_it_is_not_the_stdlibs(
    monkeypatch: pytest.MonkeyPatch, closed: Callable[..., AuditReport]
) -> None:
    """``Logger.log``, ``_log`` or ``findCaller`` patched (on the instance or the class), or
    caller lookup turned off (``logging._srcfile = None``): records take the stdlib's path,
    as before."""
    from sqlaudit.reporters import log as log_reporter

    logger = logging.getLogger("sqlaudit.test_patched")
    assert log_reporter._direct(logger)
    calls: list[tuple[Any, ...]] = []
    with monkeypatch.context() as patch:
        patch.setattr(logger, "log", lambda *args, **kwargs: calls.append(args))
        assert not log_reporter._direct(logger)
        closed(finding(Severity.ERROR, "one"), reporter=LogReporter(logger))
    assert [call[0] for call in calls] == [logging.ERROR]
    for name in ("log", "_log", "findCaller"):
        with monkeypatch.context() as patch:
            patch.setattr(logging.Logger, name, lambda *args, **kwargs: None)
            assert not log_reporter._direct(logger)
    keeping = Keeping()
    logger.addHandler(keeping)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(logging, "_srcfile", None)
            assert not log_reporter._direct(logger)
            closed(finding(Severity.ERROR, "two"), reporter=LogReporter(logger))
    finally:
        logger.removeHandler(keeping)
    [record] = keeping.records
    assert (record.pathname, record.lineno, record.funcName) == (
        "(unknown file)",
        0,
        "(unknown function)",
    )
