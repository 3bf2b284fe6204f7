"""ScrapeResult -> Observation: target labels as Prometheus applies them, sample_limit, report series."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from promscope.exposition import ParseCache, parse
from promscope.observation import ObservationKind, Outcome
from promscope.scrape import fetch
from promscope.scrape.observe import REPORT_SERIES, ScrapeObserver, _merge
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


# --- a changing target, scraped with the parse cache: the same Observations as the rules say -------

CHANGING = [
    b'# TYPE a_total counter\na_total{x="1"} 1\na_total{x="2"} 2\nb{job="app",env=""} 3 1700000000000\n',
    b'# TYPE a_total counter\na_total{x="1"} 5\na_total{x="2"} 6\nb{job="app",env=""} 3 1700000000000\n',
    b'# TYPE a_total counter\na_total{x="1"} 5\na_total{x="2"} 6\nb{job="app",env=""} 4 1700000005000\n',
    b'# TYPE a_total counter\na_total{x="1"} 7\na_total{x="2"} 8\na_total{x="3"} 1\nb{job="app",env=""} 4\n',
    b'# TYPE a_total counter\na_total{x="2"} 9\nb{job="app",env=""} 4\n',
    b'b{job="app",env=""} 4\n# TYPE a_total counter\na_total{x="2"} 9\n',
    b'b{env="",job="app"} 4\n# TYPE a_total counter\na_total{x="2"} 10\n',
    b'b{env="",job="app"} 4\nb{env="",job="app"} 5\n',
    b'a_total{x="1"} 1\na_total{x="2"} 2\na_total{x="3"} 3\na_total{x="4"} 4\n',
    b"a{ 1\n",
]


def expected(t: ScrapeTarget, body: bytes, previous: set[object]) -> tuple[list[object], set[object]] | None:
    """What an ingested scrape must carry, worked out from the rules without any cache; None when refused."""
    result = parse(body, "text")
    if result.errors() and any(d.code.startswith("PS-") for d in result.errors()):
        return None
    samples = [s for f in result.families for s in f.samples]
    if t.sample_limit and len(samples) > t.sample_limit:
        return None
    keys = {(s.name, s.labels) for s in samples}
    view = [
        (
            s.name,
            _merge(s.labels, t.labels, t.honor_labels),
            s.value,
            s.timestamp if t.honor_timestamps else None,
            s.line,
        )
        for s in samples
    ]
    return [*view, ("added", len(keys - previous))], keys


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(
    "settings",
    [{}, {"honor_labels": True}, {"honor_timestamps": False}, {"sample_limit": 3}],
    ids=["default", "honor_labels", "no_timestamps", "sample_limit"],
)
async def test_cached_scrapes_observe_what_the_rules_say(seed: int, settings: dict[str, Any]) -> None:
    rng = random.Random(seed)
    t = target(**settings)
    observer = ScrapeObserver(t)
    cache = ParseCache()
    previous: set[object] = set()
    bodies = iter([rng.choice(CHANGING) if rng.random() < 0.4 else b"" for _ in range(40)])
    body = CHANGING[0]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        for chosen in bodies:
            body = chosen or body  # empty: the same shape again (new values are in the bodies above)
            observation = observer.observe(await fetch(t.request, client=client, cache=cache), 0.0)
            want = expected(t, body, previous)
            if want is None:
                assert observation.outcome is not Outcome.ACCEPTED
                continue
            view, previous = want
            scraped = [f for f in observation.families if f.name not in dict(REPORT_SERIES)]
            got = [(s.name, s.labels, s.value, s.timestamp, s.line) for f in scraped for s in f.samples]
            assert [*got, ("added", int(observation.transport.extra["series_added"]))] == view
    assert cache.hits and cache.misses
