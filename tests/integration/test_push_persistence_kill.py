"""Every acknowledged push survives ``kill -9``: promscope's Pushgateway with a persistence file, killed
mid-load and restarted on the same file.

A small driver (below, run with ``python -c``) serves the receiver on a free
127.0.0.1 port. Four client threads PUT to groups of their own, each push
carrying its sequence number; a push counts as acknowledged when it was
answered 2xx. Once enough pushes are acknowledged the driver is killed with
SIGKILL while the clients keep pushing. A new driver on the same file must
then hold, for every group, the last acknowledged push or a later one that
was in flight when the process died (never an older one), and POSTed
families acknowledged before the kill.
"""

from __future__ import annotations

import http.client
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import pytest

DRIVER = """
import asyncio, sys
from promscope.receive.http import HttpServer
from promscope.receive.pushgateway import PushgatewayReceiver

async def main(db):
    receiver = PushgatewayReceiver(persistence_file=db)
    await receiver.start()
    server = HttpServer(receiver.routes(), host="127.0.0.1", port=0)
    await server.start()
    print("READY", server.port, len(receiver.store), flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""

REPO = pathlib.Path(__file__).resolve().parents[2]
SENDERS = 4
GROUPS_PER_SENDER = 5
ACKED_BEFORE_KILL = 300
MAX_PUSHES_PER_SENDER = 5_000


def start_driver(db: pathlib.Path) -> tuple[subprocess.Popen[bytes], int]:
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(db)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode().split()
    if not line or line[0] != "READY":
        process.kill()
        _, err = process.communicate(timeout=10)
        pytest.fail(f"driver did not start: {line!r}\n{err.decode(errors='replace')[-2000:]}")
    return process, int(line[1])


@dataclass
class Sender:
    index: int
    port: int
    acked: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    posted: set[str] = field(default_factory=set)
    errors: int = 0

    def run(self, stop: threading.Event, total: list[int], lock: threading.Lock) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for seq in range(1, MAX_PUSHES_PER_SENDER + 1):
                if stop.is_set():
                    return
                group = f"s{self.index}g{seq % GROUPS_PER_SENDER}"
                self.sent[group] = seq
                body = (
                    f'# TYPE seq gauge\nseq {seq}\n# TYPE work_total counter\nwork_total{{kind="a"}} {seq}\n'
                )
                method = "PUT"
                if seq % 7 == 0:  # POST a family beside the others: it must survive too
                    method, body = "POST", f"posted_{seq} 1\nseq {seq}\n"
                try:
                    connection.request(method, f"/metrics/job/kill/instance/{group}", body=body.encode())
                    response = connection.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    self.errors += 1
                    return  # the server is gone
                if response.status == 200:
                    self.acked[group] = seq
                    if method == "POST":
                        self.posted.add(f"{group}:posted_{seq}")
                    with lock:
                        total[0] += 1
        finally:
            connection.close()


def read_groups(port: int) -> dict[str, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/api/v1/metrics")
    payload = json.loads(connection.getresponse().read())
    connection.close()
    return {group["labels"]["instance"]: group for group in payload["data"]}


def test_every_acknowledged_push_survives_kill_9(tmp_path: pathlib.Path) -> None:
    db = tmp_path / "push.db"
    process, port = start_driver(db)
    senders = [Sender(i, port) for i in range(SENDERS)]
    stop = threading.Event()
    total = [0]
    lock = threading.Lock()
    threads = [threading.Thread(target=s.run, args=(stop, total, lock), daemon=True) for s in senders]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while total[0] < ACKED_BEFORE_KILL and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        assert total[0] >= ACKED_BEFORE_KILL, f"only {total[0]} pushes acknowledged before the deadline"
        os.kill(process.pid, signal.SIGKILL)  # mid-load: the senders are still pushing
        process.wait(timeout=10)
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=20)
    assert all(s.errors <= 1 for s in senders)
    acked_total = sum(len(s.acked) for s in senders)
    assert acked_total == SENDERS * GROUPS_PER_SENDER

    restarted, port = start_driver(db)
    try:
        groups = read_groups(port)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=10)

    for sender in senders:
        for group, acked in sender.acked.items():
            assert group in groups, f"group {group} (acknowledged push {acked}) is missing after kill -9"
            held = groups[group]
            seq_family = held["seq"]
            assert isinstance(seq_family, dict)
            value = int(float(seq_family["metrics"][0]["value"]))
            last = sender.sent[group]
            assert acked <= value <= last, (
                f"{group}: holds push {value}, push {acked} was acknowledged ({last} sent)"
            )
        for posted in sender.posted:
            group, family = posted.split(":")
            seq = int(family.rsplit("_", 1)[1])
            # a POSTed family lives until a later PUT to its group replaced it
            later_put = any(
                s > seq and s % 7 and s % GROUPS_PER_SENDER == int(group.rsplit("g", 1)[1])
                for s in range(seq + 1, sender.sent[group] + 1)
            )
            if not later_put:
                assert family in groups[group], f"{posted} was acknowledged but is missing"
