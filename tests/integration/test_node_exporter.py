"""promscope reads what a real node_exporter serves, whichever format it negotiates.

The live exporter comes from ``tests/integration/conftest.py``; each test scrapes
it with httpx directly and hands the body and its Content-Type to
:func:`promscope.exposition.parse`, as the scraper does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from promscope.exposition import parse
from promscope.model import Format, ParseResult

if TYPE_CHECKING:
    from tests.conftest import RunningBinary

pytestmark = pytest.mark.integration

ACCEPT = {
    "text": "text/plain",
    "openmetrics": "application/openmetrics-text; version=1.0.0",
    "protobuf": (
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    ),
    # What Prometheus 2.x sends by default: OpenMetrics first, text as the fallback.
    "prometheus-default": (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    ),
}


def _scrape(exporter: RunningBinary, accept: str) -> tuple[httpx.Response, ParseResult]:
    response = httpx.get(exporter.url("/metrics"), headers={"Accept": accept}, timeout=10)
    response.raise_for_status()
    return response, parse(response.content, content_type=response.headers.get("content-type"))


def _errors(result: ParseResult) -> str:
    return "\n".join(f"  {d.line}:{d.column} {d.code} {d.message}" for d in result.errors()[:20])


@pytest.mark.parametrize("kind", list(ACCEPT))
def test_live_scrape_parses_cleanly(node_exporter: RunningBinary, kind: str) -> None:
    response, result = _scrape(node_exporter, ACCEPT[kind])
    content_type = response.headers.get("content-type", "")
    assert not result.errors(), f"{kind} ({content_type}) gave errors:\n{_errors(result)}"
    assert result.families, f"{kind}: no families in {len(response.content)} bytes"
    assert result.family("node_scrape_collector_success") is not None
    if content_type.startswith("application/vnd.google.protobuf"):
        assert result.format is Format.PROTOBUF
    elif content_type.startswith("application/openmetrics-text"):
        assert result.format is Format.OPENMETRICS
    else:
        # node_exporter 1.5 (Debian bookworm) answers OpenMetrics requests with text 0.0.4.
        assert result.format is Format.TEXT


def test_formats_agree_on_families(node_exporter: RunningBinary) -> None:
    results = {kind: _scrape(node_exporter, accept)[1] for kind, accept in ACCEPT.items()}
    text = results["text"]
    # The same exporter through protobuf: the same family names and types.
    assert {(f.name, f.type) for f in results["protobuf"].families} == {
        (f.name, f.type) for f in text.families
    }
    # OpenMetrics names counters without _total; compare names with it removed.
    names = {f.name.removesuffix("_total") for f in text.families}
    for kind in ("openmetrics", "prometheus-default"):
        assert {f.name.removesuffix("_total") for f in results[kind].families} == names, kind


def test_text_and_protobuf_agree_on_series(node_exporter: RunningBinary) -> None:
    _, text = _scrape(node_exporter, ACCEPT["text"])
    _, protobuf = _scrape(node_exporter, ACCEPT["protobuf"])
    # Series of stable families (labels, not values) are the same in both formats.
    stable = ("node_cpu_seconds_total", "node_scrape_collector_success", "node_uname_info", "go_info")
    for name in stable:
        text_family, protobuf_family = text.family(name), protobuf.family(name)
        if text_family is None:
            continue
        assert protobuf_family is not None, name
        assert {s.key() for s in text_family.samples} == {s.key() for s in protobuf_family.samples}, name
