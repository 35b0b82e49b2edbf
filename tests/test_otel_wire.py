"""The wire: OTLP/HTTP (protobuf) from the real exporters to a real receiver on 127.0.0.1.

The receiver is a plain HTTP server started by the test; it decodes each request body with
``opentelemetry-proto`` exactly as a Collector's OTLP/HTTP receiver would, and the assertions
are about what arrived: the request span with sqlaudit's attributes, the finding event, the
optional spans, the metrics and the finding log record.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from google.protobuf import json_format
from models import Author, prepared
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
from sqlaudit.otel import OTelReporter

_MESSAGES = {
    "/v1/traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    "/v1/metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
    ),
}


class Receiver:
    """An OTLP/HTTP receiver: POST /v1/{traces,metrics,logs}, protobuf bodies, maybe gzipped."""

    def __init__(self) -> None:
        self.received: dict[str, list[Any]] = {path: [] for path in _MESSAGES}
        self.content_types: set[str] = set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                messages = _MESSAGES.get(self.path)
                if messages is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                receiver.content_types.add(self.headers["Content-Type"])
                receiver.received[self.path].append(messages[0].FromString(body))
                reply = messages[1]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def spans(self) -> list[Any]:
        return [
            span
            for request in self.received["/v1/traces"]
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def metrics(self) -> dict[str, Any]:
        return {
            metric.name: metric
            for request in self.received["/v1/metrics"]
            for resource in request.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }

    def logs(self) -> list[Any]:
        return [
            record
            for request in self.received["/v1/logs"]
            for resource in request.resource_logs
            for scope in resource.scope_logs
            for record in scope.log_records
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def attributes(items: Any) -> dict[str, Any]:
    """Decoded OTLP ``KeyValue`` list -> plain dict (arrays as lists)."""
    out: dict[str, Any] = {}
    for item in items:
        value = item.value
        which = value.WhichOneof("value")
        if which == "array_value":
            out[item.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        else:
            out[item.key] = getattr(value, which)
    return out


def test_spans_events_metrics_and_logs_over_otlp_http(
    receiver: Receiver, sqlite_engine: Engine
) -> None:
    """A request with an N+1, exported by the OTLP/HTTP exporters, arrives at the receiver
    with sqlaudit's unit attributes, its finding event, its burst and transaction spans, the
    three metrics and the finding as a log record, all in one trace."""
    resource = Resource.create({"service.name": "bff"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{receiver.url}/v1/traces"))
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{receiver.url}/v1/metrics"), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{receiver.url}/v1/logs"))
    )
    reporter = OTelReporter(
        tracer_provider, meter_provider, logger_provider=logger_provider,
        findings_as="both", transaction_spans=True, burst_spans=True,
    )  # fmt: skip
    tracer = tracer_provider.get_tracer("bff.http")
    with prepared(sqlite_engine) as db:
        with (
            tracer.start_as_current_span(
                "GET /authors", kind=SpanKind.SERVER, attributes={"http.route": "/authors"}
            ),
            sqlaudit.audit(
                "GET /authors", reporters=[reporter], on_finding="ignore", **UNTIMED
            ) as report,
        ):
            with Session(db) as session:
                books = 0
                for author in session.scalars(select(Author)):
                    books += len(author.books)
                session.commit()
    assert books == 10
    for provider in (tracer_provider, meter_provider, logger_provider):
        assert provider.force_flush()
    tracer_provider.shutdown()
    meter_provider.shutdown()
    logger_provider.shutdown()

    assert receiver.content_types == {"application/x-protobuf"}
    spans = {span.name: span for span in receiver.spans()}
    assert set(spans) == {"GET /authors", "sqlaudit.n_plus_one", "sqlaudit.transaction"}
    server = spans["GET /authors"]
    if os.environ.get("SQLAUDIT_OTLP_DUMP"):
        with open(os.environ["SQLAUDIT_OTLP_DUMP"], "w", encoding="utf-8") as dump:
            decoded = json_format.MessageToDict(server)
            for key in ("traceId", "spanId"):  # protobuf JSON: base64; OTLP/JSON: hex
                decoded[key] = base64.b64decode(decoded[key]).hex()
            dump.write(json.dumps(decoded, indent=1))
    unit = attributes(server.attributes)
    assert unit["http.route"] == "/authors"
    assert unit["sqlaudit.query_count"] == 6
    assert unit["sqlaudit.transaction_count"] == 1
    assert unit["sqlaudit.commit_count"] == 1
    assert unit["sqlaudit.finding_count"] == 1
    assert unit["sqlaudit.finding_kinds"] == ["n_plus_one"]
    assert unit["sqlaudit.db_time_ms"] == pytest.approx(report.db_time_ms, abs=1e-3)
    (finding,) = server.events
    assert finding.name == "sqlaudit.finding"
    found = attributes(finding.attributes)
    assert found["sqlaudit.finding.kind"] == "n_plus_one"
    assert found["sqlaudit.finding.count"] == 5
    assert found["db.query.summary"] == "SELECT sqlaudit_t_book"
    assert found["code.function.name"] == "test_spans_events_metrics_and_logs_over_otlp_http"
    for name in ("sqlaudit.n_plus_one", "sqlaudit.transaction"):
        assert spans[name].trace_id == server.trace_id
        assert spans[name].parent_span_id == server.span_id
        assert spans[name].kind == spans[name].SPAN_KIND_INTERNAL
    assert attributes(spans["sqlaudit.transaction"].attributes)["sqlaudit.transaction.outcome"] == (
        "commit"
    )

    metrics = receiver.metrics()
    assert {"sqlaudit.unit.statements", "sqlaudit.unit.db_time", "sqlaudit.findings"} <= set(
        metrics
    )
    (point,) = metrics["sqlaudit.unit.statements"].histogram.data_points
    assert point.sum == 6 and point.count == 1
    assert attributes(point.attributes) == {
        "sqlaudit.unit": "GET /authors",
        "http.route": "/authors",
        "sqlaudit.finding.kind": "n_plus_one",
    }
    assert metrics["sqlaudit.unit.db_time"].unit == "s"
    (counted,) = metrics["sqlaudit.findings"].sum.data_points
    assert counted.as_int == 1
    assert attributes(counted.attributes)["sqlaudit.finding.kind"] == "n_plus_one"

    (log,) = receiver.logs()
    assert log.event_name == "sqlaudit.finding"
    assert log.trace_id == server.trace_id and log.span_id == server.span_id
    assert attributes(log.attributes)["sqlaudit.finding.kind"] == "n_plus_one"
