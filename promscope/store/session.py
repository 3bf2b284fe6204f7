"""Session files: every Observation written to one compact SQLite file, and read back as a source again.

Recording::

    async with open_recorder("incident.psession", meta={"verb": "tail"}) as recorder:
        receiver = Receiver(sink=tee(store.ingest, recorder))   # recorder is an ObservationSink
        ...
    recorder.stats.describe()      # "recorded 1,204 observations (3 dropped: queue full)"

Reading and replaying::

    with SessionReader("incident.psession") as reader:
        reader.summary()                       # sources, time range, counts by kind and outcome
        for observation in reader.observations(start=t0, sources=["http://a:9100/metrics"]):
            store.ingest(observation)
        await replay(reader, store.ingest, speed=10.0)   # paced by the recorded times, 10x faster

The recorder never blocks the event loop: calling it puts the (frozen)
observation on a bounded queue, and one writer thread encodes and writes
batches, each batch one transaction. When the disk cannot keep up the queue
fills and further observations are dropped, counted by reason in
:attr:`SessionRecorder.stats` and written to the file's ``meta`` table when it
is closed, so a reader knows the session has holes.

The format (``FORMAT_VERSION`` 1), one self-contained SQLite file (WAL while
recording; switched back to a rollback journal on close, so copying the one
file is enough)::

    meta(key PRIMARY KEY, value)                  format_version, promscope_version, created_at (UTC),
                                                  host, command_line (JSON list), closed_at, observations,
                                                  dropped (JSON {reason: count}), and caller-given keys
    sources(id, name UNIQUE)                      observation sources
    family_meta(id, key UNIQUE)                   key: JSON [name, type, help, unit], written once per session
    series(id, key UNIQUE)                        key: JSON [sample name, [[label, value], ...]], input order
    observations(id, time, kind, source_id, outcome, series, samples, diagnostics,
                 message, transport JSON, changes JSON|NULL, families BLOB|NULL)
    diagnostics(observation_id, seq, code, severity, line, col, message, metric)

``families`` holds one observation's families: a one-byte codec tag (``Z``:
zlib, ``R``: raw) over ``<u32 header length> <JSON header> <float64 values,
little-endian>``. The header lists ``[family_meta id, line, sample count]``
per family, the samples' series ids and line numbers as deltas (a stable
exposition compresses to runs of ones), and sparse ``[index, ...]`` lists for
timestamps, exemplars and native histograms. Values are raw IEEE 754 doubles
in an explicit byte order, so NaN payloads (stale markers) survive and a file
reads the same on every machine. Times are seconds since the epoch (UTC); no
absolute path is stored beyond what the observations themselves carry.

The ``application_id`` pragma marks the file as a promscope session; a file
whose ``format_version`` is newer than :data:`FORMAT_VERSION` is refused with
a message that says so, and a corrupt or truncated file raises
:class:`SessionFileError` (an :class:`~promscope.errors.InputError`), never a
bare ``sqlite3`` exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import os
import queue
import socket
import sqlite3
import struct
import sys
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from promscope import __version__
from promscope.errors import InputError
from promscope.model import (
    BucketSpan,
    Diagnostic,
    Exemplar,
    Labels,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Severity,
)
from promscope.observation import (
    Changes,
    Observation,
    ObservationKind,
    ObservationSink,
    Outcome,
    Transport,
)

__all__ = [
    "APPLICATION_ID",
    "FORMAT_VERSION",
    "REPLAY_MARKER",
    "RecorderStats",
    "ReplayStats",
    "SessionFileError",
    "SessionMeta",
    "SessionReader",
    "SessionRecorder",
    "SessionSummary",
    "SourceSummary",
    "open_recorder",
    "replay",
    "tee",
]

FORMAT_VERSION = 1
"""The session format this promscope writes, and the newest it reads."""

APPLICATION_ID = 0x50534331
"""``PRAGMA application_id`` of a session file (``PSC1``)."""

REPLAY_MARKER = "replay"
"""Key set in ``Transport.extra`` of every replayed observation; its value is the session file's name."""

DropReason = Literal["queue_full", "closed", "encode_error", "write_error"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS family_meta (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS series (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    source_id INTEGER NOT NULL REFERENCES sources(id),
    outcome TEXT NOT NULL,
    series INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    diagnostics INTEGER NOT NULL,
    message TEXT NOT NULL,
    transport TEXT NOT NULL,
    changes TEXT,
    families BLOB
);
CREATE INDEX IF NOT EXISTS observations_time ON observations(time, id);
CREATE INDEX IF NOT EXISTS observations_source ON observations(source_id, time);
CREATE TABLE IF NOT EXISTS diagnostics (
    observation_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    code TEXT NOT NULL,
    severity TEXT NOT NULL,
    line INTEGER NOT NULL,
    col INTEGER NOT NULL,
    message TEXT NOT NULL,
    metric TEXT,
    PRIMARY KEY (observation_id, seq)
) WITHOUT ROWID;
"""

_HEADER = struct.Struct("<I")
_NO_EXTRA: Mapping[str, str] = MappingProxyType({})
_ENCODE_ERRORS = (
    ValueError,
    TypeError,
    OverflowError,
    UnicodeError,
    KeyError,
    struct.error,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.IntegrityError,
)
"""Problems with one observation's data: that observation is skipped (``encode_error``), not its batch."""
_RAW_LIMIT = 256
"""Payloads up to this many bytes are stored uncompressed (zlib would only add its own header)."""


class SessionFileError(InputError):
    """A session file cannot be used: not a session, from a newer promscope, corrupt, or not writable."""

    def __init__(self, message: str, *, path: str | os.PathLike[str], hint: str = "") -> None:
        super().__init__(message, path=os.fspath(path), hint=hint)


# -- small encoders shared by writer and reader -----------------------------------------------------------


def _num(value: float) -> float | str:
    """A float as JSON can carry it: finite numbers as numbers, the rest as Prometheus spells them."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "+Inf" if value > 0 else "-Inf"


def _unnum(value: Any) -> float:
    if isinstance(value, str):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}[value]
    return float(value)


def _opt_unnum(value: Any) -> float | None:
    return None if value is None else _unnum(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def _safe_text(text: str) -> str:
    """``text`` as SQLite can store it: lone surrogates (undecodable input) become escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _utc_iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")


def _encode_transport(transport: Transport) -> str:
    data: dict[str, Any] = {"protocol": transport.protocol}
    for name in ("sender", "user_agent", "method", "path", "status", "content_type", "content_encoding"):
        value = getattr(transport, name)
        if value is not None:
            data[name] = value
    if transport.wire_bytes:
        data["wire_bytes"] = transport.wire_bytes
    if transport.body_bytes:
        data["body_bytes"] = transport.body_bytes
    if transport.duration is not None:
        data["duration"] = _num(transport.duration)
    if transport.grouping_key:
        data["grouping_key"] = [list(pair) for pair in transport.grouping_key]
    if transport.extra:
        data["extra"] = dict(transport.extra)
    return _dumps(data)


def _decode_transport(text: str) -> Transport:
    data = json.loads(text)
    duration = data.get("duration")
    extra = data.get("extra")
    return Transport(
        protocol=data["protocol"],
        sender=data.get("sender"),
        user_agent=data.get("user_agent"),
        method=data.get("method"),
        path=data.get("path"),
        status=data.get("status"),
        content_type=data.get("content_type"),
        content_encoding=data.get("content_encoding"),
        wire_bytes=data.get("wire_bytes", 0),
        body_bytes=data.get("body_bytes", 0),
        duration=None if duration is None else _unnum(duration),
        grouping_key=tuple((str(k), str(v)) for k, v in data.get("grouping_key", ())),
        extra=MappingProxyType({str(k): str(v) for k, v in extra.items()}) if extra else _NO_EXTRA,
    )


def _encode_changes(changes: Changes | None) -> str | None:
    if changes is None:
        return None
    return _dumps(
        [
            list(changes.families_added),
            list(changes.families_removed),
            list(changes.families_changed),
            changes.series_added,
            changes.series_removed,
            changes.series_changed,
        ]
    )


def _decode_changes(text: str | None) -> Changes | None:
    if text is None:
        return None
    added, removed, changed, s_added, s_removed, s_changed = json.loads(text)
    return Changes(tuple(added), tuple(removed), tuple(changed), s_added, s_removed, s_changed)


def _encode_native(native: NativeHistogram) -> list[Any]:
    return [
        native.schema,
        _num(native.zero_threshold),
        _num(native.zero_count),
        _num(native.count),
        _num(native.sum),
        [[s.offset, s.length] for s in native.positive_spans],
        [_num(c) for c in native.positive_counts],
        [[s.offset, s.length] for s in native.negative_spans],
        [_num(c) for c in native.negative_counts],
    ]


def _decode_native(data: list[Any]) -> NativeHistogram:
    schema, threshold, zero_count, count, total, p_spans, p_counts, n_spans, n_counts = data
    return NativeHistogram(
        schema=int(schema),
        zero_threshold=_unnum(threshold),
        zero_count=_unnum(zero_count),
        count=_unnum(count),
        sum=_unnum(total),
        positive_spans=tuple(BucketSpan(int(o), int(n)) for o, n in p_spans),
        positive_counts=tuple(_unnum(c) for c in p_counts),
        negative_spans=tuple(BucketSpan(int(o), int(n)) for o, n in n_spans),
        negative_counts=tuple(_unnum(c) for c in n_counts),
    )


def _series_key_text(sample: Sample) -> str:
    return _dumps([sample.name, [list(pair) for pair in sample.labels]])


def _family_key_text(family: MetricFamily) -> str:
    return _dumps([family.name, family.type.value, family.help, family.unit])


# -- recording ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """What a recorder has done so far (a snapshot)."""

    path: str
    recorded: int = 0
    """Observations written and committed."""
    queued: int = 0
    """Observations taken but not yet written (waiting in the queue or being written)."""
    dropped: Mapping[str, int] = field(default_factory=dict)
    """Observations not written, by reason: ``queue_full`` (the disk could not keep up), ``closed``
    (arrived after close), ``encode_error``, ``write_error`` (the batch's transaction failed)."""
    errors: int = 0
    last_error: str | None = None

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def describe(self) -> str:
        """One line for people: ``recorded 12 observations to s.psession (2 dropped: 2 queue full)``."""
        line = f"recorded {self.recorded:,} observation{'s' if self.recorded != 1 else ''} to {self.path}"
        if self.dropped_total:
            reasons = ", ".join(
                f"{count:,} {reason.replace('_', ' ')}" for reason, count in sorted(self.dropped.items())
            )
            line += f" ({self.dropped_total:,} dropped: {reasons})"
        if self.last_error:
            line += f"; last error: {self.last_error}"
        return line


_STOP = object()


class SessionRecorder:
    """An :data:`~promscope.observation.ObservationSink` that writes every observation to a session file.

    Call :meth:`start` (or use it as a context manager, or :func:`open_recorder`
    from async code) before handing it to producers, and :meth:`close` at the
    end. Calling the recorder is cheap and never blocks: it queues the
    observation for the writer thread, or counts a drop when ``max_queue``
    observations are already waiting.

    ``if_exists``: ``"replace"`` (default) starts a new session over an
    existing file, ``"append"`` adds to a session file of this format,
    ``"fail"`` raises :class:`SessionFileError`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        meta: Mapping[str, str] | None = None,
        command_line: Sequence[str] | None = None,
        max_queue: int = 10_000,
        batch_size: int = 256,
        max_cache: int = 1_000_000,
        compress_level: int = 6,
        if_exists: Literal["replace", "append", "fail"] = "replace",
    ) -> None:
        if max_queue < 1 or batch_size < 1 or max_cache < 1:
            raise ValueError("max_queue, batch_size and max_cache must be positive")
        self.path = Path(path)
        self._clock = clock
        self._meta = dict(meta or {})
        self._command_line = list(command_line) if command_line is not None else _default_command_line()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._max_cache = max_cache
        self._compress_level = compress_level
        self._if_exists = if_exists
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._enqueued = 0
        self._processed = 0
        self._recorded = 0
        self._dropped: dict[str, int] = {}
        self._errors = 0
        self._last_error: str | None = None
        self._state: Literal["new", "open", "closing", "closed"] = "new"
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self._series_ids: dict[tuple[str, Labels], int] = {}
        self._family_ids: dict[tuple[str, MetricType, str | None, str | None], int] = {}
        self._source_ids: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> None:
        """Open (create) the file, write its meta and start the writer thread.

        Raises :class:`SessionFileError` when the file cannot be created or is
        not a session this promscope can append to.
        """
        if self._state != "new":
            raise RuntimeError("a SessionRecorder starts once")
        self._conn = self._open()
        self._state = "open"
        self._thread = threading.Thread(
            target=self._run, name=f"promscope-recorder:{self.path.name}", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float | None = None) -> RecorderStats:
        """Write what is queued, finish the file (meta, checkpoint) and stop the writer; idempotent."""
        with self._lock:
            if self._state in ("new", "closed"):
                self._state = "closed"
                return self.stats
            already_closing = self._state == "closing"
            self._state = "closing"
        thread = self._thread
        if not already_closing and thread is not None and thread.is_alive():
            self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)
        with self._lock:
            self._state = "closed"
        return self.stats

    def __enter__(self) -> SessionRecorder:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the sink ------------------------------------------------------------------------------------------

    def __call__(self, observation: Observation) -> None:
        """Queue ``observation`` for writing; never blocks (a full queue counts a drop)."""
        if self._state != "open" and self._state != "new":
            self._drop("closed")
            return
        with self._lock:
            self._enqueued += 1  # before the put, so the writer can never count it done first
        try:
            self._queue.put_nowait(observation)
        except queue.Full:
            with self._lock:
                self._enqueued -= 1
                self._dropped["queue_full"] = self._dropped.get("queue_full", 0) + 1

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (blocking: call it from a thread) until everything queued so far is written."""
        with self._done:
            target = self._enqueued
            return self._done.wait_for(lambda: self._processed >= target, timeout)

    @property
    def stats(self) -> RecorderStats:
        with self._lock:
            return RecorderStats(
                path=str(self.path),
                recorded=self._recorded,
                queued=self._enqueued - self._processed,
                dropped=dict(self._dropped),
                errors=self._errors,
                last_error=self._last_error,
            )

    def _drop(self, reason: DropReason, count: int = 1) -> None:
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + count

    # -- the file ------------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        path = self.path
        exists = path.exists() and path.stat().st_size > 0
        if exists and self._if_exists == "fail":
            raise SessionFileError("already exists", path=path, hint="choose another file or remove it")
        if exists and self._if_exists == "replace":
            try:
                for suffix in ("", "-wal", "-shm", "-journal"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{path}{suffix}")
            except OSError as exc:
                raise SessionFileError(f"cannot replace it: {exc.strerror or exc}", path=path) from None
            exists = False
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise SessionFileError(f"cannot create the session file: {exc}", path=path) from None
        try:
            if exists:
                _check_session(conn, path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")
            conn.executescript(_SCHEMA)
            now = self._clock()
            meta = {
                **self._meta,
                "format_version": str(FORMAT_VERSION),
                "promscope_version": __version__,
                "host": socket.gethostname(),
                "command_line": _dumps(self._command_line),
            }
            if not exists:
                meta["created_at"] = _utc_iso(now)
                meta["created_at_seconds"] = repr(now)
            with conn:
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", meta.items())
            if exists:
                self._load_dictionaries(conn)  # series and families are found by lookup as they come
        except SessionFileError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise SessionFileError(f"cannot write the session file: {exc}", path=path) from None
        return conn

    def _load_dictionaries(self, conn: sqlite3.Connection) -> None:
        self._source_ids = {name: id_ for id_, name in conn.execute("SELECT id, name FROM sources")}

    # -- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        stopping = False
        try:
            while not stopping:
                batch: list[Observation] = []
                item = self._queue.get()
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    assert isinstance(item, Observation)
                    batch.append(item)
                    if len(batch) >= self._batch_size:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    self._write_batch(conn, batch)
        finally:
            self._finish(conn)

    def _write_batch(self, conn: sqlite3.Connection, batch: Sequence[Observation]) -> None:
        written = 0
        encode_errors = 0
        try:
            conn.execute("BEGIN")
            for observation in batch:
                conn.execute("SAVEPOINT observation")
                try:
                    self._insert(conn, observation)
                except _ENCODE_ERRORS as exc:
                    # Only this observation is undone; ids it added to the dictionaries are gone with it.
                    conn.execute("ROLLBACK TO observation")
                    self._forget_ids()
                    encode_errors += 1
                    self._note_error(f"cannot encode an observation of {observation.source}: {exc}")
                else:
                    written += 1
                conn.execute("RELEASE observation")
            conn.execute("COMMIT")
        except Exception as exc:  # the disk, not the data: the whole batch is lost, recording goes on
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self._forget_ids()
            self._note_error(f"cannot write to the session file: {exc}")
            self._drop("write_error", len(batch) - encode_errors)
            written = 0
        if encode_errors:
            self._drop("encode_error", encode_errors)
        with self._done:
            self._recorded += written
            self._processed += len(batch)
            self._done.notify_all()

    def _insert(self, conn: sqlite3.Connection, observation: Observation) -> None:
        row, diagnostics = self._encode(conn, observation)
        cursor = conn.execute(
            "INSERT INTO observations(time, kind, source_id, outcome, series, samples, diagnostics,"
            " message, transport, changes, families) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        if diagnostics:
            observation_id = cursor.lastrowid
            conn.executemany(
                "INSERT INTO diagnostics VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(observation_id, seq, *values) for seq, values in enumerate(diagnostics)],
            )

    def _forget_ids(self) -> None:
        """Drop the cached dictionary ids (after a rollback some may no longer exist; lookups refill)."""
        self._series_ids.clear()
        self._family_ids.clear()
        self._source_ids.clear()

    def _note_error(self, message: str) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = message

    def _finish(self, conn: sqlite3.Connection) -> None:
        # Anything still queued (a writer that died) counts as dropped, never silently lost.
        leftover = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                leftover += 1
        if leftover:
            self._drop("closed", leftover)
            with self._done:
                self._processed += leftover
                self._done.notify_all()
        stats = self.stats
        try:
            total = conn.execute("SELECT count(*) FROM observations").fetchone()[0]
            with conn:
                conn.execute("BEGIN")
                conn.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("closed_at", _utc_iso(self._clock())),
                        ("observations", str(total)),
                        ("dropped", _dumps(dict(stats.dropped))),
                    ],
                )
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            self._note_error(f"cannot finish the session file: {exc}")
        finally:
            conn.close()

    # -- encoding (writer thread only) ---------------------------------------------------------------------

    def _id(
        self, conn: sqlite3.Connection, table: str, cache: dict[Any, int], key: str, memo: Any = None
    ) -> int:
        """The id of ``key`` in ``table``, inserting it when new; cached under ``memo`` (default ``key``)."""
        found = cache.get(key if memo is None else memo)
        if found is not None:
            return found
        column = "name" if table == "sources" else "key"
        row = conn.execute(f"SELECT id FROM {table} WHERE {column} = ?", (key,)).fetchone()
        if row is None:
            cursor = conn.execute(f"INSERT INTO {table}({column}) VALUES (?)", (key,))
            assert cursor.lastrowid is not None
            new_id: int = cursor.lastrowid
        else:
            new_id = int(row[0])
        if len(cache) >= self._max_cache:
            cache.clear()  # bounded memory; ids stay in the file and are found again by lookup
        cache[key if memo is None else memo] = new_id
        return new_id

    def _encode(
        self, conn: sqlite3.Connection, observation: Observation
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        source_id = self._id(conn, "sources", self._source_ids, _safe_text(observation.source))
        blob, samples = self._encode_families(conn, observation.families)
        diagnostics = [
            (d.code, d.severity.value, d.line, d.column, _safe_text(d.message), d.metric)
            for d in observation.diagnostics
        ]
        row = (
            observation.time,
            observation.kind.value,
            source_id,
            observation.outcome.value,
            observation.series,
            samples,
            len(diagnostics),
            _safe_text(observation.message),
            _encode_transport(observation.transport),
            _encode_changes(observation.changes),
            blob,
        )
        return row, diagnostics

    def _encode_families(
        self, conn: sqlite3.Connection, families: Sequence[MetricFamily]
    ) -> tuple[bytes | None, int]:
        if not families:
            return None, 0
        family_rows: list[list[int]] = []
        series_deltas: list[int] = []
        line_deltas: list[int] = []
        values: list[float] = []
        timestamps: list[list[Any]] = []
        exemplars: list[list[Any]] = []
        natives: list[list[Any]] = []
        previous_id = 0
        previous_line = 0
        index = 0
        series_cache = self._series_ids
        for family in families:
            family_memo = (family.name, family.type, family.help, family.unit)
            meta_id = self._family_ids.get(family_memo)
            if meta_id is None:
                meta_id = self._id(
                    conn, "family_meta", self._family_ids, _family_key_text(family), family_memo
                )
            family_rows.append([meta_id, family.line, len(family.samples)])
            for sample in family.samples:
                memo = (sample.name, sample.labels)
                series_id = series_cache.get(memo)
                if series_id is None:
                    series_id = self._id(conn, "series", series_cache, _series_key_text(sample), memo)
                series_deltas.append(series_id - previous_id)
                previous_id = series_id
                line_deltas.append(sample.line - previous_line)
                previous_line = sample.line
                values.append(sample.value)
                if sample.timestamp is not None:
                    timestamps.append([index, _num(sample.timestamp)])
                if sample.exemplar is not None:
                    ex = sample.exemplar
                    exemplars.append(
                        [
                            index,
                            [list(pair) for pair in ex.labels],
                            _num(ex.value),
                            None if ex.timestamp is None else _num(ex.timestamp),
                        ]
                    )
                if sample.native_histogram is not None:
                    natives.append([index, _encode_native(sample.native_histogram)])
                index += 1
        header: dict[str, Any] = {"f": family_rows, "s": series_deltas, "l": line_deltas}
        if timestamps:
            header["t"] = timestamps
        if exemplars:
            header["e"] = exemplars
        if natives:
            header["h"] = natives
        head = _dumps(header).encode("ascii")
        payload = b"".join((_HEADER.pack(len(head)), head, struct.pack(f"<{len(values)}d", *values)))
        if len(payload) <= _RAW_LIMIT:
            return b"R" + payload, index
        return b"Z" + zlib.compress(payload, self._compress_level), index


def _default_command_line() -> list[str]:
    """``sys.argv`` with the program reduced to its name (no absolute paths in a portable file)."""
    argv = list(sys.argv)
    if argv:
        argv[0] = os.path.basename(argv[0]) or argv[0]
    return argv


@contextlib.asynccontextmanager
async def open_recorder(path: str | os.PathLike[str], **options: Any) -> AsyncIterator[SessionRecorder]:
    """Start a :class:`SessionRecorder` off the event loop, yield it, and close it off the loop.

    For ``--record FILE`` on live verbs::

        async with open_recorder(record, meta={"verb": "tail"}) as recorder:
            sink = tee(store.ingest, recorder)
            ...
        print(recorder.stats.describe(), file=sys.stderr)

    ``options`` are :class:`SessionRecorder`'s keyword arguments. Raises
    :class:`SessionFileError` when the file cannot be created.
    """
    recorder = SessionRecorder(path, **options)
    await asyncio.to_thread(recorder.start)
    try:
        yield recorder
    finally:
        await asyncio.to_thread(recorder.close)


def tee(*sinks: ObservationSink, on_error: Callable[[BaseException], None] | None = None) -> ObservationSink:
    """One sink that hands each observation to every sink in turn; one failing sink does not stop the rest."""

    def sink(observation: Observation) -> None:
        for target in sinks:
            try:
                target(observation)
            except Exception as exc:
                if on_error is not None:
                    on_error(exc)

    return sink


# -- reading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """The ``meta`` table of a session file."""

    format_version: int
    promscope_version: str
    created_at: str
    host: str
    command_line: tuple[str, ...]
    closed_at: str | None
    """None when the recorder did not finish (it was killed): the file holds what was committed."""
    dropped: Mapping[str, int]
    extra: Mapping[str, str]
    """Every other key (what the recording verb added)."""


@dataclass(frozen=True, slots=True)
class SourceSummary:
    source: str
    observations: int
    first: float
    last: float
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What a session holds, from indexes and counters only (no observation is decoded)."""

    meta: SessionMeta
    observations: int
    start: float | None
    end: float | None
    sources: tuple[SourceSummary, ...]
    by_kind: Mapping[str, int]
    by_outcome: Mapping[str, int]
    samples: int
    diagnostics: int
    file_bytes: int

    @property
    def duration(self) -> float:
        return 0.0 if self.start is None or self.end is None else self.end - self.start


def _check_session(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> int:
    """The file's format version; :class:`SessionFileError` when it is not a session this promscope reads."""
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if application_id != APPLICATION_ID:
            raise SessionFileError(
                "not a promscope session file",
                path=path,
                hint="record one with --record FILE on a live command",
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, exc) from None
    if row is None:
        raise SessionFileError("the session file has no format version (corrupt?)", path=path)
    try:
        version = int(row[0])
    except ValueError:
        raise SessionFileError(f"unknown session format {row[0]!r}", path=path) from None
    if version > FORMAT_VERSION:
        raise SessionFileError(
            f"session format {version} is newer than this promscope {__version__} reads ({FORMAT_VERSION})",
            path=path,
            hint="open it with the promscope version that recorded it, or upgrade promscope",
        )
    return version


def _corrupt(path: str | os.PathLike[str], exc: BaseException) -> SessionFileError:
    text = str(exc)
    if "not a database" in text:
        return SessionFileError("not a promscope session file (not SQLite)", path=path)
    return SessionFileError(
        f"the session file is corrupt or truncated ({text})",
        path=path,
        hint="a copy taken while recording may miss its -wal file; copy it after the recording ends",
    )


class SessionReader:
    """A session file opened for reading: summary, and observations in time order.

    Usable from one thread at a time (``replay`` reads it on a worker
    thread). Every method raises :class:`SessionFileError`, never a bare
    ``sqlite3`` error, when the file turns out corrupt.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SessionFileError("no such file", path=path)
        if self.path.is_dir():
            raise SessionFileError("is a directory, not a session file", path=path)
        self.skipped = 0
        """Observations that could not be decoded (corrupt rows) and were skipped."""
        try:
            uri = self.path.resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SessionFileError(f"cannot open: {exc}", path=path) from None
        try:
            self.format_version = _check_session(self._conn, self.path)
        except BaseException:
            self._conn.close()
            raise
        self._sources: dict[int, str] = {}
        self._families: dict[int, tuple[str, MetricType, str | None, str | None]] = {}
        self._series: dict[int, tuple[str, Labels]] = {}

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SessionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.path.name

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.path, exc) from None

    # -- summary -------------------------------------------------------------------------------------------

    @property
    def meta(self) -> SessionMeta:
        values = dict(self._query("SELECT key, value FROM meta"))
        known = {
            "format_version",
            "promscope_version",
            "created_at",
            "created_at_seconds",
            "host",
            "command_line",
            "closed_at",
            "dropped",
            "observations",
        }
        try:
            command_line = tuple(json.loads(values.get("command_line", "[]")))
            dropped = {str(k): int(v) for k, v in json.loads(values.get("dropped", "{}")).items()}
        except (ValueError, AttributeError):
            command_line, dropped = (), {}
        return SessionMeta(
            format_version=int(values.get("format_version", "0")),
            promscope_version=values.get("promscope_version", "?"),
            created_at=values.get("created_at", "?"),
            host=values.get("host", "?"),
            command_line=command_line,
            closed_at=values.get("closed_at"),
            dropped=MappingProxyType(dropped),
            extra=MappingProxyType({k: v for k, v in values.items() if k not in known}),
        )

    def time_range(self) -> tuple[float, float] | None:
        row = self._query("SELECT min(time), max(time) FROM observations")[0]
        return None if row[0] is None else (float(row[0]), float(row[1]))

    def count(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        sources: Iterable[str] | None = None,
        kinds: Iterable[ObservationKind | str] | None = None,
    ) -> int:
        where, params = self._where(start, end, sources, kinds)
        return int(self._query(f"SELECT count(*) FROM observations o {where}", params)[0][0])

    def sources(self) -> list[SourceSummary]:
        rows = self._query(
            "SELECT s.name, count(*), min(o.time), max(o.time), group_concat(DISTINCT o.kind)"
            " FROM observations o JOIN sources s ON s.id = o.source_id GROUP BY s.id ORDER BY s.name"
        )
        return [
            SourceSummary(name, int(n), float(first), float(last), tuple(sorted((kinds or "").split(","))))
            for name, n, first, last, kinds in rows
        ]

    def summary(self) -> SessionSummary:
        time_range = self.time_range()
        totals = self._query(
            "SELECT count(*), coalesce(sum(samples), 0), coalesce(sum(diagnostics), 0) FROM observations"
        )[0]
        try:
            size = sum(
                os.path.getsize(f"{self.path}{suffix}")
                for suffix in ("", "-wal")
                if os.path.exists(f"{self.path}{suffix}")
            )
        except OSError:
            size = 0
        return SessionSummary(
            meta=self.meta,
            observations=int(totals[0]),
            start=time_range[0] if time_range else None,
            end=time_range[1] if time_range else None,
            sources=tuple(self.sources()),
            by_kind=MappingProxyType(
                dict(self._query("SELECT kind, count(*) FROM observations GROUP BY kind ORDER BY kind"))
            ),
            by_outcome=MappingProxyType(
                dict(
                    self._query(
                        "SELECT outcome, count(*) FROM observations GROUP BY outcome ORDER BY outcome"
                    )
                )
            ),
            samples=int(totals[1]),
            diagnostics=int(totals[2]),
            file_bytes=size,
        )

    # -- observations --------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Observation]:
        return self.observations()

    def observations(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        sources: Iterable[str] | None = None,
        kinds: Iterable[ObservationKind | str] | None = None,
        batch: int = 256,
    ) -> Iterator[Observation]:
        """Observations with ``start <= time <= end`` from ``sources`` and ``kinds``, oldest first."""
        for chunk in self.batches(start=start, end=end, sources=sources, kinds=kinds, batch=batch):
            yield from chunk

    def batches(
        self,
        *,
        start: float | None = None,
        end: float | None = None,
        sources: Iterable[str] | None = None,
        kinds: Iterable[ObservationKind | str] | None = None,
        batch: int = 256,
    ) -> Iterator[list[Observation]]:
        """Like :meth:`observations`, in lists of up to ``batch`` (keyset-paged: no cursor stays open)."""
        where, params = self._where(start, end, sources, kinds)
        joiner = "AND" if where else "WHERE"
        last: tuple[float, int] | None = None
        while True:
            page_where = where
            page_params = list(params)
            if last is not None:
                page_where = f"{where} {joiner} (o.time > ? OR (o.time = ? AND o.id > ?))"
                page_params += [last[0], last[0], last[1]]
            rows = self._query(
                "SELECT o.id, o.time, o.kind, o.source_id, o.outcome, o.series, o.diagnostics, o.message,"
                f" o.transport, o.changes, o.families FROM observations o {page_where}"
                " ORDER BY o.time, o.id LIMIT ?",
                [*page_params, batch],
            )
            if not rows:
                return
            last = (rows[-1][1], rows[-1][0])
            decoded = self._decode_rows(rows)
            if decoded:
                yield decoded
            if len(rows) < batch:
                return

    def _where(
        self,
        start: float | None,
        end: float | None,
        sources: Iterable[str] | None,
        kinds: Iterable[ObservationKind | str] | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if start is not None:
            clauses.append("o.time >= ?")
            params.append(start)
        if end is not None:
            clauses.append("o.time <= ?")
            params.append(end)
        if sources is not None:
            names = list(sources)
            clauses.append(
                f"o.source_id IN (SELECT id FROM sources WHERE name IN ({','.join('?' * len(names))}))"
            )
            params += names
        if kinds is not None:
            values = [str(k) for k in kinds]
            clauses.append(f"o.kind IN ({','.join('?' * len(values))})")
            params += values
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _decode_rows(self, rows: Sequence[Any]) -> list[Observation]:
        with_diagnostics = [row[0] for row in rows if row[6]]
        diagnostics: dict[int, list[Diagnostic]] = {}
        for chunk_start in range(0, len(with_diagnostics), 500):
            ids = with_diagnostics[chunk_start : chunk_start + 500]
            for obs_id, code, severity, line, col, message, metric in self._query(
                "SELECT observation_id, code, severity, line, col, message, metric FROM diagnostics"
                f" WHERE observation_id IN ({','.join('?' * len(ids))}) ORDER BY observation_id, seq",
                ids,
            ):
                diagnostics.setdefault(obs_id, []).append(
                    Diagnostic(code, Severity(severity), line, col, message, metric)
                )
        out: list[Observation] = []
        for obs_id, when, kind, source_id, outcome, series, _, message, transport, changes, blob in rows:
            try:
                out.append(
                    Observation(
                        kind=ObservationKind(kind),
                        source=self._source(source_id),
                        time=float(when),
                        outcome=Outcome(outcome),
                        transport=_decode_transport(transport),
                        families=self._decode_families(blob),
                        diagnostics=tuple(diagnostics.get(obs_id, ())),
                        message=message,
                        changes=_decode_changes(changes),
                        series=int(series),
                    )
                )
            except (ValueError, KeyError, TypeError, IndexError, zlib.error, struct.error):
                self.skipped += 1
        return out

    def _source(self, source_id: int) -> str:
        name = self._sources.get(source_id)
        if name is None:
            rows = self._query("SELECT name FROM sources WHERE id = ?", (source_id,))
            if not rows:
                raise KeyError(source_id)
            name = self._sources[source_id] = rows[0][0]
        return name

    def _load(self, table: str, ids: set[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        wanted = sorted(ids)
        for chunk_start in range(0, len(wanted), 500):
            chunk = wanted[chunk_start : chunk_start + 500]
            found.update(
                self._query(f"SELECT id, key FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            )
        return found

    def _decode_families(self, blob: bytes | None) -> tuple[MetricFamily, ...]:
        if blob is None:
            return ()
        tag, body = blob[:1], blob[1:]
        if tag == b"Z":
            payload = zlib.decompress(body)
        elif tag == b"R":
            payload = bytes(body)
        else:
            raise ValueError(f"unknown codec {tag!r}")
        (head_len,) = _HEADER.unpack_from(payload, 0)
        header = json.loads(payload[4 : 4 + head_len])
        value_bytes = payload[4 + head_len :]
        if len(value_bytes) % 8:
            raise ValueError("truncated values")
        values = struct.unpack(f"<{len(value_bytes) // 8}d", value_bytes)
        series_ids: list[int] = []
        running = 0
        for delta in header["s"]:
            running += delta
            series_ids.append(running)
        lines: list[int] = []
        running = 0
        for delta in header["l"]:
            running += delta
            lines.append(running)
        family_rows = header["f"]
        if not (len(series_ids) == len(lines) == len(values) == sum(row[2] for row in family_rows)):
            raise ValueError("inconsistent sample counts")
        missing_families = {row[0] for row in family_rows} - self._families.keys()
        if missing_families:
            for id_, key in self._load("family_meta", missing_families).items():
                name, type_, help_, unit = json.loads(key)
                self._families[id_] = (name, MetricType(type_), help_, unit)
        missing_series = set(series_ids) - self._series.keys()
        if missing_series:
            for id_, key in self._load("series", missing_series).items():
                name, labels = json.loads(key)
                self._series[id_] = (name, tuple((str(k), str(v)) for k, v in labels))
        timestamps = {i: _unnum(ts) for i, ts in header.get("t", ())}
        exemplars = {
            i: Exemplar(tuple((str(k), str(v)) for k, v in labels), _unnum(value), _opt_unnum(ts))
            for i, labels, value, ts in header.get("e", ())
        }
        natives = {i: _decode_native(data) for i, data in header.get("h", ())}
        families: list[MetricFamily] = []
        index = 0
        for meta_id, family_line, count in family_rows:
            name, type_, help_, unit = self._families[meta_id]
            samples: list[Sample] = []
            for i in range(index, index + count):
                sample_name, labels = self._series[series_ids[i]]
                samples.append(
                    Sample(
                        sample_name,
                        labels,
                        values[i],
                        timestamps.get(i),
                        exemplars.get(i),
                        lines[i],
                        natives.get(i),
                    )
                )
            index += count
            families.append(MetricFamily(name, type_, help_, unit, tuple(samples), family_line))
        return tuple(families)


# -- replay ------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class ReplayStats:
    """What a replay did."""

    emitted: int = 0
    sink_errors: int = 0
    last_sink_error: str | None = None
    skipped: int = 0
    """Observations in the file that could not be decoded."""
    first: float | None = None
    last: float | None = None
    """Recorded times of the first and last observation emitted."""
    slept: float = 0.0
    """Seconds waited in total (on the injected sleep), for pacing."""


async def replay(
    reader: SessionReader,
    sink: ObservationSink,
    *,
    speed: float | None = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    start: float | None = None,
    end: float | None = None,
    sources: Iterable[str] | None = None,
    kinds: Iterable[ObservationKind | str] | None = None,
    max_gap: float | None = None,
    retime: Callable[[], float] | None = None,
    on_emit: Callable[[Observation], None] | None = None,
) -> ReplayStats:
    """Feed a session's observations to ``sink`` in time order, as a source again.

    ``speed`` 1.0 keeps the recorded pacing, 10.0 is ten times faster, and
    ``None`` emits as fast as the sink takes them (yielding to the loop between
    batches). ``max_gap`` caps any recorded silence (in recorded seconds), so a
    session with an idle night replays without the night. Each observation
    keeps its kind and gets ``transport.extra[REPLAY_MARKER] = file name``;
    its time stays the recorded time unless ``retime`` (a wall clock such as
    ``time.time``) is given, which shifts every time so the first observation
    happens now. Reading and decoding run on a worker thread; ``clock`` and
    ``sleep`` pace the emission and are injectable for tests.
    """
    if speed is not None and (not math.isfinite(speed) or speed <= 0):
        raise ValueError("speed must be a positive number, or None for as fast as possible")
    stats = ReplayStats()
    marker = reader.name
    pages = reader.batches(start=start, end=end, sources=sources, kinds=kinds)
    skipped_before = reader.skipped
    origin: float | None = None  # clock() at the first observation
    recorded_previous: float | None = None
    virtual = 0.0  # recorded seconds since the first observation, gaps capped
    shift = 0.0

    def next_page() -> list[Observation] | None:
        return next(pages, None)

    try:
        while True:
            page = await asyncio.to_thread(next_page)
            if page is None:
                break
            for observation in page:
                if recorded_previous is None:
                    origin = clock()
                    if retime is not None:
                        shift = retime() - observation.time
                else:
                    gap = max(0.0, observation.time - recorded_previous)
                    virtual += gap if max_gap is None else min(gap, max_gap)
                    if retime is not None and max_gap is not None and gap > max_gap:
                        shift -= gap - max_gap
                recorded_previous = observation.time
                if speed is not None and origin is not None:
                    delay = origin + virtual / speed - clock()
                    if delay > 0:
                        stats.slept += delay
                        await sleep(delay)
                replayed = _as_replayed(observation, marker, shift)
                try:
                    sink(replayed)
                except Exception as exc:
                    stats.sink_errors += 1
                    stats.last_sink_error = f"{type(exc).__name__}: {exc}"
                if on_emit is not None:
                    on_emit(replayed)
                stats.emitted += 1
                if stats.first is None:
                    stats.first = observation.time
                stats.last = observation.time
            if speed is None:
                await sleep(0)
    finally:
        stats.skipped = reader.skipped - skipped_before
    return stats


def _as_replayed(observation: Observation, marker: str, shift: float) -> Observation:
    extra = dict(observation.transport.extra)
    extra[REPLAY_MARKER] = marker
    transport = dataclasses.replace(observation.transport, extra=MappingProxyType(extra))
    if shift:
        return dataclasses.replace(observation, transport=transport, time=observation.time + shift)
    return dataclasses.replace(observation, transport=transport)
