"""sqlaudit: SQL query auditing middleware for SQLAlchemy 2.x.

``instrument(engine)`` once; ``with audit("GET /users") as report:`` around a unit of work;
read ``report.findings`` (N+1, repeated queries, write loops, budgets, slow statements).
Integrations are imported by path: ``sqlaudit.wsgi``, ``sqlaudit.asgi``, ``sqlaudit.otel``,
``sqlaudit.pytest_plugin``.
"""

from __future__ import annotations

from sqlaudit._audit import audit, current_report, ignore
from sqlaudit.capture.instrumentation import ExtensionInstrumentation, Instrumentation, instrument
from sqlaudit.errors import AuditFailed, ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.findings import KINDS, Finding, Severity
from sqlaudit.model.records import CallSite, OrmLoad, QueryRecord, StatementKind, UnitRecord
from sqlaudit.report import AuditReport

__version__ = "0.1.0.dev0"

__all__ = [
    "KINDS",
    "AuditConfig",
    "AuditFailed",
    "AuditReport",
    "CallSite",
    "ConfigError",
    "ExtensionInstrumentation",
    "Finding",
    "Instrumentation",
    "OrmLoad",
    "QueryRecord",
    "Severity",
    "StatementKind",
    "UnitRecord",
    "__version__",
    "audit",
    "current_report",
    "ignore",
    "instrument",
]
