"""The façade: ``sqlaudit.__all__`` and what ``import sqlaudit`` costs.

Renaming a public name is a breaking change (DESIGN "Public contract"), and importing the
package must not pull in any optional dependency or integration (DESIGN "Architecture").
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import pytest

import sqlaudit

#: The names DESIGN.md's public contract spells out.
CONTRACT = {
    "AuditConfig",
    "AuditFailed",
    "ConfigError",
    "Finding",
    "Severity",
    "audit",
    "ignore",
    "instrument",
}
#: The other names the façade exports: the types users meet through the contract's objects
#: (``instrument()`` returns an Instrumentation, ``report.statements`` holds QueryRecords...).
EXTRAS = {
    "KINDS",
    "AuditReport",
    "CallSite",
    "ExtensionInstrumentation",
    "Instrumentation",
    "OrmLoad",
    "QueryRecord",
    "StatementKind",
    "UnitRecord",
    "__version__",
    "current_report",
}

#: Top-level packages ``import sqlaudit`` must not import.
OPTIONAL = [
    "opentelemetry", "pytest", "_pytest", "flask", "werkzeug", "fastapi", "starlette", "django",
    "celery", "kombu", "rq", "redis",
]  # fmt: skip
#: sqlparse is a dependency, but costs ~1 ms per uncached statement: only loaded when needed.
LAZY = ["sqlparse"]
#: Integrations are imported by path, never by the façade.
INTEGRATIONS = [
    "sqlaudit.wsgi", "sqlaudit.asgi", "sqlaudit.flask", "sqlaudit.jobs", "sqlaudit.otel",
    "sqlaudit.pytest_plugin",
]  # fmt: skip
#: Each integration module and the optional packages that importing it must not pull in: the
#: Flask integration uses no Flask API, and each job integration imports only its own library.
INTEGRATION_DEPENDENCIES = {
    "sqlaudit.flask": ["flask", "werkzeug", "opentelemetry", "celery", "rq"],
    "sqlaudit.jobs": ["celery", "kombu", "rq", "redis", "opentelemetry"],
    "sqlaudit.jobs.celery": ["rq", "opentelemetry", "flask"],
    "sqlaudit.jobs.rq": ["celery", "kombu", "flask"],  # redis-py 8 imports OpenTelemetry itself
}


def ruff_isort_key(name: str) -> tuple[int, str]:
    """RUF022's "isort-style" order: SCREAMING_CASE, then CamelCase, then everything else."""
    if len(name) > 1 and name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted() -> None:
    """``__all__`` is kept in ruff's RUF022 order without duplicates, so diffs stay readable."""
    assert sqlaudit.__all__ == sorted(sqlaudit.__all__, key=ruff_isort_key)
    assert len(sqlaudit.__all__) == len(set(sqlaudit.__all__))


def test_all_is_the_public_contract() -> None:
    """``__all__`` is exactly the contract plus the known extras: nothing dropped or leaked."""
    assert set(sqlaudit.__all__) == CONTRACT | EXTRAS


@pytest.mark.parametrize("name", sqlaudit.__all__)
def test_name_resolves(name: str) -> None:
    """Every exported name exists on the package (``from sqlaudit import *`` works)."""
    assert getattr(sqlaudit, name) is not None


def test_star_import() -> None:
    """A star import binds exactly ``__all__``."""
    namespace: dict[str, object] = {}
    exec("from sqlaudit import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(sqlaudit.__all__)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in sqlaudit.__all__
        if inspect.isclass(getattr(sqlaudit, n)) or inspect.isfunction(getattr(sqlaudit, n))
    ],
)
def test_public_classes_and_functions_have_docstrings(name: str) -> None:
    """Each exported class and function documents itself (not an inherited or generated doc)."""
    obj = getattr(sqlaudit, name)
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else obj.__doc__
    assert doc
    assert doc.strip()
    assert not doc.startswith(f"{name}(")  # NamedTuple's generated "Name(field, ...)"


def test_version_is_a_string() -> None:
    """``__version__`` is a non-empty string."""
    assert isinstance(sqlaudit.__version__, str)
    assert sqlaudit.__version__


def modules_after(module: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter that ran only ``import <module>``."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(result.stdout))


@pytest.fixture(scope="module")
def modules_after_import() -> set[str]:
    """``sys.modules`` of a fresh interpreter that ran only ``import sqlaudit``."""
    return modules_after("sqlaudit")


def imported(modules: set[str], package: str) -> list[str]:
    """The modules in ``modules`` that are ``package`` or inside it."""
    return sorted(m for m in modules if m == package or m.startswith(package + "."))


@pytest.mark.parametrize("package", OPTIONAL + LAZY)
def test_import_pulls_in_no_optional_dependency(
    modules_after_import: set[str], package: str
) -> None:
    """``import sqlaudit`` imports no optional dependency, framework or sqlparse."""
    assert imported(modules_after_import, package) == []


@pytest.mark.parametrize("module", INTEGRATIONS)
def test_facade_imports_no_integration(modules_after_import: set[str], module: str) -> None:
    """The WSGI, ASGI, OpenTelemetry and pytest integrations load only when imported by path."""
    assert imported(modules_after_import, module) == []


def test_facade_import_does_import_sqlaudit(modules_after_import: set[str]) -> None:
    """The subprocess really imported sqlaudit (guards the negative checks above)."""
    assert "sqlaudit" in modules_after_import
    assert "sqlaudit.sql.fingerprint" in modules_after_import


@pytest.mark.parametrize("module", sorted(INTEGRATION_DEPENDENCIES))
def test_integrations_import_only_their_own_dependency(module: str) -> None:
    """Importing one integration imports none of the other integrations' libraries (and the
    Flask integration not even Flask): each works without the others installed."""
    modules = modules_after(module)
    assert module in modules
    for package in INTEGRATION_DEPENDENCIES[module]:
        assert imported(modules, package) == [], (module, package)
