"""StatsD over real sockets on 127.0.0.1: UDP, TCP and unixgram round trips, limits, kernel drops."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promscope.errors import ConfigError, ListenError
from promscope.observation import Observation
from promscope.receive.http import ServerTLS
from promscope.receive.statsd import StatsdLimits, StatsdReceiver
from promscope.receive.udp import parse_host_port, udp_kernel_drops

pytestmark = pytest.mark.timeout(60)


async def until(condition: Callable[[], bool], limit: float = 10.0) -> None:
    """Wait (bounded) for ``condition``; the bound guards against a hang, it is not a speed assert."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def value(r: StatsdReceiver, name: str) -> float | None:
    for family in r.series_families():
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    return None


def test_udp_round_trip() -> None:
    async def main() -> None:
        seen: list[Observation] = []
        async with StatsdReceiver(udp="127.0.0.1:0", tcp=None, sink=seen.append) as r:
            assert r.udp_port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"udp.hits:1|c\nudp.temp:3|g", ("127.0.0.1", r.udp_port))
                for _ in range(99):
                    sock.sendto(b"udp.hits:1|c", ("127.0.0.1", r.udp_port))
                await until(lambda: value(r, "udp_hits") == 100.0)
            stats = r.stats()
            assert stats.packets["udp"] == 100 and stats.lines == 101
            assert stats.receive_buffer is not None and stats.receive_buffer.granted > 0
            assert stats.kernel_drops == (0 if sys.platform == "linux" else None)
            names = {f.name for f in r.exposition_families()}
            if sys.platform == "linux":
                assert "promscope_statsd_udp_kernel_drops_total" in names
        assert seen and seen[0].transport.protocol == "udp" and seen[0].source.startswith("127.0.0.1:")
        assert sum(int(o.transport.extra["datagrams"]) for o in seen) == 100  # stop() flushes the rest

    asyncio.run(main())


def test_tcp_round_trip_with_partial_lines() -> None:
    async def main() -> None:
        seen: list[Observation] = []
        async with StatsdReceiver(udp=None, tcp="127.0.0.1:0", sink=seen.append) as r:
            assert r.tcp_port
            _reader, writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
            writer.write(b"tcp.a:1|c\ntcp.a:2|")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(b"c\ntcp.b:5|g")  # the last line has no newline: taken at EOF
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            await until(lambda: value(r, "tcp_b") == 5.0)
            assert value(r, "tcp_a") == 3.0
            assert r.stats().tcp_connections == 1
        assert all(o.transport.protocol == "tcp" for o in seen)

    asyncio.run(main())


def test_tcp_line_too_long_closes_the_connection() -> None:
    async def main() -> None:
        seen: list[Observation] = []
        limits = StatsdLimits(max_line_bytes=64)
        async with StatsdReceiver(udp=None, tcp="127.0.0.1:0", sink=seen.append, limits=limits) as r:
            reader, writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
            writer.write(b"ok.line:1|c\n" + b"x" * 200 + b":1|c\nafter:1|c\n")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the receiver
            writer.close()
            await until(lambda: r.stats().tcp_too_long == 1)
            assert value(r, "ok_line") == 1.0 and value(r, "after") is None
        assert any(d.code == "SD-161" for o in seen for d in o.diagnostics)

    asyncio.run(main())


def test_tcp_idle_client_times_out_and_others_are_served() -> None:
    async def main() -> None:
        limits = StatsdLimits(tcp_idle_timeout=0.2, max_tcp_connections=2)
        async with StatsdReceiver(udp=None, tcp="127.0.0.1:0", limits=limits) as r:
            idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", r.tcp_port)
            _, busy = await asyncio.open_connection("127.0.0.1", r.tcp_port)
            busy.write(b"busy:1|c\n")
            await busy.drain()
            await until(lambda: value(r, "busy") == 1.0)
            assert await asyncio.wait_for(idle_reader.read(), 10) == b""
            await until(lambda: r.stats().tcp_timeouts >= 1)
            busy.close()
            idle_writer.close()

    asyncio.run(main())


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets on this OS")
def test_unixgram_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "statsd.sock")

    async def main() -> None:
        seen: list[Observation] = []
        async with StatsdReceiver(udp=None, tcp=None, unixgram=path, sink=seen.append) as r:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"unix.hits:4|c|#env:test", path)
            await until(lambda: value(r, "unix_hits") == 4.0)
            assert r.stats().packets == {"unixgram": 1}
        assert seen[0].transport.protocol == "unixgram"
        assert not Path(path).exists()

    asyncio.run(main())


def test_port_in_use_is_a_listen_error() -> None:
    async def main() -> None:
        async with StatsdReceiver(udp="127.0.0.1:0", tcp="127.0.0.1:0") as first:
            taken = f"127.0.0.1:{first.tcp_port}"
            second = StatsdReceiver(udp=None, tcp=taken)
            with pytest.raises(ListenError) as caught:
                await second.start()
            assert taken in str(caught.value)
            busy_udp = StatsdReceiver(udp=f"127.0.0.1:{first.udp_port}", tcp=None)
            with pytest.raises(ListenError):
                await busy_udp.start()

    asyncio.run(main())


def test_no_listener_is_a_listen_error() -> None:
    with pytest.raises(ListenError, match="no listener"):
        asyncio.run(StatsdReceiver(udp=None, tcp=None).start())


def test_addresses() -> None:
    assert parse_host_port("127.0.0.1:9125") == ("127.0.0.1", 9125)
    assert parse_host_port(":9125") == ("127.0.0.1", 9125)
    assert parse_host_port("[::1]:9125") == ("::1", 9125)
    for bad in ("nohost", "a:b", "::1:9125", "[::1]9125", "h:70000"):
        with pytest.raises(ValueError):
            parse_host_port(bad)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc/net/udp is Linux's")
def test_kernel_drops_are_read_for_the_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        assert udp_kernel_drops(sock) == 0


# --- TLS on the TCP listener -------------------------------------------------------------------------


def _client_context(tls_files: Any, *, cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    if cert:
        context.load_cert_chain(str(tls_files.client_cert), str(tls_files.client_key))
    return context


async def _send_tls(port: int, context: ssl.SSLContext, data: bytes) -> None:
    """Connect with TLS, send, close; a server that refuses the handshake may cut this short."""
    with contextlib.suppress(ssl.SSLError, ConnectionError, OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(data)
        await writer.drain()
        writer.close()
        with contextlib.suppress(ssl.SSLError, ConnectionError, OSError):
            await writer.wait_closed()


def test_tcp_with_tls_and_a_client_ca_takes_only_certified_clients(tls_files: Any) -> None:
    async def main() -> None:
        seen: list[Observation] = []
        tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key), str(tls_files.ca_cert))
        limits = StatsdLimits(tls_handshake_timeout=0.3)
        async with StatsdReceiver(udp=None, tcp="127.0.0.1:0", tls=tls, limits=limits, sink=seen.append) as r:
            port = r.tcp_port
            assert port
            await _send_tls(
                port, _client_context(tls_files, cert=True), b"secure.hits:2|c\nsecure.temp:7|g\n"
            )
            await until(lambda: value(r, "secure_temp") == 7.0)
            assert value(r, "secure_hits") == 2.0
            # no client certificate: the handshake fails, nothing is stored
            await _send_tls(port, _client_context(tls_files, cert=False), b"nocert.hits:1|c\n")
            await until(lambda: r.stats().tls_handshake_failures == 1)
            # plaintext StatsD to a TLS port: refused, never parsed as lines
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"plain.hits:1|c\n")
            await writer.drain()
            await until(lambda: r.stats().tls_handshake_failures == 2)
            writer.close()
            # a client that connects and says nothing is closed after the handshake timeout
            silent_reader, silent = await asyncio.open_connection("127.0.0.1", port)
            await until(lambda: r.stats().tls_handshake_failures == 3)
            assert await silent_reader.read() == b""  # closed by the server
            silent.close()
            # a port probe (connect, close) is counted but not shown
            _, probe = await asyncio.open_connection("127.0.0.1", port)
            probe.close()
            await until(lambda: r.stats().tls_handshake_failures == 4)
            names = {f.name for f in r.series_families()}
            assert names == {"secure_hits", "secure_temp"}
            own = {f.name: f for f in r.exposition_families()}
            assert own["promscope_statsd_tls_handshake_failures_total"].samples[0].value == 4.0
            assert r.stats().packets.get("tls", 0) >= 1 and "tcp" not in r.stats().packets
        accepted = [o for o in seen if o.accepted]
        assert accepted and {o.transport.protocol for o in accepted} == {"tls"}
        refused = [o for o in seen if o.transport.extra.get("refused") == "tls"]
        assert len(refused) == 3
        assert all(o.diagnostics[0].code == "SD-162" and o.source.startswith("127.0.0.1:") for o in refused)
        assert "certificate" in refused[0].message.lower()
        assert refused[2].message == "no TLS handshake within 0.3s"

    asyncio.run(main())


def test_tcp_with_tls_and_no_client_ca_takes_any_client(tls_files: Any) -> None:
    async def main() -> None:
        tls = ServerTLS(str(tls_files.server_cert), str(tls_files.server_key))
        async with StatsdReceiver(udp="127.0.0.1:0", tcp="127.0.0.1:0", tls=tls) as r:
            assert r.tcp_port and r.udp_port
            await _send_tls(r.tcp_port, _client_context(tls_files, cert=False), b"anon.hits:1|c\n")
            await until(lambda: value(r, "anon_hits") == 1.0)
            # UDP cannot carry TLS: it stays plaintext beside the TLS-only TCP listener
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"anon.hits:1|c", ("127.0.0.1", r.udp_port))
            await until(lambda: value(r, "anon_hits") == 2.0)
            assert r.stats().tls_handshake_failures == 0

    asyncio.run(main())


def test_an_unreadable_certificate_is_a_config_error_and_nothing_stays_bound(tmp_path: Path) -> None:
    async def main() -> None:
        bad = tmp_path / "bad.pem"
        bad.write_text("not a certificate")
        receiver = StatsdReceiver(udp="127.0.0.1:0", tcp="127.0.0.1:0", tls=ServerTLS(str(bad), str(bad)))
        with pytest.raises(ConfigError, match="cannot load the TLS certificate"):
            await receiver.start()
        assert receiver.udp_port is None and receiver.tcp_port is None

    asyncio.run(main())
