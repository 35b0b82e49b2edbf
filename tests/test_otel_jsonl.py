"""Spans as OTLP/JSON lines: sqlaudit's exporter writes what opentelemetry-exporter-otlp-json-file
writes, and ``jsonl_tracer_provider`` (for ``sqlaudit demo --otel-jsonl PATH``) fills the file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from models import Author, prepared
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from timing import UNTIMED

import sqlaudit
from sqlaudit.otel import OTelReporter, jsonl_tracer_provider
from sqlaudit.otel.jsonl import JsonLinesSpanExporter


def make_spans(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("t", "1.0")
    with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
        with tracer.start_as_current_span(
            "child",
            attributes={"i": 3, "f": [1.5], "b": True, "s": ["x", "y"]},
            links=[Link(parent.get_span_context(), {"k": 1})],
        ) as child:
            child.add_event("e", {"n": 2})


def test_lines_are_otlp_json() -> None:
    """One ExportTraceServiceRequest per line: camelCase names, hex ids, integer enums, int64
    as strings."""
    stream = io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(stream=stream)))
    make_spans(provider)
    child_line, parent_line = (json.loads(line) for line in stream.getvalue().splitlines())
    (child,) = child_line["resourceSpans"][0]["scopeSpans"][0]["spans"]
    (parent,) = parent_line["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(child["traceId"]) == 32 and int(child["traceId"], 16)
    assert len(child["spanId"]) == 16
    assert child["parentSpanId"] == parent["spanId"]
    assert child["links"][0]["spanId"] == parent["spanId"]
    assert parent["kind"] == 2  # SPAN_KIND_SERVER
    assert isinstance(child["startTimeUnixNano"], str)
    assert {"key": "i", "value": {"intValue": "3"}} in child["attributes"]
    assert child["events"][0]["name"] == "e"


def test_same_lines_as_the_official_file_exporter() -> None:
    """When opentelemetry-exporter-otlp-json-file is installed, both exporters write equal
    JSON for the same spans."""
    official = pytest.importorskip(
        "opentelemetry.exporter.otlp.json.file",
        reason="opentelemetry-exporter-otlp-json-file (a 0.x beta) is not installed",
    )
    ours, theirs = io.StringIO(), io.StringIO()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(stream=ours)))
    provider.add_span_processor(SimpleSpanProcessor(official.FileSpanExporter(stream=theirs)))
    make_spans(provider)
    assert [json.loads(x) for x in ours.getvalue().splitlines()] == [
        json.loads(x) for x in theirs.getvalue().splitlines()
    ]


def test_exporter_fails_softly_after_shutdown(tmp_path: Path) -> None:
    """After shutdown the exporter reports FAILURE instead of raising; it closes its file."""
    exporter = JsonLinesSpanExporter(tmp_path / "x.jsonl")
    exporter.shutdown()
    assert exporter.export([]).name == "FAILURE"
    with pytest.raises(ValueError, match="exactly one of path or stream"):
        JsonLinesSpanExporter()


def test_jsonl_tracer_provider_for_the_demo(tmp_path: Path, sqlite_engine: Engine) -> None:
    """What ``sqlaudit demo --otel-jsonl PATH`` does: audited units reported through
    ``OTelReporter(tracer_provider=jsonl_tracer_provider(PATH))`` become unit spans, one JSON
    line each, with sqlaudit's attributes and finding events."""
    path = tmp_path / "demo.jsonl"
    provider = jsonl_tracer_provider(path, service_name="sqlaudit-demo")
    reporter = OTelReporter(tracer_provider=provider, metrics=False)
    with prepared(sqlite_engine) as db:
        with sqlaudit.audit(
            "GET /authors (planted)", reporters=[reporter], on_finding="ignore", **UNTIMED
        ):
            with Session(db) as session:
                for author in session.scalars(select(Author)):
                    assert author.books
    provider.shutdown()
    (line,) = path.read_text(encoding="utf-8").splitlines()
    data = json.loads(line)
    resource = {a["key"]: a["value"] for a in data["resourceSpans"][0]["resource"]["attributes"]}
    assert resource["service.name"] == {"stringValue": "sqlaudit-demo"}
    (span,) = data["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert span["name"] == "GET /authors (planted)"
    attrs = {a["key"]: a["value"] for a in span["attributes"]}
    assert attrs["sqlaudit.query_count"] == {"intValue": "6"}
    assert [e["name"] for e in span["events"]] == ["sqlaudit.finding"]
