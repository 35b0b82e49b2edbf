"""Command line: ``sqlaudit demo`` and ``sqlaudit report`` (also ``python -m sqlaudit``).

``sqlaudit demo`` runs the example BFF of ``examples/bff`` (a live-streaming site's
backend-for-frontend, the service sqlaudit was written for) against a database: every
endpoint twice, with its SQL problem planted and fixed, each inside its own
``sqlaudit.audit(...)``. It prints each report and a summary, and exits 0 only when every
planted problem was reported and every fixed version is clean.

``sqlaudit report FILE.jsonl`` turns spans exported as OTLP/JSON lines (e.g. by
``sqlaudit demo --otel-jsonl FILE``) into one self-contained HTML page on standard output.

Exit codes: 0 as expected; 1 a planted problem was missed, a fixed version has findings or
an endpoint failed, or the report's file holds no sqlaudit data; 2 usage error, no
``examples/`` directory, an unreadable report input, or the database is unusable.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy

import sqlaudit
from sqlaudit.cli import demo as _demo
from sqlaudit.cli.demo import EXIT_USAGE
from sqlaudit.errors import ConfigError

__all__ = ["examples_dir", "main"]


def examples_dir() -> Path:
    """Where the demo's example service lives: ``examples/`` beside the package's directory.

    It exists in a source checkout (and an editable install), not in an installed wheel.
    """
    return Path(sqlaudit.__file__).resolve().parent.parent / "examples"


def build_parser() -> argparse.ArgumentParser:
    """The ``sqlaudit`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="sqlaudit",
        description=(
            "SQL query auditing for SQLAlchemy 2.x: N+1 lazy loads, repeated queries, write "
            "loops, query budgets, slow statements."
        ),
    )
    parser.add_argument(
        "--version",
        action="version",
        version=(
            f"sqlaudit {sqlaudit.__version__} (SQLAlchemy {sqlalchemy.__version__}, "
            f"Python {platform.python_version()})"
        ),
    )
    # Required: ``sqlaudit`` alone is a usage error (one line, exit 2), like any other.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = commands.add_parser(
        "demo",
        help="audit the example BFF: each endpoint with its SQL problem planted and fixed",
        description=(
            "Run the example live-streaming BFF (examples/bff in the source checkout): each "
            "endpoint with its SQL problem planted, then fixed, each audited as one unit of "
            "work. Exits 0 when every planted problem is reported and every fixed version "
            "is clean, 1 otherwise, 2 when the demo cannot run."
        ),
    )
    demo.add_argument(
        "--url",
        default="sqlite://",
        help=(
            "SQLAlchemy database URL (default: %(default)s, SQLite in memory), e.g. "
            "mysql+pymysql://root@127.0.0.1:3306/test or "
            "postgresql+psycopg://postgres@127.0.0.1:5432/test; the demo drops and creates "
            "its bff_* tables there, and drops them when done"
        ),
    )
    demo.add_argument(
        "--json",
        action="store_true",
        help="print each report's to_dict() as one JSON line instead of text (summary on stderr)",
    )
    demo.add_argument(
        "--only",
        metavar="NAME",
        help="run one endpoint pair, by name (e.g. list_streams) or route (e.g. 'GET /streams')",
    )
    demo.add_argument(
        "--otel-jsonl",
        metavar="PATH",
        help=(
            "also export each report as OpenTelemetry spans to PATH as OTLP/JSON lines "
            "(needs opentelemetry-sdk); render them with `sqlaudit report PATH`"
        ),
    )
    report = commands.add_parser(
        "report",
        help="HTML report of spans exported as OTLP/JSON lines",
        description=(
            "Read spans exported as OTLP/JSON lines (sqlaudit demo --otel-jsonl, or the "
            "opentelemetry-exporter-otlp-json-file format) and write one self-contained HTML "
            "page to standard output: one route table sortable by each column, findings by "
            "kind with their fixes, a chart of statements per request labelled with the "
            "requests' names, and each request's statements (formatted SQL, placeholders "
            "only; exported with OTelReporter(statement_events=n)). Exits 1, with the reason "
            "on standard error, when the file holds no sqlaudit data."
        ),
    )
    report.add_argument("file", metavar="FILE.jsonl", help="the exported spans")
    report.add_argument(
        "--trace-url",
        metavar="TEMPLATE",
        help=(
            "link each request's trace id to your tracing UI: an http(s) URL with {trace_id} "
            "(and optionally {span_id}), e.g. 'https://grafana/explore?traceId={trace_id}' or "
            "'http://jaeger:16686/trace/{trace_id}'"
        ),
    )
    report.add_argument(
        "--root",
        metavar="DIR",
        help=(
            "show source paths relative to DIR, e.g. the service's directory in production "
            "(/app); it need not exist here (default: the current directory)"
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse exits by itself
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "demo":
        return _demo.demo(
            examples_dir(),
            url=args.url,
            as_json=args.json,
            only=args.only,
            otel_jsonl=args.otel_jsonl,
        )
    # the only other command: argparse refused anything else
    return report(args.file, trace_url=args.trace_url, root=args.root)


def report(path: str, *, trace_url: str | None = None, root: str | None = None) -> int:
    """``sqlaudit report FILE.jsonl``: the HTML report of exported spans, on stdout.

    0 with a page; 1 when the file holds no sqlaudit unit (the page says so too, and so does
    standard error); 2 for a bad option or an unreadable or malformed file."""
    from sqlaudit.cli.html_report import check_trace_url, no_data_message, render
    from sqlaudit.cli.spans import ReportInputError, load

    try:
        if trace_url is not None:
            check_trace_url(trace_url)
        with open(path, encoding="utf-8") as lines:
            spans = load(lines)
    except (OSError, UnicodeDecodeError, ReportInputError, ConfigError) as exc:
        print(f"sqlaudit report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # The root need not exist here: spans exported in production name its paths (/app/...).
    root = os.path.abspath(root) if root is not None else None
    sys.stdout.write(render(spans, source=path, trace_url=trace_url, root=root))
    if not spans.units:
        print(f"sqlaudit report: {no_data_message(spans, path)}", file=sys.stderr)
        return 1
    return 0
