"""The Pushgateway receiver, driven with Request values (no sockets): API semantics, checks, limits,
observations, group age and persistence."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from promscope.exposition import parse
from promscope.exposition.protobuf import encode_protobuf
from promscope.exposition.render import render_text
from promscope.model import MetricType
from promscope.observation import Observation, ObservationKind, Outcome
from promscope.receive.groups import SimpleTextMemo, prepare_push, prepare_simple_text
from promscope.receive.http import Request, Response
from promscope.receive.pushgateway import PushgatewayReceiver, PushLimits, go_time, split_grouping_path

PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def request(
    method: str,
    path: str,
    body: bytes | str = b"",
    *,
    content_type: str | None = None,
    peer: str = "10.0.0.7:41234",
    user_agent: str | None = "test-agent/1.0",
    received_at: float = 1_700_000_000.0,
) -> Request:
    data = body.encode() if isinstance(body, str) else body
    headers: list[tuple[str, str]] = []
    if content_type:
        headers.append(("content-type", content_type))
    if user_agent:
        headers.append(("user-agent", user_agent))
    return Request(
        method=method,
        target=path,
        path=path,
        query="",
        headers=tuple(headers),
        body=data,
        wire_bytes=len(data),
        content_encoding=None,
        peer=peer,
        scheme="http",
        received_at=received_at,
    )


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def send(
    receiver: PushgatewayReceiver, method: str, path: str, body: bytes | str = b"", **kw: Any
) -> Response:
    handler = receiver.handle_push
    return await handler(request(method, path, body, **kw))


def exposed(receiver: PushgatewayReceiver) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Series re-exposed (through render and parse, as a scraper sees them), own metrics left out."""
    result = parse(render_text(receiver.exposition_families()), "text")
    assert not result.errors()
    return {
        (s.name, tuple(sorted(s.labels))): s.value
        for f in result.families
        if not f.name.startswith("promscope_")
        and f.name not in ("push_time_seconds", "push_failure_time_seconds")
        for s in f.samples
    }


# --- the grouping key in the URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "labels"),
    [
        ("/metrics/job/batch", {"job": "batch"}),
        ("/metrics/job/batch/", {"job": "batch"}),
        ("/metrics/job/batch/instance/h1/zone/a", {"job": "batch", "instance": "h1", "zone": "a"}),
        ("/metrics/job/batch/instance/", {"job": "batch", "instance": ""}),
        ("/metrics/job@base64/YS9i", {"job": "a/b"}),
        ("/metrics/job@base64/YS9i==", {"job": "a/b"}),
        ("/metrics/job/x/path@base64/L3Zhci90bXA", {"job": "x", "path": "/var/tmp"}),
        ("/metrics/job/x/instance@base64/=", {"job": "x", "instance": ""}),
        ("/metrics/job/x/job/ignored", {"job": "x"}),
    ],
)
def test_grouping_path(path: str, labels: dict[str, str]) -> None:
    assert split_grouping_path(path) == labels


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/metrics/job/a/b", 400, 'odd number of components in label string "/b"'),
        ("/metrics/job/q/__x/y", 400, 'improper label name "__x"'),
        ("/metrics/job/q/1x/y", 400, 'improper label name "1x"'),
        ("/metrics/job@base64/=", 400, "job name is required"),
        ("/metrics/job@base64/a+b", 400, 'invalid base64 encoding in job name "a+b"'),
        ("/metrics/job/x/l@base64/%%", 400, "invalid base64 encoding for label l="),
    ],
)
def test_bad_grouping_paths_are_refused_as_upstream_refuses_them(
    path: str, status: int, message: str
) -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        response = await send(receiver, "PUT", path, "x 1\n")
        assert response.status == status
        assert response.body.decode().startswith(message)
        assert len(receiver.store) == 0
        assert receiver.stats.refused == {"bad_path": 1}

    run(test)


def test_paths_upstream_redirects() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        response = await send(receiver, "PUT", "/metrics/job/e/a//b/c", "x 1\n")
        assert response.status == 301
        assert dict(response.headers)["location"] == "/metrics/job/e/a/b/c"
        response = await send(receiver, "PUT", "/metrics/job/", "x 1\n")
        assert (response.status, dict(response.headers)["location"]) == (307, "/metrics/job")
        assert len(receiver.store) == 0

    run(test)


# --- PUT, POST, DELETE ---------------------------------------------------------------------------------


def test_put_replaces_the_group_post_replaces_families_delete_removes_exactly_the_group() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver(clock=Clock())
        assert (await send(receiver, "PUT", "/metrics/job/p", "# TYPE a counter\na 1\nb 2\n")).status == 200
        assert (await send(receiver, "POST", "/metrics/job/p", 'b{x="1"} 3\nc 4\n')).status == 200
        assert exposed(receiver) == {
            ("a", (("instance", ""), ("job", "p"))): 1.0,
            ("b", (("instance", ""), ("job", "p"), ("x", "1"))): 3.0,
            ("c", (("instance", ""), ("job", "p"))): 4.0,
        }
        assert (await send(receiver, "PUT", "/metrics/job/p/instance/i", "d 5\n")).status == 200
        assert (await send(receiver, "PUT", "/metrics/job/p", "e 6\n")).status == 200
        assert set(exposed(receiver)) == {
            ("d", (("instance", "i"), ("job", "p"))),
            ("e", (("instance", ""), ("job", "p"))),
        }
        assert (await send(receiver, "DELETE", "/metrics/job/p")).status == 202
        assert set(exposed(receiver)) == {("d", (("instance", "i"), ("job", "p")))}
        assert (await send(receiver, "DELETE", "/metrics/job/nothing")).status == 202

    run(test)


def test_grouping_labels_override_body_labels_and_instance_is_added() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        body = 'd{job="other",instance="zz"} 1\nf{zone="a"} 2\n'
        assert (await send(receiver, "PUT", "/metrics/job/q", body)).status == 200
        assert exposed(receiver) == {
            ("d", (("instance", "zz"), ("job", "q"))): 1.0,
            ("f", (("instance", ""), ("job", "q"), ("zone", "a"))): 2.0,
        }
        body = 'g{instance="body"} 1\n'
        assert (await send(receiver, "PUT", "/metrics/job/q/instance/url", body)).status == 200
        assert ("g", (("instance", "url"), ("job", "q"))) in exposed(receiver)

    run(test)


def test_push_time_and_failure_time_per_group() -> None:
    async def test() -> None:
        clock = Clock(100.0)
        receiver = PushgatewayReceiver(clock=clock)
        await send(receiver, "PUT", "/metrics/job/t", "a 1\n")
        clock.now = 200.0
        assert (await send(receiver, "PUT", "/metrics/job/t", "a 1 123\n")).status == 400
        times = {f.name: f.samples[0].value for f in receiver.store.push_time_families()}
        assert times == {"push_time_seconds": 100.0, "push_failure_time_seconds": 200.0}
        # a refused push to a new group creates it, with push time 0, as upstream does
        assert (await send(receiver, "PUT", "/metrics/job/new", "b 1 5\n")).status == 400
        info = {g.source: g for g in receiver.groups()}
        assert info["job=new"].push_time == 0.0 and info["job=new"].failure_time == 200.0
        assert not info["job=new"].last_push_successful

    run(test)


def test_protobuf_bodies_and_content_type_decides() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        text = '# TYPE h histogram\nh_bucket{le="1.0"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n'
        body = encode_protobuf(parse(text, "text").families)
        assert (await send(receiver, "PUT", "/metrics/job/pb", body, content_type=PROTOBUF)).status == 200
        assert ("h_bucket", (("instance", ""), ("job", "pb"), ("le", "1"))) in exposed(receiver)
        # the same bytes without the exact Content-Type are read as text, and fail
        response = await send(
            receiver, "PUT", "/metrics/job/pb2", body, content_type="application/octet-stream"
        )
        assert response.status == 400

    run(test)


# --- refusals carry every problem --------------------------------------------------------------------


def test_a_bad_body_gets_every_error_with_line_and_column() -> None:
    async def test() -> None:
        seen: list[Observation] = []
        receiver = PushgatewayReceiver(sink=seen.append)
        response = await send(receiver, "PUT", "/metrics/job/bad", "ok 1\nfoo{ 3\nbar x\n")
        await asyncio.sleep(0)
        text = response.body.decode()
        assert response.status == 400
        assert text.startswith("text format parsing error in line 2: ")
        assert "2 errors:" in text
        assert "line 2, column 6:" in text and "line 3, column 5:" in text
        assert len(receiver.store) == 0  # a parse error changes nothing, as upstream
        (observation,) = seen
        assert observation.outcome is Outcome.REJECTED
        assert [(d.line, d.column) for d in observation.errors()] == [(2, 6), (3, 5)]

    run(test)


def test_consistency_problems_are_all_reported() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        await send(
            receiver,
            "PUT",
            "/metrics/job/j1",
            '# TYPE foo counter\nfoo{a="1"} 1\n# TYPE s summary\ns_sum 1\ns_count 1\n',
        )
        body = '# TYPE foo gauge\nfoo{a="2"} 1\nz 1\nz 2\n# TYPE s_count gauge\ns_count 3\nt 1 99\n'
        response = await send(receiver, "PUT", "/metrics/job/j2", body)
        text = response.body.decode()
        assert response.status == 400
        assert text.startswith("pushed metrics are invalid or inconsistent with existing metrics: ")
        for code in ("PG-001", "PG-002", "PG-004", "PG-005"):
            assert f"[{code}]" in text, code
        assert "line 1, column 1" in text and "line 4, column 1" in text

    run(test)


def test_duplicate_series_across_groups_and_own_names() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        assert (await send(receiver, "PUT", "/metrics/job/j1/instance/i1", 'foo{a="1"} 1\n')).status == 200
        response = await send(receiver, "PUT", "/metrics/job/j1", 'foo{a="1",instance="i1"} 1\n')
        assert response.status == 400 and "[PG-003]" in response.body.decode()
        assert "job=j1/instance=i1" in response.body.decode()
        response = await send(receiver, "PUT", "/metrics/job/x", "promscope_pushgateway_groups 1\n")
        assert response.status == 400 and "[PG-006]" in response.body.decode()
        assert receiver.stats.refused == {"inconsistent": 2}

    run(test)


@pytest.mark.parametrize("twin", ["/metrics/job/z/instance@base64/=", "/metrics/job/z/instance/"])
def test_a_group_whose_push_time_would_duplicate_anothers_is_refused_and_not_created(twin: str) -> None:
    async def test() -> None:
        seen: list[Observation] = []
        receiver = PushgatewayReceiver(sink=seen.append)
        assert (await send(receiver, "PUT", "/metrics/job/z", "a 1\n")).status == 200
        refused = await send(receiver, "PUT", twin, "b 1\n")
        assert refused.status == 400  # as upstream answers
        assert b"PG-011" in refused.body and b'instance=""' in refused.body
        # upstream creates the failure-only group here, and every scrape of it fails from then on
        assert [g.source for g in receiver.groups()] == ["job=z"]
        result = parse(render_text(receiver.exposition_families()), "text")
        assert not result.errors()
        # the other way round too, and a group with another label is no twin
        assert (await send(receiver, "DELETE", "/metrics/job/z")).status == 202
        assert (await send(receiver, "PUT", twin, "b 1\n")).status == 200
        assert (await send(receiver, "PUT", "/metrics/job/z", "a 1\n")).status == 400
        assert (await send(receiver, "PUT", "/metrics/job/z/zone@base64/=", "c 1\n")).status == 200
        await asyncio.sleep(0)
        codes = [d.code for o in seen if not o.accepted for d in o.diagnostics]
        assert codes == ["PG-011", "PG-011"]

    run(test)


def test_help_clash_is_a_warning_and_the_longest_held_help_wins() -> None:
    async def test() -> None:
        seen: list[Observation] = []
        receiver = PushgatewayReceiver(sink=seen.append)
        await send(receiver, "PUT", "/metrics/job/a", "# HELP foo First.\nfoo 1\n")
        assert (await send(receiver, "PUT", "/metrics/job/b", "# HELP foo Second.\nfoo 2\n")).status == 200
        await asyncio.sleep(0)
        assert [d.code for d in seen[-1].diagnostics] == ["PG-007"]
        (foo,) = [f for f in receiver.exposition_families() if f.name == "foo"]
        assert foo.help == "First." and len(foo.samples) == 2

    run(test)


def test_without_the_consistency_check_pushes_are_202_as_upstream() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver(check_consistency=False)
        assert (await send(receiver, "PUT", "/metrics/job/a", "# TYPE foo counter\nfoo 1\n")).status == 202
        assert (await send(receiver, "PUT", "/metrics/job/b", "# TYPE foo gauge\nfoo 1\n")).status == 202
        assert (await send(receiver, "PUT", "/metrics/job/c", "bar 1 5\n")).status == 202
        assert "job=c" in {g.source for g in receiver.groups()}
        assert receiver.stats.refused == {"timestamps": 1}

    run(test)


# --- observations ---------------------------------------------------------------------------------------


def test_every_push_becomes_an_observation_after_the_response() -> None:
    async def test() -> None:
        seen: list[Observation] = []
        receiver = PushgatewayReceiver(sink=seen.append)
        await send(receiver, "PUT", "/metrics/job/batch/instance/h1", "a 1\nb 2\n")
        assert seen == []  # handed over after the handler returned its response
        await asyncio.sleep(0)
        await send(receiver, "PUT", "/metrics/job/batch/instance/h1", "a 1\nb 3\nc 4\n", peer="10.0.0.8:5")
        await send(receiver, "POST", "/metrics/job/batch/a", "x 1\n")
        await send(receiver, "DELETE", "/metrics/job/batch/instance/h1")
        await asyncio.sleep(0)
        first, second, odd, delete = seen
        assert first.kind is ObservationKind.PUSHGATEWAY
        assert first.source == "job=batch/instance=h1"
        assert first.outcome is Outcome.ACCEPTED and first.series == 2
        transport = first.transport
        assert (transport.sender, transport.user_agent, transport.status, transport.method) == (
            "10.0.0.7:41234",
            "test-agent/1.0",
            200,
            "PUT",
        )
        assert transport.grouping_key == (("job", "batch"), ("instance", "h1"))
        assert transport.body_bytes == len(b"a 1\nb 2\n")
        assert first.changes is not None and first.changes.families_added == ("a", "b")
        assert second.changes is not None
        assert second.changes.families_added == ("c",)
        assert second.changes.families_changed == ("b",)
        assert (second.changes.series_added, second.changes.series_changed) == (1, 1)
        assert odd.outcome is Outcome.REJECTED and odd.transport.status == 400
        assert delete.changes is not None and delete.changes.series_removed == 3
        senders = {s.host: s for s in receiver.senders()}
        assert senders["10.0.0.7"].requests == 3 and senders["10.0.0.7"].rejected == 1
        assert senders["10.0.0.8"].accepted == 1

    run(test)


def test_a_failing_sink_is_counted_not_raised() -> None:
    async def test() -> None:
        def sink(observation: Observation) -> None:
            raise RuntimeError("boom")

        receiver = PushgatewayReceiver(sink=sink)
        assert (await send(receiver, "PUT", "/metrics/job/a", "a 1\n")).status == 200
        await asyncio.sleep(0)
        assert receiver.stats.sink_errors == 1

    run(test)


# --- group age ----------------------------------------------------------------------------------------


def test_stale_groups_are_shown_and_expired_groups_deleted() -> None:
    async def test() -> None:
        clock = Clock(1000.0)
        receiver = PushgatewayReceiver(clock=clock, stale_after=60, expire_after=600)
        await send(receiver, "PUT", "/metrics/job/old", "a 1\n")
        clock.now = 1100.0
        await send(receiver, "PUT", "/metrics/job/new", "b 1\n")
        stale = {g.source: g.stale for g in receiver.groups()}
        assert stale == {"job=old": True, "job=new": False}
        (gauge,) = [
            f for f in receiver.exposition_families() if f.name == "promscope_pushgateway_group_stale"
        ]
        assert {s.labels: s.value for s in gauge.samples} == {(("job", "old"),): 1.0, (("job", "new"),): 0.0}
        clock.now = 1650.0
        assert await receiver.expire() == ["job=old"]
        assert [g.source for g in receiver.groups()] == ["job=new"]
        assert receiver.stats.expired_groups == 1

    run(test)


def test_an_expired_group_becomes_an_accepted_observation_with_its_removal(tmp_path: pathlib.Path) -> None:
    from promscope.receive.log import PushLog

    db = str(tmp_path / "push.db")

    async def test() -> None:
        clock = Clock(1000.0)
        seen: list[Observation] = []
        push_log = PushLog()
        receiver = PushgatewayReceiver(
            clock=clock,
            expire_after=600,
            persistence_file=db,
            sink=lambda o: (seen.append(o), push_log(o)),
        )
        await receiver.start()
        await send(receiver, "PUT", "/metrics/job/old/instance/a", 'a 1\nb{x="1"} 2\nb{x="2"} 3\n')
        await send(receiver, "PUT", "/metrics/job/never", "ts 1 5\n")  # refused: a failure-only group
        clock.now = 1500.0
        await send(receiver, "PUT", "/metrics/job/new", "c 1\n")
        clock.now = 1700.0
        assert sorted(await receiver.expire()) == ["job=never", "job=old/instance=a"]
        await asyncio.sleep(0)  # observations are delivered after the current step
        await receiver.stop()
        expired = sorted((o for o in seen if o.transport.extra.get("expired")), key=lambda o: o.source)
        assert [o.source for o in expired] == ["job=never", "job=old/instance=a"]
        never, old = expired
        assert old.kind is ObservationKind.PUSHGATEWAY and old.outcome is Outcome.ACCEPTED
        assert old.time == 1700.0 and old.transport.sender is None and old.transport.protocol == "internal"
        assert old.transport.grouping_key == (("job", "old"), ("instance", "a"))
        assert old.message == "expired after 10m (last push 11m40s ago)"
        assert old.transport.extra["last_sender"] == "10.0.0.7:41234"
        assert old.changes is not None
        assert sorted(old.changes.families_removed) == ["a", "b"] and old.changes.series_removed == 3
        assert never.message == "expired after 10m (no successful push since it appeared 11m40s ago)"
        # promscope's own doing: in the log, but no sender and no activity of the source
        assert push_log.total == len(seen)
        assert all(s.key != "unknown" for s in push_log.senders())
        assert {s.key for s in push_log.sources()} == {"job=old/instance=a", "job=never", "job=new"}
        old_source = next(s for s in push_log.sources() if s.key == "job=old/instance=a")
        assert old_source.last_seen == 1_700_000_000.0  # the push's received_at, not the expiry
        # and the deletion is persisted
        again = PushgatewayReceiver(persistence_file=db)
        await again.start()
        assert [g.source for g in again.groups()] == ["job=new"]
        await again.stop()

    run(test)


# --- limits ------------------------------------------------------------------------------------------


def test_limits_refuse_with_a_clear_4xx_and_are_counted() -> None:
    async def test() -> None:
        limits = PushLimits(
            max_body_bytes=200,
            max_series_per_push=3,
            max_total_series=5,
            max_groups=2,
            max_label_value_length=10,
        )
        receiver = PushgatewayReceiver(limits=limits)
        assert (await send(receiver, "PUT", "/metrics/job/a", "a 1\nb 1\nc 1\n")).status == 200
        response = await send(receiver, "PUT", "/metrics/job/b", "a 1\nb 1\nc 1\nd 1\n")
        assert response.status == 413 and "per-push limit" in response.body.decode()
        response = await send(receiver, "PUT", "/metrics/job/b", "x 1\ny 1\nz 1\n")
        assert response.status == 413 and "total series" in response.body.decode()
        assert (await send(receiver, "PUT", "/metrics/job/b", "x 1\n")).status == 200
        response = await send(receiver, "PUT", "/metrics/job/c", "x 1\n")
        assert response.status == 413 and "groups" in response.body.decode()
        response = await send(receiver, "PUT", "/metrics/job/a", 'x{l="01234567890"} 1\n')
        assert response.status == 400 and "line 1" in response.body.decode()
        assert (await send(receiver, "PUT", "/metrics/job/a", "x 1\n" * 60)).status == 413
        response = await send(receiver, "PUT", "/metrics/job/a/l/01234567890", "x 1\n")
        assert response.status == 400
        assert receiver.stats.refused == {
            "series_per_push": 1,
            "total_series": 1,
            "groups": 1,
            "label_value_length": 1,
            "too_large": 1,
            "label_length": 1,
        }
        assert receiver.series == 4  # nothing refused was stored

    run(test)


# --- the API ------------------------------------------------------------------------------------------


def test_api_metrics_has_upstreams_shape() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver(clock=Clock(1_700_000_000.5))
        body = (
            "# HELP s A summary.\n# TYPE s summary\n"
            's{quantile="0.5"} 1\ns_sum 2\ns_count 3\n'
            '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1.5\nh_count 2\n'
            "g 1e+06\n"
        )
        await send(receiver, "PUT", "/metrics/job/api/instance/i", body)
        payload = json.loads((await receiver.handle_api_metrics(request("GET", "/api/v1/metrics"))).body)
        assert payload["status"] == "success"
        (group,) = payload["data"]
        assert group["labels"] == {"job": "api", "instance": "i"}
        assert group["last_push_successful"] is True
        assert group["s"]["type"] == "SUMMARY" and group["s"]["help"] == "A summary."
        labels = {"instance": "i", "job": "api"}
        assert group["s"]["metrics"] == [
            {"labels": labels, "quantiles": {"0.5": "1"}, "count": "3", "sum": "2"}
        ]
        assert group["h"]["metrics"] == [
            {"labels": labels, "buckets": {"1": "1", "+Inf": "2"}, "count": "2", "sum": "1.5"}
        ]
        assert group["g"] == {
            "time_stamp": "2023-11-14T22:13:20.5Z",
            "type": "UNTYPED",
            "metrics": [{"labels": labels, "value": "1e+06"}],
        }
        assert group["push_time_seconds"]["metrics"][0]["value"] == "1.7000000005e+09"
        assert group["@promscope"]["last_sender"] == "10.0.0.7:41234"

    run(test)


def test_go_time_format() -> None:
    assert go_time(0.0) == "1970-01-01T00:00:00Z"
    assert go_time(1.25) == "1970-01-01T00:00:01.25Z"


def test_health_status_and_wipe() -> None:
    async def test() -> None:
        receiver = PushgatewayReceiver()
        await send(receiver, "PUT", "/metrics/job/a", "a 1\n")
        assert (await receiver.handle_healthy(request("GET", "/-/healthy"))).body == b"OK"
        status = json.loads((await receiver.handle_api_status(request("GET", "/api/v1/status"))).body)
        assert set(status["data"]) == {"flags", "start_time", "build_information"}
        assert (await receiver.handle_wipe(request("PUT", "/api/v1/admin/wipe"))).status == 202
        assert len(receiver.store) == 0
        paths = {route.path for route in receiver.routes()}
        assert "/api/v1/admin/wipe" in paths
        assert "/api/v1/admin/wipe" not in {r.path for r in PushgatewayReceiver(admin_api=False).routes()}

    run(test)


# --- persistence ---------------------------------------------------------------------------------------


def test_persistence_restores_groups_families_and_times(tmp_path: pathlib.Path) -> None:
    db = str(tmp_path / "push.db")

    async def first() -> None:
        receiver = PushgatewayReceiver(persistence_file=db, clock=Clock(10.0))
        await receiver.start()
        await send(receiver, "PUT", "/metrics/job/a", "# TYPE x counter\nx 1\ny 2\n")
        await send(receiver, "POST", "/metrics/job/a", "y 3\nz 4\n")
        await send(receiver, "PUT", "/metrics/job/b/instance/i", "w 1\n")
        await send(receiver, "PUT", "/metrics/job/c", "v 1\n")
        await send(receiver, "DELETE", "/metrics/job/c")
        await send(receiver, "PUT", "/metrics/job/d", "ts 1 5\n")  # refused: a failure-only group
        text = '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n'
        body = encode_protobuf(parse(text, "text").families)
        await send(receiver, "PUT", "/metrics/job/pb", body, content_type=PROTOBUF)
        before[:] = [exposed(receiver), [(g.source, g.push_time, g.failure_time) for g in receiver.groups()]]
        await receiver.stop()

    async def second() -> None:
        receiver = PushgatewayReceiver(persistence_file=db)
        await receiver.start()
        after[:] = [exposed(receiver), [(g.source, g.push_time, g.failure_time) for g in receiver.groups()]]
        # re-pushing to a restored group works against restored indexes
        assert (await send(receiver, "PUT", "/metrics/job/a/instance/", "y 1\n")).status == 400
        await receiver.stop()

    before: list[Any] = []
    after: list[Any] = []
    run(first)
    run(second)
    assert after == before
    assert ("y", (("instance", ""), ("job", "a"))) in after[0] and after[0][
        ("y", (("instance", ""), ("job", "a")))
    ] == 3
    with sqlite3.connect(db) as conn:
        # bodies nothing points at any more are gone: a (2 bodies), b, pb
        assert conn.execute("SELECT COUNT(*) FROM bodies").fetchone()[0] == 4
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_wipe_is_persisted(tmp_path: pathlib.Path) -> None:
    db = str(tmp_path / "push.db")

    async def test() -> None:
        receiver = PushgatewayReceiver(persistence_file=db)
        await receiver.start()
        await send(receiver, "PUT", "/metrics/job/a", "a 1\n")
        await receiver.handle_wipe(request("PUT", "/api/v1/admin/wipe"))
        await receiver.stop()
        again = PushgatewayReceiver(persistence_file=db)
        await again.start()
        assert len(again.store) == 0
        await again.stop()

    run(test)


def test_an_unreadable_persistence_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    from promscope.receive.persistence import PersistenceError

    bad = tmp_path / "not-sqlite.db"
    bad.write_bytes(b"this is not a database" * 100)

    async def test() -> None:
        receiver = PushgatewayReceiver(persistence_file=str(bad))
        with pytest.raises(PersistenceError, match=r"not-sqlite\.db"):
            await receiver.start()

    run(test)


# --- the fast path gives what the full parser gives --------------------------------------------------

SIMPLE_BODIES = [
    "a 1\n",
    '# HELP a_total Things.\n# TYPE a_total counter\na_total{x="1",y="2"} 3\na_total{x="2",y="2"} 4.5\n',
    '# TYPE g gauge\n# HELP g Help.\ng -Inf\ng{a=""} NaN\n',
    'm{a="1",} 1\nn{b="x y"} 2e3\nm2 .5\n',
    "# HELP only Only help.\nsample 1\n",
    # not simple: each must give None, and the full path decides
    "a 1 123\n",
    "a 1\n\nb 2\n",
    'a{a="1"b="2"} 1\n',
    'a{a="1",a="2"} 1\n',
    "a 1\nb 1\na 2\n",
    "# TYPE h histogram\nh_sum 1\n",
    'a{job="x"} 1\n',
    'a{instance="x"} 1\n',
    "a 1\na 2\n",
    "a 0x10\n",
    "# comment\na 1\n",
    "a 1",
    "push_time_seconds 1\n",
    "# TYPE a counter\na 1\n# TYPE a counter\n",
    "a\t1\n",
]


@pytest.mark.parametrize("body", SIMPLE_BODIES)
def test_the_fast_path_matches_the_full_parser(body: str) -> None:
    grouping = {"job": "j", "zone": "z"}
    cache: dict[str, Any] = {}
    fast = prepare_simple_text(body.encode(), grouping, cache)
    again = prepare_simple_text(body.encode(), grouping, cache)  # now from the label cache
    assert (fast is None) == (again is None)
    if fast is not None and again is not None:
        assert list(fast.families) == list(again.families)
        assert all(i.family.equivalent(again.families[n].family) for n, i in fast.families.items())
    result = parse(body.encode(), "text", semantics=False)
    if fast is None:
        return
    assert not result.diagnostics
    full = prepare_push(result.families, grouping)
    assert list(fast.families) == list(full.families)
    for name, item in fast.families.items():
        other = full.families[name].family
        assert item.family.equivalent(other) and item.family.line == other.line
        assert [s.line for s in item.family.samples] == [s.line for s in other.samples]
        assert item.identities == full.families[name].identities
    assert fast.series == full.series


def _variants(body: str) -> list[str]:
    """``body`` with other values (valid and not), and bodies of another shape."""
    values = ["7.5e3", "NaN", "+Inf", "-1", ".5", "0x10", "1 2", "1\r", "1 #"]
    out = [re.sub(r" ([0-9]+)$", " " + value, body, flags=re.MULTILINE) for value in values]
    return [
        *out,
        body.rstrip("\n"),
        body + "\n",
        body + "a 1\n",
        body.replace("\n", "\n\n", 1),
        *SIMPLE_BODIES,
    ]


@pytest.mark.parametrize("body", SIMPLE_BODIES)
def test_the_body_memo_gives_what_the_fast_path_gives(body: str) -> None:
    grouping = {"job": "j", "zone": "z"}
    for variant in _variants(body):
        memo = SimpleTextMemo()
        prepare_simple_text(body.encode(), grouping, {}, memo)
        remembered = prepare_simple_text(variant.encode(), grouping, {}, memo)
        fresh = prepare_simple_text(variant.encode(), grouping, {})
        assert (remembered is None) == (fresh is None), variant
        if remembered is None or fresh is None:
            continue
        assert list(remembered.families) == list(fresh.families)
        assert remembered.series == fresh.series
        for name, item in remembered.families.items():
            other = fresh.families[name]
            assert item.family.equivalent(other.family) and item.family.line == other.family.line
            assert [s.line for s in item.family.samples] == [s.line for s in other.family.samples]
            assert item.identities == other.identities


def test_the_fast_path_takes_the_usual_body() -> None:
    body = "".join(
        f"# HELP f{i}_total Family {i}.\n# TYPE f{i}_total counter\n"
        + "".join(f'f{i}_total{{shard="{s}"}} {s}\n' for s in range(10))
        for i in range(10)
    )
    prepared = prepare_simple_text(body.encode(), {"job": "j"})
    assert prepared is not None and prepared.series == 100
    assert prepared.families["f3_total"].family.type is MetricType.COUNTER
