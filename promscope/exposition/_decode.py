"""Bytes to text for the two text formats, and the lexical limits both parsers enforce (PS-1xx).

:func:`decode` runs once over the whole body before either text parser:

* a strict UTF-8 decode of the whole body is the fast path; when it fails,
  each line holding an invalid byte gets one PS-101 (line and column of the
  first bad byte) and is decoded with U+FFFD replacements, so the rest of the
  body is still parsed;
* a byte order mark is reported (PS-108) and dropped;
* CRLF line endings are reported once (PS-103) and turned into LF, so every
  other problem in the body is still found;
* NUL characters are reported per line (PS-102) and left in place, where the
  parser judges them like any other character.

The per-line limits (PS-104 … PS-107, PS-109) are checked by the parsers,
which own the line loop; their codes live here so both formats share them.
"""

from __future__ import annotations

from promscope.codes import Code
from promscope.exposition._diag import DiagnosticSink
from promscope.model import Severity

__all__ = [
    "BOM",
    "CODES",
    "CRLF",
    "INVALID_UTF8",
    "LABEL_NAME_TOO_LONG",
    "LABEL_VALUE_TOO_LONG",
    "LINE_TOO_LONG",
    "NUL",
    "TOO_MANY_LABELS",
    "TOO_MANY_SAMPLES",
    "decode",
]

INVALID_UTF8 = "PS-101"
NUL = "PS-102"
CRLF = "PS-103"
LINE_TOO_LONG = "PS-104"
TOO_MANY_LABELS = "PS-105"
LABEL_NAME_TOO_LONG = "PS-106"
LABEL_VALUE_TOO_LONG = "PS-107"
BOM = "PS-108"
TOO_MANY_SAMPLES = "PS-109"
COMPRESSED = "PS-110"

CODES: dict[str, Code] = {
    INVALID_UTF8: Code(Severity.ERROR, "invalid UTF-8; the line is decoded with U+FFFD replacements"),
    NUL: Code(Severity.WARNING, "NUL character; Prometheus ends the exposition at a NUL outside a string"),
    CRLF: Code(Severity.ERROR, "CRLF line endings; Prometheus reads the \\r as part of the last token"),
    LINE_TOO_LONG: Code(Severity.ERROR, "line longer than the configured limit; the line is skipped"),
    TOO_MANY_LABELS: Code(Severity.ERROR, "more labels on one sample than the configured limit; skipped"),
    LABEL_NAME_TOO_LONG: Code(Severity.ERROR, "label name longer than the configured limit; skipped"),
    LABEL_VALUE_TOO_LONG: Code(Severity.ERROR, "label value longer than the configured limit; skipped"),
    BOM: Code(Severity.ERROR, "byte order mark at the start of the body"),
    TOO_MANY_SAMPLES: Code(Severity.ERROR, "more samples than the configured limit; the rest is skipped"),
    COMPRESSED: Code(Severity.ERROR, "the input is compressed (gzip, zstd, snappy); decompress it first"),
}

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy (framed)"),
)


def compression_of(data: bytes | str) -> str | None:
    """The compression ``data`` starts with (by its magic bytes), or None for plain input.

    A scrape body arrives decompressed (Content-Encoding); a file or a pipe may not be,
    and parsing compressed bytes as text would report every line as garbage.
    """
    if isinstance(data, str):
        return None
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    return None


def decode(data: bytes | str, sink: DiagnosticSink) -> str:
    """Decode ``data`` to text, reporting what is wrong with its encoding and line endings."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = _decode_with_errors(data, sink)
    if text.startswith("\ufeff"):
        sink.error(
            BOM,
            1,
            1,
            "byte order mark (U+FEFF) at the start of the body; neither Prometheus nor OpenMetrics "
            "allows one (Prometheus reads it as part of the first token)",
        )
        text = text[1:]
    if "\r\n" in text:
        index = text.index("\r\n")
        first = text.count("\n", 0, index) + 1
        count = text.count("\r\n")
        column = index - (text.rfind("\n", 0, index) + 1) + 1
        sink.error(
            CRLF,
            first,
            column,
            f"{count} line(s) end with CRLF, first here: Prometheus keeps the \\r as part of the last "
            'token, so a sample value reads as e.g. "1\\r", which is not a number, and the scrape fails; '
            "promscope reads them as LF to find the other problems",
        )
        text = text.replace("\r\n", "\n")
    if "\x00" in text:
        _report_nul(text, sink)
    return text


def _decode_with_errors(data: bytes, sink: DiagnosticSink) -> str:
    """Decode in chunks of whole lines; only a chunk that fails is decoded line by line.

    Linear in the size of ``data``: a ``UnicodeDecodeError`` carries a copy of
    what was being decoded, so the failing unit is kept small (a chunk, then a line).
    """
    parts: list[str] = []
    line = 1
    position = 0
    size = len(data)
    while position < size:
        end = data.find(b"\n", min(position + _CHUNK, size))
        end = size if end < 0 else end + 1
        chunk = data[position:end]
        try:
            parts.append(chunk.decode("utf-8"))
            line += chunk.count(b"\n")
        except UnicodeDecodeError:
            for raw in chunk.split(b"\n"):
                try:
                    parts.append(raw.decode("utf-8"))
                except UnicodeDecodeError as error:
                    column = len(raw[: error.start].decode("utf-8", "replace")) + 1
                    sink.error(
                        INVALID_UTF8,
                        line,
                        column,
                        f"invalid UTF-8 byte 0x{raw[error.start]:02x}; Prometheus rejects the exposition "
                        "(names and values must be UTF-8); promscope reads it as U+FFFD",
                    )
                    parts.append(raw.decode("utf-8", "replace"))
                parts.append("\n")
                line += 1
            parts.pop()  # the split gave one piece more than there were newlines
            line -= 1
        position = end
    return "".join(parts)


_CHUNK = 1 << 16
"""Bytes decoded at once after the whole-body fast path failed (extended to a line end)."""


def _report_nul(text: str, sink: DiagnosticSink) -> None:
    """One PS-102 per line holding a NUL, at the first NUL of the line."""
    line = 1
    counted = 0
    position = text.find("\x00")
    while position >= 0:
        line += text.count("\n", counted, position)
        line_start = text.rfind("\n", 0, position) + 1
        sink.warning(
            NUL,
            line,
            position - line_start + 1,
            "NUL character: Prometheus allows it only inside a label value, HELP text or comment, "
            "and stops reading the exposition at a NUL anywhere else",
        )
        line_end = text.find("\n", position)
        if line_end < 0:
            return
        counted = position
        position = text.find("\x00", line_end)
