"""What the live verbs share: a line queue written off the loop, stop signals, and diagnostic lines.

``promscope tail`` and the live ``promscope scrape`` print one line per
observation while receivers or scrape loops run on the same event loop. A
slow terminal or pipe must never stall them, so lines are queued
(:class:`LineWriter`) and written in batches on a worker thread; a line that
does not fit in the queue is dropped and counted. Ctrl-C and SIGTERM set an
:class:`asyncio.Event` (:func:`install_signals`) so the verb can stop its
work and print its summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import IO, TYPE_CHECKING

from cli.output import print_error

if TYPE_CHECKING:
    from cli.output import Styler
    from promscope.model import Diagnostic
    from promscope.store.session import SessionRecorder

__all__ = [
    "QUEUE_LINES",
    "LineWriter",
    "diagnostic_lines",
    "install_signals",
    "recording",
    "remove_signals",
    "warnings_text",
    "write_lines",
]

QUEUE_LINES = 10_000
"""Lines waiting to be written; a reader slower than what arrives loses lines (counted), never the loop."""

_BATCH = 1000
_END = "\x00end-of-lines"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def write_lines(stream: IO[str], lines: Sequence[str]) -> None:
    """Write ``lines`` (one newline each) and flush; a reader that went away is not an error."""
    try:
        stream.write("\n".join(lines) + "\n")
        stream.flush()
    except BrokenPipeError:
        pass


class LineWriter:
    """Mixin for a printer dataclass that declares ``lines_dropped: int`` and ``_queue: asyncio.Queue[str]``.

    :meth:`emit` queues a line (or drops and counts it when :data:`QUEUE_LINES` wait already),
    :meth:`writer` writes queued lines in batches off the loop until :meth:`close`, and
    :meth:`finish` closes and waits a bounded time for the writer.
    """

    lines_dropped: int
    _queue: asyncio.Queue[str]

    def emit(self, line: str) -> None:
        if self._queue.qsize() >= QUEUE_LINES:
            self.lines_dropped += 1
            return
        self._queue.put_nowait(line)

    async def writer(self, stream: IO[str]) -> None:
        """Write queued lines in batches, off the loop, until :meth:`close` is called."""
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < _BATCH:
                batch.append(queue.get_nowait())
            done = _END in batch
            lines = [line for line in batch if line is not _END]
            if lines:
                await asyncio.to_thread(write_lines, stream, lines)
            if done:
                return

    def close(self) -> None:
        """Tell the writer to finish what is queued and return."""
        self._queue.put_nowait(_END)

    async def finish(self, writer: asyncio.Task[None]) -> None:
        """:meth:`close`, then wait for ``writer``; a stuck terminal or pipe: give up on the rest."""
        self.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(writer, 10.0)


def install_signals(stop: asyncio.Event) -> None:
    """Let Ctrl-C and SIGTERM set ``stop`` on the running loop."""
    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        # Not the main thread, or no signals on this platform: --duration/--count still end the run.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)


def remove_signals() -> None:
    """Undo :func:`install_signals`."""
    loop = asyncio.get_running_loop()
    for signum in _SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signum)


@contextlib.asynccontextmanager
async def recording(path: str | None, *, verb: str) -> AsyncIterator[SessionRecorder | None]:
    """Open a recorder for ``--record FILE`` (None without one), and say on stderr what it wrote.

    Usage in a live verb::

        async with recording(record, verb="tail") as recorder:
            sink = tee(printer, recorder) if recorder is not None else printer

    A file that cannot be created raises :class:`~promscope.store.session.SessionFileError`
    (an InputError: one error line, exit 3) before anything is received.
    """
    if path is None:
        yield None
        return
    from promscope.store.session import open_recorder

    async with open_recorder(path, meta={"verb": verb}) as recorder:
        yield recorder
    stats = recorder.stats
    if stats.dropped_total or stats.errors:
        print_error(stats.describe(), stream=sys.stderr, level="warning")
    else:
        sys.stderr.write(f"promscope: {stats.describe()}\n")


def diagnostic_lines(diagnostics: Iterable[Diagnostic], style: Styler) -> list[str]:
    """One indented line per diagnostic (``    error PS-001 line 3:7: message``), for ``--verbose``."""
    lines = []
    for diagnostic in diagnostics:
        where = f"line {diagnostic.line}:{max(diagnostic.column, 1)}: " if diagnostic.line else ""
        lines.append(
            f"    {style(diagnostic.severity.value, 'bold')} {diagnostic.code} {where}{diagnostic.message}"
        )
    return lines


def warnings_text(diagnostics: Iterable[Diagnostic], style: Styler) -> str:
    """``2 warnings`` in yellow, or ``""`` when there are none."""
    from promscope.model import Severity

    warnings = sum(1 for d in diagnostics if d.severity is Severity.WARNING)
    if not warnings:
        return ""
    return style(f"{warnings} warning{'s' if warnings != 1 else ''}", "yellow")
