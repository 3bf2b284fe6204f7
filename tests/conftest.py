"""Helpers every test directory shares: where the fixtures are, free ports, real Prometheus binaries.

Fixtures defined here:

``fixtures_dir``
    The repo's ``fixtures/`` directory (a :class:`pathlib.Path`).
``free_port``
    A callable returning a TCP port on 127.0.0.1 that was free a moment ago.
``run_binary`` / ``run_binary_session``
    Factories that start a Debian-packaged binary (node_exporter, Pushgateway,
    Prometheus…) on ``127.0.0.1:<free port>``, wait until it answers, and stop
    it at teardown (function- or session-scoped). A test that asks for a
    binary that is not installed is *skipped* with the reason and the apt
    package to install; CI installs them all and sets
    ``PROMSCOPE_REQUIRE_BINARIES=1``, which turns that skip into a failure::

        def test_scrape(run_binary):
            exporter = run_binary("/usr/bin/prometheus-node-exporter",
                                  "--web.listen-address={address}")
            httpx.get(exporter.url("/metrics"))

    ``{address}`` (``127.0.0.1:PORT``), ``{port}`` and ``{tmp}`` (a fresh
    directory for the process's state) are substituted in the arguments.
``require_binary``
    ``require_binary("/usr/bin/promtool")`` returns the path, or skips the test.
``loop_thread``
    A :class:`LoopThread`: an asyncio loop running in a daemon thread, so a
    test can drive a promscope server with plain blocking clients (httpx,
    raw sockets, real Prometheus binaries) the way real senders do.
    ``loop_thread.run(coro)`` runs a coroutine there and returns its result,
    ``loop_thread.call(fn)`` a plain callable (to read state the loop owns).
``module_loop``
    The same, module-scoped (for hypothesis tests, which must not use
    function-scoped fixtures).
``tls_files``
    A :class:`TlsFiles`: a throwaway CA, a server certificate for 127.0.0.1 (and
    localhost) and a client certificate, with their keys, as PEM files (made
    with ``cryptography``, once per session).

Tests under ``tests/integration/`` are marked ``integration`` automatically.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import settings

# In CI (CI=true, as .ci/run runs) every property test draws the same examples on every run: a
# shared, loaded machine must not turn a test green or red by the draw. Locally the draws vary,
# which is how new cases are found; a failure found that way becomes an @example.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

T = TypeVar("T")

REPO = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"

# Binary -> Debian package that ships it, for the skip reason.
DEBIAN_PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-node-exporter": "prometheus-node-exporter",
    "prometheus-pushgateway": "prometheus-pushgateway",
}

__all__ = [
    "FIXTURES",
    "REPO",
    "BinaryRunner",
    "LoopThread",
    "RunningBinary",
    "TlsFiles",
    "binary_missing_reason",
    "find_free_port",
    "skip_or_fail_missing",
]


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that the kernel just handed out (and we released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def skip_or_fail_missing(binary: str) -> None:
    """Skip the test when ``binary`` is absent; under ``PROMSCOPE_REQUIRE_BINARIES=1`` (CI), fail it."""
    reason = binary_missing_reason(binary)
    if reason is None:
        return
    if os.environ.get("PROMSCOPE_REQUIRE_BINARIES", "") not in ("", "0"):
        pytest.fail(f"{reason}; PROMSCOPE_REQUIRE_BINARIES is set, so this is a failure", pytrace=False)
    pytest.skip(reason)


def binary_missing_reason(binary: str) -> str | None:
    """None when ``binary`` is runnable, else a skip reason naming the package to install."""
    path = binary if os.sep in binary else shutil.which(binary)
    if path and os.access(path, os.X_OK):
        return None
    name = os.path.basename(binary)
    package = DEBIAN_PACKAGES.get(name, name)
    return f"{binary} is not installed (apt-get install {package})"


@dataclass
class RunningBinary:
    """A started binary: its address, process and the log it wrote so far."""

    binary: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path
    workdir: pathlib.Path
    args: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}{path if path.startswith('/') else '/' + path}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after five seconds; safe to call twice."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


class BinaryRunner:
    """Starts binaries and remembers them, so :meth:`stop_all` ends every one it started."""

    def __init__(self, base_tmp: pathlib.Path) -> None:
        self.base_tmp = base_tmp
        self.running: list[RunningBinary] = []

    def __call__(
        self,
        binary: str,
        *args: str,
        ready_path: str | None = "/metrics",
        timeout: float = 20.0,
        attempts: int = 3,
    ) -> RunningBinary:
        """Start ``binary`` with ``args`` and wait until it is ready.

        Ready means an HTTP GET of ``ready_path`` answers below 500, or, with
        ``ready_path=None``, that the port accepts a TCP connection. The port
        is picked just before the start; if the process exits early (another
        process took the port), it is retried on a new port, up to ``attempts``.
        """
        skip_or_fail_missing(binary)
        last_error = ""
        for _ in range(attempts):
            running = self._start(binary, args)
            error = self._wait_ready(running, ready_path, timeout)
            if error is None:
                self.running.append(running)
                return running
            running.stop()
            last_error = f"{error}\n--- {binary} log ---\n{running.log()[-4000:]}"
            if "exited" not in error:
                break
        pytest.fail(f"{binary} did not become ready: {last_error}", pytrace=False)

    def _start(self, binary: str, args: tuple[str, ...]) -> RunningBinary:
        port = find_free_port()
        workdir = pathlib.Path(tempfile.mkdtemp(prefix=os.path.basename(binary) + "-", dir=self.base_tmp))
        values = {"address": f"127.0.0.1:{port}", "port": str(port), "tmp": str(workdir)}
        argv = [binary, *(arg.format(**values) for arg in args)]
        log_path = workdir / "process.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                start_new_session=True,
            )
        return RunningBinary(binary, port, process, log_path, workdir, argv)

    @staticmethod
    def _wait_ready(running: RunningBinary, ready_path: str | None, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = running.process.poll()
            if code is not None:
                return f"process exited with status {code}"
            if ready_path is None:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", running.port), 0.5):
                    return None
            else:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(running.url(ready_path), timeout=2).status_code < 500:
                        return None
            time.sleep(0.05)
        return f"no answer on {running.address} within {timeout:g}s"

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()


@pytest.fixture(scope="session")
def fixtures_dir() -> pathlib.Path:
    return FIXTURES


@pytest.fixture
def free_port() -> Callable[[], int]:
    return find_free_port


@pytest.fixture
def run_binary(tmp_path: pathlib.Path) -> Iterator[BinaryRunner]:
    runner = BinaryRunner(tmp_path)
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture(scope="session")
def run_binary_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BinaryRunner]:
    runner = BinaryRunner(tmp_path_factory.mktemp("binaries"))
    try:
        yield runner
    finally:
        runner.stop_all()


@pytest.fixture
def require_binary() -> Callable[[str], str]:
    def require(binary: str) -> str:
        skip_or_fail_missing(binary)
        return binary if os.sep in binary else str(shutil.which(binary))

    return require


class LoopThread:
    """An asyncio event loop running in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 20.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 20.0) -> T:
        """Run a plain callable on the loop's thread (to read state the loop owns)."""

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            self.run(drain(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture(scope="module")
def module_loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: pathlib.Path
    server_cert: pathlib.Path
    server_key: pathlib.Path
    client_cert: pathlib.Path
    client_key: pathlib.Path


def _build_tls_files(directory: pathlib.Path, server_names: tuple[str, ...]) -> TlsFiles:
    """A test CA, a server certificate for ``server_names`` (IPs and DNS names) and a client one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def write_key(key: ec.EllipticCurvePrivateKey, name: str) -> pathlib.Path:
        path = directory / name
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def write_cert(cert: x509.Certificate, name: str) -> pathlib.Path:
        path = directory / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "promscope test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(common_name: str, usage: x509.ObjectIdentifier, server: bool) -> tuple[x509.Certificate, Any]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
        )
        if server:
            names: list[x509.GeneralName] = []
            for name in server_names:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(name)))
                except ValueError:
                    names.append(x509.DNSName(name))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf(server_names[0], ExtendedKeyUsageOID.SERVER_AUTH, True)
    client_cert, client_key = leaf("pusher", ExtendedKeyUsageOID.CLIENT_AUTH, False)
    return TlsFiles(
        ca_cert=write_cert(ca_cert, "ca.pem"),
        server_cert=write_cert(server_cert, "server.pem"),
        server_key=write_key(server_key, "server-key.pem"),
        client_cert=write_cert(client_cert, "client.pem"),
        client_key=write_key(client_key, "client-key.pem"),
    )


@pytest.fixture(scope="session")
def make_tls_files(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., TlsFiles]:
    """Build a CA, server and client certificates; ``server_names`` picks what the server is called."""

    def make(server_names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TlsFiles:
        return _build_tls_files(tmp_path_factory.mktemp("tls"), server_names)

    return make


@pytest.fixture(scope="session")
def tls_files(make_tls_files: Callable[..., TlsFiles]) -> TlsFiles:
    """Certificates for a server reached as 127.0.0.1 or localhost, and a client."""
    return make_tls_files()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    integration = REPO / "tests" / "integration"
    for item in items:
        if integration in pathlib.Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)
