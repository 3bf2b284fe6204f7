"""ScrapeResult -> Observation: target labels as Prometheus applies them, sample_limit, report series."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from promscope.observation import ObservationKind, Outcome
from promscope.scrape import fetch
from promscope.scrape.observe import REPORT_SERIES, ScrapeObserver
from promscope.scrape.targets import ScrapeConfig, ScrapeTarget


def target(**settings: Any) -> ScrapeTarget:
    config = ScrapeConfig(job_name="node", interval=15, timeout=10, **settings)
    return config.url_target("http://h:9100/metrics", {"env": "dev"})


async def scrape(t: ScrapeTarget, body: bytes, status: int = 200) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await fetch(t.request, client=client)


def series(observation: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, s.labels): s.value for f in observation.families for s in f.samples}


async def test_target_labels_win_and_clashes_become_exported() -> None:
    t = target()
    body = b'a{job="app",instance="x",exported_job="old",code="200"} 1\nb{env=""} 2\n'
    observation = ScrapeObserver(t).observe(await scrape(t, body), 1000.0)
    got = series(observation)
    labels = {name: labels for (name, labels) in got}
    assert labels["a"] == (
        ("code", "200"),
        ("env", "dev"),
        ("exported_exported_job", "app"),
        ("exported_instance", "x"),
        ("exported_job", "old"),
        ("instance", "h:9100"),
        ("job", "node"),
    )
    assert labels["b"] == (("env", "dev"), ("instance", "h:9100"), ("job", "node"))
    assert observation.kind is ObservationKind.SCRAPE and observation.source == "node/h:9100"
    assert observation.outcome is Outcome.ACCEPTED and observation.time == 1000.0


async def test_honor_labels_keeps_scraped_values() -> None:
    t = target(honor_labels=True)
    observation = ScrapeObserver(t).observe(await scrape(t, b'a{job="app"} 1\n'), 0.0)
    ((_, labels),) = [k for k in series(observation) if k[0] == "a"]
    assert labels == (("env", "dev"), ("instance", "h:9100"), ("job", "app"))


async def test_timestamps_follow_honor_timestamps() -> None:
    body = b"a 1 1700000000000\n"
    for honor, expected in ((True, 1_700_000_000.0), (False, None)):
        t = target(honor_timestamps=honor)
        observation = ScrapeObserver(t).observe(await scrape(t, body), 0.0)
        assert observation.families[0].samples[0].timestamp == expected


async def test_report_series_and_series_added_across_scrapes() -> None:
    t = target()
    observer = ScrapeObserver(t)
    first = series(observer.observe(await scrape(t, b"a 1\nb 2\n"), 0.0))
    second = series(observer.observe(await scrape(t, b"a 1\nb 2\nc 3\n"), 15.0))
    report = t.labels
    assert first[("up", report)] == 1 and first[("scrape_series_added", report)] == 2
    assert second[("scrape_series_added", report)] == 1
    assert second[("scrape_samples_scraped", report)] == 3
    assert second[("scrape_samples_post_metric_relabeling", report)] == 3
    assert second[("scrape_timeout_seconds", report)] == 10
    assert second[("scrape_sample_limit", report)] == 0
    assert second[("scrape_body_size_bytes", report)] == len(b"a 1\nb 2\nc 3\n")
    names = [name for name, _ in REPORT_SERIES]
    observation = observer.observe(await scrape(t, b"a 1\n"), 30.0)
    assert [f.name for f in observation.families][-len(names) :] == names
    assert observation.transport.extra["series_added"] == "0"


async def test_sample_limit_refuses_the_whole_scrape() -> None:
    t = target(sample_limit=2)
    observation = ScrapeObserver(t).observe(await scrape(t, b"a 1\nb 2\nc 3\n"), 0.0)
    got = series(observation)
    assert observation.outcome is Outcome.REJECTED
    assert observation.transport.extra["failure"] == "sample_limit"
    assert "sample limit exceeded: 3 samples, the limit is 2" in observation.message
    assert {name for name, _ in got} == {name for name, _ in REPORT_SERIES}
    assert got[("up", t.labels)] == 0 and got[("scrape_samples_scraped", t.labels)] == 3
    assert got[("scrape_sample_limit", t.labels)] == 2


@pytest.mark.parametrize(
    ("status", "body", "outcome", "failure"),
    [(500, b"oops", Outcome.REJECTED, "http_status"), (200, b"a{ 1\n", Outcome.REJECTED, "parse")],
)
async def test_a_scrape_prometheus_refuses_keeps_only_report_series(
    status: int, body: bytes, outcome: Outcome, failure: str
) -> None:
    t = target()
    observation = ScrapeObserver(t).observe(await scrape(t, body, status), 0.0)
    assert observation.outcome is outcome and observation.transport.extra["failure"] == failure
    assert series(observation)[("up", t.labels)] == 0
    assert len(observation.families) == len(REPORT_SERIES)
    if failure == "parse":
        assert observation.diagnostics
