"""The pytest plugin's options and ini keys, resolved into :class:`Settings`. No pytest import.

Every command-line option has an ini key of the same name (``--sqlaudit-fail-on`` and
``sqlaudit_fail_on``); the option wins. Paths from the command line are relative to where
pytest was started, paths from the ini file to the ini file's directory.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlaudit.errors import ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.model.findings import Severity
from sqlaudit.pytest_plugin import baseline as _baseline
from sqlaudit.pytest_plugin.policy import DEFAULT_FAIL_KINDS, parse_kinds

__all__ = [
    "ALLOWLISTS",
    "ANNOTATIONS",
    "INI",
    "OPTIONS",
    "SCOPES",
    "Settings",
    "narrowed",
    "resolve",
]

#: What a test's audit covers: the test function only, fixture setup too, or also teardown.
SCOPES = ("call", "setup+call", "all")

#: When to print GitHub Actions workflow commands for findings.
ANNOTATIONS = ("auto", "github", "off")

#: ``(flag, argparse keywords, help)``; each also has the ini key ``flag`` in snake case.
OPTIONS: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("--sqlaudit", {"action": "store_true"},
     "audit every test; fail it on findings at or above --sqlaudit-severity"),
    ("--sqlaudit-severity", {"choices": [str(s) for s in Severity]},
     "severity that fails a test (default: warning)"),
    ("--sqlaudit-fail-on", {"metavar": "KINDS"},
     "comma-separated finding kinds that fail tests, or 'all' (default: all but the timing "
     "ones, slow_query and long_transaction); audits every test"),
    ("--sqlaudit-scope", {"choices": SCOPES},
     "what a test's audit covers (default: call, the test function only)"),
    ("--sqlaudit-report", {"action": "store_true"},
     "terminal summary: worst tests by statements and DB time, findings by kind"),
    ("--sqlaudit-json", {"metavar": "PATH"}, "write every audited test's report as JSON"),
    ("--sqlaudit-baseline", {"metavar": "PATH"},
     "per-test ceilings and accepted findings: more fails, less is reported"),
    ("--sqlaudit-sarif", {"metavar": "PATH"},
     "write every finding as SARIF 2.1.0 (GitHub code scanning: file, line, fix); audits "
     "every test"),
    ("--sqlaudit-annotations", {"choices": ANNOTATIONS},
     "GitHub Actions annotations (::error/::warning file=...,line=...) per finding: auto "
     "(when GITHUB_ACTIONS=true, the default), github (always) or off"),
)  # fmt: skip
#: The ini keys of the allowlists: ``AuditConfig`` fields of the same name without the prefix.
ALLOWLISTS = ("sqlaudit_allow_relationships", "sqlaudit_allow_paths", "sqlaudit_allow_sql")
#: ``(ini key, type, help)``.
INI = (
    ("sqlaudit", "bool", "audit every test and fail on findings (like --sqlaudit)"),
    ("sqlaudit_severity", "string", "severity that fails a test: info, warning, error"),
    ("sqlaudit_fail_on", "string", "finding kinds that fail tests (like --sqlaudit-fail-on)"),
    ("sqlaudit_scope", "string", "call, setup+call or all (like --sqlaudit-scope)"),
    ("sqlaudit_report", "bool", "print the sqlaudit terminal summary"),
    ("sqlaudit_json", "string", "JSON report path, relative to the ini file"),
    ("sqlaudit_baseline", "string", "baseline path, relative to the ini file"),
    ("sqlaudit_sarif", "string", "SARIF 2.1.0 output path, relative to the ini file"),
    ("sqlaudit_annotations", "string", "auto, github or off (like --sqlaudit-annotations)"),
    ("sqlaudit_allow_relationships", "linelist",
     'allowlist: relationships whose findings pass, e.g. "User.comments" (globs allowed)'),
    ("sqlaudit_allow_paths", "linelist",
     'allowlist: findings with a frame in files matching these globs pass, e.g. "app/legacy/*"'),
    ("sqlaudit_allow_sql", "linelist",
     "allowlist: findings whose SQL fingerprint matches these regular expressions pass"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Settings:
    """The plugin's options and ini values, resolved and validated."""

    #: Audit every test (``--sqlaudit``, ``--sqlaudit-fail-on``, baseline, report or JSON).
    audit_all: bool = False
    #: Fail every test on findings (``--sqlaudit``, ``--sqlaudit-fail-on`` or a baseline).
    fail_all: bool = False
    severity: Severity = Severity.WARNING
    fail_kinds: frozenset[str] = DEFAULT_FAIL_KINDS
    scope: str = "call"
    report: bool = False
    json_path: Path | None = None
    baseline_path: Path | None = None
    #: The baseline path as the user can type it (relative to where pytest was started).
    baseline_arg: str = ""
    update: _baseline.Mode | None = None
    root: Path = Path()
    #: The JSON path as the user can type it (relative to where pytest was started).
    json_arg: str = ""
    #: The allowlists of the ini file (``sqlaudit_allow_*``), as AuditConfig fields.
    allowlists: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sarif_path: Path | None = None
    #: The SARIF path as the user can type it (relative to where pytest was started).
    sarif_arg: str = ""
    #: Print GitHub Actions annotations (``--sqlaudit-annotations``, resolved against the
    #: environment's ``GITHUB_ACTIONS``).
    annotations: bool = False

    @property
    def base_config(self) -> AuditConfig:
        # A test body does not own the transactions its fixtures hold: a session fixture opens
        # one in setup (or at the body's first query) and ends it at teardown.
        return AuditConfig.create(
            on_finding="ignore",
            fail_on=self.severity,
            open_transactions=False,
            **dict(self.allowlists),
        )

    def command(self, mode: str, *test_ids: str) -> str:
        """The pytest command that updates the baseline (for failure and summary text)."""
        args = ["pytest", f"--sqlaudit-baseline={self.baseline_arg}"]
        args.append(f"--sqlaudit-update-baseline={mode}")
        return " ".join(shlex.quote(a) for a in [*args, *test_ids])


def resolve(
    get: Callable[[str], Any],
    path: Callable[[str], tuple[Path | None, str]],
    update: Any,
    root: Path,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings from ``get(name)`` (option, else ini value) and ``path(name)`` (resolved path
    and how to type it); ConfigError names a bad value. ``environ`` (default ``os.environ``)
    tells whether this runs under GitHub Actions."""
    fail_on = get("sqlaudit_fail_on")
    fail_kinds = DEFAULT_FAIL_KINDS
    if fail_on:
        fail_kinds = parse_kinds(fail_on, setting="sqlaudit_fail_on")
        if not fail_kinds:  # "," or " ": the user asked for kinds and named none
            raise ConfigError(
                f"sqlaudit_fail_on must be comma-separated finding kinds or 'all', got {fail_on!r}"
            )
    scope = get("sqlaudit_scope") or "call"
    if scope not in SCOPES:
        raise ConfigError(f"sqlaudit_scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    json_path, json_arg = path("sqlaudit_json")
    if json_path is not None and json_path.is_dir():
        raise ConfigError(
            f"sqlaudit_json must be the path of a file to write, got {json_arg!r} (a directory)"
        )
    sarif_path, sarif_arg = path("sqlaudit_sarif")
    if sarif_path is not None and sarif_path.is_dir():
        raise ConfigError(
            f"sqlaudit_sarif must be the path of a file to write, got {sarif_arg!r} (a directory)"
        )
    annotations = get("sqlaudit_annotations") or "auto"
    if annotations not in ANNOTATIONS:
        raise ConfigError(
            f"sqlaudit_annotations must be one of {', '.join(ANNOTATIONS)}, got {annotations!r}"
        )
    env = os.environ if environ is None else environ
    # GitHub sets GITHUB_ACTIONS=true in every step of a workflow run ("Default environment
    # variables", GitHub Actions docs).
    github = annotations == "github" or (
        annotations == "auto" and env.get("GITHUB_ACTIONS") == "true"
    )
    baseline, baseline_arg = path("sqlaudit_baseline")
    if update and baseline is None:
        raise ConfigError("--sqlaudit-update-baseline needs --sqlaudit-baseline=PATH")
    fail_all = bool(get("sqlaudit") or fail_on or baseline)
    allowlists = tuple(
        (name[len("sqlaudit_") :], tuple(values))
        for name in ALLOWLISTS
        if (values := get(name) or ())
    )
    # Validated now, with the ini key's name: a bad one is a usage error, not a failing test.
    for name, values in allowlists:
        try:
            AuditConfig.create(**{name: values})
        except ConfigError as exc:
            raise ConfigError(f"sqlaudit_{exc}") from None
    return Settings(
        audit_all=fail_all or bool(get("sqlaudit_report") or json_path or sarif_path),
        fail_all=fail_all,
        severity=Severity.parse(get("sqlaudit_severity") or "warning", setting="sqlaudit_severity"),
        fail_kinds=fail_kinds,
        scope=scope,
        report=bool(get("sqlaudit_report")),
        json_path=json_path,
        baseline_path=baseline,
        baseline_arg=baseline_arg,
        update=update,
        root=root,
        json_arg=json_arg,
        allowlists=allowlists,
        sarif_path=sarif_path,
        sarif_arg=sarif_arg,
        annotations=github,
    )


def narrowed(args: Iterable[str], start: Path, root: Path) -> set[str]:
    """Files named with ``file::test`` arguments (collected only in part), rootdir-relative."""
    files = set()
    for arg in args:
        if "::" in arg:
            path = (start / arg.split("::", 1)[0]).resolve()
            try:
                files.add(path.relative_to(root).as_posix())
            except ValueError:
                continue
    return files
