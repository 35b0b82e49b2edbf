"""Allowlists: which findings a config lets pass (``allow_relationships``, ``allow_paths``,
``allow_sql``), and the rule that let each one pass.

Applied in one place, to each detector's findings before they are combined, ranked and capped
(``detectors.run_detectors``), so an allowed finding never takes the place of another under
``max_findings``. Allowed findings are kept apart (``AuditReport.allowed``) and shown as
allowed in the text report, the JSON and the pytest summary: an allowlist never hides one
silently. The models: Bullet's safelist (a class and an association) and Prosopite's
``allow_stack_paths`` and ``ignore_queries``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from sqlaudit.model.frozen import evolve
from sqlaudit.model.paths import relative

if TYPE_CHECKING:
    from sqlaudit.model.config import AuditConfig
    from sqlaudit.model.findings import Finding

__all__ = ["allowed_by", "apply"]


def apply(findings: Iterable[Finding], config: AuditConfig) -> tuple[list[Finding], list[Finding]]:
    """``findings`` split into (not allowed, allowed with ``Finding.allowed`` set)."""
    if not config.allowlists:
        return list(findings), []
    kept: list[Finding] = []
    allowed: list[Finding] = []
    for finding in findings:
        rule = finding.allowed or allowed_by(finding, config)
        if rule is None:
            kept.append(finding)
        else:
            allowed.append(evolve(finding, allowed=rule))
    return kept, allowed


def allowed_by(finding: Finding, config: AuditConfig) -> str | None:
    """The first rule of ``config`` that allows ``finding``, as text naming the setting and
    the pattern (``'allow_relationships "User.comments"'``); None when none does."""
    if finding.relationship and config.allow_relationships:
        # A loop's combined finding names several ("Stream.comments, Stream.streamer"): it is
        # allowed only when every one of them is.
        subjects = finding.relationship.split(", ")
        patterns = sorted(config.allow_relationships)
        matched = [next((p for p in patterns if fnmatchcase(s, p)), None) for s in subjects]
        if all(matched):
            shown = ", ".join(dict.fromkeys(f'"{p}"' for p in matched if p))
            return f"allow_relationships {shown}"
    if config.allow_paths:
        sites = (*finding.stack, finding.location, finding.loop)
        files = dict.fromkeys(s.file for s in sites if s is not None)
        for pattern in config.allow_paths:
            for file in files:
                if fnmatchcase(relative(file), pattern) or fnmatchcase(
                    file.replace(os.sep, "/"), pattern
                ):
                    return f'allow_paths "{pattern}"'
    if config.allow_sql:
        texts = [t for t in (finding.fingerprint, finding.sql) if t]
        for pattern in config.allow_sql:
            if any(re.search(pattern, text, re.IGNORECASE) for text in texts):
                return f'allow_sql "{pattern}"'
    return None
