"""Pushgateway persistence: every accepted push committed to SQLite before it is acknowledged.

Upstream's Pushgateway writes its whole state to a file every
``--persistence.interval`` (5 minutes by default), so a crash loses every
push since the last write. Here a push is answered only once it is
committed, and a restart (after a clean stop or a ``kill -9``) restores every
acknowledged push.

What is stored is what arrived, not a re-encoding of it: each accepted push
keeps its decoded body (and Content-Type) as one row, and a group's row maps
each family it holds to the body it came from. Writing a push therefore
costs three statements (the group row, the body, deleting the bodies the
group no longer uses; a body belongs to one group), with no serialisation of
metrics; restoring parses each live body once. A whole batch of writes
becomes a few multi-row statements.

Durability: the database runs in WAL mode with ``synchronous=NORMAL`` by
default. A commit then appends its pages to the WAL with ``write(2)`` before
``COMMIT`` returns; once in the kernel's page cache they survive the death
of the process (``kill -9``, a crash, the OOM killer), and the next open
replays the WAL. What NORMAL gives up is an ``fsync`` per commit, which only
matters if the *machine* loses power or the kernel crashes before writeback.
``fsync=True`` selects ``synchronous=FULL`` (an fsync of the WAL on every
commit) for that case, at the cost of a disk flush per transaction.

Threading: SQLite calls run on one dedicated writer thread, never on the
event loop. Callers enqueue a write and ``await`` its commit. The thread
takes everything waiting in the queue (up to ``max_batch``) and commits it
in one transaction (group commit), so N concurrent pushes cost one commit,
not N. A failing batch is retried one write per transaction, so one bad write
cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from promscope.errors import PromscopeError

__all__ = [
    "DeleteGroup",
    "PersistenceError",
    "PushStore",
    "RestoredBody",
    "RestoredGroup",
    "Snapshot",
    "Wipe",
    "WriteGroup",
]

log = logging.getLogger("promscope.receive.persistence")

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    key TEXT PRIMARY KEY,
    labels TEXT NOT NULL,
    push_time REAL NOT NULL,
    failure_time REAL NOT NULL,
    created REAL NOT NULL,
    last_sender TEXT,
    last_user_agent TEXT,
    families TEXT
);
CREATE TABLE IF NOT EXISTS bodies (
    id INTEGER PRIMARY KEY,
    content_type TEXT,
    body BLOB NOT NULL
);
"""


class PersistenceError(PromscopeError):
    """The persistence file cannot be opened, read or written."""

    def __init__(self, message: str, *, path: str, hint: str = "") -> None:
        super().__init__(f"{path}: {message}", hint=hint)
        self.path = path


# --- writes ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteGroup:
    """Upsert a group's row: its times, sender and (unless None) the families it holds.

    ``families`` is the whole ``(name, body id, time)`` map after the change;
    ``body`` is stored under ``body_id`` when given; ``drop_bodies`` are the
    bodies the group no longer uses. A failed push is a WriteGroup with
    ``families=None`` (only its times change).
    """

    key: str
    labels: tuple[tuple[str, str], ...]
    push_time: float
    failure_time: float
    created: float
    last_sender: str | None
    last_user_agent: str | None
    families: tuple[tuple[str, int, float], ...] | None = None
    body_id: int = 0
    body: bytes | None = None
    content_type: str | None = None
    drop_bodies: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteGroup:
    key: str


@dataclass(frozen=True, slots=True)
class Wipe:
    pass


Write = WriteGroup | DeleteGroup | Wipe


# --- restore --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoredBody:
    id: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class RestoredGroup:
    key: str
    labels: tuple[tuple[str, str], ...]
    push_time: float
    failure_time: float
    created: float
    last_sender: str | None
    last_user_agent: str | None
    families: tuple[tuple[str, int, float], ...]
    """``(family name, body id, time)``."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the file holds, read at start."""

    groups: tuple[RestoredGroup, ...]
    bodies: dict[int, RestoredBody]
    max_body_id: int


@dataclass(slots=True)
class PersistenceStats:
    commits: int = 0
    """Transactions committed."""
    writes: int = 0
    """Writes committed (a transaction holds one or more)."""
    errors: int = 0
    """Writes that failed."""
    last_error: str | None = None
    largest_batch: int = 0
    restored_groups: int = 0
    restored_bodies: int = 0


@dataclass(slots=True)
class _Pending:
    write: Write
    future: asyncio.Future[None]


_STOP = object()


class PushStore:
    """The SQLite file behind a Pushgateway, written by one thread with group commit.

    ::

        store = PushStore("/var/lib/promscope/push.db")
        snapshot = await store.open()      # creates the file, or reads what it holds
        await store.commit(WriteGroup(...))  # returns once committed
        await store.close()
    """

    def __init__(
        self,
        path: str,
        *,
        fsync: bool = False,
        max_batch: int = 512,
        max_pending: int = 10_000,
    ) -> None:
        self.path = path
        self.fsync = fsync
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.stats = PersistenceStats()
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._pending = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pending(self) -> int:
        """Writes enqueued and not yet committed."""
        return self._pending

    @property
    def full(self) -> bool:
        return self._pending >= self.max_pending

    @property
    def running(self) -> bool:
        return self._thread is not None

    # --- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> Snapshot:
        """Open (or create) the file, read what it holds and start the writer thread."""
        if self._thread is not None:
            raise RuntimeError("PushStore is already open")
        self._loop = asyncio.get_running_loop()
        conn, snapshot = await asyncio.to_thread(self._open)
        self._conn = conn
        self.stats.restored_groups = len(snapshot.groups)
        self.stats.restored_bodies = len(snapshot.bodies)
        thread = threading.Thread(target=self._run, name=f"promscope-persist:{self.path}", daemon=True)
        self._thread = thread
        thread.start()
        return snapshot

    async def close(self) -> None:
        """Commit what is queued, stop the thread and close the file."""
        thread = self._thread
        if thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(thread.join)
        self._thread = None

    def _open(self) -> tuple[sqlite3.Connection, Snapshot]:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise PersistenceError(
                f"cannot open the persistence file: {exc}",
                path=self.path,
                hint="check that the directory exists and is writable",
            ) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() != "wal":
                raise PersistenceError(
                    f"cannot switch the persistence file to WAL mode (got {mode!r})", path=self.path
                )
            conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            conn.executescript(_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise PersistenceError(
                    f"schema version {row[0]} is not the one this promscope writes ({SCHEMA_VERSION})",
                    path=self.path,
                    hint="use another --persistence-file, or move this one away",
                )
            snapshot = self._read(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise PersistenceError(
                f"cannot read the persistence file: {exc}",
                path=self.path,
                hint="is it a promscope persistence file? move it away to start empty",
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn, snapshot

    @staticmethod
    def _read(conn: sqlite3.Connection) -> Snapshot:
        groups: list[RestoredGroup] = []
        for key, labels, push_time, failure_time, created, sender, agent, families in conn.execute(
            "SELECT key, labels, push_time, failure_time, created, last_sender, last_user_agent, families "
            "FROM groups ORDER BY rowid"
        ):
            pairs = tuple((str(k), str(v)) for k, v in json.loads(labels))
            held = tuple(
                (str(name), int(body_id), float(time)) for name, body_id, time in json.loads(families or "[]")
            )
            groups.append(
                RestoredGroup(
                    key=key,
                    labels=pairs,
                    push_time=float(push_time),
                    failure_time=float(failure_time),
                    created=float(created),
                    last_sender=sender,
                    last_user_agent=agent,
                    families=held,
                )
            )
        bodies = {
            int(body_id): RestoredBody(int(body_id), content_type, bytes(body))
            for body_id, content_type, body in conn.execute("SELECT id, content_type, body FROM bodies")
        }
        row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM bodies").fetchone()
        return Snapshot(tuple(groups), bodies, int(row[0]) if row else 0)

    # --- writing -----------------------------------------------------------------------------------

    def submit(self, write: Write) -> asyncio.Future[None]:
        """Enqueue ``write`` (in call order) and return a future that completes when it is committed.

        Must be called on the event loop :meth:`open` ran on. The future's
        exception is a :class:`PersistenceError` when the write failed.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("PushStore is not open")
        future: asyncio.Future[None] = loop.create_future()
        self._pending += 1
        self._queue.put(_Pending(write, future))
        return future

    async def commit(self, write: Write) -> None:
        """Enqueue ``write`` and return once it is committed (raises :class:`PersistenceError`)."""
        await self.submit(write)

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                batch: list[_Pending] = []
                if first is _STOP:
                    stopping = True
                else:
                    assert isinstance(first, _Pending)
                    batch.append(first)
                while not stopping and len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                    else:
                        assert isinstance(item, _Pending)
                        batch.append(item)
                if batch:
                    self._commit_batch(conn, batch)
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            self._conn = None

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Pending]) -> None:
        results: list[BaseException | None]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _apply(conn, [item.write for item in batch])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            results = [None] * len(batch)
            self.stats.commits += 1
        except sqlite3.Error:
            # Retry one by one so that one bad write fails alone.
            results = []
            for item in batch:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        _apply(conn, [item.write])
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    self.stats.commits += 1
                    results.append(None)
                except sqlite3.Error as exc:
                    self.stats.last_error = str(exc)
                    log.error("persistence: cannot commit a write to %s: %s", self.path, exc)
                    results.append(
                        PersistenceError(f"cannot commit to the persistence file: {exc}", path=self.path)
                    )
        ok = sum(1 for r in results if r is None)
        self.stats.writes += ok
        self.stats.errors += len(results) - ok
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        loop = self._loop
        if loop is not None and not loop.is_closed():
            futures = [item.future for item in batch]
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._resolve, futures, results)

    def _resolve(
        self, futures: Sequence[asyncio.Future[None]], results: Sequence[BaseException | None]
    ) -> None:
        self._pending -= len(futures)
        for future, result in zip(futures, results, strict=True):
            if future.done():
                continue
            if result is None:
                future.set_result(None)
            else:
                future.set_exception(result)


_ROWS_PER_STATEMENT = 500
"""Rows per multi-row INSERT (8 parameters each: well under SQLite's 32,766-parameter limit)."""
_UPSERT = (
    "INSERT INTO groups (key, labels, push_time, failure_time, created, last_sender, last_user_agent, "
    "families) VALUES {values} ON CONFLICT (key) DO UPDATE SET push_time=excluded.push_time, "
    "failure_time=excluded.failure_time, last_sender=excluded.last_sender, "
    "last_user_agent=excluded.last_user_agent, families=COALESCE(excluded.families, groups.families)"
)


def _apply(conn: sqlite3.Connection, writes: Sequence[Write]) -> None:
    """Apply writes in order, each run of group writes as a few multi-row statements.

    Few statements per transaction matter more than their size here: the
    thread gives the GIL up around every SQLite call and must get it back
    from a busy event loop each time.
    """
    run: list[WriteGroup] = []
    for write in writes:
        if isinstance(write, WriteGroup):
            run.append(write)
            continue
        _write_groups(conn, run)
        run = []
        if isinstance(write, DeleteGroup):
            row = conn.execute("SELECT families FROM groups WHERE key=?", (write.key,)).fetchone()
            conn.execute("DELETE FROM groups WHERE key=?", (write.key,))
            if row is not None:
                _drop_bodies(conn, tuple({int(item[1]) for item in json.loads(row[0] or "[]")}))
        else:
            conn.execute("DELETE FROM bodies")
            conn.execute("DELETE FROM groups")
    _write_groups(conn, run)


def _write_groups(conn: sqlite3.Connection, writes: Sequence[WriteGroup]) -> None:
    for start in range(0, len(writes), _ROWS_PER_STATEMENT):
        chunk = writes[start : start + _ROWS_PER_STATEMENT]
        params: list[object] = []
        body_params: list[object] = []
        drops: list[int] = []
        for write in chunk:
            params.extend(
                (
                    write.key,
                    json.dumps(write.labels, ensure_ascii=False, separators=(",", ":")),
                    write.push_time,
                    write.failure_time,
                    write.created,
                    write.last_sender,
                    write.last_user_agent,
                    None
                    if write.families is None
                    else json.dumps(write.families, ensure_ascii=False, separators=(",", ":")),
                )
            )
            if write.body is not None:
                body_params.extend((write.body_id, write.content_type, write.body))
            drops.extend(write.drop_bodies)
        conn.execute(_UPSERT.format(values=",".join(["(?,?,?,?,?,?,?,?)"] * len(chunk))), params)
        if body_params:
            values = ",".join(["(?,?,?)"] * (len(body_params) // 3))
            conn.execute(f"INSERT INTO bodies (id, content_type, body) VALUES {values}", body_params)
        _drop_bodies(conn, tuple(drops))


def _drop_bodies(conn: sqlite3.Connection, body_ids: tuple[int, ...]) -> None:
    for start in range(0, len(body_ids), 10_000):
        chunk = body_ids[start : start + 10_000]
        conn.execute(f"DELETE FROM bodies WHERE id IN ({','.join('?' * len(chunk))})", chunk)
