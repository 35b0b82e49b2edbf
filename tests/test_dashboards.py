"""``examples/dashboards``: the Grafana dashboard's structure and the Collector config, checked
against what sqlaudit's reporter really emits (attribute and metric names)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from sqlaudit.otel.metrics import INSTRUMENTS

DASHBOARDS = Path(__file__).resolve().parent.parent / "examples" / "dashboards"

#: Attributes sqlaudit puts on unit spans, transaction spans and finding events.
SPAN_ATTRIBUTES = {
    "sqlaudit.unit", "sqlaudit.query_count", "sqlaudit.db_time_ms",
    "sqlaudit.transaction_count", "sqlaudit.commit_count", "sqlaudit.rollback_count",
    "sqlaudit.finding_count", "sqlaudit.finding_kinds", "sqlaudit.transaction.outcome",
    "sqlaudit.transaction.idle_ms", "sqlaudit.transaction.statement_count",
    "code.file.path", "code.line.number",
}  # fmt: skip
EVENT_ATTRIBUTES = {
    "sqlaudit.finding.kind", "sqlaudit.finding.severity", "sqlaudit.finding.count",
    "sqlaudit.finding.message", "sqlaudit.finding.fix", "code.file.path", "code.line.number",
}  # fmt: skip
LABELS = {"le", "sqlaudit_unit", "http_route", "sqlaudit_finding_kind", "sqlaudit_finding_severity"}


def prometheus_names() -> set[str]:
    """The series names the Collector's Prometheus exporter makes of sqlaudit's instruments
    (dots to underscores, unit suffix unless an annotation like ``{statement}``)."""
    names = set()
    for name, unit, _ in INSTRUMENTS:
        base = name.replace(".", "_") + ("_seconds" if unit == "s" else "")
        if name == "sqlaudit.findings":
            names.add(base + "_total")
        else:
            names.update(base + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


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
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert panel["type"] in {"stat", "timeseries", "table", "bargauge"}
        assert panel["title"] and panel["targets"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0
        mine = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        assert panel["datasource"]["uid"] in {"${tempo}", "${prometheus}"}
        for target in panel["targets"]:
            assert target["refId"]
            assert target["datasource"] == panel["datasource"]


def test_tempo_panels_query_attributes_sqlaudit_emits(dashboard: dict[str, Any]) -> None:
    """Every TraceQL query uses only attributes sqlaudit puts on spans and finding events, and
    the asked-for panels exist: requests by query count, findings by kind, worst routes."""
    queries = [
        t["query"]
        for p in dashboard["panels"]
        if p["datasource"]["type"] == "tempo"
        for t in p["targets"]
    ]
    assert all(t == "traceql" for p in dashboard["panels"] if p["datasource"]["type"] == "tempo"
               for t in (x["queryType"] for x in p["targets"]))  # fmt: skip
    for query in queries:
        assert query.count("{") == query.count("}"), query
        for name in re.findall(r"\bspan\.([\w.]+)", query):
            assert name in SPAN_ATTRIBUTES, (name, query)
        for name in re.findall(r"\bevent\.([\w.]+)", query):
            assert name in EVENT_ATTRIBUTES, (name, query)
    joined = "\n".join(queries)
    assert "span.sqlaudit.query_count >=" in joined
    assert 'event:name = "sqlaudit.finding"' in joined
    assert "topk(10)" in joined


def test_prometheus_panels_use_the_exported_metric_names(dashboard: dict[str, Any]) -> None:
    """Every PromQL series name is one the reporter's instruments become in Prometheus, and
    every label one they carry; findings by kind and the worst routes are there."""
    known = prometheus_names()
    exprs = [
        t["expr"]
        for p in dashboard["panels"]
        if p["datasource"]["type"] == "prometheus"
        for t in p["targets"]
    ]
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), expr
        for name in re.findall(r"\b(sqlaudit_\w+)\{", expr):
            assert name in known, (name, expr)
        for labels in re.findall(r"by \(([^)]*)\)", expr):
            assert {label.strip() for label in labels.split(",")} <= LABELS, expr
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


def test_readme_names_the_files_it_explains() -> None:
    """The folder's README explains how to run both files and the HTML report."""
    readme = (DASHBOARDS / "README.md").read_text()
    for needle in ("otel-collector.yaml", "grafana-sqlaudit.json", "sqlaudit report"):
        assert needle in readme
