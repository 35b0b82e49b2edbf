"""Command line: ``sqlaudit demo`` and ``sqlaudit report`` (also ``python -m sqlaudit``).

``sqlaudit demo`` runs the example BFF of ``examples/bff`` (a live-streaming site's
backend-for-frontend, the service sqlaudit was written for) against a database: every
endpoint twice, with its SQL problem planted and fixed, each inside its own
``sqlaudit.audit(...)``. It prints each report and a summary, and exits 0 only when every
planted problem was reported and every fixed version is clean.

``sqlaudit report FILE.jsonl`` turns spans exported as OTLP/JSON lines (e.g. by
``sqlaudit demo --otel-jsonl FILE``) into one self-contained HTML page on standard output.

Exit codes: 0 as expected; 1 a planted problem was missed, a fixed version has findings or
an endpoint failed; 2 usage error, no ``examples/`` directory, an unreadable report input, or
the database is unusable.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy

import sqlaudit
from sqlaudit.cli import demo as _demo
from sqlaudit.cli.demo import EXIT_USAGE

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
            "page to standard output: routes ranked by statements and DB time, findings by "
            "kind with their fixes, statements per request."
        ),
    )
    report.add_argument("file", metavar="FILE.jsonl", help="the exported spans")
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
    return report(args.file)  # the only other command: argparse refused anything else


def report(path: str) -> int:
    """``sqlaudit report FILE.jsonl``: the HTML report of exported spans, on stdout."""
    from sqlaudit.cli.html_report import ReportInputError, build_report

    try:
        with open(path, encoding="utf-8") as lines:
            page = build_report(lines)
    except (OSError, UnicodeDecodeError, ReportInputError) as exc:
        print(f"sqlaudit report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(page)
    return 0
