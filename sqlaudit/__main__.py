"""``python -m sqlaudit``: the command line of :mod:`sqlaudit.cli`."""

from __future__ import annotations

from sqlaudit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
