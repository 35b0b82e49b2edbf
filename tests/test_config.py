"""``AuditConfig`` validation, ``Severity``, the exception types and argument errors.

A bad setting must fail where it is written, with a message naming the setting, the value
received and what is allowed (STYLE.md: "messages name what was wrong").
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import pytest

import sqlaudit
from sqlaudit import AuditConfig, AuditFailed, ConfigError, Severity
from sqlaudit.model.findings import KINDS

BAD_VALUES = [
    # (field, bad value, text describing what is allowed)
    pytest.param("max_queries", -1, "int >= 0 or None", id="max_queries-negative"),
    pytest.param("max_queries", True, "int >= 0 or None", id="max_queries-bool"),
    pytest.param("max_queries", 1.5, "int >= 0 or None", id="max_queries-float"),
    pytest.param("max_queries", "10", "int >= 0 or None", id="max_queries-str"),
    pytest.param("max_db_time_ms", -0.1, "milliseconds >= 0 or None", id="max_db_time-negative"),
    pytest.param("slow_query_ms", float("nan"), "finite number", id="slow_query-nan"),
    pytest.param("slow_query_ms", float("inf"), "finite number", id="slow_query-inf"),
    pytest.param("slow_query_ms", -1, "milliseconds >= 0 or None", id="slow_query-negative"),
    pytest.param("slow_query_ms", False, "milliseconds >= 0", id="slow_query-bool"),
    pytest.param("slow_query_ms", "100", "milliseconds >= 0", id="slow_query-str"),
    pytest.param("n_plus_one_min", 1, "int >= 2", id="n_plus_one_min-one"),
    pytest.param("n_plus_one_min", None, "int >= 2", id="n_plus_one_min-none"),
    pytest.param("repeated_query_min", 0, "int >= 2", id="repeated_query_min-zero"),
    pytest.param("write_loop_min", 2.0, "int >= 2", id="write_loop_min-float"),
    pytest.param("min_group_ms", None, "milliseconds >= 0", id="min_group_ms-none"),
    pytest.param("max_findings", -1, "int >= 0 or None", id="max_findings-negative"),
    pytest.param("max_records", -5, "int >= 0", id="max_records-negative"),
    pytest.param("max_records", None, "int >= 0", id="max_records-none"),
    pytest.param("on_finding", "explode", "'log', 'raise', 'ignore'", id="on_finding-unknown"),
    pytest.param("on_finding", None, "'log', 'raise', 'ignore'", id="on_finding-none"),
    pytest.param("fail_on", "fatal", "'info', 'warning', 'error'", id="fail_on-unknown"),
    pytest.param("fail_on", 20, "'info', 'warning', 'error'", id="fail_on-int"),
    pytest.param("ignore", ["nope"], "allowed: autocommit_lock", id="ignore-unknown-kind"),
    pytest.param("ignore", 5, "iterable of finding kinds", id="ignore-not-iterable"),
    pytest.param("include_sql", "yes", "True or False", id="include_sql-str"),
    pytest.param("include_sql", 1, "True or False", id="include_sql-int"),
]


@pytest.mark.parametrize(("field", "value", "allowed"), BAD_VALUES)
def test_bad_value_names_field_value_and_allowed(field: str, value: Any, allowed: str) -> None:
    """A bad setting raises ConfigError naming the field, the bad value and what is allowed."""
    with pytest.raises(ConfigError) as caught:
        AuditConfig(**{field: value})
    message = str(caught.value)
    assert message.startswith(field)
    shown = value[0] if isinstance(value, list) else value
    assert repr(shown) in message
    assert allowed in message


@pytest.mark.parametrize(("field", "value", "allowed"), BAD_VALUES)
def test_replace_validates(field: str, value: Any, allowed: str) -> None:
    """``replace()`` validates its changes exactly as the constructor does."""
    with pytest.raises(ConfigError, match=re.escape(allowed)):
        AuditConfig().replace(**{field: value})


GOOD_VALUES = [
    pytest.param({}, id="defaults"),
    pytest.param({"max_queries": 0}, id="max_queries-zero"),
    pytest.param({"max_queries": None, "max_findings": None}, id="optional-none"),
    pytest.param({"slow_query_ms": None}, id="slow_query-off"),
    pytest.param({"slow_query_ms": 0, "max_db_time_ms": 2.5}, id="ms-int-and-float"),
    pytest.param({"n_plus_one_min": 2, "repeated_query_min": 2}, id="minimum-two"),
    pytest.param({"max_records": 0}, id="max_records-zero"),
    pytest.param({"on_finding": "raise", "fail_on": "ERROR"}, id="raise-on-error"),
    pytest.param({"ignore": "n_plus_one"}, id="ignore-single-str"),
    pytest.param({"ignore": sorted(KINDS)}, id="ignore-every-kind"),
    pytest.param({"include_sql": True}, id="include_sql"),
]


@pytest.mark.parametrize("settings", GOOD_VALUES)
def test_good_values_accepted(settings: dict[str, Any]) -> None:
    """Every allowed value, including the boundaries, constructs a config."""
    config = AuditConfig(**settings)
    for name, value in settings.items():
        if name not in ("fail_on", "ignore"):
            assert getattr(config, name) == value


def test_fields_are_normalised() -> None:
    """``fail_on`` becomes a Severity and ``ignore`` a frozenset, whatever was passed."""
    config = AuditConfig(fail_on="error", ignore=["n_plus_one", "slow_query"])
    assert config.fail_on is Severity.ERROR
    assert config.ignore == frozenset({"n_plus_one", "slow_query"})
    assert AuditConfig(ignore="n_plus_one").ignore == frozenset({"n_plus_one"})


def test_create_rejects_unknown_setting_listing_known_ones() -> None:
    """``create(unknown=1)`` is a ConfigError naming the unknown setting and every known one."""
    with pytest.raises(ConfigError) as caught:
        AuditConfig.create(unknown=1, max_queries=3)
    message = str(caught.value)
    assert "'unknown'" in message
    for field in dataclasses.fields(AuditConfig):
        assert field.name in message


def test_create_builds_a_config() -> None:
    """``create`` with known settings is the constructor."""
    assert AuditConfig.create(max_queries=3) == AuditConfig(max_queries=3)


def test_replace_returns_a_validated_copy() -> None:
    """``replace`` leaves the original untouched and rejects unknown settings."""
    config = AuditConfig(max_queries=3)
    changed = config.replace(max_queries=4, on_finding="raise")
    assert (config.max_queries, changed.max_queries) == (3, 4)
    assert changed.on_finding == "raise"
    with pytest.raises(ConfigError, match="unknown AuditConfig setting"):
        config.replace(max_query=4)


def test_for_production_floors() -> None:
    """``for_production()`` reports only large, costly groups and never raises."""
    config = AuditConfig.for_production()
    assert config.n_plus_one_min == 5
    assert config.min_group_ms == 50
    assert config.max_findings == 10
    assert config.on_finding == "log"


def test_for_production_accepts_validated_overrides() -> None:
    """Overrides replace the production floors and are validated like any setting."""
    config = AuditConfig.for_production(n_plus_one_min=3, max_queries=100)
    assert (config.n_plus_one_min, config.max_queries, config.max_findings) == (3, 100, 10)
    with pytest.raises(ConfigError, match="n_plus_one_min"):
        AuditConfig.for_production(n_plus_one_min=1)
    with pytest.raises(ConfigError, match="unknown AuditConfig setting"):
        AuditConfig.for_production(bogus=1)


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(AuditConfig)])
def test_frozen(field: str) -> None:
    """A config cannot be changed after construction, so a validated config stays valid."""
    config = AuditConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, field, None)


def test_equal_configs_hash_equal() -> None:
    """Configs are values: equal settings compare and hash equal."""
    assert AuditConfig(ignore=["n_plus_one"]) == AuditConfig(ignore=frozenset({"n_plus_one"}))
    assert hash(AuditConfig()) == hash(AuditConfig())


# -- Severity -------------------------------------------------------------------------------


def test_severity_ordering() -> None:
    """Severities are ordered info < warning < error, so ``>= fail_on`` works."""
    assert Severity.INFO < Severity.WARNING < Severity.ERROR
    assert sorted([Severity.ERROR, Severity.INFO, Severity.WARNING]) == [
        Severity.INFO,
        Severity.WARNING,
        Severity.ERROR,
    ]
    assert max(Severity) is Severity.ERROR


SEVERITY_PARSE = [
    pytest.param("info", Severity.INFO, id="lower"),
    pytest.param("WARNING", Severity.WARNING, id="upper"),
    pytest.param("Error", Severity.ERROR, id="mixed-case"),
    pytest.param(Severity.WARNING, Severity.WARNING, id="member"),
]


@pytest.mark.parametrize(("value", "expected"), SEVERITY_PARSE)
def test_severity_parse(value: str | Severity, expected: Severity) -> None:
    """Severity names parse in any case; a Severity passes through."""
    assert Severity.parse(value) is expected


@pytest.mark.parametrize("value", ["fatal", "", " info", 30, None], ids=repr)
def test_severity_parse_rejects(value: Any) -> None:
    """Anything else is a ConfigError that lists the allowed names and shows the value."""
    with pytest.raises(ConfigError) as caught:
        Severity.parse(value, setting="fail_on")
    message = str(caught.value)
    assert message.startswith("fail_on must be one of 'info', 'warning', 'error'")
    assert repr(value) in message


@pytest.mark.parametrize("severity", list(Severity), ids=str)
def test_severity_str_round_trips(severity: Severity) -> None:
    """``str(severity)`` is its lowercase name, and parses back to the same member."""
    assert str(severity) == severity.name.lower()
    assert Severity.parse(str(severity)) is severity


# -- exceptions and argument errors ---------------------------------------------------------


def test_exception_hierarchy() -> None:
    """ConfigError is a ValueError; AuditFailed is an AssertionError (a test failure)."""
    assert issubclass(ConfigError, ValueError)
    assert issubclass(AuditFailed, AssertionError)


def test_audit_failed_carries_report() -> None:
    """AuditFailed holds the complete report and shows its rendering as the message."""
    with sqlaudit.audit("GET /users", reporters=()) as report:
        pass
    error = AuditFailed(report)
    assert error.report is report
    assert str(error) == report.render()


ARGUMENT_ERRORS = [
    pytest.param(lambda: sqlaudit.audit(name=""), "audit name must be a non-empty str, got ''"),
    pytest.param(lambda: sqlaudit.audit(name=None), "audit name must be a non-empty str"),
    pytest.param(lambda: sqlaudit.audit(config={}), "config must be an AuditConfig, got dict"),
    pytest.param(lambda: sqlaudit.audit(max_queries=-1), "max_queries must be an int >= 0"),
    pytest.param(
        lambda: sqlaudit.audit(config=AuditConfig(), max_queries=-1),
        "max_queries must be an int >= 0",
    ),
    pytest.param(lambda: sqlaudit.audit(bogus=1), "unknown AuditConfig setting(s) 'bogus'"),
    pytest.param(sqlaudit.ignore, "ignore() needs at least one finding kind"),
    pytest.param(lambda: sqlaudit.ignore("bogus"), "unknown finding kind(s) 'bogus'"),
    pytest.param(
        lambda: sqlaudit.ignore("n_plus_one", "nplusone"), "unknown finding kind(s) 'nplusone'"
    ),
    pytest.param(
        lambda: sqlaudit.instrument(object()),
        "instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy "
        "extension (db = SQLAlchemy()), got builtins.object",
    ),
    pytest.param(
        lambda: sqlaudit.instrument("sqlite://"),
        "instrument() takes a sqlalchemy Engine or AsyncEngine, or a Flask-SQLAlchemy "
        "extension (db = SQLAlchemy()), got builtins.str",
    ),
]


@pytest.mark.parametrize(
    ("call", "message"),
    ARGUMENT_ERRORS,
    ids=[
        "audit-empty-name",
        "audit-none-name",
        "audit-config-not-a-config",
        "audit-bad-override",
        "audit-config-and-bad-override",
        "audit-unknown-override",
        "ignore-nothing",
        "ignore-unknown-kind",
        "ignore-one-unknown-kind",
        "instrument-object",
        "instrument-url",
    ],
)
def test_public_entry_points_reject_bad_arguments(call: Any, message: str) -> None:
    """Bad arguments to audit(), ignore() and instrument() fail at once with a clear message."""
    with pytest.raises(ConfigError, match=re.escape(message)):
        call()


def test_ignore_error_lists_allowed_kinds() -> None:
    """The message for an unknown kind lists every kind that is allowed."""
    with pytest.raises(ConfigError) as caught:
        sqlaudit.ignore("bogus")
    for kind in KINDS:
        assert kind in str(caught.value)


def test_nan_is_not_a_threshold() -> None:
    """NaN compares false with everything, so it would silently disable a check: rejected."""
    for field in ("slow_query_ms", "max_db_time_ms", "min_group_ms"):
        with pytest.raises(ConfigError, match="finite"):
            AuditConfig(**{field: math.nan})


def test_audit_overrides_are_validated_every_time_though_configs_are_reused() -> None:
    """``audit(**overrides)`` reuses the config it built for the same overrides (a request's
    fixed cost, issue 20), but a value equal to a cached one with another type (True == 1,
    1.0 == 1) is validated on its own, and unhashable values work as before."""
    first = sqlaudit.audit("a", max_queries=1, ignore=("slow_query",))
    again = sqlaudit.audit("b", ignore=("slow_query",), max_queries=1)
    assert again.config is first.config
    assert sqlaudit.audit("c").config is sqlaudit.audit("d").config
    with pytest.raises(ConfigError, match="max_queries"):
        sqlaudit.audit("e", max_queries=True)
    with pytest.raises(ConfigError, match="max_queries"):
        sqlaudit.audit("f", max_queries=1.0)
    listed = sqlaudit.audit("g", allow_paths=["tests/*"])
    assert listed.config.allow_paths == ("tests/*",)
    assert sqlaudit.audit("h", max_queries=2).config.max_queries == 2
