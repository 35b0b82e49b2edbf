"""Every public entry point validates its arguments where they are written.

A bad argument is a :class:`~sqlaudit.ConfigError` at construction (never a TypeError, an
AttributeError, or a failure at the first request) whose message names the setting, says what
is allowed and shows the value received: ``"<setting> must be <allowed>, got <value>"``
(STYLE.md). Each table pins exact messages and also lists good values, so the tests fail both
when a check is missing and when one refuses what it should accept. The pytest plugin's options
are usage errors naming the option; the command line exits 2 with one line, no traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from plugin_cases.support import run
from sqlalchemy import Engine, create_engine

import sqlaudit
from sqlaudit import AuditConfig, ConfigError, cli
from sqlaudit.asgi import ASGIAuditMiddleware
from sqlaudit.detectors import DEFAULT_DETECTORS
from sqlaudit.model.findings import KINDS
from sqlaudit.otel import OTelReporter, jsonl_tracer_provider, setup
from sqlaudit.pytest_plugin.fixture import SqlauditFixture
from sqlaudit.pytest_plugin.policy import parse_budget, parse_sqlaudit_marker
from sqlaudit.reporters import LogReporter
from sqlaudit.wsgi import WSGIAuditMiddleware

pytest_plugins = ("pytester",)

NAN = float("nan")
LOG = LogReporter()
THING = object()
ALLOWED_KINDS = ", ".join(sorted(KINDS))
SETTINGS = ", ".join(sorted(f.name for f in dataclasses.fields(AuditConfig)))
REPORTERS = "an iterable of reporters (objects with a report(report) method)"
REPORTER = "a reporter (an object with a report(report) method)"
DETECTORS = "an iterable of detectors (objects with a str kind and a detect(unit, records) method)"
DETECTOR = "a detector (an object with a str kind and a detect(unit, records) method)"
EXCLUDE = 'paths or globs like "/health" or "GET /static/*"'
BUDGET_KEYS = 'budgets keys must be "METHOD /route" or a glob like "* /api/*"'
HEADER = "header must be True, False or an HTTP header name like 'X-SQL-Queries'"
DEV_PAGE = 'dev_page must be a path starting with "/", without "?" or "#"'


def raises_exactly(message: str) -> pytest.RaisesExc[ConfigError]:
    """``pytest.raises`` for a ConfigError whose whole message is ``message``."""
    return pytest.raises(ConfigError, match=f"^{re.escape(message)}$")


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b""]


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    return None


@pytest.fixture
def engine() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


# -- sqlaudit.__all__: AuditConfig, audit(), ignore(), instrument() -------------------------

CONFIG_FIELDS = [
    ("max_queries", -1, "max_queries must be an int >= 0 or None, got -1"),
    ("max_db_time_ms", NAN, "max_db_time_ms must be a finite number of milliseconds >= 0 "
     "or None, got nan"),
    ("slow_query_ms", "100", "slow_query_ms must be a finite number of milliseconds >= 0 "
     "or None, got '100'"),
    ("n_plus_one_min", 1, "n_plus_one_min must be an int >= 2, got 1"),
    ("deferred_reload_min", None, "deferred_reload_min must be an int >= 2, got None"),
    ("expired_reload_min", 2.0, "expired_reload_min must be an int >= 2, got 2.0"),
    ("repeated_query_min", True, "repeated_query_min must be an int >= 2, got True"),
    ("write_loop_min", 0, "write_loop_min must be an int >= 2, got 0"),
    ("long_transaction_ms", -1, "long_transaction_ms must be a finite number of milliseconds "
     ">= 0 or None, got -1"),
    ("idle_in_transaction_ms", math.inf, "idle_in_transaction_ms must be a finite number of "
     "milliseconds >= 0 or None, got inf"),
    ("open_transactions", "no", "open_transactions must be True or False, got 'no'"),
    ("commit_in_loop_min", 1, "commit_in_loop_min must be an int >= 2, got 1"),
    ("commit_in_loop_max_rows", 0, "commit_in_loop_max_rows must be an int >= 1, got 0"),
    ("transaction_overhead_ratio", 0, "transaction_overhead_ratio must be a number in (0, 1] "
     "or None, got 0"),
    ("transaction_overhead_min", True, "transaction_overhead_min must be an int >= 1, got True"),
    ("min_group_ms", None, "min_group_ms must be a finite number of milliseconds >= 0, "
     "got None"),
    ("max_findings", -2, "max_findings must be an int >= 0 or None, got -2"),
    ("max_records", None, "max_records must be an int >= 0, got None"),
    ("on_finding", "explode", "on_finding must be one of 'log', 'raise', 'ignore', "
     "got 'explode'"),
    ("fail_on", "fatal", "fail_on must be one of 'info', 'warning', 'error', got 'fatal'"),
    ("ignore", ["nope"], f"ignore has unknown finding kind(s) 'nope'; allowed: {ALLOWED_KINDS}"),
    ("include_sql", 1, "include_sql must be True or False, got 1"),
    ("allow_relationships", ["comments"],
     'allow_relationships must be relationships like "User.comments" (globs like "Legacy*.*" '
     "allowed), got 'comments'"),
    ("allow_paths", "", "allow_paths must be path globs like \"app/legacy/*\" or \"*/reports.py\", "
     "got ''"),
    ("allow_sql", ["FROM (audit"],
     "allow_sql must be valid regular expressions, got 'FROM (audit' (missing ), unterminated "
     "subpattern at position 5)"),
    ("unused_eager_loads", "yes", "unused_eager_loads must be True or False, got 'yes'"),
]  # fmt: skip


def test_every_config_field_is_in_the_table() -> None:
    """The field table below covers every AuditConfig field: a new one needs a case."""
    assert {name for name, _, _ in CONFIG_FIELDS} == {
        f.name for f in dataclasses.fields(AuditConfig)
    }


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(AuditConfig, id="constructor"),
        pytest.param(AuditConfig.create, id="create"),
        pytest.param(lambda **kw: AuditConfig().replace(**kw), id="replace"),
        pytest.param(AuditConfig.for_production, id="for_production"),
        pytest.param(lambda **kw: sqlaudit.audit("unit", **kw), id="audit-overrides"),
        pytest.param(
            lambda **kw: sqlaudit.audit("unit", AuditConfig(), **kw), id="audit-config-overrides"
        ),
    ],
)
@pytest.mark.parametrize(
    ("field", "value", "message"), [pytest.param(*case, id=case[0]) for case in CONFIG_FIELDS]
)
def test_config_field_messages(
    build: Callable[..., object], field: str, value: object, message: str
) -> None:
    """Each AuditConfig field, however it is given, names itself, what is allowed, the value."""
    with raises_exactly(message):
        build(**{field: value})


CORE_BAD = [
    pytest.param(lambda: AuditConfig.create(bogus=1),
                 f"unknown AuditConfig setting(s) 'bogus'; known: {SETTINGS}",
                 id="create-unknown"),
    pytest.param(lambda: AuditConfig().replace(bogus=1),
                 f"unknown AuditConfig setting(s) 'bogus'; known: {SETTINGS}",
                 id="replace-unknown"),
    pytest.param(lambda: AuditConfig.for_production(bogus=1),
                 f"unknown AuditConfig setting(s) 'bogus'; known: {SETTINGS}",
                 id="for_production-unknown"),
    pytest.param(lambda: AuditConfig(ignore=5),  # type: ignore[arg-type]
                 "ignore must be an iterable of finding kinds, got 5", id="config-ignore-int"),
    pytest.param(lambda: sqlaudit.audit(None),  # type: ignore[arg-type]
                 "audit name must be a non-empty str, got None", id="audit-name-none"),
    pytest.param(lambda: sqlaudit.audit(""),
                 "audit name must be a non-empty str, got ''", id="audit-name-empty"),
    pytest.param(lambda: sqlaudit.audit("unit", {"max_queries": 3}),  # type: ignore[arg-type]
                 "config must be an AuditConfig, got dict", id="audit-config-dict"),
    pytest.param(lambda: sqlaudit.audit("unit", all_threads=1),  # type: ignore[arg-type]
                 "all_threads must be True or False, got 1", id="audit-all_threads-int"),
    pytest.param(lambda: sqlaudit.audit("unit", bogus=1),
                 f"unknown AuditConfig setting(s) 'bogus'; known: {SETTINGS}",
                 id="audit-unknown-override"),
    pytest.param(sqlaudit.ignore,
                 "ignore() needs at least one finding kind, got none", id="ignore-none-given"),
    pytest.param(lambda: sqlaudit.ignore("nope"),
                 f"ignore() has unknown finding kind(s) 'nope'; allowed: {ALLOWED_KINDS}",
                 id="ignore-unknown-kind"),
    pytest.param(lambda: sqlaudit.instrument(None),
                 "instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy "
                 "extension (db = SQLAlchemy()), got builtins.NoneType: pass the engine your "
                 "sessions use, e.g. sqlaudit.instrument(engine)",
                 id="instrument-none"),
    pytest.param(lambda: sqlaudit.instrument("sqlite://"),
                 "instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy "
                 "extension (db = SQLAlchemy()), got builtins.str: create the engine first, "
                 "engine = create_engine(url), and pass it",
                 id="instrument-url"),
    pytest.param(lambda: sqlaudit.instrument(create_engine("sqlite://"), orm=1),  # type: ignore[arg-type]
                 "orm must be True or False, got 1", id="instrument-orm-int"),
]  # fmt: skip

AUDIT_PENDING = [
    pytest.param(lambda: sqlaudit.audit("unit", reporters=5),  # type: ignore[arg-type]
                 f"reporters must be {REPORTERS}, got 5", id="audit-reporters-int"),
    pytest.param(lambda: sqlaudit.audit("unit", reporters=LOG),  # type: ignore[arg-type]
                 f"reporters must be {REPORTERS}, got the single reporter {LOG!r}; pass it in "
                 "a list: reporters=[reporter]", id="audit-reporters-single"),
    pytest.param(lambda: sqlaudit.audit("unit", reporters="log"),  # type: ignore[arg-type]
                 f"reporters must be {REPORTERS}, got 'log'", id="audit-reporters-str"),
    pytest.param(lambda: sqlaudit.audit("unit", reporters=[None]),  # type: ignore[list-item]
                 f"reporters[0] must be {REPORTER}, got None", id="audit-reporters-none-item"),
    pytest.param(lambda: sqlaudit.audit("unit", detectors=5),  # type: ignore[arg-type]
                 f"detectors must be {DETECTORS}, got 5", id="audit-detectors-int"),
    pytest.param(lambda: sqlaudit.audit("unit", detectors="n_plus_one"),  # type: ignore[arg-type]
                 f"detectors must be {DETECTORS}, got 'n_plus_one'", id="audit-detectors-str"),
    pytest.param(lambda: sqlaudit.audit("unit", detectors=[THING]),  # type: ignore[list-item]
                 f"detectors[0] must be {DETECTOR}, got {THING!r}", id="audit-detectors-object"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), CORE_BAD + AUDIT_PENDING)
def test_core_entry_points_refuse_bad_arguments(call: Callable[[], object], message: str) -> None:
    """``AuditConfig``, ``audit()``, ``ignore()``, ``instrument()``: exact ConfigError."""
    with raises_exactly(message):
        call()


CORE_GOOD = [
    pytest.param(lambda: AuditConfig(max_queries=0, slow_query_ms=None, ignore="n_plus_one"),  # type: ignore[arg-type]
                 id="config-edges"),
    pytest.param(lambda: AuditConfig.for_production(max_findings=None, fail_on="ERROR"),
                 id="for_production-overrides"),
    pytest.param(lambda: sqlaudit.audit("unit", reporters=[LOG], detectors=DEFAULT_DETECTORS[:1],
                                        all_threads=True), id="audit-lists"),
    pytest.param(lambda: sqlaudit.audit("unit", reporters=(), detectors=()), id="audit-empty"),
    pytest.param(lambda: sqlaudit.ignore(*sorted(KINDS)), id="ignore-every-kind"),
]  # fmt: skip


@pytest.mark.parametrize("call", CORE_GOOD)
def test_core_entry_points_accept_good_arguments(call: Callable[[], object]) -> None:
    """Edge values that are allowed (0, None, a single kind, empty lists) are accepted."""
    call()


def test_instrument_accepts_an_engine_and_orm_false(engine: Engine) -> None:
    """``instrument(engine, orm=False)`` is accepted and removable."""
    sqlaudit.instrument(engine, orm=False).remove()


# -- WSGIAuditMiddleware / ASGIAuditMiddleware ----------------------------------------------

MIDDLEWARES = [
    pytest.param((WSGIAuditMiddleware, wsgi_app), id="wsgi"),
    pytest.param((ASGIAuditMiddleware, asgi_app), id="asgi"),
]

MIDDLEWARE_BAD: list[tuple[dict[str, Any], str]] = [
    ({"config": {"max_queries": 3}}, "config must be an AuditConfig, got dict"),
    (
        {"sample": 0.1, "max_queries": 3},
        "unknown middleware option(s) 'max_queries', 'sample'; known: config, budgets, "
        "detectors, dev_page, dev_page_size, exclude, explain, header, mode, on_finding, "
        "reporters, sample_rate, server_timing",
    ),
    ({"budgets": 5}, 'budgets must be a mapping like {"GET /streams": 12}, got int'),
    ({"budgets": [("GET /x", 1)]}, 'budgets must be a mapping like {"GET /streams": 12}, got list'),
    ({"budgets": {"/streams": 3}}, f"{BUDGET_KEYS}, got '/streams'"),
    ({"budgets": {"GET streams": 3}}, f"{BUDGET_KEYS}, got 'GET streams'"),
    ({"budgets": {" GET /x": 3}}, f"{BUDGET_KEYS}, got ' GET /x'"),
    ({"budgets": {"GET  /x": 3}}, f"{BUDGET_KEYS}, got 'GET  /x'"),
    ({"budgets": {"": 3}}, f"{BUDGET_KEYS}, got ''"),
    ({"budgets": {5: 3}}, f"{BUDGET_KEYS}, got 5"),
    ({"budgets": {"GET /x": -1}}, "budgets['GET /x'] must be an int >= 0, got -1"),
    ({"budgets": {"GET /x": None}}, "budgets['GET /x'] must be an int >= 0, got None"),
    ({"budgets": {"GET /x": 1.5}}, "budgets['GET /x'] must be an int >= 0, got 1.5"),
    ({"budgets": {"GET /x": True}}, "budgets['GET /x'] must be an int >= 0, got True"),
    ({"sample_rate": 1.5}, "sample_rate must be a number from 0 to 1, got 1.5"),
    ({"sample_rate": -0.1}, "sample_rate must be a number from 0 to 1, got -0.1"),
    ({"sample_rate": NAN}, "sample_rate must be a number from 0 to 1, got nan"),
    ({"sample_rate": None}, "sample_rate must be a number from 0 to 1, got None"),
    ({"sample_rate": "0.5"}, "sample_rate must be a number from 0 to 1, got '0.5'"),
    ({"sample_rate": True}, "sample_rate must be a number from 0 to 1, got True"),
    ({"exclude": None}, f"exclude must be an iterable of {EXCLUDE}, got None"),
    ({"exclude": 5}, f"exclude must be an iterable of {EXCLUDE}, got 5"),
    ({"exclude": ""}, f"exclude must be {EXCLUDE}, got ''"),
    ({"exclude": "health"}, f"exclude must be {EXCLUDE}, got 'health'"),
    ({"exclude": ["GET health"]}, f"exclude must be {EXCLUDE}, got 'GET health'"),
    ({"exclude": ["/my file"]}, f"exclude must be {EXCLUDE}, got '/my file'"),
    ({"exclude": [None]}, f"exclude must be {EXCLUDE}, got None"),
    ({"on_finding": "explode"},
     "on_finding must be one of 'log', 'raise', 'ignore', got 'explode'"),
    ({"on_finding": False}, "on_finding must be one of 'log', 'raise', 'ignore', got False"),
    ({"reporters": 5}, f"reporters must be {REPORTERS}, got 5"),
    ({"reporters": "log"}, f"reporters must be {REPORTERS}, got 'log'"),
    ({"reporters": LOG}, f"reporters must be {REPORTERS}, got the single reporter {LOG!r}; "
     "pass it in a list: reporters=[reporter]"),
    ({"reporters": [LOG, None]}, f"reporters[1] must be {REPORTER}, got None"),
    ({"reporters": [print]}, f"reporters[0] must be {REPORTER}, got {print!r}"),
    ({"detectors": 5}, f"detectors must be {DETECTORS}, got 5"),
    ({"detectors": "n_plus_one"}, f"detectors must be {DETECTORS}, got 'n_plus_one'"),
    ({"detectors": [THING]}, f"detectors[0] must be {DETECTOR}, got {THING!r}"),
    ({"detectors": [SimpleNamespace(kind="", detect=print)]},
     f"detectors[0] must be {DETECTOR}, got namespace(kind='', detect={print!r})"),
    ({"header": None}, f"{HEADER}, got None"),
    ({"header": ""}, f"{HEADER}, got ''"),
    ({"header": 1}, f"{HEADER}, got 1"),
    ({"header": "X SQL"}, f"{HEADER}, got 'X SQL'"),
    ({"server_timing": None}, "server_timing must be True or False, got None"),
    ({"server_timing": "yes"}, "server_timing must be True or False, got 'yes'"),
    ({"dev_page": ""}, f"{DEV_PAGE}, got ''"),
    ({"dev_page": "_sqlaudit"}, f"{DEV_PAGE}, got '_sqlaudit'"),
    ({"dev_page": 5}, f"{DEV_PAGE}, got 5"),
    ({"dev_page": "/_sqlaudit?all=1"}, f"{DEV_PAGE}, got '/_sqlaudit?all=1'"),
    ({"dev_page": "/_sqlaudit#top"}, f"{DEV_PAGE}, got '/_sqlaudit#top'"),
    ({"dev_page": "/_sqlaudit", "dev_page_size": 0}, "dev_page_size must be an int >= 1, got 0"),
    ({"dev_page_size": -1}, "dev_page_size must be an int >= 1, got -1"),
    ({"dev_page_size": None}, "dev_page_size must be an int >= 1, got None"),
    ({"dev_page_size": 2.5}, "dev_page_size must be an int >= 1, got 2.5"),
    ({"dev_page_size": True}, "dev_page_size must be an int >= 1, got True"),
]  # fmt: skip


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize(
    ("options", "message"),
    [pytest.param(o, m, id=f"{next(iter(o))}-{i}") for i, (o, m) in enumerate(MIDDLEWARE_BAD)],
)
def test_middleware_refuses_bad_options(
    middleware: tuple[Any, Any], options: dict[str, Any], message: str
) -> None:
    """Both middlewares check every option when built, not at the first request."""
    cls, app = middleware
    with raises_exactly(message):
        cls(app, **options)


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize("app", [None, 5, "myapp:app"])
def test_middleware_refuses_an_app_that_is_not_callable(
    middleware: tuple[Any, Any], app: object
) -> None:
    """The wrapped application must be callable (e.g. not the "module:app" string)."""
    cls, _ = middleware
    what = "a WSGI application" if cls is WSGIAuditMiddleware else "an ASGI application"
    with raises_exactly(f"app must be {what} (a callable), got {app!r}"):
        cls(app)


MIDDLEWARE_GOOD: list[dict[str, Any]] = [
    {"config": AuditConfig(), "on_finding": "raise"},
    {"budgets": {"GET /streams": 12, "* /admin/*": 50, "POST *": 1, "GET /files/my file": 2}},
    {"budgets": {"GET /streams/{stream_id}": 0, "GET /items/<int:id>": 3}},
    {"sample_rate": 0},
    {"sample_rate": 0.25},
    {"sample_rate": 1},
    {"exclude": "/health"},
    {"exclude": ["GET /static/*", "*.css", "?"]},
    {"reporters": [LOG], "detectors": DEFAULT_DETECTORS},
    {"reporters": [LOG, LogReporter(summary=True)], "detectors": list(DEFAULT_DETECTORS[:2])},
    {"reporters": (), "detectors": ()},
    {"header": True, "server_timing": True},
    {"header": "X-Queries"},
    {"dev_page": "/_sqlaudit", "dev_page_size": 1},
    {"dev_page": "/", "dev_page_size": 500},
    {"dev_page_size": 10},
]


@pytest.mark.parametrize("middleware", MIDDLEWARES)
@pytest.mark.parametrize("options", MIDDLEWARE_GOOD)
def test_middleware_accepts_good_options(
    middleware: tuple[Any, Any], options: dict[str, Any]
) -> None:
    """Globs, ``METHOD /route`` keys with templates, iterators, bounds 0 and 1 are accepted."""
    cls, app = middleware
    cls(app, **options)


def test_middleware_reads_iterators_once() -> None:
    """Iterators of reporters or patterns are read once, when checked, and all their items
    are kept."""
    auditor = WSGIAuditMiddleware(
        wsgi_app, reporters=iter([LOG]), exclude=iter(["/health"])
    ).auditor
    assert auditor._closer.reporters == (LOG,)
    assert auditor.exclude == ("/health",)


# -- reporters and OpenTelemetry ------------------------------------------------------------

REPORTER_BAD = [
    pytest.param(lambda: LogReporter(None),  # type: ignore[arg-type]
                 "logger must be a logging.Logger or a logger name (str), got None",
                 id="log-logger-none"),
    pytest.param(lambda: LogReporter(5),  # type: ignore[arg-type]
                 "logger must be a logging.Logger or a logger name (str), got 5",
                 id="log-logger-int"),
    pytest.param(lambda: LogReporter(summary="yes"),  # type: ignore[arg-type]
                 "summary must be True or False, got 'yes'", id="log-summary-str"),
    pytest.param(lambda: OTelReporter(5),  # type: ignore[arg-type]
                 "tracer_provider must be an OpenTelemetry provider (with a get_tracer() method) "
                 "or None, got 5", id="otel-tracer_provider"),
    pytest.param(lambda: OTelReporter(meter_provider="global"),  # type: ignore[arg-type]
                 "meter_provider must be an OpenTelemetry provider (with a get_meter() method) "
                 "or None, got 'global'", id="otel-meter_provider"),
    pytest.param(lambda: OTelReporter(logger_provider=THING),  # type: ignore[arg-type]
                 "logger_provider must be an OpenTelemetry provider (with a get_logger() method) "
                 f"or None, got {THING!r}", id="otel-logger_provider"),
    pytest.param(lambda: OTelReporter(findings_as="spans"),  # type: ignore[arg-type]
                 "findings_as must be one of 'events', 'logs', 'both', got 'spans'",
                 id="otel-findings_as"),
    pytest.param(lambda: OTelReporter(transaction_spans=1),  # type: ignore[arg-type]
                 "transaction_spans must be True or False, got 1", id="otel-transaction_spans"),
    pytest.param(lambda: OTelReporter(burst_spans=None),  # type: ignore[arg-type]
                 "burst_spans must be True or False, got None", id="otel-burst_spans"),
    pytest.param(lambda: OTelReporter(correlate="no"),  # type: ignore[arg-type]
                 "correlate must be True or False, got 'no'", id="otel-correlate"),
    pytest.param(lambda: OTelReporter(metrics=0),  # type: ignore[arg-type]
                 "metrics must be True or False, got 0", id="otel-metrics"),
    pytest.param(lambda: OTelReporter(semconv="new"),  # type: ignore[arg-type]
                 "semconv must be one of 'stable', 'old', 'dup' or None, got 'new'",
                 id="otel-semconv"),
    pytest.param(lambda: OTelReporter(max_events=-1),
                 "max_events must be an int >= 0, got -1", id="otel-max_events"),
    pytest.param(lambda: OTelReporter(max_links=NAN),  # type: ignore[arg-type]
                 "max_links must be an int >= 0, got nan", id="otel-max_links"),
    pytest.param(lambda: OTelReporter(statement_events=True),
                 "statement_events must be an int >= 0, got True", id="otel-statement_events"),
    pytest.param(lambda: setup(config={"max_queries": 3}),  # type: ignore[arg-type]
                 "config must be an AuditConfig, got dict", id="setup-config-dict"),
    pytest.param(lambda: setup(log_findings="yes"),  # type: ignore[arg-type]
                 "log_findings must be True or False, got 'yes'", id="setup-log_findings"),
    pytest.param(lambda: setup(max_event=3),
                 "unknown OTelReporter option(s) 'max_event'; known: burst_spans, correlate, "
                 "findings_as, logger_provider, max_events, max_links, meter_provider, metrics, "
                 "semconv, statement_events, tracer_provider, transaction_spans",
                 id="setup-unknown-option"),
    pytest.param(lambda: setup(max_events=-1),
                 "max_events must be an int >= 0, got -1", id="setup-reporter-option"),
    pytest.param(lambda: setup("sqlite://"),  # type: ignore[arg-type]
                 "instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy "
                 "extension (db = SQLAlchemy()), got builtins.str: create the engine first, "
                 "engine = create_engine(url), and pass it",
                 id="setup-engine-url"),
    pytest.param(lambda: jsonl_tracer_provider(None),  # type: ignore[arg-type]
                 "path must be a file path (a str or os.PathLike), got None", id="jsonl-path-none"),
    pytest.param(lambda: jsonl_tracer_provider(""),
                 "path must be a file path (a str or os.PathLike), got ''", id="jsonl-path-empty"),
    pytest.param(lambda: jsonl_tracer_provider(5),  # type: ignore[arg-type]
                 "path must be a file path (a str or os.PathLike), got 5", id="jsonl-path-fd"),
    pytest.param(lambda: jsonl_tracer_provider("spans.jsonl", service_name=""),
                 "service_name must be a non-empty str, got ''", id="jsonl-service-empty"),
    pytest.param(lambda: jsonl_tracer_provider("spans.jsonl", service_name=None),  # type: ignore[arg-type]
                 "service_name must be a non-empty str, got None", id="jsonl-service-none"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), REPORTER_BAD)
def test_reporters_and_otel_refuse_bad_arguments(
    call: Callable[[], object], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LogReporter``, ``OTelReporter``, ``otel.setup()``, ``otel.jsonl_tracer_provider()``."""
    monkeypatch.chdir(tmp_path)  # a refused path must not have created a file
    with raises_exactly(message):
        call()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: LogReporter("app.sql", summary=True), id="log-name"),
        pytest.param(lambda: LogReporter(logging.getLogger("app")), id="log-logger"),
        pytest.param(
            lambda: LogReporter(logging.LoggerAdapter(logging.getLogger("app"), {})),  # type: ignore[arg-type]
            id="log-adapter",
        ),
        pytest.param(
            lambda: OTelReporter(TracerProvider(), MeterProvider(), findings_as="events"),
            id="otel-sdk-providers",
        ),
        pytest.param(lambda: OTelReporter(semconv=None, max_events=0, max_links=0), id="otel-0"),
    ],
)
def test_reporters_and_otel_accept_good_arguments(call: Callable[[], object]) -> None:
    """Names, loggers, adapters, SDK providers and zero limits are accepted."""
    call()


def test_otel_setup_and_jsonl_provider_accept_good_arguments(
    engine: Engine, tmp_path: Path
) -> None:
    """``setup(engine, ...)`` with reporter options, and a ``Path`` for the JSONL file."""
    made = setup(engine, config=AuditConfig(), log_findings=False, metrics=False)
    made.remove()
    provider = jsonl_tracer_provider(tmp_path / "spans.jsonl", service_name="bff")
    provider.shutdown()


# -- the pytest plugin: fixture arguments, markers, options and ini keys ------------------

FIXTURE = SqlauditFixture("test_x", AuditConfig(), lambda: None)


def populate(scale: int) -> None:
    return None


def action() -> None:
    return None


PYTEST_BAD = [
    pytest.param(lambda: FIXTURE.budget(-1), "n must be an int >= 0, got -1", id="budget-n"),
    pytest.param(lambda: FIXTURE.budget("3"),  # type: ignore[arg-type]
                 "n must be an int >= 0, got '3'", id="budget-n-str"),
    pytest.param(lambda: FIXTURE.budget(3, select=-1),
                 "select must be an int >= 0 or None, got -1", id="budget-select"),
    pytest.param(lambda: FIXTURE.budget(3, writes=1.5),  # type: ignore[arg-type]
                 "writes must be an int >= 0 or None, got 1.5", id="budget-writes"),
    pytest.param(lambda: FIXTURE.budget(3, db_time_ms=NAN),
                 "db_time_ms must be a finite number of milliseconds >= 0 or None, got nan",
                 id="budget-db_time_ms"),
    pytest.param(lambda: FIXTURE.budget(3, reason=5),  # type: ignore[arg-type]
                 "reason must be a str, got 5", id="budget-reason"),
    pytest.param(lambda: FIXTURE.assert_num_queries(-1),
                 "num must be an int >= 0, got -1", id="assert_num_queries-num"),
    pytest.param(lambda: FIXTURE.assert_max_queries(None),  # type: ignore[arg-type]
                 "num must be an int >= 0, got None", id="assert_max_queries-num"),
    pytest.param(lambda: FIXTURE.assert_num_queries(1, info=5),  # type: ignore[arg-type]
                 "info must be a str or None, got 5", id="assert_num_queries-info"),
    pytest.param(lambda: FIXTURE.assert_constant_queries(None, action),  # type: ignore[arg-type]
                 "populate must be a callable, got None", id="constant-populate"),
    pytest.param(lambda: FIXTURE.assert_constant_queries(populate, "go"),  # type: ignore[arg-type]
                 "action must be a callable, got 'go'", id="constant-action"),
    pytest.param(lambda: FIXTURE.assert_constant_queries(populate, action, [2]),
                 "scales must be >= 2 increasing ints >= 0, got [2]", id="constant-one-scale"),
    pytest.param(lambda: FIXTURE.assert_constant_queries(populate, action, 5),  # type: ignore[arg-type]
                 "scales must be >= 2 increasing ints >= 0, got 5", id="constant-scales-int"),
    pytest.param(lambda: FIXTURE.assert_constant_queries(populate, action, (4, 2)),
                 "scales must be >= 2 increasing ints >= 0, got (4, 2)", id="constant-decreasing"),
    pytest.param(lambda: parse_budget((1,), {"db_time_ms": -3}, what="query_budget"),
                 "db_time_ms must be a finite number of milliseconds >= 0 or None, got -3",
                 id="marker-query_budget-db_time_ms"),
    pytest.param(lambda: parse_budget((), {}, what="query_budget"),
                 "query_budget needs exactly one statement budget n, e.g. query_budget(5)",
                 id="marker-query_budget-no-n"),
    pytest.param(lambda: parse_budget((1,), {"selects": 2}, what="query_budget"),
                 "query_budget got unknown argument(s) selects; known: n, db_time_ms, reason, "
                 "select, writes", id="marker-query_budget-unknown"),
    pytest.param(lambda: parse_sqlaudit_marker((), {"allow": 5}, AuditConfig()),
                 "allow must be an iterable of finding kinds, got 5", id="marker-sqlaudit-allow"),
    pytest.param(lambda: parse_sqlaudit_marker((), {"slow_query_ms": -1}, AuditConfig()),
                 "slow_query_ms must be a finite number of milliseconds >= 0 or None, got -1",
                 id="marker-sqlaudit-override"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "message"), PYTEST_BAD)
def test_fixture_and_marker_arguments_are_checked(call: Callable[[], object], message: str) -> None:
    """The ``sqlaudit`` fixture's methods and the markers' arguments: exact ConfigError."""
    with raises_exactly(message):
        call()


def test_assert_constant_queries_checks_everything_before_populating() -> None:
    """A bad ``action`` is refused before ``populate`` has added any data."""
    calls: list[int] = []
    with raises_exactly("action must be a callable, got None"):
        FIXTURE.assert_constant_queries(calls.append, None)  # type: ignore[arg-type]
    assert calls == []


def test_fixture_accepts_good_arguments() -> None:
    """Zero budgets, ``reason``/``info`` strings and two increasing scales are accepted."""
    FIXTURE.budget(0, select=0, writes=None, db_time_ms=0, reason="")
    FIXTURE.assert_num_queries(0, info="why")
    FIXTURE.assert_max_queries(3)
    assert FIXTURE.assert_constant_queries(populate, action, scales=[0, 1]) == 0


OPTION_BAD = [
    pytest.param(("--sqlaudit-fail-on=,",), "",
                 "sqlaudit: sqlaudit_fail_on must be comma-separated finding kinds or 'all', "
                 "got ','", id="fail-on-no-kind"),
    pytest.param((), "sqlaudit_fail_on = ,",
                 "sqlaudit: sqlaudit_fail_on must be comma-separated finding kinds or 'all', "
                 "got ','", id="ini-fail-on-no-kind"),
    pytest.param((), "sqlaudit = maybe",
                 "sqlaudit: sqlaudit must be true or false, got 'maybe'", id="ini-bool"),
    pytest.param(("-o", "sqlaudit_report=2"), "",
                 "sqlaudit: sqlaudit_report must be true or false, got '2'", id="override-bool"),
    pytest.param(("--sqlaudit-json=out",), "",
                 "sqlaudit: sqlaudit_json must be the path of a file to write, got 'out' "
                 "(a directory)", id="json-directory"),
    pytest.param((), "sqlaudit_json = out",
                 "sqlaudit: sqlaudit_json must be the path of a file to write, got 'out' "
                 "(a directory)", id="ini-json-directory"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "ini", "message"), OPTION_BAD)
def test_bad_plugin_options_are_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], ini: str, message: str
) -> None:
    """A bad option or ini value stops pytest before collection with one line naming the
    option, what is allowed and the value."""
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.mkdir("out")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in result.stderr.lines


@pytest.mark.parametrize(
    ("option", "value"),
    [("--sqlaudit-severity", "fatal"), ("--sqlaudit-scope", "body"),
     ("--sqlaudit-update-baseline", "maybe")],
)  # fmt: skip
def test_plugin_options_with_choices_name_the_option(
    pytester: pytest.Pytester, option: str, value: str
) -> None:
    """Options with a fixed set of values are refused by pytest's parser, naming them."""
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, f"{option}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*error: argument {option}: invalid choice: '{value}'*"])


def test_plugin_accepts_good_options(pytester: pytest.Pytester) -> None:
    """``yes`` for a bool ini key, ``all`` kinds, a JSON path in a new directory."""
    pytester.makeini("[pytest]\nsqlaudit = yes\nsqlaudit_scope = setup+call\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = run(pytester, "--sqlaudit-fail-on=all", "--sqlaudit-json=new/dir/audit.json")
    result.assert_outcomes(passed=1)
    assert (pytester.path / "new" / "dir" / "audit.json").is_file()


# -- the command line -----------------------------------------------------------------------


def _lines(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return str(path)


CLI_BAD: list[Any] = [
    pytest.param(lambda tmp: [], "sqlaudit: error: the following arguments are required: COMMAND",
                 id="no-command"),
    pytest.param(lambda tmp: ["demo", "--bogus"],
                 "sqlaudit: error: unrecognized arguments: --bogus", id="demo-unknown-flag"),
    pytest.param(lambda tmp: ["report"],
                 "sqlaudit report: error: the following arguments are required: FILE.jsonl",
                 id="report-no-file"),
    pytest.param(lambda tmp: ["report", str(tmp / "missing.jsonl")],
                 "sqlaudit report: [Errno 2] No such file or directory: '{tmp}/missing.jsonl'",
                 id="report-missing"),
    pytest.param(lambda tmp: ["report", str(tmp)],
                 "sqlaudit report: [Errno 21] Is a directory: '{tmp}'", id="report-directory"),
    pytest.param(lambda tmp: ["report", _lines(tmp, "a.jsonl", "not json\n")],
                 "sqlaudit report: line 1 is not JSON (Expecting value: line 1 column 1 (char 0)); "
                 "expected OTLP/JSON lines", id="report-not-json"),
    pytest.param(lambda tmp: ["report", _lines(tmp, "a.jsonl", "[1]\n")],
                 "sqlaudit report: line 1 is not an OTLP/JSON object", id="report-list"),
    pytest.param(lambda tmp: ["report", _lines(tmp, "a.jsonl", "{}\n" + "[" * 100_000
                                               + "]" * 100_000 + "\n")],
                 "sqlaudit report: line 2 nests too deeply to be OTLP/JSON spans or logs",
                 id="report-deeply-nested"),  # issue 14, row 12: was a RecursionError
    pytest.param(lambda tmp: ["report", _lines(tmp, "a.jsonl", '{}\n{"resourceSpans": 5}\n')],
                 "sqlaudit report: line 2 is not OTLP/JSON spans or logs (TypeError: 'int' object "
                 "is not iterable)", id="report-wrong-shape"),
    pytest.param(lambda tmp: ["report", _lines(tmp, "a.jsonl", '{"resourceSpans": [{"scopeSpans":'
                              ' [{"spans": [{"attributes": [{"key": "sqlaudit.query_count", '
                              '"value": {"stringValue": "many"}}]}]}]}]}\n')],
                 "sqlaudit report: line 1 is not OTLP/JSON spans or logs (ValueError: invalid "
                 "literal for int() with base 10: 'many')", id="report-bad-count"),
    pytest.param(lambda tmp: ["demo", "--url", "bogus"],
                 # SQLAlchemy's own wording after this differs between 2.0 and 2.1
                 "sqlaudit: error: cannot use database URL 'bogus': Could not parse SQLAlchemy URL "
                 "...", id="demo-url"),
    pytest.param(lambda tmp: ["demo", "--otel-jsonl", ""],
                 "sqlaudit: error: cannot write --otel-jsonl '': path must be a file path (a str "
                 "or os.PathLike), got ''", id="demo-otel-empty"),
    pytest.param(lambda tmp: ["demo", "--otel-jsonl", str(tmp)],
                 "sqlaudit: error: cannot write --otel-jsonl '{tmp}': Is a directory",
                 id="demo-otel-directory"),
    pytest.param(lambda tmp: ["demo", "--otel-jsonl", str(tmp / "no" / "spans.jsonl")],
                 "sqlaudit: error: cannot write --otel-jsonl '{tmp}/no/spans.jsonl': No such file "
                 "or directory", id="demo-otel-no-directory"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), CLI_BAD)
def test_cli_bad_arguments_exit_2_with_one_line(
    argv: Callable[[Path], list[str]],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``sqlaudit demo`` / ``sqlaudit report``: exit code 2 and the diagnosis as the last line
    of stderr (after argparse's usage line, if any); no traceback, nothing on stdout."""
    code = cli.main(argv(tmp_path))
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert "Traceback" not in err
    expected = message.replace("{tmp}", str(tmp_path))
    if expected.endswith(" ..."):  # a prefix: the rest is another library's wording
        assert err.splitlines()[-1].startswith(expected[:-3])
    else:
        assert err.splitlines()[-1] == expected


def test_cli_unknown_command_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown command exits 2 naming it (argparse's wording of the choices varies)."""
    assert cli.main(["bogus"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(
        "sqlaudit: error: argument COMMAND: invalid choice: 'bogus'"
    )


def test_cli_report_of_an_empty_file_is_a_valid_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty input is still a page, which says that the file holds no sqlaudit data (as
    standard error does, with exit code 1: nothing was reported)."""
    path = _lines(tmp_path, "empty.jsonl", "")
    assert cli.main(["report", path]) == 1
    out, err = capsys.readouterr()
    assert out.startswith("<!DOCTYPE html>")
    assert f"no sqlaudit data found in {path}: it holds no spans" in out
    assert err == f"sqlaudit report: no sqlaudit data found in {path}: it holds no spans\n"


def test_python_m_sqlaudit_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    """Through the real entry point too: one line on stderr, exit status 2."""
    path = _lines(tmp_path, "spans.jsonl", '{"resourceSpans": [5]}\n')
    proc = subprocess.run(
        [sys.executable, "-m", "sqlaudit", "report", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "sqlaudit report: line 1 is not OTLP/JSON spans or logs "
        "(AttributeError: 'int' object has no attribute 'get')\n"
    )
