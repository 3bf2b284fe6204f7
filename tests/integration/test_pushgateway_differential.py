"""promscope's Pushgateway against the real one: the same pushes give the same answers and series.

The Debian ``prometheus-pushgateway`` (1.5) is started on a free 127.0.0.1
port without persistence; promscope's receiver runs in this process on its own
event loop thread. Each step of one sequence goes to both, and the status
codes must match; at checkpoints and at the end, ``GET /metrics`` of both is
parsed and compared series by series, leaving out each side's own metrics
(``go_*``, ``process_*``, ``pushgateway_*``, ``promhttp_*``, ``promscope_*``)
and the values of ``push_time_seconds``/``push_failure_time_seconds`` (only
whether they are zero is compared).

Known, deliberate differences are not in the sequence: promscope decodes
gzip/snappy bodies (Pushgateway 1.5 does not), and refuses pushes of its own
``promscope_*`` names where upstream guards ``go_*``/``process_*``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import httpx
import pytest

from promscope.exposition import parse
from promscope.exposition.protobuf import encode_protobuf
from promscope.exposition.render import render_text
from promscope.model import MetricType
from promscope.receive.http import HttpServer, Request, Response, Route
from promscope.receive.pushgateway import PushgatewayReceiver

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
OWN_PREFIXES = ("go_", "process_", "pushgateway_", "promhttp_", "promscope_")
SYNTHETIC = ("push_time_seconds", "push_failure_time_seconds")
PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=") or "="


class PromscopeThread:
    """promscope's receiver and an HTTP server on an event loop in a thread, with GET /metrics."""

    def __init__(self, **kwargs: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = PushgatewayReceiver(**kwargs)
        self.server: HttpServer | None = None
        self.call(self._start())

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    async def _start(self) -> None:
        await self.receiver.start()

        async def metrics(request: Request) -> Response:
            return Response.text(
                200, render_text(self.receiver.exposition_families()), "text/plain; version=0.0.4"
            )

        routes = [*self.receiver.routes(), Route(frozenset({"GET"}), "/metrics", metrics)]
        self.server = HttpServer(routes)
        await self.server.start()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    async def _stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
        await self.receiver.stop()

    def close(self) -> None:
        self.call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def promscope() -> Iterator[PromscopeThread]:
    server = PromscopeThread()
    try:
        yield server
    finally:
        server.close()


def _histogram_protobuf() -> bytes:
    text = (
        "# HELP pb_latency_seconds Latency.\n# TYPE pb_latency_seconds histogram\n"
        'pb_latency_seconds_bucket{le="0.1"} 1\npb_latency_seconds_bucket{le="1"} 3\n'
        'pb_latency_seconds_bucket{le="+Inf"} 4\npb_latency_seconds_sum 2.5\npb_latency_seconds_count 4\n'
        '# TYPE pb_requests_total counter\npb_requests_total{code="200"} 7\n'
    )
    return encode_protobuf(parse(text, "text").families)


# (method, path, body, content type); a checkpoint compares /metrics after the step
STEPS: list[tuple[str, str, bytes | str, str | None]] = [
    (
        "PUT",
        "/metrics/job/j1/instance/i1",
        '# TYPE foo counter\n# HELP foo Help of foo.\nfoo{a="1"} 3\n',
        None,
    ),
    ("PUT", "/metrics/job/j2", "bar 3 1234\n", None),  # timestamps
    ("PUT", "/metrics/job/j3", '# TYPE foo gauge\nfoo{a="2"} 3\n', None),  # type clash
    (
        "PUT",
        "/metrics/job/j1/instance/i1/x/y",
        '# TYPE foo counter\n# HELP foo Help of foo.\nfoo{a="1"} 3\n',
        None,
    ),
    (
        "PUT",
        "/metrics/job/j1",
        '# TYPE foo counter\n# HELP foo Help of foo.\nfoo{a="1",instance="i1"} 3\n',
        None,
    ),
    (
        "PUT",
        "/metrics/job/j5",
        '# TYPE foo counter\n# HELP foo Other help.\nfoo{a="5"} 3\n',
        None,
    ),  # help clash
    ("PUT", "/metrics/job/j8", "ok 1\nfoo{ 3\nbar x\n", None),  # bad body
    ("PUT", "/metrics/job/a/b", "x 1\n", None),  # job with a slash, unencoded
    ("PUT", "/metrics/job/a%2Fb", "x 1\n", None),
    ("PUT", "/metrics/job/e/instance/", "x_e 1\n", None),  # empty instance value
    ("PUT", "/metrics/job/e/a//b/c", "x 1\n", None),  # empty value in the middle: a redirect upstream
    ("PUT", f"/metrics/job@base64/{_b64('a/b')}/instance@base64/=", "x 1\n", None),
    ("PUT", f"/metrics/job@base64/{_b64('a/b')}==/path@base64/{_b64('/var/tmp')}", "x2 1\n", None),
    ("PUT", "/metrics/job@base64/=", "x 1\n", None),  # empty job
    ("PUT", "/metrics/job@base64/a+b", "x 1\n", None),  # not URL-safe base64
    ("PUT", "/metrics/job/ok/l@base64/%%%", "x 1\n", None),
    ("PUT", "/metrics/job/", "x 1\n", None),
    ("PUT", "/metrics/job/q/__x/y", "x 1\n", None),  # reserved label name
    ("PUT", "/metrics/job/q/1x/y", "x 1\n", None),  # invalid label name
    ("DELETE", "/metrics/job/nonexist", "", None),
    ("PUT", "/metrics/job/p", "# TYPE a counter\na 1\n# TYPE b gauge\nb 2\n", None),
    ("POST", "/metrics/job/p", '# TYPE b gauge\nb{x="1"} 3\nc 4\n', None),
    ("POST", "/metrics/job/p", "", None),
    ("PUT", "/metrics/job/p2", "# TYPE a2 counter\na2 1\n", None),
    ("PUT", "/metrics/job/p2", "", None),  # empties the group, keeps it
    ("PUT", "/metrics/job/q", 'd{job="other",instance="zz"} 1\n', None),  # grouping overrides job
    ("PUT", "/metrics/job/r", "# TYPE e counter\n", None),  # a family without samples
    ("PUT", "/metrics/job/s1", "# TYPE s summary\ns_sum 1\ns_count 2\n", None),
    ("PUT", "/metrics/job/s2", "# TYPE s_count gauge\ns_count 1\n", None),  # suffix collision
    ("PUT", "/metrics/job/s3", '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n', None),
    ("PUT", "/metrics/job/s4", "h_bucket 1\n", None),  # collides with histogram h
    ("PUT", "/metrics/job/q1", '# TYPE q summary\nq{quantile="0.5"} 1\nq_sum 1\nq_count 2\n', None),
    ("PUT", "/metrics/job/pt", "push_time_seconds 5\nother 1\n", None),
    ("PUT", "/metrics/job/dd", "z 1\nz 2\n", None),  # repeated series
    ("PUT", "/metrics/job/u", b'u{l="\xff"} 1\n', None),  # invalid UTF-8
    ("PUT", "/metrics/job/u2", "untyped_then 1\n", None),
    ("PUT", "/metrics/job/u3", "# TYPE untyped_then counter\nuntyped_then 1\n", None),  # untyped vs counter
    ("PUT", "/metrics/job/pb", _histogram_protobuf(), PROTOBUF),
    ("PUT", "/metrics/job/pb2", b"\x05garbage-not-protobuf", PROTOBUF),
    (
        "PUT",
        "/metrics/job/om",
        "# TYPE om_g gauge\nom_g 1\n# EOF\n",
        "application/openmetrics-text; version=1.0.0",
    ),
    ("PUT", "/metrics/job/ev", 'ev{a="",b="x"} 1\n', None),  # empty label value in the body
    ("PUT", "/metrics/job/same/instance/i9", "samename 1\n", None),
    ("POST", "/metrics/job/same/instance/i9", "samename 2\nsamename2 1\n", None),
    ("DELETE", "/metrics/job/j1/instance/i1", "", None),
    ("DELETE", "/metrics/job/j1", "", None),  # exactly {job="j1"}, not j1's other groups
    ("PUT", "/metrics/job/j3", '# TYPE foo gauge\nfoo{a="2"} 3\n', None),  # still a clash (j5, j1/x)
    ("DELETE", "/metrics/job/j5", "", None),
    ("DELETE", "/metrics/job/j1/instance/i1/x/y", "", None),
    ("PUT", "/metrics/job/j3", '# TYPE foo gauge\nfoo{a="2"} 3\n', None),  # now fine
]
CHECKPOINTS = {5, 19, 30, 44, len(STEPS) - 1}


def _send(client: httpx.Client, method: str, path: str, body: bytes | str, content_type: str | None) -> int:
    headers = {"content-type": content_type} if content_type else {}
    data = body.encode() if isinstance(body, str) else body
    response = client.request(method, path, content=data, headers=headers)
    return response.status_code


def _series(text: str) -> tuple[dict[tuple[str, tuple[tuple[str, str], ...]], Any], dict[str, Any]]:
    """(series -> value, family -> (type, help)) of an exposition, without each side's own metrics."""
    result = parse(text, "text")
    series: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
    meta: dict[str, Any] = {}
    for family in result.families:
        if family.name.startswith(OWN_PREFIXES):
            continue
        meta[family.name] = (family.type, family.help or "")
        for sample in family.samples:
            value: Any = sample.value
            if family.name in SYNTHETIC:
                value = "zero" if value == 0 else "set"
            series[(sample.name, tuple(sorted(sample.labels)))] = value
    return series, meta


def _compare(upstream: httpx.Client, ours: httpx.Client, step: int) -> None:
    theirs_series, theirs_meta = _series(upstream.get("/metrics").text)
    our_series, our_meta = _series(ours.get("/metrics").text)
    assert our_series == theirs_series, f"after step {step}: series differ"
    for name, (kind, help_text) in theirs_meta.items():
        our_kind, our_help = our_meta[name]
        assert our_kind == kind, f"after step {step}: {name} type"
        if name != "foo":  # foo's help differs between groups on purpose: upstream shows either
            assert our_help == help_text, f"after step {step}: {name} help"
    assert set(our_meta) == set(theirs_meta)


def test_same_statuses_and_series_as_the_real_pushgateway(
    run_binary: Any, promscope: PromscopeThread
) -> None:
    real = run_binary(
        PUSHGATEWAY, "--web.listen-address={address}", "--persistence.file=", "--web.enable-admin-api"
    )
    with (
        httpx.Client(base_url=real.url(""), timeout=10) as upstream,
        httpx.Client(base_url=promscope.url, timeout=10) as ours,
    ):
        mismatches = []
        for index, (method, path, body, content_type) in enumerate(STEPS):
            theirs = _send(upstream, method, path, body, content_type)
            mine = _send(ours, method, path, body, content_type)
            if theirs != mine:
                mismatches.append(f"step {index}: {method} {path}: upstream {theirs}, promscope {mine}")
            if index in CHECKPOINTS:
                assert not mismatches, "\n".join(mismatches)
                _compare(upstream, ours, index)
        assert not mismatches, "\n".join(mismatches)

        # the JSON API: same groups, labels, families and values (times aside)
        theirs_api = _api_view(upstream.get("/api/v1/metrics").json())
        ours_api = _api_view(ours.get("/api/v1/metrics").json())
        assert ours_api == theirs_api

        assert (
            upstream.put("/api/v1/admin/wipe").status_code
            == ours.put("/api/v1/admin/wipe").status_code
            == 202
        )
        _compare(upstream, ours, len(STEPS))
        assert _series(ours.get("/metrics").text)[0] == {}
        for path in ("/-/healthy", "/-/ready"):
            assert upstream.get(path).status_code == ours.get(path).status_code == 200


def _api_view(payload: dict[str, Any]) -> list[Any]:
    assert payload["status"] == "success"
    groups = []
    for group in payload["data"]:
        view: dict[str, Any] = {
            "labels": group["labels"],
            "last_push_successful": group["last_push_successful"],
        }
        for name, family in group.items():
            if name in ("labels", "last_push_successful", "@promscope"):
                continue
            assert set(family) <= {"time_stamp", "type", "help", "metrics"}
            metrics = family["metrics"]
            if name in SYNTHETIC:
                metrics = [{**m, "value": "zero" if m["value"] == "0" else "set"} for m in metrics]
            help_text = family.get("help", "") if name != "foo" else None
            view[name] = (family["type"], help_text, sorted(metrics, key=repr))
        groups.append(view)
    return sorted(groups, key=lambda g: sorted(g["labels"].items()))


def test_status_api_has_upstreams_shape(run_binary: Any, promscope: PromscopeThread) -> None:
    real = run_binary(PUSHGATEWAY, "--web.listen-address={address}", "--persistence.file=")
    theirs = httpx.get(real.url("/api/v1/status"), timeout=10).json()
    ours = httpx.get(promscope.url + "/api/v1/status", timeout=10).json()
    assert ours["status"] == theirs["status"] == "success"
    assert set(ours["data"]) == set(theirs["data"])
    assert set(theirs["data"]["build_information"]) <= set(ours["data"]["build_information"])
    for flag in ("persistence.file", "push.disable-consistency-check"):
        assert flag in ours["data"]["flags"]


def test_types_are_named_as_upstream_names_them() -> None:
    from promscope.receive.pushgateway import _GO_TYPE

    assert _GO_TYPE[MetricType.UNKNOWN] == "UNTYPED"
