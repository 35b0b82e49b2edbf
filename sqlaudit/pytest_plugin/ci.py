"""CI output of the pytest plugin: SARIF 2.1.0, GitHub Actions annotations, JUnit properties.

Built from the per-test summaries the controller collects (``session.summarize``), so it works
the same under pytest-xdist. No pytest import.

* :func:`sarif_log`: one SARIF ``result`` per finding of every audited test (``ruleId`` = the
  finding kind, ``level`` from its severity, the diagnosis and the fix as the message, the file
  relative to the project root and the line), one ``rule`` per kind with its help text.
  Findings an allowlist let pass are left out (they are never exported); findings the baseline
  accepted are kept with an external suppression, as code scanning expects for known issues.
* :func:`workflow_commands`: GitHub Actions workflow commands (``::warning file=...,line=...::``),
  escaped as ``@actions/core`` escapes them: ``%``, CR and LF in the message; also ``:`` and
  ``,`` in properties.
* :func:`junit_properties`: the ``(name, value)`` pairs put on a test's ``user_properties``,
  which ``--junitxml`` writes as ``<properties>`` of its ``<testcase>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from sqlaudit.pytest_plugin.rules import RULES

__all__ = [
    "SARIF_SCHEMA",
    "escape_data",
    "escape_property",
    "junit_properties",
    "sarif_log",
    "workflow_commands",
    "write_sarif",
]

#: The ``$schema`` of the SARIF files sqlaudit writes (the schema GitHub code scanning names).
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
#: ``originalUriBaseIds`` key the result paths are relative to.
_ROOT_ID = "PROJECTROOT"
_LEVELS = {"error": "error", "warning": "warning", "info": "note"}

#: Kinds about what the data becomes (atomicity, lost or stale data), not about speed.
_CORRECTNESS = frozenset(
    {
        "autocommit_writes",
        "ineffective_rollback",
        "discarded_writes",
        "stale_identity_map",
        "autocommit_lock",
        "autocommit_read_modify_write",
        "split_transaction",
    }
)


def _rule(kind: str) -> dict[str, Any]:
    severity, short, text = RULES.get(kind, ("warning", kind, ""))
    name = "".join(word.capitalize() for word in kind.split("_"))
    help_text = f"{short}. {text}" if text else short
    return {
        "id": kind,
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": help_text},
        "help": {
            "text": help_text,
            "markdown": f"**{short}**\n\n{text}" if text else short,
        },
        "defaultConfiguration": {"level": _LEVELS.get(severity, "warning")},
        "properties": {"tags": ["sql", "correctness" if kind in _CORRECTNESS else "performance"]},
    }


def _where(finding: Mapping[str, Any], summary: Mapping[str, Any]) -> tuple[str, int] | None:
    """The finding's (file, line), else the test's; None when neither is known."""
    file, line = finding.get("file"), finding.get("line")
    if file and line:
        return str(file), int(line)
    where = summary.get("location")
    if where:
        return str(where[0]), int(where[1])
    return None


def _fingerprint(finding: Mapping[str, Any], nodeid: str) -> str:
    text = json.dumps([finding.get("identity"), nodeid], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _uri(file: str) -> tuple[str, bool]:
    """(URI reference, relative to the project root?) of a summary's file path."""
    if os.path.isabs(file):
        return Path(file).as_uri(), False
    return quote(PurePosixPath(file).as_posix()), True


def sarif_log(
    tests: Mapping[str, Mapping[str, Any]],
    *,
    root: Path,
    version: str,
    baseline: str = "",
) -> dict[str, Any]:
    """The SARIF 2.1.0 log of the findings in ``tests`` (nodeid -> summary)."""
    kinds = sorted(
        {f["kind"] for s in tests.values() for f in s["findings"] if f.get("outcome") != "allowed"}
    )
    index = {kind: i for i, kind in enumerate(kinds)}
    results = []
    for nodeid in sorted(tests):
        summary = tests[nodeid]
        for f in summary["findings"]:
            if f.get("outcome") == "allowed":
                continue
            fix = f.get("fix") or ""
            text = f["message"] + (f"; fix: {fix}" if fix else "")
            result: dict[str, Any] = {
                "ruleId": f["kind"],
                "ruleIndex": index[f["kind"]],
                "level": _LEVELS.get(f["severity"], "warning"),
                "message": {"text": text},
                "partialFingerprints": {"sqlauditFinding/v1": _fingerprint(f, nodeid)},
                "properties": {
                    "test": nodeid,
                    "outcome": f.get("outcome", "reported"),
                    "fails": bool(f.get("fails")),
                },
            }
            if f.get("count"):
                result["occurrenceCount"] = int(f["count"])
            where = _where(f, summary)
            if where is not None:
                uri, relative = _uri(where[0])
                artifact: dict[str, Any] = {"uri": uri}
                if relative:
                    artifact["uriBaseId"] = _ROOT_ID
                location: dict[str, Any] = {
                    "physicalLocation": {
                        "artifactLocation": artifact,
                        "region": {"startLine": max(1, where[1])},
                    }
                }
                if f.get("function"):
                    location["logicalLocations"] = [{"name": f["function"], "kind": "function"}]
                result["locations"] = [location]
            if f.get("outcome") == "accepted":
                why = f"accepted by the baseline {baseline}" if baseline else "accepted"
                result["suppressions"] = [{"kind": "external", "justification": why}]
            results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sqlaudit",
                        "version": version,
                        "rules": [_rule(kind) for kind in kinds],
                    }
                },
                "originalUriBaseIds": {_ROOT_ID: {"uri": root.resolve().as_uri() + "/"}},
                "results": results,
            }
        ],
    }


def write_sarif(path: Path, log: Mapping[str, Any]) -> None:
    """Write ``log`` to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(log, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as ``@actions/core``'s ``escapeData``."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value, escaped as ``@actions/core``'s ``escapeProperty``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_commands(
    tests: Mapping[str, Mapping[str, Any]], *, root: Path, workspace: Path | None = None
) -> list[str]:
    """One ``::error`` (a finding that fails its test), ``::warning`` or ``::notice`` (info)
    workflow command per distinct finding and place; findings accepted by the baseline or
    allowed are left out. Paths are relative to ``workspace`` (``GITHUB_WORKSPACE``) when the
    file lies under it, else to ``root``."""
    seen: dict[tuple[str, str, int, str, str], list[str]] = {}
    for nodeid in sorted(tests):
        summary = tests[nodeid]
        for f in summary["findings"]:
            outcome = f.get("outcome", "reported")
            if outcome in ("accepted", "allowed"):
                continue
            if outcome == "failing":
                command = "error"
            else:
                command = "notice" if f["severity"] == "info" else "warning"
            where = _where(f, summary)
            file, line = ("", 0) if where is None else where
            if file:
                file = _workspace_path(file, root, workspace)
            fix = f.get("fix") or ""
            message = f["message"] + (f"\nfix: {fix}" if fix else "")
            seen.setdefault((command, file, line, f["kind"], message), []).append(nodeid)
    lines = []
    for (command, file, line, kind, message), nodeids in seen.items():
        props = [f"file={escape_property(file)}", f"line={line}"] if file else []
        props.append(f"title={escape_property(f'sqlaudit {kind}')}")
        more = f" and {len(nodeids) - 1} more" if len(nodeids) > 1 else ""
        text = f"{message}\ntest: {nodeids[0]}{more}"
        lines.append(f"::{command} {','.join(props)}::{escape_data(text)}")
    return lines


def _workspace_path(file: str, root: Path, workspace: Path | None) -> str:
    path = Path(file) if os.path.isabs(file) else root / file
    for base in (workspace, root):
        if base is None:
            continue
        try:
            return path.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def junit_properties(summary: Mapping[str, Any]) -> list[tuple[str, object]]:
    """``sqlaudit_statements``, one ``sqlaudit_statements_<kind>`` per statement kind,
    ``sqlaudit_db_time_ms``, ``sqlaudit_findings`` and ``sqlaudit_failing`` of one test."""
    props: list[tuple[str, object]] = [("sqlaudit_statements", summary["statements"])]
    props += [(f"sqlaudit_statements_{k}", n) for k, n in sorted(summary["counts"].items())]
    shown = [f for f in summary["findings"] if f.get("outcome") != "allowed"]
    props += [
        ("sqlaudit_db_time_ms", summary["db_time_ms"]),
        ("sqlaudit_findings", len(shown)),
        ("sqlaudit_failing", summary["failing"]),
    ]
    return props
