"""The remote_write receiver: 1.0 and 2.0 bodies, content negotiation, answers, diagnostics, state."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import pathlib

import cramjam
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promscope.model import BucketSpan, Exemplar, MetricFamily, MetricType, NativeHistogram, Sample
from promscope.observation import Observation, ObservationKind, Outcome
from promscope.receive._proto import remote_write_v1_pb2 as pb1
from promscope.receive._proto import remote_write_v2_pb2 as pb2
from promscope.receive.http import Request
from promscope.receive.remote_write import (
    CODES,
    CONTENT_TYPE_V1,
    CONTENT_TYPE_V2,
    PushLimits,
    RemoteWriteReceiver,
    decode_snappy,
    encode_v1,
    encode_v2,
    negotiate,
    sender_identity,
)

NOW = 1_700_000_000.0
T0 = 1_700_000_000_000
"""NOW in milliseconds, as remote_write carries time."""
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "push"
WRITTEN = (
    "X-Prometheus-Remote-Write-Samples-Written",
    "X-Prometheus-Remote-Write-Histograms-Written",
    "X-Prometheus-Remote-Write-Exemplars-Written",
)


def request(
    body: bytes,
    content_type: str | None = CONTENT_TYPE_V1,
    *,
    encoding: str | None = "snappy",
    peer: str = "127.0.0.1:40000",
    user_agent: str | None = "Prometheus/2.42.0",
) -> Request:
    headers = []
    if content_type is not None:
        headers.append(("content-type", content_type))
    if encoding is not None:
        headers.append(("content-encoding", encoding))
    if user_agent is not None:
        headers.append(("user-agent", user_agent))
    return Request(
        method="POST",
        target="/api/v1/write",
        path="/api/v1/write",
        query="",
        headers=tuple(headers),
        body=body,
        wire_bytes=len(body),
        content_encoding=encoding,
        peer=peer,
        scheme="http",
        received_at=NOW,
    )


def receiver(**kwargs: object) -> RemoteWriteReceiver:
    return RemoteWriteReceiver(clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def snappy(message: pb1.WriteRequest | pb2.Request) -> bytes:
    return bytes(cramjam.snappy.compress_raw(message.SerializeToString()))


def v1_series(labels: dict[str, str], *samples: tuple[float, int]) -> pb1.TimeSeries:
    ts = pb1.TimeSeries()
    for name, value in labels.items():
        ts.labels.add(name=name, value=value)
    for value, ts_ms in samples:
        ts.samples.add(value=value, timestamp=ts_ms)
    return ts


def v1(*series: pb1.TimeSeries, metadata: tuple[pb1.MetricMetadata, ...] = ()) -> bytes:
    return snappy(pb1.WriteRequest(timeseries=series, metadata=metadata))


class V2:
    """Builds a 2.0 Request with a symbols table, as a sender does."""

    def __init__(self) -> None:
        self.symbols: dict[str, int] = {"": 0}
        self.request = pb2.Request()

    def ref(self, text: str) -> int:
        return self.symbols.setdefault(text, len(self.symbols))

    def series(self, labels: dict[str, str], **fields: object) -> pb2.TimeSeries:
        ts = self.request.timeseries.add(**fields)  # type: ignore[arg-type]
        for name, value in labels.items():
            ts.labels_refs.extend((self.ref(name), self.ref(value)))
        return ts

    def metadata(self, kind: int, help_text: str = "", unit: str = "") -> pb2.Metadata:
        return pb2.Metadata(type=kind, help_ref=self.ref(help_text), unit_ref=self.ref(unit))  # type: ignore[arg-type]

    def body(self) -> bytes:
        del self.request.symbols[:]
        self.request.symbols.extend(self.symbols)
        return snappy(self.request)


def codes(observation: Observation) -> list[str]:
    return [d.code for d in observation.diagnostics]


def header(response_headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in response_headers:
        if key.lower() == name.lower():
            return value
    return None


# --------------------------------------------------------------------------- 1.0


def test_v1_request_becomes_families_grouped_by_name_with_metadata() -> None:
    body = v1(
        v1_series({"__name__": "http_requests_total", "code": "200", "job": "api"}, (10.0, T0)),
        v1_series({"__name__": "http_requests_total", "code": "500", "job": "api"}, (1.0, T0)),
        v1_series({"__name__": "rpc_seconds_bucket", "le": "0.5"}, (3.0, 1_700_000_000_500)),
        v1_series({"__name__": "rpc_seconds_count"}, (4.0, 1_700_000_000_500)),
        v1_series({"__name__": "up", "instance": "a:9100", "job": "node"}, (1.0, T0)),
        metadata=(
            pb1.MetricMetadata(
                type=pb1.MetricMetadata.COUNTER, metric_family_name="http_requests_total", help="Hits."
            ),
            pb1.MetricMetadata(
                type=pb1.MetricMetadata.HISTOGRAM, metric_family_name="rpc_seconds", unit="seconds"
            ),
        ),
    )
    response, observation = receiver().receive(request(body))
    assert response.status == 204
    assert response.body == b""
    assert header(response.headers, WRITTEN[0]) is None  # 1.0 answers carry no written counts
    assert observation.kind is ObservationKind.REMOTE_WRITE
    assert observation.outcome is Outcome.ACCEPTED
    assert observation.series == 5
    assert observation.transport.extra["remote_write_version"] == "1.0"
    families = {f.name: f for f in observation.families}
    assert families["http_requests_total"].type is MetricType.COUNTER
    assert families["http_requests_total"].help == "Hits."
    assert len(families["http_requests_total"].samples) == 2
    assert families["rpc_seconds"].type is MetricType.HISTOGRAM
    assert families["rpc_seconds"].unit == "seconds"
    assert {s.name for s in families["rpc_seconds"].samples} == {"rpc_seconds_bucket", "rpc_seconds_count"}
    assert families["up"].type is MetricType.UNKNOWN  # no metadata sent
    up = families["up"].samples[0]
    assert up.timestamp == 1_700_000_000.0  # seconds
    assert up.labels == (("instance", "a:9100"), ("job", "node"))  # __name__ is the sample name
    assert up.line == 5
    assert codes(observation) == []


def test_missing_content_type_and_encoding_mean_1_0_and_snappy_as_upstream() -> None:
    body = v1(v1_series({"__name__": "up"}, (1.0, T0)))
    response, observation = receiver().receive(request(body, None, encoding=None))
    assert response.status == 204
    assert observation.transport.extra["remote_write_version"] == "1.0"


def test_v1_native_histograms_and_exemplars() -> None:
    ts = v1_series({"__name__": "latency", "job": "a"})
    ts.histograms.add(
        count_int=5,
        sum=12.5,
        schema=1,
        zero_threshold=0.001,
        zero_count_int=1,
        positive_spans=[pb1.BucketSpan(offset=0, length=2), pb1.BucketSpan(offset=1, length=1)],
        positive_deltas=[1, 1, -1],
        timestamp=T0,
    )
    ts.exemplars.add(labels=[pb1.Label(name="trace_id", value="abc")], value=0.7, timestamp=T0)
    response, observation = receiver().receive(request(v1(ts)))
    assert response.status == 204
    (family,) = observation.families
    assert family.type is MetricType.HISTOGRAM
    (sample,) = family.samples
    native = sample.native_histogram
    assert native is not None
    assert native.positive_counts == (1.0, 2.0, 1.0)
    assert native.buckets() == [(0, 1.0), (1, 2.0), (3, 1.0)]
    assert (native.count, native.sum, native.zero_count, native.schema) == (5.0, 12.5, 1.0, 1)
    assert sample.exemplar == Exemplar((("trace_id", "abc"),), 0.7, 1_700_000_000.0)


# --------------------------------------------------------------------------- 2.0


def test_v2_request_with_symbols_metadata_exemplars_and_written_headers() -> None:
    b = V2()
    counter = b.series(
        {"__name__": "jobs_total", "job": "w"},
        metadata=b.metadata(pb2.Metadata.METRIC_TYPE_COUNTER, "Jobs done.", ""),
        created_timestamp=1_699_999_000_000,
    )
    counter.samples.add(value=1.0, timestamp=T0)
    counter.samples.add(value=3.0, timestamp=1_700_000_015_000)
    counter.exemplars.add(
        labels_refs=[b.ref("trace_id"), b.ref("f00d")], value=1.0, timestamp=1_700_000_014_000
    )
    gauge = b.series(
        {"__name__": "temperature", "room": "a"},
        metadata=b.metadata(pb2.Metadata.METRIC_TYPE_GAUGE, "Degrees.", "celsius"),
    )
    gauge.samples.add(value=21.5, timestamp=T0)
    hist = b.series(
        {"__name__": "rpc_duration_seconds", "job": "w"},
        metadata=b.metadata(pb2.Metadata.METRIC_TYPE_HISTOGRAM, "", "seconds"),
    )
    hist.histograms.add(
        count_float=3.0,
        sum=1.5,
        schema=0,
        zero_count_float=0.0,
        positive_spans=[pb2.BucketSpan(offset=-1, length=2)],
        positive_counts=[1.0, 2.0],
        timestamp=T0,
        start_timestamp=1_699_999_500_000,
    )
    response, observation = receiver().receive(request(b.body(), CONTENT_TYPE_V2))
    assert response.status == 204
    assert [header(response.headers, h) for h in WRITTEN] == ["3", "1", "1"]
    assert observation.transport.extra["remote_write_version"] == "2.0"
    families = {f.name: f for f in observation.families}
    jobs = families["jobs_total"]
    assert (jobs.type, jobs.help) == (MetricType.COUNTER, "Jobs done.")
    values = [(s.name, s.value, s.timestamp) for s in jobs.samples]
    assert values[:2] == [("jobs_total", 1.0, 1_700_000_000.0), ("jobs_total", 3.0, 1_700_000_015.0)]
    assert values[2] == ("jobs_created", 1_699_999_000.0, 1_700_000_015.0)  # the series' created timestamp
    assert jobs.samples[0].exemplar is not None  # the exemplar at 14s belongs to the sample at 0s
    assert jobs.samples[0].exemplar.labels == (("trace_id", "f00d"),)
    assert (families["temperature"].unit, families["temperature"].type) == ("celsius", MetricType.GAUGE)
    hist_family = families["rpc_duration_seconds"]
    assert hist_family.type is MetricType.HISTOGRAM
    native = hist_family.samples[0].native_histogram
    assert native is not None and native.buckets() == [(-1, 1.0), (0, 2.0)]
    assert hist_family.samples[1].name == "rpc_duration_seconds_created"  # per-sample start_timestamp (rc.4)
    assert hist_family.samples[1].value == 1_699_999_500.0


def test_v2_custom_bucket_histogram_becomes_classic_buckets() -> None:
    b = V2()
    ts = b.series({"__name__": "req_seconds"}, metadata=b.metadata(pb2.Metadata.METRIC_TYPE_HISTOGRAM))
    ts.histograms.add(
        count_int=6,
        sum=3.0,
        schema=-53,
        custom_values=[0.1, 1.0],
        positive_spans=[pb2.BucketSpan(offset=0, length=3)],
        positive_deltas=[1, 2, -2],  # counts 1, 3, 1 for (-inf, .1], (.1, 1], (1, +inf]
        timestamp=T0,
    )
    response, observation = receiver().receive(request(b.body(), CONTENT_TYPE_V2))
    assert response.status == 204
    (family,) = observation.families
    buckets = [(s.label("le"), s.value) for s in family.samples if s.name == "req_seconds_bucket"]
    assert buckets == [("0.1", 1.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert [s.value for s in family.samples if s.name == "req_seconds_count"] == [6.0]


@pytest.mark.parametrize("encoder", [encode_v1, encode_v2], ids=["v1", "v2"])
def test_encoders_round_trip_through_the_receiver(encoder: object) -> None:
    native = NativeHistogram(0, 0.001, 1, 4, 9.0, (BucketSpan(-2, 2), BucketSpan(3, 1)), (1, 1, 1))
    families = [
        MetricFamily("up", MetricType.GAUGE, "Up.", None, (Sample("up", (("job", "a"),), 1.0, NOW),)),
        MetricFamily(
            "h", MetricType.HISTOGRAM, None, None, (Sample("h", (), 4.0, NOW, native_histogram=native),)
        ),
    ]
    content_type = CONTENT_TYPE_V2 if encoder is encode_v2 else CONTENT_TYPE_V1
    body = encoder(families)  # type: ignore[operator]
    response, observation = receiver().receive(request(body, content_type))
    assert response.status == 204
    got = {f.name: f for f in observation.families}
    assert got["up"].equivalent(MetricFamily("up", MetricType.GAUGE, "Up.", None, families[0].samples))
    assert got["h"].samples[0].native_histogram == native


# --------------------------------------------------------------------------- negotiation and bad bodies


@pytest.mark.parametrize(
    ("content_type", "proto"),
    [
        (None, "prometheus.WriteRequest"),
        ("application/x-protobuf", "prometheus.WriteRequest"),
        ("application/x-protobuf;proto=prometheus.WriteRequest", "prometheus.WriteRequest"),
        ("application/x-protobuf; proto=io.prometheus.write.v2.Request", "io.prometheus.write.v2.Request"),
        ("Application/X-Protobuf;proto=io.prometheus.write.v2.Request", "io.prometheus.write.v2.Request"),
        ("text/plain", None),
        ("application/json", None),
        ("application/x-protobuf;proto=io.prometheus.write.v3.Request", None),
    ],
)
def test_negotiate(content_type: str | None, proto: str | None) -> None:
    assert negotiate(content_type)[0] == proto


@pytest.mark.parametrize(
    ("content_type", "encoding", "code"),
    [
        ("text/plain; version=0.0.4", "snappy", "RW-003"),
        ("application/x-protobuf;proto=io.prometheus.write.v9.Request", "snappy", "RW-003"),
        (CONTENT_TYPE_V1, "gzip", "RW-004"),
        (CONTENT_TYPE_V2, "zstd", "RW-004"),
    ],
)
def test_unsupported_content_type_or_encoding_is_415(content_type: str, encoding: str, code: str) -> None:
    body = v1(v1_series({"__name__": "up"}, (1.0, T0)))
    response, observation = receiver().receive(request(body, content_type, encoding=encoding))
    assert response.status == 415
    assert observation.outcome is Outcome.REJECTED
    assert codes(observation) == [code]
    assert observation.families == ()


def test_bad_snappy_is_400() -> None:
    response, observation = receiver().receive(request(b"\x05not snappy at all"))
    assert response.status == 400
    assert codes(observation) == ["RW-001"]
    assert b"snappy" in response.body


def test_snappy_declaring_a_huge_size_is_413_without_inflating() -> None:
    bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 16  # declares 4 GiB
    response, observation = receiver().receive(request(bomb))
    assert response.status == 413
    assert codes(observation) == ["RW-005"]
    with pytest.raises(ValueError, match="limit"):
        decode_snappy(bomb, 1024)


@pytest.mark.parametrize("content_type", [CONTENT_TYPE_V1, CONTENT_TYPE_V2])
def test_malformed_protobuf_is_400(content_type: str) -> None:
    garbage = bytes(cramjam.snappy.compress_raw(b"\x0a\xff\xff\xff\xff\xff\x01garbage"))
    response, observation = receiver().receive(request(garbage, content_type))
    assert response.status == 400
    assert codes(observation) == ["RW-002"]
    if content_type == CONTENT_TYPE_V2:  # 2.0 answers carry the written counts even when refusing
        assert [header(response.headers, h) for h in WRITTEN] == ["0", "0", "0"]


def test_a_1_0_body_sent_as_2_0_and_the_reverse_are_400() -> None:
    v1_body = v1(v1_series({"__name__": "up"}, (1.0, T0)))
    response, observation = receiver().receive(request(v1_body, CONTENT_TYPE_V2))
    assert (response.status, codes(observation)) == (400, ["RW-007"])
    b = V2()
    b.series({"__name__": "up"}).samples.add(value=1, timestamp=T0)
    response, observation = receiver().receive(request(b.body(), CONTENT_TYPE_V1))
    assert (response.status, codes(observation)) == (400, ["RW-007"])


def test_empty_body_is_an_empty_accepted_request() -> None:
    response, observation = receiver().receive(request(b""))
    assert response.status == 204
    assert observation.series == 0


# --------------------------------------------------------------------------- invalid series


def test_invalid_series_are_refused_one_by_one_and_the_rest_kept() -> None:
    dup = v1_series({"__name__": "f"}, (1.0, T0))
    dup.labels.add(name="job", value="1")
    dup.labels.add(name="job", value="2")
    request_pb = pb1.WriteRequest(
        timeseries=[
            v1_series({"job": "x"}, (1.0, T0)),  # no __name__
            v1_series({"": "v", "__name__": "a"}, (1.0, T0)),  # empty label name
            v1_series({"__name__": "b"}, (1.0, T0)),
            v1_series({"zone": "z", "__name__": "c"}, (1.0, T0)),  # unsorted: a warning only
            v1_series({"__name__": "d.e", "le-x": "1"}, (1.0, T0)),  # UTF-8 names: warnings
            dup,
        ]
    )
    response, observation = receiver().receive(request(snappy(request_pb)))
    assert response.status == 400
    assert observation.outcome is Outcome.PARTIAL
    text = response.body.decode()
    assert "no __name__" in text and "empty name" in text and "repeats label 'job'" in text
    assert {f.name for f in observation.families} == {"b", "c", "d.e"}
    by_line = {(d.line, d.code) for d in observation.diagnostics}
    assert {(1, "RW-101"), (2, "RW-102"), (4, "RW-105"), (5, "RW-103"), (6, "RW-104")} <= by_line


def test_out_of_order_duplicate_and_future_samples_are_refused() -> None:
    body = v1(
        v1_series(
            {"__name__": "ooo"},
            (1.0, 1_700_000_002_000),
            (2.0, 1_700_000_001_000),  # older than the one before: refused
            (3.0, 1_700_000_003_000),
            (3.0, 1_700_000_003_000),  # same timestamp and value: harmless
            (4.0, 1_700_000_003_000),  # same timestamp, other value: refused
            (5.0, T0 + 11 * 60_000),  # 11 minutes ahead: refused
        )
    )
    response, observation = receiver().receive(request(body))
    assert response.status == 400
    assert sorted(codes(observation)) == ["RW-107", "RW-108", "RW-109"]
    (family,) = observation.families
    assert [s.value for s in family.samples] == [1.0, 3.0]


def test_v2_bad_symbol_references_odd_refs_and_mixed_samples_are_refused() -> None:
    b = V2()
    good = b.series({"__name__": "ok"})
    good.samples.add(value=1.0, timestamp=T0)
    bad_ref = b.request.timeseries.add(labels_refs=[b.ref("__name__"), 999])
    bad_ref.samples.add(value=1.0, timestamp=T0)
    odd = b.request.timeseries.add(labels_refs=[b.ref("__name__")])
    odd.samples.add(value=1.0, timestamp=T0)
    mixed = b.series({"__name__": "mixed"})
    mixed.samples.add(value=1.0, timestamp=T0)
    mixed.histograms.add(count_int=1, timestamp=T0)
    bad_help = b.series({"__name__": "badhelp"}, metadata=pb2.Metadata(type=2, help_ref=5000))
    bad_help.samples.add(value=1.0, timestamp=T0)
    response, observation = receiver().receive(request(b.body(), CONTENT_TYPE_V2))
    assert response.status == 400
    assert [header(response.headers, h) for h in WRITTEN] == ["1", "0", "0"]
    assert observation.outcome is Outcome.PARTIAL
    assert [(d.line, d.code) for d in observation.diagnostics if d.severity.value == "error"] == [
        (2, "RW-202"),
        (3, "RW-203"),
        (4, "RW-111"),
        (5, "RW-202"),
    ]
    assert [f.name for f in observation.families] == ["ok"]


def test_v2_symbols_must_start_with_the_empty_string() -> None:
    request_pb = pb2.Request(symbols=["__name__", "up"])
    request_pb.timeseries.add(labels_refs=[0, 1]).samples.add(value=1.0, timestamp=T0)
    response, observation = receiver().receive(request(snappy(request_pb), CONTENT_TYPE_V2))
    assert response.status == 204
    assert "RW-201" in codes(observation)


def test_malformed_native_histogram_is_refused() -> None:
    b = V2()
    ts = b.series({"__name__": "h"})
    ts.histograms.add(
        count_int=1, schema=0, positive_spans=[pb2.BucketSpan(offset=0, length=3)], positive_deltas=[1]
    )
    ts.histograms.add(count_int=1, schema=12, timestamp=1)
    response, observation = receiver().receive(request(b.body(), CONTENT_TYPE_V2))
    assert response.status == 400
    assert codes(observation).count("RW-112") == 2


def test_every_code_is_declared() -> None:
    assert all(code.startswith("RW-") for code in CODES)


# --------------------------------------------------------------------------- state, limits, sink


def test_latest_families_keep_the_newest_sample_per_series_across_requests() -> None:
    r = receiver()
    r.receive(request(v1(v1_series({"__name__": "a"}, (1.0, T0)))))
    r.receive(request(v1(v1_series({"__name__": "b"}, (2.0, T0)))))
    r.receive(request(v1(v1_series({"__name__": "a"}, (3.0, 1_700_000_010_000)))))
    _, observation = r.receive(request(v1(v1_series({"__name__": "a"}, (9.0, 1_700_000_005_000)))))
    assert "RW-113" in codes(observation)  # older than what this sender wrote before
    latest = {f.name: [s.value for s in f.samples] for f in r.latest_families()}
    assert latest == {"a": [3.0], "b": [2.0]}
    (sender,) = r.senders()
    assert sender.sender == "127.0.0.1 Prometheus/2.42.0"
    assert (sender.requests, sender.accepted, sender.samples, sender.last_status) == (4, 4, 4, 204)
    assert r.latest_families("127.0.0.1 Prometheus/2.42.0") == r.latest_families()
    assert r.latest_families("nobody") == []


def test_senders_are_told_apart_by_host_and_user_agent_and_bounded() -> None:
    r = receiver(limits=PushLimits(max_senders=2))
    for peer, agent in (("10.0.0.1:1", "a"), ("10.0.0.1:2", "a"), ("10.0.0.2:1", "a"), ("10.0.0.1:3", "b")):
        r.receive(request(v1(v1_series({"__name__": "x"}, (1.0, T0))), peer=peer, user_agent=agent))
    assert [s.sender for s in r.senders()] == ["10.0.0.2 a", "10.0.0.1 b"]
    assert r.stats.senders_evicted == 1
    assert sender_identity("[::1]:9090", None) == "::1"


def test_series_limits_drop_and_count() -> None:
    r = receiver(limits=PushLimits(max_series_per_request=2, max_series_per_sender=1))
    body = v1(*(v1_series({"__name__": f"m{i}"}, (1.0, T0)) for i in range(3)))
    response, observation = r.receive(request(body))
    assert response.status == 400
    assert "RW-006" in codes(observation)
    assert len(r.latest_families()) == 1
    assert r.stats.series_dropped == 1


def test_label_limits_refuse_the_series() -> None:
    r = receiver(limits=PushLimits(max_label_value_length=8))
    body = v1(v1_series({"__name__": "x", "v": "x" * 9}, (1.0, T0)))
    response, observation = r.receive(request(body))
    assert response.status == 400
    assert codes(observation) == ["RW-114"]


def test_handle_answers_then_hands_the_observation_to_the_sink() -> None:
    seen: list[Observation] = []
    r = receiver(sink=seen.append)

    async def run() -> int:
        response = await r.handle(request(v1(v1_series({"__name__": "up"}, (1.0, T0)))))
        assert seen == []  # not before the answer is handed back
        await asyncio.sleep(0)
        return response.status

    assert asyncio.run(run()) == 204
    assert len(seen) == 1 and seen[0].outcome is Outcome.ACCEPTED


def test_a_failing_sink_is_counted_not_raised() -> None:
    def broken(_: Observation) -> None:
        raise RuntimeError("boom")

    r = receiver(sink=broken)

    async def run() -> None:
        await r.handle(request(v1(v1_series({"__name__": "up"}, (1.0, T0)))))
        await asyncio.sleep(0)

    asyncio.run(run())
    assert r.stats.sink_errors == 1


def test_route_takes_the_raw_body() -> None:
    (route,) = receiver().routes()
    assert (route.path, route.methods, route.decode_body) == ("/api/v1/write", frozenset({"POST"}), False)


def test_over_http_with_a_real_server(serve) -> None:  # type: ignore[no-untyped-def]
    seen: list[Observation] = []
    r = RemoteWriteReceiver(sink=seen.append)
    server = serve(r.routes())
    b = V2()
    b.series({"__name__": "up", "job": "x"}).samples.add(value=1.0, timestamp=int(NOW * 1000))
    headers = {
        "Content-Type": CONTENT_TYPE_V2,
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "2.0.0",
    }
    response = httpx.post(f"{server.url}/api/v1/write", content=b.body(), headers=headers)
    assert response.status_code == 204
    assert response.headers["X-Prometheus-Remote-Write-Samples-Written"] == "1"
    v1_body = v1(v1_series({"__name__": "up"}, (1.0, int(NOW * 1000))))
    headers = {"Content-Type": CONTENT_TYPE_V1, "Content-Encoding": "snappy"}
    assert httpx.post(f"{server.url}/api/v1/write", content=v1_body, headers=headers).status_code == 204
    bad = httpx.post(f"{server.url}/api/v1/write", content=b"junk", headers=headers)
    assert bad.status_code == 400
    assert httpx.get(f"{server.url}/api/v1/write").status_code == 405


# --------------------------------------------------------------------------- fixtures/push


def _fixture_cases() -> list[pathlib.Path]:
    return sorted(FIXTURES.glob("remote_write_*.expect.json"))


@pytest.mark.parametrize("expect_path", _fixture_cases(), ids=lambda p: p.name.removesuffix(".expect.json"))
def test_push_fixtures(expect_path: pathlib.Path) -> None:
    expect = json.loads(expect_path.read_text())
    body = (FIXTURES / expect["body"]).read_bytes()
    response, observation = receiver().receive(request(body, expect["content_type"]))
    assert response.status == expect["status"]
    assert sorted(set(codes(observation))) == sorted(expect["codes"])
    assert {f.name: f.type.value for f in observation.families} == expect["families"]
    for name, value in expect.get("headers", {}).items():
        assert header(response.headers, name) == value


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=512),
    compress=st.booleans(),
    content_type=st.sampled_from([CONTENT_TYPE_V1, CONTENT_TYPE_V2, None, "application/x-protobuf;proto=x"]),
)
def test_random_bytes_never_raise(data: bytes, compress: bool, content_type: str | None) -> None:
    body = bytes(cramjam.snappy.compress_raw(data)) if compress else data
    response, observation = RemoteWriteReceiver(clock=lambda: NOW).receive(request(body, content_type))
    assert response.status in (204, 400, 413, 415)
    assert observation.kind is ObservationKind.REMOTE_WRITE
    if response.status != 204:
        assert observation.outcome in (Outcome.REJECTED, Outcome.PARTIAL)
        assert response.body
    for family in observation.families:
        for sample in family.samples:
            assert sample.timestamp is None or math.isfinite(sample.timestamp)


def test_1_0_metadata_sent_in_requests_of_its_own_types_the_series() -> None:
    r = receiver()
    r.receive(request(v1(v1_series({"__name__": "rpc_seconds_bucket", "le": "+Inf"}, (2.0, T0)))))
    metadata_only = pb1.WriteRequest(
        metadata=[pb1.MetricMetadata(type=pb1.MetricMetadata.HISTOGRAM, metric_family_name="rpc_seconds")]
    )
    response, observation = r.receive(request(snappy(metadata_only)))
    assert (response.status, observation.families) == (204, ())
    (family,) = r.latest_families()  # series sent before their metadata join their family
    assert (family.name, family.type) == ("rpc_seconds", MetricType.HISTOGRAM)
    _, observation = r.receive(request(v1(v1_series({"__name__": "rpc_seconds_count"}, (2.0, T0)))))
    assert [(f.name, f.type) for f in observation.families] == [("rpc_seconds", MetricType.HISTOGRAM)]


def test_big_bodies_are_decoded_in_a_worker_thread_with_the_same_result() -> None:
    pads = [
        hashlib.sha256(str(i).encode()).hexdigest() * 2 for i in range(4000)
    ]  # snappy cannot shrink these
    series = [v1_series({"__name__": f"m_{i}", "pad": pad}, (float(i), T0)) for i, pad in enumerate(pads)]
    body = snappy(pb1.WriteRequest(timeseries=series))
    assert len(body) >= 256 * 1024
    r = receiver()

    async def run() -> int:
        return (await r.handle(request(body))).status

    assert asyncio.run(run()) == 204
    assert len(r.latest_families()) == 4000
    assert r.stats.samples_written == 4000
