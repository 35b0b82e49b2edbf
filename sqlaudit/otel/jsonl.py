"""Spans to a file as OTLP/JSON lines, the OpenTelemetry "file exporter" format.

Each line is one ``ExportTraceServiceRequest`` in the OTLP/JSON encoding (protobuf JSON with
lowerCamelCase names, trace and span ids as hex strings, enums as integers), the format of
``opentelemetry-exporter-otlp-json-file`` and of the Collector's ``file`` exporter, and what
``sqlaudit report FILE.jsonl`` reads.

:func:`jsonl_tracer_provider` uses ``opentelemetry-exporter-otlp-json-file`` when it is installed
(a 0.x beta that pins one opentelemetry-sdk minor version), else :class:`JsonLinesSpanExporter`:
the same lines, encoded by the OTLP protobuf encoder of
``opentelemetry-exporter-otlp-proto-common`` and ``google.protobuf.json_format``. Importing this
module needs ``opentelemetry-sdk`` and ``opentelemetry-exporter-otlp-proto-common``: a missing
one is an ImportError when the provider is made, not an empty file later.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Sequence
from typing import IO, Any

from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]  # stubs: types-protobuf
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from sqlaudit._internal import fork_safe
from sqlaudit.errors import ConfigError

__all__ = ["JsonLinesSpanExporter", "jsonl_tracer_provider", "otlp_json"]

_ID_KEYS = ("traceId", "spanId", "parentSpanId")


def otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any] | None:
    """One ``ExportTraceServiceRequest`` as an OTLP/JSON dict, or None for no spans."""
    request = encode_spans(spans)
    if not request.resource_spans:
        return None
    data: dict[str, Any] = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource in data.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return data


def _hex_ids(item: dict[str, Any]) -> None:
    """Protobuf JSON writes bytes as base64; OTLP/JSON writes trace and span ids as hex."""
    for key in _ID_KEYS:
        value = item.get(key)
        if isinstance(value, str):
            item[key] = base64.b64decode(value).hex()


class JsonLinesSpanExporter(SpanExporter):
    """Writes each export batch as one OTLP/JSON line to ``path`` (appended) or ``stream``."""

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, stream: IO[str] | None = None
    ):
        if (path is None) == (stream is None):
            raise ValueError("give exactly one of path or stream")
        self._owns = stream is None
        if stream is None:
            # Held open for the exporter's life, closed by shutdown(), as the official one does.
            stream = open(path, "a", encoding="utf-8")  # type: ignore[arg-type]  # path is set  # noqa: SIM115
        self._stream: IO[str] = stream
        self._lock = threading.Lock()
        fork_safe(self, "_lock")
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one line; FAILURE (never an exception) if encoding or writing fails."""
        try:
            data = otlp_json(spans)
            with self._lock:
                if self._closed:
                    return SpanExportResult.FAILURE
                if data is not None:
                    self._stream.write(json.dumps(data, separators=(",", ":")) + "\n")
                    self._stream.flush()
        except Exception:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Close the file if this exporter opened it."""
        with self._lock:
            if not self._closed and self._owns:
                self._stream.close()
            self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Lines are flushed as they are written."""
        return True


def jsonl_tracer_provider(
    path: str | os.PathLike[str], *, service_name: str = "sqlaudit-demo"
) -> TracerProvider:
    """An SDK TracerProvider writing every span to ``path`` as OTLP/JSON lines (appended).

    Each span is written when it ends (a simple span processor): call ``provider.shutdown()``
    at the end to close the file. Read the file with ``sqlaudit report PATH > report.html``.
    ``path`` is a str or ``os.PathLike`` (an int would be taken by ``open()`` as a file
    descriptor); ``service_name`` is a non-empty str. A bad one is a ConfigError; a file that
    cannot be opened is the ``OSError`` of ``open()``.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):  # type: ignore[redundant-expr]  # runtime check
        raise ConfigError(f"path must be a file path (a str or os.PathLike), got {path!r}")
    if not isinstance(service_name, str) or not service_name:  # type: ignore[redundant-expr]  # runtime check
        raise ConfigError(f"service_name must be a non-empty str, got {service_name!r}")
    exporter: SpanExporter
    try:
        from opentelemetry.exporter.otlp.json.file import (  # type: ignore[import-not-found, unused-ignore]  # optional
            FileSpanExporter,
        )

        exporter = FileSpanExporter(path)
    except ImportError:
        exporter = JsonLinesSpanExporter(path)
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider
