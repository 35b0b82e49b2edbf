"""Baseline files: per-test statement ceilings and accepted findings, as sorted JSON.

A baseline lets a large suite adopt sqlaudit without fixing everything first. It holds one
entry per test id::

    {
      "sqlaudit_baseline": 1,
      "tests": {
        "tests/test_feed.py::test_feed": {
          "counts": {"insert": 1, "select": 4},
          "findings": [
            {"kind": "n_plus_one", "subject": "Stream.comments",
             "file": "tests/test_feed.py", "function": "test_feed"}
          ]
        }
      }
    }

``counts`` are ceilings per statement kind (transaction control never appears): more fails
the test, fewer is reported as tightenable. ``findings`` are the identities of findings that
are accepted for now (``Finding.identity`` with the file relative to the rootdir): a finding
not listed fails. Nothing here knows about pytest; the plugin decides when to read and write.
Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "FORMAT_VERSION",
    "BaselineError",
    "Diff",
    "Entry",
    "Identity",
    "compare",
    "describe",
    "dumps",
    "format_identity",
    "load",
    "merge",
    "stale",
    "write",
]

FORMAT_VERSION = 1
#: ``(kind, relationship or fingerprint, file, function)``, as in ``Finding.identity``.
Identity = tuple[str, str, str, str]
Mode = Literal["tighten", "all"]
_IDENTITY_KEYS = ("kind", "subject", "file", "function")


class BaselineError(ValueError):
    """The baseline file cannot be used; the message names the file, the problem and the fix."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One test's ceilings: statements per kind and the accepted finding identities."""

    counts: Mapping[str, int] = field(default_factory=dict)
    findings: frozenset[Identity] = frozenset()

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {k: n for k, n in sorted(self.counts.items()) if n},
            "findings": [dict(zip(_IDENTITY_KEYS, i, strict=True)) for i in sorted(self.findings)],
        }


@dataclass(frozen=True, slots=True)
class Diff:
    """A test's numbers against its baseline entry (``known`` False: no entry yet)."""

    known: bool
    #: ``(kind, ceiling, now)`` where ``now > ceiling``.
    increases: tuple[tuple[str, int, int], ...] = ()
    #: ``(kind, ceiling, now)`` where ``now < ceiling``.
    decreases: tuple[tuple[str, int, int], ...] = ()
    new_findings: tuple[Identity, ...] = ()
    fixed_findings: tuple[Identity, ...] = ()

    @property
    def regressed(self) -> bool:
        """More statements of some kind than the ceiling, or a finding the entry lacks."""
        return bool(self.increases or self.new_findings)

    @property
    def tightenable(self) -> bool:
        """Fewer statements than a ceiling, or an accepted finding that is gone."""
        return bool(self.decreases or self.fixed_findings)


def load(path: Path) -> dict[str, Entry] | None:
    """The entries of the baseline at ``path``; None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BaselineError(f"cannot read baseline {path}: {exc}") from None
    fix = "fix the file, or delete it and rerun with --sqlaudit-update-baseline"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BaselineError(f"baseline {path} is not valid JSON ({exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("sqlaudit_baseline") != FORMAT_VERSION:
        raise BaselineError(
            f"baseline {path} is not a sqlaudit baseline of format {FORMAT_VERSION} "
            f'(expected {{"sqlaudit_baseline": {FORMAT_VERSION}, "tests": {{...}}}}); {fix}'
        )
    tests = data.get("tests")
    if not isinstance(tests, dict):
        raise BaselineError(f'baseline {path}: "tests" must be an object; {fix}')
    entries: dict[str, Entry] = {}
    for test_id, raw in tests.items():
        try:
            entries[test_id] = _entry(raw)
        except (TypeError, ValueError, KeyError) as exc:
            raise BaselineError(
                f"baseline {path}: entry {test_id!r} is malformed ({exc}); {fix}"
            ) from None
    return entries


def _entry(raw: Any) -> Entry:
    counts = raw["counts"]
    findings = raw["findings"]
    if not isinstance(counts, dict) or not isinstance(findings, list):
        raise TypeError('"counts" must be an object and "findings" a list')
    checked: dict[str, int] = {}
    for kind, n in counts.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"count of {kind!r} must be an int >= 0, got {n!r}")
        checked[str(kind)] = n
    identities = frozenset(
        (str(f["kind"]), str(f["subject"]), str(f["file"]), str(f["function"])) for f in findings
    )
    return Entry(checked, identities)


def compare(entry: Entry | None, counts: Mapping[str, int], findings: Iterable[Identity]) -> Diff:
    """This run's ``counts`` and failing ``findings`` against ``entry``."""
    found = frozenset(findings)
    if entry is None:
        return Diff(known=False, new_findings=tuple(sorted(found)))
    increases = []
    decreases = []
    for kind in sorted(set(counts) | set(entry.counts)):
        ceiling = entry.counts.get(kind, 0)
        now = counts.get(kind, 0)
        if now > ceiling:
            increases.append((kind, ceiling, now))
        elif now < ceiling:
            decreases.append((kind, ceiling, now))
    return Diff(
        known=True,
        increases=tuple(increases),
        decreases=tuple(decreases),
        new_findings=tuple(sorted(found - entry.findings)),
        fixed_findings=tuple(sorted(entry.findings - found)),
    )


def describe(diff: Diff) -> list[str]:
    """Human lines for ``diff``: what went up (fails), what went down (tightenable)."""
    lines = [
        f"{kind}: ceiling {old}, now {new} (+{new - old})" for kind, old, new in diff.increases
    ]
    lines += [f"new finding: {format_identity(i)}" for i in diff.new_findings]
    lines += [
        f"{kind}: ceiling {old}, now {new} (tightenable)" for kind, old, new in diff.decreases
    ]
    lines += [f"fixed finding (tightenable): {format_identity(i)}" for i in diff.fixed_findings]
    return lines


def format_identity(identity: Identity) -> str:
    kind, subject, file, function = identity
    where = f" in {file}" if file else ""
    if function:
        where += f" {function}()"
    return f"{kind} {subject or '(no subject)'}{where}"


def merge(
    old: Mapping[str, Entry],
    results: Mapping[str, Entry],
    mode: Mode,
    stale: Iterable[str] = (),
) -> dict[str, Entry]:
    """The baseline after an update run.

    ``results`` holds this run's entry of every test that completed. ``"all"`` takes them as
    they are; ``"tighten"`` only lowers ceilings and drops fixed findings (a new test gets its
    counts but none of its findings). Entries of tests not run are kept; ``stale`` ones go.
    """
    merged = dict(old)
    for test_id in stale:
        merged.pop(test_id, None)
    for test_id, now in results.items():
        before = old.get(test_id)
        if mode == "all":
            merged[test_id] = now
        elif before is None:
            merged[test_id] = Entry(dict(now.counts), frozenset())
        else:
            kinds = set(before.counts) & set(now.counts)
            counts = {k: min(before.counts[k], now.counts[k]) for k in kinds}
            merged[test_id] = Entry(counts, before.findings & now.findings)
    return merged


def dumps(entries: Mapping[str, Entry]) -> str:
    """The file's text: sorted keys, two-space indent, a final newline (stable diffs)."""
    data = {
        "sqlaudit_baseline": FORMAT_VERSION,
        "tests": {test_id: entries[test_id].to_json() for test_id in sorted(entries)},
    }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(path: Path, entries: Mapping[str, Entry]) -> None:
    """Replace ``path`` atomically (a reader never sees half a file)."""
    text = dumps(entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def stale(
    entries: Iterable[str],
    *,
    collected: Iterable[str],
    files: Iterable[str],
    narrowed: Iterable[str],
    root: Path,
) -> list[str]:
    """Test ids of entries whose test no longer exists.

    An entry is stale when its file is gone, or when its file was collected in full this
    session (not narrowed to some of its tests with ``file::test`` arguments) and the test was
    not among the tests collected (deselected tests count as collected).
    """
    known = set(collected)
    collected_files = set(files)
    narrowed_files = set(narrowed)
    found = []
    for test_id in entries:
        if test_id in known:
            continue
        file = test_id.split("::", 1)[0]
        if not (root / file).exists() or (file in collected_files and file not in narrowed_files):
            found.append(test_id)
    return sorted(found)
