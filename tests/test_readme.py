"""The README's quickstart prints exactly the report the README shows (timings aside)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_MS = re.compile(r"\d+\.\d ms")


def _blocks(text: str) -> list[str]:
    return re.findall(r"```(?:python|)\n(.*?)```", text, re.DOTALL)


def test_quickstart_output_matches_readme() -> None:
    """Running examples/quickstart.py prints the README's report, line for line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code, shown = _blocks(readme)[:2]
    assert code == (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "examples")}
    result = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert _MS.sub("N ms", result.stdout.rstrip()) == _MS.sub("N ms", shown.rstrip())


#: Before each OpenTelemetry wiring block of the README: an SDK tracer provider set as the
#: global one (the blocks use the defaults), exporting to memory, and an instrumented engine.
_PRELUDE = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool
import sqlaudit

spans = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(spans))
trace.set_tracer_provider(provider)
engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
sqlaudit.instrument(engine)

def work():
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        connection.execute(text("SELECT 2"))
"""
#: After each block: a request (a task run) that queries twice, then the check that the
#: instrumentation's own span carries the unit, in a trace of its own spans only.
_CHECK = """
finished = spans.get_finished_spans()
[entry] = [s for s in finished if s.kind is ENTRY_KIND]
assert entry.attributes["sqlaudit.query_count"] == 2, entry.attributes
assert len({s.context.trace_id for s in finished}) == 1
assert [s for s in finished if s is not entry and "sqlaudit.unit" in s.attributes] == []
print("reported on", entry.name)
"""
_DRIVERS = {
    "# FastAPI": """
import asyncio, httpx
@app.get("/items/{item_id}")
def item(item_id: int):
    work()
    return {"id": item_id}
async def call():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/items/1")).status_code == 200
asyncio.run(call())
ENTRY_KIND = SpanKind.SERVER
""",
    "# Flask": """
@app.get("/items/<int:item_id>")
def item(item_id):
    work()
    return {"id": item_id}
assert app.test_client().get("/items/1").json == {"id": 1}
ENTRY_KIND = SpanKind.SERVER
""",
    "# Celery": """
from celery import Celery
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from rq.job import Job
CeleryInstrumentor().instrument()
celery = Celery("readme", broker="memory://", backend="cache+memory://")
celery.conf.task_always_eager = True
@celery.task(name="readme.export", shared=False)
def export():
    work()
export.delay()
assert issubclass(AuditedJob, Job)
ENTRY_KIND = SpanKind.CONSUMER
""",
}


@pytest.mark.parametrize("first_line", sorted(_DRIVERS))
def test_readme_opentelemetry_wiring_runs(first_line: str) -> None:
    """Each wiring block of the README's OpenTelemetry section runs as shown, and the unit's
    report lands on the standard instrumentation's own span (a fresh interpreter per block:
    instrumentors patch process-wide state)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## OpenTelemetry") : readme.index("## The demo")]
    [block] = [b for b in _blocks(section) if b.startswith(first_line)]
    driver = _DRIVERS[first_line]
    program = "\n".join((_PRELUDE, block, driver, _CHECK))
    result = subprocess.run(
        [sys.executable, "-c", program],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "reported on" in result.stdout
