"""``examples/dashboards``: the Grafana dashboard's structure and the Collector config, checked
against what sqlaudit's reporter really exports through the OpenTelemetry SDK (span, event and
log attribute names, metric names and attributes), the Tempo version its TraceQL needs, the
Collector's exporter names and the ``docker run`` line."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool
from timing import untimed
from traced import traced

import sqlaudit
from sqlaudit.otel import OTelReporter

DASHBOARDS = Path(__file__).resolve().parent.parent / "examples" / "dashboards"

ROOT = DASHBOARDS.parent.parent
#: The first Tempo release with each TraceQL feature the dashboard may use: avg_over_time in
#: Tempo 2.7 (grafana/tempo#4073), topk/bottomk in Tempo 2.8 (grafana/tempo#4646).
TEMPO_FEATURES = {"avg_over_time(": (2, 7), "topk(": (2, 8), "bottomk(": (2, 8)}


@dataclass(frozen=True)
class Exported:
    """The names sqlaudit's reporter really exports through the SDK for a unit with findings."""

    span_attributes: frozenset[str]
    event_attributes: frozenset[str]
    log_attributes: frozenset[str]
    #: metric name -> (unit, attribute keys)
    metrics: dict[str, tuple[str, frozenset[str]]]


@pytest.fixture(scope="module")
def exported() -> Exported:
    """A real audit with findings in a transaction, reported by ``OTelReporter`` with findings
    as span events and as log records and transaction spans, into in-memory exporters."""
    engine = create_engine("sqlite://", poolclass=StaticPool)
    handle = sqlaudit.instrument(engine)
    logs = InMemoryLogRecordExporter()
    loggers = LoggerProvider()
    loggers.add_log_record_processor(SimpleLogRecordProcessor(logs))
    try:
        with traced() as sdk:
            reporter = OTelReporter(
                sdk.provider, sdk.meters, logger_provider=loggers, findings_as="both",
                transaction_spans=True,
            )  # fmt: skip
            with sqlaudit.audit("GET /streams", untimed(), reporters=[reporter], max_queries=1):
                with engine.begin() as connection:
                    for _ in range(3):
                        connection.execute(text("SELECT 1"))
            spans = sdk.spans()
            data = sdk.reader.get_metrics_data()
    finally:
        handle.remove()
        loggers.shutdown()
    assert data is not None
    metrics = {
        metric.name: (
            metric.unit or "",
            frozenset(k for p in metric.data.data_points for k in (p.attributes or {})),
        )
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    records = [r.log_record for r in logs.get_finished_logs()]
    assert records and spans
    return Exported(
        frozenset(k for span in spans for k in (span.attributes or {})),
        frozenset(k for span in spans for e in span.events for k in (e.attributes or {})),
        frozenset(k for record in records for k in (record.attributes or {})),
        metrics,
    )


def prometheus_names(exported: Exported) -> set[str]:
    """The series names the Collector's Prometheus exporter makes of the exported metrics
    (dots to underscores, a unit suffix for ``s``, none for an annotation like
    ``{statement}``, ``_total`` for the counter)."""
    names = set()
    for name, (unit, _) in exported.metrics.items():
        base = name.replace(".", "_") + ("_seconds" if unit == "s" else "")
        if name == "sqlaudit.findings":
            names.add(base + "_total")
        else:
            names.update(base + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def prometheus_labels(exported: Exported) -> set[str]:
    return {"le"} | {key.replace(".", "_") for _, keys in exported.metrics.values() for key in keys}


def loki_names(exported: Exported) -> set[str]:
    """Loki's OTLP endpoint keeps log attributes as structured metadata, every character
    other than a letter, digit or underscore turned into ``_``; ``service.name`` is the
    ``service_name`` label."""
    return {"service_name"} | {re.sub(r"\W", "_", key) for key in exported.log_attributes}


def targets(dashboard: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [t for p in dashboard["panels"] if p["datasource"]["type"] == kind for t in p["targets"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / "grafana-sqlaudit.json").read_text())
    return data


def test_dashboard_structure(dashboard: dict[str, Any]) -> None:
    """A Grafana dashboard: title, uid, schema version, datasource variables for Tempo and
    Prometheus, panels with unique ids on a 24-column grid without overlaps."""
    assert dashboard["title"] and dashboard["uid"] == "sqlaudit-overview"
    assert isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["tempo"]["type"] == "datasource" and variables["tempo"]["query"] == "tempo"
    assert variables["prometheus"]["query"] == "prometheus"
    assert variables["loki"]["type"] == "datasource" and variables["loki"]["query"] == "loki"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert panel["type"] in {"stat", "timeseries", "table", "bargauge", "logs"}
        assert panel["title"] and panel["targets"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["datasource"]["uid"] in {"${tempo}", "${prometheus}", "${loki}"}
        for target in panel["targets"]:
            assert target["refId"]
            assert target["datasource"] == panel["datasource"]


def test_tempo_panels_query_attributes_sqlaudit_emits(
    dashboard: dict[str, Any], exported: Exported
) -> None:
    """Every TraceQL query uses only attributes the SDK exported on spans and finding events,
    and the asked-for panels exist: requests by query count, findings by kind, worst routes."""
    tempo = targets(dashboard, "tempo")
    assert {t["queryType"] for t in tempo} == {"traceql"}
    queries = [t["query"] for t in tempo]
    for query in queries:
        assert query.count("{") == query.count("}"), query
        for name in re.findall(r"\bspan\.([\w.]+)", query):
            assert name in exported.span_attributes, (name, query)
        for name in re.findall(r"\bevent\.([\w.]+)", query):
            assert name in exported.event_attributes, (name, query)
    joined = "\n".join(queries)
    assert "span.sqlaudit.query_count >=" in joined
    assert 'event:name = "sqlaudit.finding"' in joined
    assert "topk(10)" in joined


def test_the_stated_tempo_version_runs_every_traceql_query(dashboard: dict[str, Any]) -> None:
    """The Tempo version the folder's README and the panel state is the newest first release
    among the TraceQL features the queries use (2.8 for ``topk``), not an older one."""
    queries = "\n".join(t["query"] for t in targets(dashboard, "tempo"))
    needed = max(v for feature, v in TEMPO_FEATURES.items() if feature in queries)
    stated = f"Tempo {needed[0]}.{needed[1]} or later"
    assert stated in (DASHBOARDS / "README.md").read_text()
    assert stated in dashboard["description"] or stated in json.dumps(dashboard["panels"])
    assert "Tempo 2.4 or later" not in (DASHBOARDS / "README.md").read_text()


def test_loki_panel_shows_the_findings_sent_as_logs(
    dashboard: dict[str, Any], exported: Exported
) -> None:
    """A findings panel for ``findings_as="logs"``: a Loki logs panel whose LogQL selects the
    finding records by an attribute they carry and shows only names Loki makes of the
    exported log attributes (with ``findings_as="events"`` that panel stays empty, and the
    TraceQL one fills)."""
    [panel] = [p for p in dashboard["panels"] if p["datasource"]["type"] == "loki"]
    assert panel["type"] == "logs" and "logs" in panel["title"]
    known = loki_names(exported)
    [expr] = [t["expr"] for t in panel["targets"]]
    stream, _, pipeline = expr.partition("}")
    assert set(re.findall(r"(\w+)=~?", stream)) <= known, expr
    filters = re.findall(r"\|\s*(\w+)\s*(?:!=|=~|!~|=)", pipeline)
    fields = re.findall(r"\{\{\s*\.(\w+)\s*\}\}", pipeline)
    assert "sqlaudit_finding_kind" in filters
    assert set(filters) | set(fields) <= known, (set(filters) | set(fields)) - known
    assert {"sqlaudit_finding_fix", "code_file_path"} <= set(fields)


def test_prometheus_panels_use_the_exported_metric_names(
    dashboard: dict[str, Any], exported: Exported
) -> None:
    """Every PromQL series name is one the exported metrics become in Prometheus, and every
    label one they carry; findings by kind and the worst routes are there."""
    known = prometheus_names(exported)
    labels = prometheus_labels(exported) | {"http_route"}  # set when the server span has it
    exprs = [t["expr"] for t in targets(dashboard, "prometheus")]
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
        for name in re.findall(r"\b(sqlaudit_\w+)\{", expr):
            assert name in known, (name, expr)
        for by in re.findall(r"by \(([^)]*)\)", expr):
            assert {label.strip() for label in by.split(",")} <= labels, expr
    joined = "\n".join(exprs)
    assert "sum by (sqlaudit_finding_kind)" in joined
    assert "topk(10" in joined


def parse_yaml(text: str) -> Any:
    """The block-style YAML subset of the example configs (PyYAML is not a dependency):
    nested mappings, ``- `` lists of scalars or mappings, ``[a, b]`` flow lists, comments."""
    lines = []
    for raw in text.splitlines():
        line = re.sub(r"\s+#.*$|^\s*#.*$", "", raw)
        if line.strip():
            lines.append((len(line) - len(line.lstrip()), line.strip()))

    def scalar(value: str) -> Any:
        if value.startswith("[") and value.endswith("]"):
            return [scalar(v.strip()) for v in value[1:-1].split(",") if v.strip()]
        if value in ("true", "false"):
            return value == "true"
        if re.fullmatch(r"-?\d+", value):
            return int(value)
        return value.strip("\"'")

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1].startswith("- "):
            items: list[Any] = []
            while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
                rest = lines[i][1][2:]
                if ":" in rest:  # a mapping starting on the dash's line
                    lines[i] = (indent + 2, rest)
                    value, i = block(i, indent + 2)
                else:
                    value, i = scalar(rest), i + 1
                items.append(value)
            return items, i
        mapping: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            key, _, rest = lines[i][1].partition(":")
            rest = rest.strip()
            if rest:
                mapping[key], i = scalar(rest), i + 1
            elif i + 1 < len(lines) and lines[i + 1][0] > indent:
                mapping[key], i = block(i + 1, lines[i + 1][0])
            else:
                mapping[key], i = None, i + 1
        return mapping, i

    return block(0, 0)[0]


@pytest.fixture(scope="module")
def collector() -> Any:
    text = (DASHBOARDS / "otel-collector.yaml").read_text()
    try:
        import yaml  # type: ignore[import-untyped]  # optional: PyYAML when installed
    except ImportError:
        return parse_yaml(text)
    parsed = yaml.safe_load(text)
    assert parsed == parse_yaml(text)
    return parsed


def test_collector_keeps_every_trace_with_a_finding(collector: Any) -> None:
    """Tail sampling keeps every trace whose span has ``sqlaudit.finding_count >= 1`` and
    samples the rest; traces go through it, metrics do not."""
    policies = {p["name"]: p for p in collector["processors"]["tail_sampling"]["policies"]}
    keep = policies["keep-traces-with-sqlaudit-findings"]
    assert keep["type"] == "numeric_attribute"
    assert keep["numeric_attribute"]["key"] == "sqlaudit.finding_count"
    assert keep["numeric_attribute"]["min_value"] == 1
    assert keep["numeric_attribute"]["max_value"] > 1000
    rest = policies["sample-the-rest"]
    assert rest["type"] == "probabilistic"
    assert 0 < rest["probabilistic"]["sampling_percentage"] < 100
    pipelines = collector["service"]["pipelines"]
    assert "tail_sampling" in pipelines["traces"]["processors"]
    assert "tail_sampling" not in pipelines["metrics"]["processors"]
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    for pipeline in pipelines.values():
        for name in pipeline["exporters"]:
            assert name in collector["exporters"]
        for name in pipeline["processors"]:
            assert name in collector["processors"]
    assert "file/sqlaudit" in pipelines["traces"]["exporters"]


def test_collector_uses_the_exporter_names_of_v0_144(collector: Any) -> None:
    """Collector v0.144 renamed the ``otlp`` exporter ``otlp_grpc`` and ``otlphttp``
    ``otlp_http``; the old names log a deprecation warning at every start, so none is used.
    Traces go to Tempo over gRPC, finding logs to Loki's OTLP endpoint over HTTP."""
    exporters = collector["exporters"]
    for name in exporters:
        assert name.split("/")[0] not in {"otlp", "otlphttp"}, name
    pipelines = collector["service"]["pipelines"]
    assert "otlp_grpc/tempo" in pipelines["traces"]["exporters"]
    assert "otlp_http/loki" in pipelines["logs"]["exporters"]
    assert exporters["otlp_http/loki"]["endpoint"].endswith("/otlp")


def test_readme_names_the_files_it_explains() -> None:
    """The folder's README explains how to run both files and the HTML report."""
    readme = (DASHBOARDS / "README.md").read_text()
    for needle in ("otel-collector.yaml", "grafana-sqlaudit.json", "sqlaudit report"):
        assert needle in readme


def docker_run(readme: str) -> tuple[str, list[str]]:
    """The shell block with ``docker run`` and the command's words (continuations joined)."""
    [block] = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.DOTALL) if "docker run" in b]
    command = block[block.index("docker run") :].replace("\\\n", " ")
    return block, command.split()


def test_docker_run_line_works_with_the_images_user() -> None:
    """The contrib image runs as uid 10001, which cannot write to a volume Docker creates
    owned by root: the documented command runs the Collector as the caller, over a data
    directory the block creates, with the config read-only, on an image whose version knows
    the config's exporter names (v0.144 or later)."""
    block, words = docker_run((DASHBOARDS / "README.md").read_text())
    assert "--user" in words
    mounts = [words[i + 1].strip('"') for i, word in enumerate(words) if word == "-v"]
    data = [m for m in mounts if m.endswith(":/var/lib/otelcol")]
    assert len(data) == 1
    host = data[0].split(":")[0]
    assert host.startswith("$PWD/"), "a bind mount of a directory, not a named volume"
    assert f"mkdir -p {host.removeprefix('$PWD/')}" in block
    assert any(m.endswith(":/etc/otelcol-contrib/config.yaml:ro") for m in mounts)
    image = words[-1]
    name, _, tag = image.partition(":")
    assert name == "otel/opentelemetry-collector-contrib"
    assert tuple(int(part) for part in tag.split(".")) >= (0, 144, 0)
