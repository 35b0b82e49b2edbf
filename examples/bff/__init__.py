"""A small backend-for-frontend (BFF) of a live-streaming site, with planted SQL problems.

The story behind sqlaudit: a BFF in front of OPENREC.tv issued far too many SQL statements per
request, because of N+1 lazy loads and work split into autocommit transactions. This package
re-creates that service in miniature: each "endpoint" is a plain function taking a
:class:`~sqlalchemy.orm.Session` and returning JSON-able data, written twice: once with the
problem planted, once fixed. ``python -m sqlaudit demo`` audits every pair.

Import it with ``examples/`` on ``sys.path``::

    import bff
    from bff.endpoints import ENDPOINTS
"""

from __future__ import annotations
