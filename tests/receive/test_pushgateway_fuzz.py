"""Random requests against a Pushgateway holding groups: a rejected request changes nothing it holds.

A :class:`PushgatewayReceiver` with a persistence file is served by an
:class:`HttpServer` on 127.0.0.1. Before every example it holds the same
baseline groups; hypothesis then sends one request (random method, grouping
path, body, Content-Type and Content-Encoding, some plainly broken, some that
clash with what is held, some over a limit) over a raw socket. After an answer
of 3xx or 4xx (or no answer at all):

* the re-exposed families (what ``/metrics`` serves, parsed back, own
  ``promscope_*`` metrics left out) are unchanged, and so are the persistence
  file's ``groups`` and ``bodies`` rows;
* except what upstream itself records for a push that fails the consistency
  check: ``push_failure_time_seconds`` (and the sender) of that one group, which
  is created, holding nothing (``push_time_seconds`` 0), if it did not exist.

A 2xx answer (the request was accepted) takes a new snapshot; a 5xx fails the
test, and so does a ``/metrics`` that no longer parses cleanly (this found the
twin groups ``job=x`` and ``job=x/instance=`` exposing one ``push_time_seconds``
series twice; see ``PG-011``).
"""

from __future__ import annotations

import base64
import gzip
import json
import pathlib
import sqlite3
import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cramjam
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from promscope.exposition import parse
from promscope.exposition.render import render_text
from promscope.receive.http import HttpLimits, HttpServer
from promscope.receive.pushgateway import PushgatewayReceiver, PushLimits

BODY_LIMIT = 2048
PUSH_LIMITS = PushLimits(
    max_body_bytes=BODY_LIMIT,
    max_series_per_push=20,
    max_total_series=120,
    max_groups=12,
    max_label_name_length=24,
    max_label_value_length=48,
)
HTTP_LIMITS = HttpLimits(
    max_body_bytes=BODY_LIMIT,
    header_timeout=2.0,
    body_timeout=2.0,
    idle_timeout=2.0,
    max_decompression_ratio=50,
)
FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    # The same examples on every run: CI on a shared machine must not pass or fail by the draw.
    derandomize=True,
)
PROTOBUF = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"

BASELINE = {
    "/metrics/job/base/instance/a": (
        b'# TYPE requests_total counter\nrequests_total{code="200"} 5\n# HELP temp Temperature.\n'
        b"# TYPE temp gauge\ntemp 21.5\n"
    ),
    "/metrics/job/base/instance/b": b'# TYPE requests_total counter\nrequests_total{code="500"} 1\n',
    "/metrics/job/other": (
        b'# TYPE lat histogram\nlat_bucket{le="1"} 1\nlat_bucket{le="+Inf"} 2\nlat_sum 3\nlat_count 2\n'
    ),
}


# --- the receiver under test ------------------------------------------------------------------------------


@dataclass
class Gateway:
    receiver: PushgatewayReceiver
    server: HttpServer
    db: pathlib.Path
    loop: Any


@pytest.fixture(scope="module")
def gateway(module_loop: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    db = tmp_path_factory.mktemp("pushgateway-fuzz") / "push.db"
    receiver = PushgatewayReceiver(persistence_file=str(db), limits=PUSH_LIMITS)
    server = HttpServer(
        receiver.routes(), limits=HTTP_LIMITS, on_refused=receiver.on_refused, name="pushgateway"
    )

    async def start() -> None:
        await receiver.start()
        await server.start()

    async def stop() -> None:
        await server.stop()
        await receiver.stop()

    module_loop.run(start())
    try:
        yield Gateway(receiver, server, db, module_loop)
    finally:
        module_loop.run(stop())


def _request(method: str, target: str, body: bytes, headers: list[tuple[str, str]]) -> bytes:
    head = [
        f"{method} {target} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    head.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def _baseline(gateway: Gateway, wire: Any) -> None:
    for path, body in BASELINE.items():
        answer = wire.exchange(gateway.server.port, _request("PUT", path, body, []))
        assert wire.status_of(answer) == 200, answer[:300]


# --- snapshots --------------------------------------------------------------------------------------------

Series = dict[tuple[str, tuple[tuple[str, str], ...]], str]


@dataclass(frozen=True)
class Snapshot:
    families: dict[str, tuple[str, str | None, tuple[tuple[str, tuple[tuple[str, str], ...], str], ...]]]
    """Pushed families as ``/metrics`` re-exposes them: type, help, samples (values as repr, NaN-safe)."""
    push_time: Series
    failure_time: Series
    groups: dict[str, tuple[Any, ...]]
    """The file's ``groups`` rows by key."""
    bodies: tuple[tuple[Any, ...], ...]


_TIMES = ("push_time_seconds", "push_failure_time_seconds")


def _snapshot(gateway: Gateway) -> Snapshot:
    text = gateway.loop.call(lambda: render_text(gateway.receiver.exposition_families()))
    result = parse(text, "text")
    assert not result.errors(), result.errors()[:3]
    families = {}
    times: dict[str, Series] = {name: {} for name in _TIMES}
    for family in result.families:
        if family.name.startswith("promscope_"):
            continue
        samples = tuple(sorted((s.name, tuple(sorted(s.labels)), repr(s.value)) for s in family.samples))
        if family.name in times:
            times[family.name] = {(name, labels): value for name, labels, value in samples}
        else:
            families[family.name] = (family.type.value, family.help, samples)
    uri = f"file:{gateway.db}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        groups = {row[0]: tuple(row) for row in conn.execute("SELECT * FROM groups")}
        bodies = tuple(conn.execute("SELECT id, content_type, body FROM bodies ORDER BY id"))
    conn.close()
    return Snapshot(families, times["push_time_seconds"], times["push_failure_time_seconds"], groups, bodies)


_ROW_FAILURE_FIELDS = (3, 5, 6)
"""``failure_time``, ``last_sender``, ``last_user_agent``: what a push failing the check updates."""


def _assert_unchanged(before: Snapshot, after: Snapshot, what: str) -> None:
    """``after`` holds what ``before`` did, apart from one group's failure bookkeeping (see the docstring)."""
    assert after.families == before.families, what
    assert after.bodies == before.bodies, what
    # the persistence file: at most one group's failure fields changed, or one failure-only group added
    changed = [key for key in before.groups if after.groups.get(key) != before.groups[key]]
    added = [key for key in after.groups if key not in before.groups]
    assert len(changed) + len(added) <= 1, (what, changed, added)
    assert all(key in after.groups for key in before.groups), what
    for key in changed:
        old, new = before.groups[key], after.groups[key]
        kept = [i for i in range(len(old)) if i not in _ROW_FAILURE_FIELDS]
        assert [old[i] for i in kept] == [new[i] for i in kept], (what, old, new)
        assert new[3] >= old[3], (what, old, new)  # the failure time moved on (or the clock did not tick)
    for key in added:
        row = after.groups[key]
        assert row[2] == 0 and row[3] > 0 and not json.loads(row[7] or "[]"), (what, row)
    # the re-exposed times: push times unchanged but for a new group's 0; one group's failure time
    new_push = {k: v for k, v in after.push_time.items() if k not in before.push_time}
    assert {k: after.push_time[k] for k in before.push_time} == before.push_time, what
    assert len(new_push) == len(added) and all(v == "0.0" for v in new_push.values()), (what, new_push)
    moved = {k for k in after.failure_time if after.failure_time[k] != before.failure_time.get(k)}
    assert set(before.failure_time) <= set(after.failure_time), what
    assert len(moved) == len(changed) + len(added), (what, moved)


# --- what hypothesis sends ---------------------------------------------------------------------------------

_PRINTABLE = st.text(
    st.characters(min_codepoint=33, max_codepoint=0x2FF, exclude_characters="%"), max_size=12
)
_LABEL_NAMES = (
    st.sampled_from(["instance", "zone", "job", "__meta", "bad-name", "0x", "le", "x" * 30]) | _PRINTABLE
)
_VALUES = (
    st.sampled_from(["a", "b", "base", "other", "", "=", "YS9i", "%2F", "a%zz", "v" * 60, "é"]) | _PRINTABLE
)


@st.composite
def _paths(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(["held"] * 10 + ["push"] * 6 + ["base64-job", "no-job", "wipe", "other"]))
    if shape == "held":  # a group that exists, or a plain new one
        return draw(st.sampled_from([*BASELINE, "/metrics/job/new/instance/x", "/metrics/job/base"]))
    if shape == "wipe":
        return "/api/v1/admin/wipe"
    if shape == "other":
        return draw(st.sampled_from(["/metrics", "/metrics/", "/api/v1/metrics", "/nope", "/metrics/job"]))
    job = draw(st.sampled_from(["base", "other", "new"]) | _VALUES)
    if shape == "base64-job":
        encoded = draw(st.sampled_from([base64.urlsafe_b64encode(job.encode()).decode(), "!!", "=", ""]))
        path = f"/metrics/job@base64/{encoded}"
    elif shape == "no-job":
        path = f"/metrics/{draw(_LABEL_NAMES)}/{job}"
    else:
        path = f"/metrics/job/{job}"
    for _ in range(draw(st.integers(0, 3))):
        name = draw(_LABEL_NAMES)
        value = draw(_VALUES)
        if draw(st.booleans()) and value not in ("", "="):
            name += "@base64"
            value = draw(
                st.sampled_from([base64.urlsafe_b64encode(value.encode()).decode().rstrip("="), "**"])
            )
        path += f"/{name}/{value}"
    if draw(st.booleans()):
        path += draw(st.sampled_from(["/", "//", "/..", "/./x", "?q=1"]))
    # percent-encode what cannot go on a request line, sometimes
    if draw(st.booleans()):
        safe = set(string.ascii_letters + string.digits + "/@=-_.~?%+!*'()")
        path = "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in path)
    return path


_FRAGMENTS = [
    "# TYPE requests_total gauge\nrequests_total 1\n",  # type clash with the held counter
    'requests_total{code="200"} 9\n',  # untyped beside a held counter
    "temp 1 1700000000000\n",  # a timestamp
    "push_time_seconds 1\n",  # the Pushgateway's own name
    "promscope_thing 1\n",  # promscope's own names
    "x{ 1\n",  # syntax
    "# TYPE lat summary\nlat 1\n",  # a histogram held as lat
    "lat_bucket 1\n",  # a series inside a held histogram
    '# TYPE h histogram\nh_bucket{le="1"} 3\nh_bucket{le="+Inf"} 1\nh_count 1\nh_sum 1\n',
    "temp NaN\n",
    "# HELP temp Something else.\ntemp 3\n",  # help clash: a warning
    "new_metric 1\n",
    'long{%s="1"} 1\n' % ("n" * 30),  # label name over the limit
    'long{n="%s"} 1\n' % ("v" * 60),  # label value over the limit
    "".join(f'many{{i="{i}"}} {i}\n' for i in range(25)),  # series per push over the limit
    "".join(f'fill{i}{{i="{j}"}} 1\n' for i in range(2) for j in range(18)),  # fills total series
    "m" * 3000 + " 1\n",  # body over the size limit
    'dup{instance="a"} 1\ndup{instance="a"} 2\n',  # a duplicate series
    "# TYPE c counter\nc -1\n",
    "\x00\xff garbage\n",
]


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str]]]:
    shape = draw(
        st.sampled_from(["fragment"] * 6 + ["fragments"] * 3 + ["text", "bytes", "protobuf", "empty"])
    )
    headers: list[tuple[str, str]] = []
    if shape == "fragment":
        body = draw(st.sampled_from(_FRAGMENTS)).encode("utf-8", "replace")
    elif shape == "fragments":
        body = "".join(draw(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=3))).encode(
            "utf-8", "replace"
        )
    elif shape == "text":
        body = draw(st.text(max_size=300)).encode("utf-8", "surrogatepass")
    elif shape == "bytes":
        body = draw(st.binary(max_size=300))
    elif shape == "protobuf":
        body = draw(st.binary(max_size=200))
        headers.append(("Content-Type", PROTOBUF))
    else:
        body = b""
    content_type = draw(
        st.sampled_from(
            [None] * 6 + ["text/plain; version=0.0.4", PROTOBUF, "application/openmetrics-text", "x/y"]
        )
    )
    if content_type is not None and not headers:
        headers.append(("Content-Type", content_type))
    encoding = draw(st.sampled_from([None] * 10 + ["gzip", "gzip-bad", "snappy", "snappy-bad", "br"]))
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "snappy":
        body = bytes(cramjam.snappy.compress(body))
    elif encoding in ("gzip-bad", "snappy-bad"):
        body = body[: len(body) // 2]
    if encoding is not None:
        headers.append(("Content-Encoding", encoding.removesuffix("-bad")))
    if draw(st.booleans()):
        headers.append(("User-Agent", draw(st.sampled_from(["fuzz/1", "prometheus_client", "x" * 200]))))
    return body, headers


_METHODS = st.sampled_from(["PUT"] * 8 + ["POST"] * 6 + ["DELETE", "DELETE", "GET", "PATCH", "OPTIONS"])


# --- the property ------------------------------------------------------------------------------------------


def test_the_baseline_is_held_and_persisted(gateway: Gateway, wire: Any) -> None:
    _baseline(gateway, wire)
    snapshot = _snapshot(gateway)
    assert {"requests_total", "temp", "lat"} <= set(snapshot.families)
    assert len(snapshot.groups) >= 3 and snapshot.bodies


_HELD_A = "/metrics/job/base/instance/a"
_TOO_BIG = b"m" * 3000 + b" 1\n"


@FUZZ
@given(method=_METHODS, path=_paths(), body=_bodies())
# each kind of refusal at least once, whatever hypothesis draws
@example("PUT", _HELD_A, (b"temp 1 1700000000000\n", []))  # timestamps: the group's failure time moves
@example("PUT", "/metrics/job/fresh", (b"temp 1 1700000000000\n", []))  # ...or a failure-only group appears
@example("POST", "/metrics/job/base/instance/b", (b"# TYPE requests_total gauge\nrequests_total 1\n", []))
@example("PUT", _HELD_A, (_TOO_BIG, []))  # refused by the HTTP layer
@example("PUT", _HELD_A, (gzip.compress(_TOO_BIG), [("Content-Encoding", "gzip")]))  # too large decoded
@example("PUT", "/metrics/job/other", ("".join(f's{{i="{i}"}} 1\n' for i in range(25)).encode(), []))
@example("PUT", "/metrics/job/x/__bad/1", (b"a 1\n", []))
@example("PUT", "/metrics/job/x/instance/" + "v" * 60, (b"a 1\n", []))
@example("PUT", _HELD_A, (b"x{ 1\n", []))
@example("PUT", _HELD_A, (b"\x00garbage", [("Content-Type", PROTOBUF)]))
@example("DELETE", "/metrics/job/base//instance/a", (b"", []))
@example("PUT", _HELD_A, (b"push_time_seconds 1\n", []))
@example("PUT", "/metrics/job/other/instance@base64/=", (b"a 1\n", []))  # the twin of job=other
def test_a_rejected_request_changes_nothing_held(
    gateway: Gateway, wire: Any, method: str, path: str, body: tuple[bytes, list[tuple[str, str]]]
) -> None:
    _baseline(gateway, wire)
    before = _snapshot(gateway)
    data, headers = body
    answer = wire.exchange(gateway.server.port, _request(method, path, data, headers))
    status = wire.status_of(answer)
    what = f"{method} {path} -> {status}: {answer[:400]!r}"
    event(f"status {status}")  # --hypothesis-show-statistics: what the draws came to
    assert status is None or status < 500, what
    assert gateway.server.stats.handler_errors == 0, what
    if status is not None and 200 <= status < 300:
        return  # accepted: what it changed is the point of it
    _assert_unchanged(before, _snapshot(gateway), what)


def test_the_fuzz_reaches_every_kind_of_refusal(gateway: Gateway) -> None:
    """After the property ran: the refusals it produced cover parsing, checks, limits and paths."""
    refused = set(gateway.receiver.stats.refused)
    if not refused:
        pytest.skip("checks what the property test (run before it) produced")
    wanted = {"parse_error", "inconsistent", "timestamps", "too_large", "bad_path"}
    assert wanted <= refused, refused
    assert refused & {"series_per_push", "total_series", "groups", "label_name_length", "label_value_length"}
