"""Capture: the only package importing SQLAlchemy. Listeners write a unit's mutable ``Scope``.

``instrument(engine)`` attaches them (``instrument.py``); ``statements.py`` records each
statement; ``transactions``, ``pool``, ``orm``, ``origins`` and ``identity`` follow
transactions, sessions and loaded objects; ``callsite`` finds the application frames.
"""

from sqlaudit.capture.instrumentation import Instrumentation, instrument

__all__ = ["Instrumentation", "instrument"]
