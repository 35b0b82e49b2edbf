"""``python -m fastapi_service``: serve the example on http://127.0.0.1:8001 (uvicorn)."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from opentelemetry.sdk.trace.export import ConsoleSpanExporter

from fastapi_service import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fastapi_service", description=__doc__)
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in memory)")
    parser.add_argument("--production", action="store_true", help="production settings")
    parser.add_argument("--spans", action="store_true", help="print spans on the console")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app = create_app(
        args.database_url,
        development=not args.production,
        span_exporter=ConsoleSpanExporter() if args.spans else None,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
