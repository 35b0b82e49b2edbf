"""The package's shape (ARCHITECTURE.md): small modules, no runtime import cycle. The layers
themselves are checked by import-linter (``lint-imports`` in ``make test``, contracts in
pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest

import sqlaudit

PACKAGE = Path(sqlaudit.__file__).resolve().parent
#: A module past this many lines is doing more than one thing (STYLE.md).
MAX_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    """Every module of the package stays under 400 lines."""
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("sqlaudit", exclude_type_checking_imports=True)


def test_no_runtime_import_cycle(graph: grimp.ImportGraph) -> None:
    """No module imports (directly or not) a module that imports it back at run time; imports
    for annotations only (``if TYPE_CHECKING:``) do not count."""
    cycles = sorted(
        {
            tuple(sorted((module, imported)))
            for module in graph.modules
            for imported in graph.find_modules_directly_imported_by(module)
            if graph.chain_exists(importer=imported, imported=module)
        }
    )
    assert cycles == []


def test_detectors_read_only_the_model_and_sql(graph: grimp.ImportGraph) -> None:
    """Detectors are pure functions of plain data: they import nothing of capture, report,
    reporters or the integrations (so each is testable with hand-built records)."""
    allowed = ("sqlaudit.detectors", "sqlaudit.model", "sqlaudit.sql", "sqlaudit._internal",
               "sqlaudit._validate", "sqlaudit.errors")  # fmt: skip
    imported = {
        dep
        for module in graph.find_descendants("sqlaudit.detectors") | {"sqlaudit.detectors"}
        for dep in graph.find_modules_directly_imported_by(module)
        if dep.startswith("sqlaudit")
    }
    assert sorted(d for d in imported if not d.startswith(allowed)) == []
