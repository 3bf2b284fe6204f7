"""Bytes <-> model, one module per wire format.

The one entry point everything goes through (the CLI, the scraper, the
receivers) is :func:`parse`::

    result = parse(body, content_type=response.headers.get("content-type"))
    for diagnostic in result.diagnostics: ...

Bad input is never an exception: every problem found in one pass is a
:class:`~promscope.model.Diagnostic` on the result, and the parser
resynchronises at the next line after an error.
"""

from __future__ import annotations

from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.model import Diagnostic, Format, ParseResult

__all__ = ["Format", "ParseLimits", "ParseResult", "parse", "resolve_format"]


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
) -> ParseResult:
    """Parse an exposition into families and diagnostics.

    ``format`` is ``"auto"`` (Content-Type, else sniffed from the content),
    ``"text"``, ``"openmetrics"`` or ``"protobuf"``. ``semantics=False`` skips
    the format-independent value rules (histogram buckets, duplicate series…),
    leaving only what the parser itself finds.
    """
    limits = limits or ParseLimits()
    fmt = resolve_format(data, format, content_type)
    sink = DiagnosticSink(limits.max_diagnostics)
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    extra: dict[str, str] = {}
    if fmt is Format.PROTOBUF:
        from promscope.exposition.protobuf import parse_protobuf

        raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
        families, lines = parse_protobuf(raw, sink, limits)
    else:
        from promscope.exposition._decode import decode

        text = decode(data, sink)
        if fmt is Format.OPENMETRICS:
            from promscope.exposition.openmetrics import parse_openmetrics

            families, lines = parse_openmetrics(text, sink, limits)
        else:
            from promscope.exposition.text import parse_text

            families, lines, version = parse_text(text, sink, limits)
            extra["version"] = version
    if semantics:
        from promscope.exposition.semantics import check_semantics

        check_semantics(families, fmt, sink)
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
