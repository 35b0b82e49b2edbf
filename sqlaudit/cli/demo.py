"""``sqlaudit demo``: run the example BFF of ``examples/bff`` with each endpoint's SQL problem
planted and fixed, each audited as one unit of work (see ``sqlaudit.cli``).

Only the standard library, sqlaudit and SQLAlchemy are imported here; the example service is
imported when the demo runs, from the source checkout's ``examples/`` directory; the
OpenTelemetry export (``--otel-jsonl``) imports ``sqlaudit.otel`` only when asked for.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol, cast

import sqlalchemy
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

import sqlaudit
from sqlaudit.model.findings import TIMING_KINDS

__all__ = ["EXIT_OK", "EXIT_UNEXPECTED", "EXIT_USAGE", "demo"]

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_USAGE = 2

_RULE = "=" * 78


class EndpointPair(Protocol):
    """What the demo needs of ``bff.endpoints.ENDPOINTS``' entries."""

    @property
    def key(self) -> str: ...
    @property
    def route(self) -> str: ...
    @property
    def planted(self) -> Callable[[Session], Any]: ...
    @property
    def fixed(self) -> Callable[[Session], Any]: ...
    @property
    def expect(self) -> Collection[str]: ...
    @property
    def audit_options(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class _Run:
    """One audited call of one endpoint version and the demo's verdict on it."""

    pair: EndpointPair
    variant: str
    report: sqlaudit.AuditReport
    result: Any
    error: str | None

    @property
    def kinds(self) -> list[str]:
        """Kinds of the warnings the demo judges: those whose verdict depends on how fast this
        machine runs (a slow statement on a busy laptop) only when the endpoint plants one."""
        return [
            f.kind
            for f in self.report.findings
            if f.severity >= sqlaudit.Severity.WARNING
            and (f.kind not in TIMING_KINDS or f.kind in self.pair.expect)
        ]

    @property
    def problems(self) -> list[str]:
        """Why this run is not what the demo expects (empty: as expected)."""
        problems = []
        if self.error is not None:
            problems.append(f"the endpoint failed: {self.error}")
        if self.variant == "planted":
            missed = sorted(set(self.pair.expect) - set(self.kinds))
            if missed:
                problems.append(f"expected {', '.join(missed)}, not reported")
        elif self.kinds:
            problems.append(f"expected no findings, got {_kind_counts(self.kinds)}")
        if self.report.internal_errors:
            problems.append(f"{self.report.internal_errors} sqlaudit internal error(s)")
        return problems


def demo(
    examples: Path,
    *,
    url: str = "sqlite://",
    as_json: bool = False,
    only: str | None = None,
    otel_jsonl: str | None = None,
) -> int:
    """``sqlaudit demo`` (see ``sqlaudit.cli.build_parser``); returns the exit code."""
    if not (examples / "bff" / "__init__.py").is_file():
        _error(
            f"the demo's example service was not found in {examples}.\n"
            "The demo ships with sqlaudit's source checkout, not with the installed package: "
            "clone the repository and run `python -m sqlaudit demo` from it (an editable "
            "install, `pip install -e .`, works too)."
        )
        return EXIT_USAGE
    try:
        endpoints, seed = _import_bff(examples)
    except ImportError as exc:
        _error(f"cannot import the example service from {examples}: {exc}")
        return EXIT_USAGE
    pairs = cast("Sequence[EndpointPair]", endpoints.ENDPOINTS)
    if only is not None:
        pairs = [p for p in pairs if only in (p.key, p.route)]
        if not pairs:
            names = ", ".join(p.key for p in cast("Sequence[EndpointPair]", endpoints.ENDPOINTS))
            _error(f"no endpoint named {only!r}; choose one of: {names}")
            return EXIT_USAGE
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError) as exc:
        _error(f"cannot use database URL {url!r}: {exc}")
        return EXIT_USAGE
    shown_url = engine.url.render_as_string(hide_password=True)
    exporter = _otel_exporter(otel_jsonl)
    if exporter is False:
        return EXIT_USAGE
    handle = sqlaudit.instrument(engine)
    created = False
    try:
        try:
            seed.reset_schema(engine)
            created = True
            with Session(engine) as session:
                seed.seed(session)
        except (SQLAlchemyError, ImportError, OSError) as exc:
            _error(f"cannot prepare the demo tables on {shown_url}: {_one_line(exc)}")
            return EXIT_USAGE
        if not as_json:
            print(
                f"sqlaudit demo: {len(pairs)} endpoint(s) of the example BFF, each planted "
                f"and fixed, on {shown_url}"
            )
        reporters = () if exporter is None else (exporter[1],)
        runs = [run for pair in pairs for run in _run_pair(engine, pair, reporters)]
        for run in runs:
            if as_json:
                print(json.dumps(run.report.to_dict()), flush=True)
            else:
                _print_run(run)
        _print_summary(runs, sys.stderr if as_json else sys.stdout, engine)
        return EXIT_UNEXPECTED if any(run.problems for run in runs) else EXIT_OK
    finally:
        try:
            if created:
                seed.drop_schema(engine)
        except (SQLAlchemyError, OSError) as exc:
            _error(f"could not drop the demo tables on {shown_url}: {_one_line(exc)}")
        handle.remove()
        engine.dispose()
        if exporter:
            exporter[0].shutdown()  # flushes and closes the JSONL file


def _import_bff(examples: Path) -> tuple[ModuleType, ModuleType]:
    """``bff.endpoints`` and ``bff.seed`` from ``examples``, refusing another ``bff``."""
    with _on_sys_path(examples):
        endpoints = importlib.import_module("bff.endpoints")
        seed = importlib.import_module("bff.seed")
    package = sys.modules["bff"]
    where = Path(package.__file__ or "").resolve().parent.parent
    if where != examples.resolve():
        raise ImportError(f"another package named 'bff' is already imported, from {where}")
    return endpoints, seed


@contextmanager
def _on_sys_path(path: Path) -> Iterator[None]:
    entry = str(path)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        sys.path.remove(entry)


def _otel_exporter(path: str | None) -> tuple[Any, Any] | Literal[False] | None:
    """(tracer provider, OTelReporter) writing OTLP/JSON lines to ``path``; None without a
    path; False (after an error message) when OpenTelemetry's SDK is missing or ``path``
    cannot be written."""
    if path is None:
        return None
    try:
        from sqlaudit.otel import OTelReporter, jsonl_tracer_provider
    except ImportError as exc:
        _error(
            f"--otel-jsonl needs OpenTelemetry ({exc}): pip install opentelemetry-sdk "
            "opentelemetry-exporter-otlp-proto-common"
        )
        return False
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # the provider appends; each demo run writes a fresh file
        provider = jsonl_tracer_provider(path)
    except (OSError, sqlaudit.ConfigError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _error(f"cannot write --otel-jsonl {path!r}: {reason}")
        return False
    return provider, OTelReporter(tracer_provider=provider, metrics=False, statement_events=50)


def _run_pair(
    engine: Engine, pair: EndpointPair, reporters: tuple[Any, ...] = ()
) -> Iterator[_Run]:
    results: list[Any] = []
    for variant, endpoint in (("planted", pair.planted), ("fixed", pair.fixed)):
        result: Any = None
        error: str | None = None
        name = f"{pair.route} ({variant})"
        with sqlaudit.audit(
            name, on_finding="ignore", reporters=reporters, **pair.audit_options
        ) as report:
            try:
                with Session(engine) as session:
                    result = endpoint(session)
            except Exception as exc:
                error = f"{type(exc).__name__}: {_one_line(exc)}"
        results.append(result)
        if variant == "fixed" and error is None and result != results[0]:
            error = "the fixed version returned other data than the planted one"
        yield _Run(pair, variant, report, result, error)


def _print_run(run: _Run) -> None:
    endpoint = run.pair.planted if run.variant == "planted" else run.pair.fixed
    print()
    print(_RULE)
    print(f"{run.report.name}    [{endpoint.__name__}]")
    print(_first_paragraph(endpoint))
    print(_RULE)
    print(run.report.render())
    print()
    print(f"-> {_verdict(run)}")


def _verdict(run: _Run) -> str:
    problems = run.problems
    if problems:
        return "UNEXPECTED: " + "; ".join(problems)
    if run.variant == "planted":
        expected = ", ".join(sorted(run.pair.expect))
        return f"flagged as expected: {_kind_counts(run.kinds)} (expected {expected})"
    return "clean as expected: 0 findings, same response as the planted version"


def _print_summary(runs: Sequence[_Run], out: Any, engine: Engine) -> None:
    header = ("endpoint", "version", "statements", "findings", "expected", "result")
    rows = [header]
    for run in runs:
        expected = ", ".join(sorted(run.pair.expect)) if run.variant == "planted" else "clean"
        if run.problems:
            result = "MISSED" if run.variant == "planted" else "NOT CLEAN"
        else:
            result = "ok: flagged" if run.variant == "planted" else "ok: clean"
        rows.append(
            (
                run.pair.route if run.variant == "planted" else "",
                run.variant,
                str(run.report.query_count),
                _kind_counts(run.kinds) if run.kinds else "-",
                expected,
                result,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    print(file=out)
    print(
        f"Summary ({engine.dialect.name}, sqlaudit {sqlaudit.__version__}, "
        f"SQLAlchemy {sqlalchemy.__version__})",
        file=out,
    )
    for number, row in enumerate(rows):
        cells = [
            cell.rjust(width) if i == 2 else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip(), file=out)
        if number == 0:
            print("  ".join("-" * width for width in widths), file=out)
    planted = [run for run in runs if run.variant == "planted"]
    fixed = [run for run in runs if run.variant == "fixed"]
    flagged = sum(1 for run in planted if not run.problems)
    clean = sum(1 for run in fixed if not run.problems)
    print(file=out)
    print(
        f"{flagged}/{len(planted)} planted problems flagged, "
        f"{clean}/{len(fixed)} fixed versions clean.",
        file=out,
    )
    for run in runs:
        if run.problems:
            print(f"UNEXPECTED {run.report.name}: {'; '.join(run.problems)}", file=out)


def _kind_counts(kinds: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{kind} x{n}" if n > 1 else kind for kind, n in counts.items())


def _first_paragraph(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _error(message: str) -> None:
    print(f"sqlaudit: error: {message}", file=sys.stderr)
