"""The scrape manager on a virtual clock: schedule, jitter, no overlap, target updates, cancellation."""

from __future__ import annotations

import asyncio
import gc
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from promscope.observation import Outcome
from promscope.scrape.loop import ScrapeManager
from promscope.scrape.targets import ScrapeTarget, targets_from_urls

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


def manager(vc: Any, sink: Any, handler: Handler, **kwargs: object) -> ScrapeManager:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ScrapeManager(sink, client=client, clock=vc.time, monotonic=vc.time, sleep=vc.sleep, **kwargs)  # type: ignore[arg-type]


def _drop(observation: object) -> None:
    return None


def urls(*ports: int, interval: float = 5, timeout: float | None = None) -> list[ScrapeTarget]:
    return targets_from_urls([f"http://h:{p}/metrics" for p in ports], interval=interval, timeout=timeout)


async def test_interval_is_kept_after_the_jittered_start(
    expo: Any, virtual_clock: Any, recorder: Any
) -> None:
    starts: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        starts.append(virtual_clock.time())
        return expo.response(expo(2))

    m = manager(virtual_clock, recorder, handler)
    (target,) = urls(1)
    m.set_targets([target])
    begin = virtual_clock.time()
    async with m:
        await virtual_clock.advance(61)
    first = begin + target.offset(begin)
    assert starts[0] == pytest.approx(first)
    assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [5.0] * (len(starts) - 1)
    assert len(starts) in (12, 13)
    stats = m.targets()[0].stats
    assert (stats.missed_intervals, stats.overruns, stats.overlaps, stats.lag_max) == (0, 0, 0, 0)
    assert [o.time for o in recorder.observations] == pytest.approx(starts)


async def test_jitter_is_deterministic_and_spreads_targets(expo: Any, virtual_clock: Any) -> None:
    async def run() -> dict[str, float]:
        vc = type(virtual_clock)()
        firsts: dict[str, float] = {}

        async def handler(request: httpx.Request) -> httpx.Response:
            firsts.setdefault(str(request.url), vc.time())
            return expo.response(expo(1))

        m = manager(vc, _drop, handler)
        m.set_targets(urls(*range(1, 21), interval=10))
        async with m:
            await vc.advance(10)
        return firsts

    first, second = await run(), await run()
    assert first == second
    assert len(first) == 20 and len({round(t, 3) for t in first.values()}) == 20


async def test_without_jitter_all_start_at_once(expo: Any, virtual_clock: Any, recorder: Any) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return expo.response(expo(1))

    m = manager(virtual_clock, recorder, handler, jitter=False)
    m.set_targets(urls(1, 2, 3))
    async with m:
        await virtual_clock.advance(0)
    assert len({o.time for o in recorder.observations}) == 1 and len(recorder.observations) == 3


async def test_a_slow_scrape_delays_the_next_and_never_overlaps(
    expo: Any, virtual_clock: Any, recorder: Any
) -> None:
    running = 0
    peak = 0
    starts: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        starts.append(virtual_clock.time())
        await virtual_clock.sleep(7 if len(starts) == 2 else 0.5)
        running -= 1
        return expo.response(expo(1))

    m = manager(virtual_clock, recorder, handler, jitter=False)
    m.set_targets(urls(1, interval=5))
    async with m:
        await virtual_clock.advance(30)
    t0 = starts[0]
    # 0: on time; 5: takes 7 s, so the 10 s slot is missed and the next starts at once at 12; then 15, 20…
    assert [s - t0 for s in starts[:5]] == pytest.approx([0, 5, 12, 15, 20])
    assert peak == 1
    stats = m.targets()[0].stats
    assert (stats.missed_intervals, stats.overruns, stats.overlaps) == (1, 1, 0)
    assert stats.lag_max == pytest.approx(2.0)


async def test_a_scrape_longer_than_several_intervals_counts_each_missed(
    expo: Any, virtual_clock: Any
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await virtual_clock.sleep(11)
        return expo.response(expo(1))

    m = manager(virtual_clock, _drop, handler, jitter=False)
    m.set_targets(urls(1, interval=5))
    async with m:
        await virtual_clock.advance(11.5)
    stats = m.targets()[0].stats
    assert (stats.scrapes, stats.missed_intervals, stats.overruns) == (2, 2, 1)


async def test_target_updates_keep_unchanged_loops(expo: Any, virtual_clock: Any, recorder: Any) -> None:
    seen: list[tuple[float, str]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append((virtual_clock.time(), request.url.netloc.decode()))
        return expo.response(expo(1))

    m = manager(virtual_clock, recorder, handler, jitter=False)
    a, b = urls(1, 2)
    m.set_targets([a, b])
    async with m:
        await virtual_clock.advance(12)
        before = {s.target.identity: s for s in m.targets()}
        (c,) = urls(3)
        (b_slow,) = urls(2, interval=10)
        m.set_targets([a, b_slow, c])
        await virtual_clock.advance(20)
        after = {s.target.identity: s for s in m.targets()}
        m.set_targets([c])
        await virtual_clock.advance(0)
        assert [s.target.identity for s in m.targets()] == ["promscope/h:3"]
        assert m.stats.stopped == 2
    assert after["promscope/h:1"].health is before["promscope/h:1"].health
    assert after["promscope/h:1"].stats.restarts == 0
    # Changed settings: restarted, history kept.
    assert after["promscope/h:2"].health is before["promscope/h:2"].health
    assert after["promscope/h:2"].stats.restarts == 1
    assert after["promscope/h:2"].target.interval == 10
    a_times = [t for t, host in seen if host == "h:1"]
    assert [round(y - x, 6) for x, y in itertools.pairwise(a_times)] == [5.0] * (len(a_times) - 1)
    assert m.stats.started == 3 and m.stats.restarted == 1


async def test_stop_cancels_scrapes_in_flight(expo: Any, virtual_clock: Any, recorder: Any) -> None:
    cancelled = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        try:
            await virtual_clock.sleep(1000)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return expo.response(b"")

    m = manager(virtual_clock, recorder, handler, jitter=False)
    m.set_targets(urls(1))
    await m.start()
    await virtual_clock.advance(1)
    await m.stop()
    assert cancelled.is_set() and not m.running
    assert all(t.done() for t in asyncio.all_tasks() if t.get_name().startswith("promscope-"))


async def test_a_failing_sink_is_counted_and_the_loop_goes_on(expo: Any, virtual_clock: Any) -> None:
    calls = 0

    def sink(observation: object) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("sink bug")

    async def handler(request: httpx.Request) -> httpx.Response:
        return expo.response(expo(1))

    m = manager(virtual_clock, _drop, handler, jitter=False)
    m.sink = sink
    m.set_targets(urls(1))
    async with m:
        await virtual_clock.advance(10)
    assert calls == 3 and m.targets()[0].stats.sink_errors == 3


async def test_an_unreadable_token_file_is_a_config_failure(
    expo: Any, virtual_clock: Any, recorder: Any
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return expo.response(expo(1))

    m = manager(virtual_clock, recorder, handler, jitter=False)
    from promscope.scrape.targets import ScrapeConfig

    config = ScrapeConfig(job_name="j", bearer_token_file="/nonexistent/token", interval=5, timeout=5)
    m.set_targets([config.url_target("http://h:1/metrics")])
    async with m:
        await virtual_clock.advance(0)
    (observation,) = recorder.observations
    assert observation.outcome is Outcome.FAILED
    assert observation.transport.extra["failure"] == "config"
    assert "bearer token file" in observation.message
    assert m.targets()[0].health.consecutive_failures == 1


async def test_max_targets_refuses_and_counts(expo: Any, virtual_clock: Any, recorder: Any) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return expo.response(expo(1))

    m = manager(virtual_clock, recorder, handler, max_targets=2)
    m.set_targets(urls(1, 2, 3, 4) + urls(1))
    assert len(m.targets()) == 2
    assert m.stats.targets_refused == 2 and "2 targets over the limit of 2" in m.stats.refused_message
    assert m.stats.duplicates == 1


async def test_targets_api_shape(expo: Any, virtual_clock: Any, recorder: Any) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.port == 2:
            return httpx.Response(500, text="boom")
        return expo.response(expo(1))

    m = manager(virtual_clock, recorder, handler, jitter=False)
    m.set_targets(urls(1, 2))
    async with m:
        await virtual_clock.advance(0)
    data = m.targets_api(history=True)
    up, down = data["activeTargets"]
    assert set(up) >= {
        "discoveredLabels",
        "labels",
        "scrapePool",
        "scrapeUrl",
        "globalUrl",
        "lastError",
        "lastScrape",
        "lastScrapeDuration",
        "health",
        "scrapeInterval",
        "scrapeTimeout",
    }
    assert (up["health"], up["lastError"], up["scrapeInterval"]) == ("up", "", "5s")
    assert down["health"] == "down" and "500" in down["lastError"]
    assert down["history"]["failuresByClass"] == {"http_status": 1}
    assert up["lastScrape"].endswith("Z") and data["droppedTargets"] == []
    assert up["loop"]["missedIntervals"] == 0


async def test_the_pool_is_sharded_by_host_and_bounded() -> None:
    m = ScrapeManager(_drop, max_connections=16, pool_shards=4)
    targets = urls(*range(1, 41))
    clients = {id(m._client_for(t.request)) for t in targets}
    assert len(clients) == 4
    assert m._client_for(targets[0].request) is m._client_for(urls(1, interval=10)[0].request)
    await m.stop()
    assert m._clients == {}


async def test_each_target_reads_a_repeated_body_from_its_parse_cache(
    expo: Any, virtual_clock: Any, recorder: Any
) -> None:
    bodies = iter([expo(3, value=1), expo(3, value=2), expo(4, value=3), expo(4, value=4)])

    async def handler(request: httpx.Request) -> httpx.Response:
        return expo.response(next(bodies))

    m = manager(virtual_clock, recorder, handler, jitter=False)
    m.set_targets(urls(1))
    collecting = gc.isenabled()
    async with m:
        await virtual_clock.advance(16)
        (loop,) = m._loops.values()
        assert (loop.cache.hits, loop.cache.misses) == (2, 2)  # the 2nd and 4th bodies repeat a shape
    assert gc.isenabled() is collecting  # paused only while a scrape is parsed and handed to the sink
    values = [[s.value for s in o.families[0].samples] for o in recorder.observations]
    assert values == [[1, 2, 3], [2, 3, 4], [3, 4, 5, 6], [4, 5, 6, 7]]
    added = [o.transport.extra["series_added"] for o in recorder.observations]
    assert added == ["3", "0", "1", "0"]


async def test_a_scrape_with_a_body_over_the_threshold_is_parsed_in_a_thread(
    expo: Any, virtual_clock: Any, recorder: Any
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        return expo.response(expo(50))

    m = manager(virtual_clock, recorder, handler, jitter=False, thread_threshold=100)
    m.set_targets(urls(1))
    async with m:
        await virtual_clock.advance(0)
        for _ in range(100):  # the worker thread finishes in real time
            if recorder.observations:
                break
            await asyncio.sleep(0.01)
    (observation,) = recorder.observations
    assert observation.outcome is Outcome.ACCEPTED and observation.series == 50 + 8
