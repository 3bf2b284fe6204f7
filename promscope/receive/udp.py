"""Datagram sockets for push receivers: bind, raise the receive buffer, read in a thread, count kernel drops.

Why a thread: asyncio reads a datagram socket with one selector wake-up and one Python callback per
datagram, and reads nothing while the loop is busy elsewhere (parsing, rendering /metrics, a TUI
redraw). At 200,000 datagrams/s the kernel buffer then overflows during any pause longer than a few
milliseconds. :class:`DatagramReader` drains the socket in a dedicated thread with a plain blocking
``recvfrom`` (which releases the GIL while it waits), collects datagrams into batches (draining
whatever is queued with ``MSG_DONTWAIT`` after each blocking read) and hands each batch to the event
loop with ``call_soon_threadsafe``. The loop does all parsing and keeps all state, so nothing else
needs a lock, and the reader keeps emptying the kernel buffer while the loop works. Batches waiting
for the loop are bounded; when the loop falls behind, the reader pauses and the kernel buffer takes
the load (what it cannot hold shows up as kernel drops, which :func:`udp_kernel_drops` reads from
``/proc/net/udp``).

Datagram sockets carry no TLS and no credentials: whoever can reach one can send to it, so they
bind 127.0.0.1 (or a socket path) unless told otherwise. TLS for StatsD is the TCP listener's
(:class:`~promscope.receive.statsd.StatsdReceiver`'s ``tls``).

Nothing here blocks the event loop: :meth:`DatagramReader.stop` wakes the thread with a datagram to
itself and joins it from a worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from promscope.errors import ListenError

__all__ = [
    "BufferGrant",
    "DatagramBatch",
    "DatagramReader",
    "format_address",
    "open_tcp_listener",
    "open_udp_socket",
    "open_unixgram_socket",
    "parse_host_port",
    "read_rmem_max",
    "set_receive_buffer",
    "udp_kernel_drops",
]

DatagramBatch = list[tuple[bytes, object]]
"""``(payload, sender address)`` pairs in arrival order."""

_RMEM_MAX = "/proc/sys/net/core/rmem_max"


def parse_host_port(address: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"127.0.0.1:9125"``, ``":9125"``, ``"[::1]:9125"`` -> ``(host, port)``; ValueError when malformed."""
    text = address.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"{address!r}: expected [host]:port")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"{address!r}: expected host:port")
        if ":" in host:
            raise ValueError(f"{address!r}: write IPv6 addresses as [host]:port")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{address!r}: port must be a number from 0 to 65535")
    return (host or default_host, int(port_text))


def format_address(address: object) -> str:
    """A socket address as people write it: ``127.0.0.1:53124``, ``[::1]:53124``, a path, or ``unnamed``."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    if isinstance(address, bytes):
        address = address.decode("utf-8", "replace")
    if isinstance(address, str) and address:
        return address
    return "unnamed"


def read_rmem_max(path: str = _RMEM_MAX) -> int | None:
    """``net.core.rmem_max`` (the most SO_RCVBUF may ask for without privilege), or None."""
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class BufferGrant:
    """What the kernel granted for a socket receive buffer."""

    requested: int
    granted: int
    """Bytes of payload buffer granted (Linux reports twice this; it is halved here)."""
    rmem_max: int | None
    forced: bool
    """True when SO_RCVBUFFORCE (CAP_NET_ADMIN) set it past rmem_max."""

    @property
    def capped(self) -> bool:
        return self.granted < self.requested

    def hint(self) -> str:
        """What to do when the grant is short of the request (empty when it is not)."""
        if not self.capped:
            return ""
        return (
            f"receive buffer capped at {self.granted:,} bytes (asked {self.requested:,}); "
            f"raise it with: sysctl -w net.core.rmem_max={self.requested}"
        )


def set_receive_buffer(sock: socket.socket, requested: int) -> BufferGrant:
    """Raise SO_RCVBUF to ``requested`` bytes (SO_RCVBUFFORCE first when permitted) and report the grant."""
    rmem_max = read_rmem_max()
    forced = False
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if force is not None and requested > (rmem_max or 0):
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, requested)
            forced = True
        except OSError:
            forced = False
    if not forced:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, requested)
    reported = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    granted = reported // 2 if os.uname().sysname == "Linux" else reported
    return BufferGrant(requested, granted, rmem_max, forced)


def _listen_error(error: OSError, address: str, what: str) -> ListenError:
    if error.errno == errno.EADDRINUSE:
        return ListenError(f"{what} address already in use", address=address, hint="pick another port")
    if error.errno == errno.EACCES:
        return ListenError(f"{what}: permission denied", address=address, hint="use a port above 1023")
    if error.errno == errno.EADDRNOTAVAIL:
        return ListenError(f"{what}: address not available on this host", address=address)
    return ListenError(f"{what}: {error.strerror or error}", address=address)


def _resolve(address: str, kind: socket.SocketKind) -> tuple[socket.AddressFamily, Any]:
    """The address family and socket address to bind ``HOST:PORT`` to; ListenError when it is not one."""
    try:
        host, port = parse_host_port(address)
    except ValueError as error:
        raise ListenError(str(error), address=address) from None
    try:
        infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ListenError(f"cannot resolve host: {error.strerror}", address=address) from None
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def open_udp_socket(address: str, receive_buffer: int) -> tuple[socket.socket, BufferGrant]:
    """A blocking UDP socket bound to ``address`` with its receive buffer raised; ListenError on failure."""
    family, sockaddr = _resolve(address, socket.SOCK_DGRAM)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        grant = set_receive_buffer(sock, receive_buffer)
        sock.bind(sockaddr)
    except OSError as error:
        sock.close()
        raise _listen_error(error, address, "udp") from None
    return sock, grant


def open_unixgram_socket(
    path: str, receive_buffer: int, mode: int = 0o755
) -> tuple[socket.socket, BufferGrant]:
    """A unix datagram socket bound at ``path`` (a stale socket file there is replaced)."""
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        raise ListenError("unix datagram sockets are not available on this OS", address=path)
    if os.path.exists(path):
        import stat

        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise ListenError("a file that is not a socket is in the way", address=path)
        os.unlink(path)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        grant = set_receive_buffer(sock, receive_buffer)
        sock.bind(path)
        os.chmod(path, mode)
    except OSError as error:
        sock.close()
        raise _listen_error(error, path, "unixgram") from None
    return sock, grant


def open_tcp_listener(address: str, backlog: int = 128) -> socket.socket:
    """A listening TCP socket for ``asyncio.start_server(sock=...)``; ListenError on failure."""
    family, sockaddr = _resolve(address, socket.SOCK_STREAM)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as error:
        sock.close()
        raise _listen_error(error, address, "tcp") from None
    return sock


def udp_kernel_drops(
    sock: socket.socket, proc_files: tuple[str, ...] = ("/proc/net/udp", "/proc/net/udp6")
) -> int | None:
    """Datagrams the kernel dropped for this socket (full buffer), from ``/proc/net/udp``; None if unknown.

    The line for the socket is found by its inode (the ``inode`` column); ``drops`` is the last column.
    """
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    wanted = str(inode)
    for path in proc_files:
        try:
            with open(path, encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) >= 13 and fields[9] == wanted:
                        return int(fields[12])
        except (OSError, ValueError):
            continue
    return None


class DatagramReader:
    """Reads a datagram socket in a daemon thread and hands batches to ``on_batch`` on the event loop.

    ``on_batch(batch, received_at)`` runs on ``loop`` with at most ``max_batch`` datagrams;
    ``received_at`` is ``monotonic()`` when the batch was closed. At most ``max_pending`` batches
    wait for the loop; beyond that the reader sleeps (``paused`` counts how often), letting the
    kernel buffer absorb the burst.
    """

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[DatagramBatch, float], None],
        *,
        name: str = "promscope-datagram",
        max_batch: int = 1024,
        max_pending: int = 256,
        max_datagram: int = 65535,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sock = sock
        self._loop = loop
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._max_datagram = max_datagram
        self._monotonic = monotonic
        self._pending: deque[tuple[DatagramBatch, float]] = deque()
        self._scheduled = False
        self._schedule_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.drain_budget = 4096
        """Datagrams delivered per event-loop turn before the loop gets to run other work."""
        self.datagrams = 0
        self.batches = 0
        self.paused = 0
        self.errors = 0
        self.last_error = ""

    def start(self) -> None:
        self._sock.setblocking(True)
        self._thread.start()

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waking it with an empty datagram) and deliver what it had read."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, timeout)
        self._drain_all()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            address = self._sock.getsockname()
            with socket.socket(self._sock.family, socket.SOCK_DGRAM) as poke:
                if self._sock.family == socket.AF_INET and address[0] in ("0.0.0.0", ""):
                    address = ("127.0.0.1", address[1])
                elif self._sock.family == socket.AF_INET6 and address[0] in ("::", ""):
                    address = ("::1", address[1], 0, 0)
                poke.sendto(b"", address)
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RD)

    def _run(self) -> None:
        sock = self._sock
        recvfrom = sock.recvfrom
        size = self._max_datagram
        dontwait = getattr(socket, "MSG_DONTWAIT", 0)
        stopping = self._stopping
        while not stopping.is_set():
            try:
                first = recvfrom(size)
            except OSError as error:
                if stopping.is_set():
                    break
                self.errors += 1
                self.last_error = str(error)
                time.sleep(0.01)
                continue
            batch: DatagramBatch = [first]
            append = batch.append
            if dontwait:
                limit = self._max_batch
                try:
                    while len(batch) < limit:
                        append(recvfrom(size, dontwait))
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as error:
                    self.errors += 1
                    self.last_error = str(error)
            if stopping.is_set():
                batch = [item for item in batch if item[0]]
                if not batch:
                    break
            self._hand_over(batch)
            while len(self._pending) >= self._max_pending and not stopping.is_set():
                self.paused += 1
                time.sleep(0.001)

    def _hand_over(self, batch: DatagramBatch) -> None:
        self.datagrams += len(batch)
        self.batches += 1
        self._pending.append((batch, self._monotonic()))
        with self._schedule_lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody is left to deliver to
            self._stopping.set()

    def _drain(self) -> None:
        """Deliver waiting batches, at most ``drain_budget`` datagrams per loop turn."""
        with self._schedule_lock:
            self._scheduled = False
        pending = self._pending
        budget = self.drain_budget
        while pending and budget > 0:
            batch, received_at = pending.popleft()
            budget -= len(batch)
            self._on_batch(batch, received_at)
        if pending:
            with self._schedule_lock:
                if self._scheduled:
                    return
                self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain_all(self) -> None:
        pending = self._pending
        while pending:
            batch, received_at = pending.popleft()
            self._on_batch(batch, received_at)
