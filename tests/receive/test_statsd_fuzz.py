"""Random bytes at the StatsD parser and listeners: no crash, and rejected lines change nothing stored."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promscope.exposition import parse
from promscope.exposition.render import render_openmetrics, render_text
from promscope.receive.statsd import CODES, StatsdReceiver, parse_line

# Bytes that look like StatsD more often than uniform noise does.
ALPHABET = b"abc.:|#@,=-+_0123456789eEgcmshdTx[]{}\n \xff"
statsd_like = st.lists(st.sampled_from([bytes([b]) for b in ALPHABET]), max_size=80).map(b"".join)
noise = st.one_of(st.binary(max_size=200), statsd_like)


@settings(max_examples=400, deadline=None)
@given(noise)
def test_parse_line_never_raises(data: bytes) -> None:
    for line in data.split(b"\n"):
        parsed = parse_line(line, sets=True)
        for problem in parsed.problems:
            assert problem.code in CODES


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(noise)
def test_rejected_lines_change_nothing_and_exposition_stays_valid(data: bytes) -> None:
    r = StatsdReceiver(udp=None, tcp=None, sink=lambda _: None, sets="gauge")
    r.feed(b"base.c:1|c\nbase.g:2|g\nbase.t:3|ms")
    before = render_text(r.series_families())
    r.feed(data)
    stores_something = any(parse_line(line, sets=True).samples for line in data.split(b"\n"))
    after = render_text(r.series_families())
    if not stores_something:
        assert after == before
    families = r.exposition_families()
    assert parse(render_text(families), format="text").errors() == []
    assert parse(render_openmetrics(families), format="openmetrics").errors() == []


@pytest.mark.timeout(120)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(noise, min_size=1, max_size=60))
def test_listeners_survive_random_bytes(payloads: list[bytes]) -> None:

    async def main() -> None:
        async with StatsdReceiver(udp="127.0.0.1:0", tcp="127.0.0.1:0", sink=lambda _: None) as r:
            assert r.udp_port and r.tcp_port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for payload in payloads:
                    sock.sendto(payload, ("127.0.0.1", r.udp_port))
                sock.sendto(b"sentinel.udp:1|c", ("127.0.0.1", r.udp_port))
            for payload in payloads[:20]:
                _, writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
                writer.write(payload)
                writer.close()
            _, writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
            writer.write(b"\nsentinel.tcp:1|c\n")
            await writer.drain()
            writer.close()
            for _ in range(1000):
                names = {f.name for f in r.series_families()}
                if {"sentinel_udp", "sentinel_tcp"} <= names:
                    break
                await asyncio.sleep(0.01)
            assert {"sentinel_udp", "sentinel_tcp"} <= names
            assert parse(render_text(r.exposition_families()), format="text").errors() == []

    asyncio.run(main())
