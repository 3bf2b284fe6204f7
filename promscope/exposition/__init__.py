"""Bytes <-> model, one module per wire format.

The one entry point everything goes through (the CLI, the scraper, the
receivers) is :func:`parse`::

    result = parse(body, content_type=response.headers.get("content-type"))
    for diagnostic in result.diagnostics: ...

Bad input is never an exception: every problem found in one pass is a
:class:`~promscope.model.Diagnostic` on the result, and the parser
resynchronises at the next line after an error.

A caller that reads the same source again and again (the live scrape loop)
passes one :class:`ParseCache` per source: a text body shaped like the
previous one is then read from the cache, with the same result a full parse
gives (see :class:`~promscope.exposition.text.TextTemplate`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promscope.exposition._decode import COMPRESSED, compression_of, decode
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.model import Diagnostic, Format, ParseResult

if TYPE_CHECKING:
    from promscope.exposition.semantics import SemanticsMemo
    from promscope.exposition.text import TextTemplate

__all__ = ["Format", "ParseCache", "ParseLimits", "ParseResult", "parse", "resolve_format"]


class ParseCache:
    """What :func:`parse` remembers of one source's previous body, to read the next one faster.

    One per source (a scrape target), used by one caller at a time. It holds the template of
    the last text body parsed with it (at most one, replaced whenever the shape of the body
    changes) and, with it, what the semantic rules found on that shape. Bodies over
    ``max_bytes`` are parsed without it. ``hits``, ``misses`` and ``too_large`` count bodies
    read from the template, parsed in full (and made the template), and too large to keep.
    Other formats are parsed in full and leave the cache empty.
    """

    __slots__ = ("hits", "max_bytes", "misses", "template", "too_large")

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self.template: TextTemplate | None = None
        self.hits = 0
        self.misses = 0
        self.too_large = 0

    def clear(self) -> None:
        self.template = None


def resolve_format(
    data: bytes | str,
    format: Format | str = "auto",
    content_type: str | None = None,
) -> Format:
    """Which parser to use: an explicit ``format`` wins, then the Content-Type, then sniffing."""
    if format != "auto":
        return Format(format)
    from promscope.exposition import negotiate

    if content_type:
        decided = negotiate.format_from_content_type(content_type)
        if decided.format is not None:
            return decided.format
    return negotiate.sniff(data)


def parse(
    data: bytes | str,
    format: Format | str = "auto",
    *,
    content_type: str | None = None,
    limits: ParseLimits | None = None,
    semantics: bool = True,
    cache: ParseCache | None = None,
) -> ParseResult:
    """Parse an exposition into families and diagnostics.

    ``format`` is ``"auto"`` (Content-Type, else sniffed from the content),
    ``"text"``, ``"openmetrics"`` or ``"protobuf"``. ``semantics=False`` skips
    the format-independent value rules (histogram buckets, duplicate series…),
    leaving only what the parser itself finds. ``cache`` (one per source) makes a
    text body shaped like the previous one cheap to read; the result is the same.
    """
    limits = limits or ParseLimits()
    fmt = resolve_format(data, format, content_type)
    sink = DiagnosticSink(limits.max_diagnostics)
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    extra: dict[str, str] = {}
    memo: SemanticsMemo | None = None
    compressed = compression_of(data)
    if compressed is not None:
        sink.error(
            COMPRESSED,
            1,
            1,
            f"the input is {compressed}-compressed (its first bytes say so), not {fmt.value}: "
            "decompress it first; a scrape body is decompressed by its Content-Encoding",
        )
        if cache is not None:
            cache.clear()
        return ParseResult((), tuple(sink.diagnostics), fmt, 0, size, sink.suppressed, extra)
    if fmt is Format.PROTOBUF:
        from promscope.exposition.protobuf import parse_protobuf

        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        families, lines = parse_protobuf(raw, sink, limits)
    else:
        text = decode(data, sink)
        if fmt is Format.OPENMETRICS:
            from promscope.exposition.openmetrics import parse_openmetrics

            families, lines = parse_openmetrics(text, sink, limits)
        else:
            from promscope.exposition.text import parse_text, parse_text_cached

            if cache is None:
                families, lines, version = parse_text(text, sink, limits)
                template = None
            else:
                families, lines, version, template = parse_text_cached(text, sink, limits, cache)
            extra["version"] = version
            if template is not None and semantics:
                from promscope.exposition.semantics import SemanticsMemo

                if template.semantics is None:
                    template.semantics = SemanticsMemo()
                memo = template.semantics
    if cache is not None and fmt is not Format.TEXT:
        cache.clear()
    if semantics:
        from promscope.exposition.semantics import check_semantics

        check_semantics(families, fmt, sink, memo)
    diagnostics = tuple(sorted(sink.diagnostics, key=Diagnostic.sort_key))
    return ParseResult(
        families=tuple(families),
        diagnostics=diagnostics,
        format=fmt,
        lines=lines,
        size=size,
        suppressed=sink.suppressed,
        extra=extra,
    )
