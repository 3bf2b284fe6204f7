"""The Prometheus text format: 0.0.4, and 1.0.0 with quoted UTF-8 names (PS-2xx).

What is accepted follows Prometheus's own scrape parser (``promparse.go`` and
``promlex.l`` in prometheus/prometheus); where ``expfmt.TextParser`` (what
promtool and the Pushgateway use) is stricter, the stricter rule wins and the
message says so.

Parsing is line by line. Each line first meets :data:`_FAST`, one precompiled
pattern for the common well-formed sample line (``name{a="b",…} value [ts]``
with single spaces and no escapes), matched in place in the whole text so the
body is never split into a list of lines; only a line that fails it goes
through the careful path, which tokenises it with positions and produces the
precise diagnostic (``column``, ``expected '=' after label name``…). A line
with a problem contributes no sample; the next line starts afresh, so every
problem in the body is found in one pass.

Samples are grouped into families as ``expfmt.TextParser`` does: a sample
whose name is a known family goes there; else ``foo_sum``/``foo_count`` go to
summary or histogram ``foo``, ``foo_bucket`` to histogram ``foo``; else the
sample starts an untyped family of its own name.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING

from promscope.codes import Code
from promscope.exposition import _decode
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.exposition._lex import (
    LABEL_NAME,
    LEGACY_METRIC_NAME,
    QUOTED,
    Interner,
    LabelBodies,
    SegmentCache,
    collector_paused,
    count_lines,
    new_family,
    new_sample,
    new_samples,
    parse_go_float,
    unescape,
)
from promscope.model import Diagnostic, Labels, MetricFamily, MetricType, Sample, Severity

if TYPE_CHECKING:
    from promscope.exposition import ParseCache
    from promscope.exposition.semantics import SemanticsMemo

__all__ = ["CODES", "TextTemplate", "parse_text", "parse_text_cached"]

SYNTAX = "PS-201"
INVALID_METRIC_NAME = "PS-202"
INVALID_LABEL_NAME = "PS-203"
INVALID_VALUE = "PS-204"
INVALID_TIMESTAMP = "PS-205"
DUPLICATE_LABEL = "PS-206"
DUPLICATE_HELP = "PS-207"
DUPLICATE_TYPE = "PS-208"
TYPE_AFTER_SAMPLES = "PS-209"
INVALID_TYPE = "PS-210"
INTERLEAVED = "PS-211"
METADATA_FOR_MEMBER = "PS-212"
UNKNOWN_ESCAPE = "PS-213"
NOT_A_MEMBER = "PS-214"

CODES: dict[str, Code] = {
    SYNTAX: Code(Severity.ERROR, "syntax error; the line is skipped"),
    INVALID_METRIC_NAME: Code(Severity.ERROR, "invalid metric name"),
    INVALID_LABEL_NAME: Code(Severity.ERROR, "invalid label name"),
    INVALID_VALUE: Code(Severity.ERROR, "sample value is not a number Prometheus accepts"),
    INVALID_TIMESTAMP: Code(Severity.ERROR, "timestamp is not an int64 of milliseconds"),
    DUPLICATE_LABEL: Code(Severity.ERROR, "label name repeated in one sample"),
    DUPLICATE_HELP: Code(Severity.ERROR, "second HELP line for a metric family"),
    DUPLICATE_TYPE: Code(Severity.ERROR, "second TYPE line for a metric family"),
    TYPE_AFTER_SAMPLES: Code(Severity.ERROR, "TYPE line after the family's samples"),
    INVALID_TYPE: Code(Severity.ERROR, "unknown metric type in a TYPE line"),
    INTERLEAVED: Code(Severity.WARNING, "a family's samples are split by another family; merged"),
    METADATA_FOR_MEMBER: Code(Severity.ERROR, "HELP/TYPE names a sample of the current family"),
    UNKNOWN_ESCAPE: Code(Severity.WARNING, "unknown escape sequence, kept literally"),
    NOT_A_MEMBER: Code(Severity.WARNING, "sample name that a histogram family cannot have"),
}

_TEXT_TYPES = {
    "counter": MetricType.COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
    "summary": MetricType.SUMMARY,
    "untyped": MetricType.UNKNOWN,
}
"""The TYPE words promparse accepts (exactly these, lower case)."""

_FAST = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?:([^\n]*)\",?)?\})?"
    r" ([-+0-9.eE]+|[-+]?(?i:inf(?:inity)?)|(?i:nan))"
    r"(?: ([0-9]{1,18}))?"
    r"(?:\n|\Z)"
)
"""The common sample line with its newline, matched where the line starts in the whole text:
single spaces, a timestamp that cannot overflow. Group 2 is the label body without its closing
quote (nor the trailing comma Prometheus allows), ``None`` for ``{}`` or no braces; it is only
checked loosely here (it may hold braces), :class:`LabelBodies` validates it piece by piece."""

_SIMPLE_META = re.compile(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)", re.DOTALL)
"""A HELP or TYPE line in its usual shape: single spaces, a legacy name, then the text."""
_WS = re.compile(r"[ \t]*")
_TOKEN = re.compile(r"[^ \t]*")
_META = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]")
_INT64_MAX = (1 << 63) - 1


class _Family:
    """A family while it is being read; frozen into a MetricFamily at the end."""

    __slots__ = ("has_type", "help", "line", "name", "samples", "type")

    def __init__(self, name: str, line: int) -> None:
        self.name = name
        self.type = MetricType.UNKNOWN
        self.has_type = False
        self.help: str | None = None
        self.samples: list[Sample] = []
        self.line = line

    def freeze(self) -> MetricFamily:
        return MetricFamily(self.name, self.type, self.help, None, tuple(self.samples), self.line)


class _LineError(Exception):
    """A problem on the careful path; carries what the diagnostic needs."""

    def __init__(self, code: str, column: int, message: str) -> None:
        super().__init__(code, column, message)
        self.code = code
        self.column = column
        self.message = message


class _TextParser:
    def __init__(self, sink: DiagnosticSink, limits: ParseLimits) -> None:
        self.sink = sink
        self.limits = limits
        self.families: dict[str, _Family] = {}
        self.order: list[_Family] = []
        self.by_sample: dict[str, tuple[str, _Family]] = {}
        """Sample name -> (the shared copy of the name, its family)."""
        self.current: _Family | None = None
        self.interner = Interner()
        self.segments = SegmentCache(self.interner)
        self.bodies = LabelBodies(self.segments)
        self.quoted = False
        self.samples = 0
        self.stopped = False
        self.rejected: list[int] = []
        """Lines that left the fast path (metadata, comments, careful samples): kept whole by a template."""

    # --- families ---------------------------------------------------------------------------

    def resolve(self, name: str, lineno: int) -> _Family:
        """The family a sample called ``name`` belongs to (expfmt's ``setOrCreateCurrentMF``)."""
        family = self.families.get(name)
        if family is None:
            family = self._member_of(name)
        if family is None:
            family = _Family(name, lineno)
            self.families[name] = family
            self.order.append(family)
        self.by_sample[name] = (name, family)
        return family

    def _member_of(self, name: str) -> _Family | None:
        for suffix in ("_count", "_sum"):
            if name.endswith(suffix) and len(name) > len(suffix):
                base = self.families.get(name[: -len(suffix)])
                if base is not None and base.type in (MetricType.SUMMARY, MetricType.HISTOGRAM):
                    return base
        if name.endswith("_bucket") and len(name) > 7:
            base = self.families.get(name[:-7])
            if base is not None and base.type is MetricType.HISTOGRAM:
                return base
        return None

    def switch(self, family: _Family, lineno: int) -> None:
        """``family`` gets a sample while another family is current."""
        if family.samples and self.current is not None:
            # Neither Prometheus parser rejects this: promparse reads samples one by one and
            # never groups them, and expfmt.TextParser looks the family up by name and appends
            # (setOrCreateCurrentMF). The severity follows them: a warning, because the text
            # format spec asks for all lines of a family to be together and consumers that
            # stream families (client_python) split the family in two.
            self.sink.warning(
                INTERLEAVED,
                lineno,
                1,
                f"samples of {family.name} continue here after {self.current.name} started "
                f"(first at line {family.line}); the text format wants a family's lines together. "
                "Prometheus accepts it; promscope merges them into one family",
                family.name,
            )
        self.current = family

    def add(
        self, name: str, labels: tuple[tuple[str, str], ...], value: float, ts: float | None, n: int
    ) -> None:
        if self.limits.max_samples and self.samples >= self.limits.max_samples:
            self.sink.error(
                _decode.TOO_MANY_SAMPLES,
                n,
                1,
                f"more than {self.limits.max_samples} samples; the rest of the exposition is skipped",
            )
            self.stopped = True
            return
        entry = self.by_sample.get(name)
        if entry is None:
            family = self.resolve(name, n)
        else:
            name, family = entry
        if family is not self.current:
            self.switch(family, n)
        if family.type is MetricType.HISTOGRAM and name == family.name:
            self.sink.warning(
                NOT_A_MEMBER,
                n,
                1,
                f"histogram {name} has a sample named like the family itself; a histogram's samples "
                f"are {name}_bucket, {name}_sum and {name}_count (expfmt drops this value)",
                name,
            )
        family.samples.append(new_sample(name, labels, value, ts, n))
        self.samples += 1

    # --- lines ------------------------------------------------------------------------------

    def parse(self, text: str) -> tuple[list[MetricFamily], int]:
        # The cyclic GC would walk every sample built so far, again and again, while nothing
        # built here can form a cycle; pausing it saves a tenth of the time on big bodies.
        with collector_paused:
            lines = self._loop(text)
        return [family.freeze() for family in self.order], lines

    def _loop(self, text: str) -> int:
        """The hot loop: the fast path inline, everything else in methods. Returns the line count.

        ``position`` is where the current line starts; a line's end is its newline or the
        end of the text (a final newline does not start another line).
        """
        fast = _FAST.match
        read_body = self.bodies.read
        by_sample_get = self.by_sample.get
        reject = self.reject
        limits = self.limits
        roomy = _roomy(limits)
        direct = limits.max_samples <= 0
        infinities = (_INF, _NINF)
        current: _Family | None = None
        append: Callable[[Sample], None] | None = None
        size = len(text)
        position = 0
        lineno = 0
        while position < size:
            lineno += 1
            start = position
            match = fast(text, start)
            if match is None:
                position = reject(text, start, lineno)
                current, append = self.current_append()
                continue
            position = match.end()
            if position - start > roomy and position - start - (text[position - 1] == "\n") > roomy:
                position = reject(text, start, lineno)
                current, append = self.current_append()
                continue
            name, body, raw_value, raw_ts = match.groups()
            try:
                value = float(raw_value)
            except ValueError:
                position = reject(text, start, lineno)
                current, append = self.current_append()
                continue
            labels: Labels | None
            if body is None:
                labels = ()
            else:
                labels = read_body(body)
                if labels is None:
                    position = reject(text, start, lineno)
                    current, append = self.current_append()
                    continue
            if value in infinities and parse_go_float(raw_value)[0] is None:
                position = reject(text, start, lineno)
                current, append = self.current_append()
                continue
            timestamp = None if raw_ts is None else int(raw_ts) / 1000
            entry = by_sample_get(name)
            if entry is not None and entry[1] is current and direct:
                append(new_sample(entry[0], labels, value, timestamp, lineno))  # type: ignore[misc]
                continue
            self.add(name, labels, value, timestamp, lineno)
            if self.stopped:
                return count_lines(text)
            current, append = self.current_append()
        return lineno

    def reject(self, text: str, start: int, lineno: int) -> int:
        """The line at ``start`` is not for the fast path; returns where the next line starts."""
        self.rejected.append(lineno)
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        line = text[start:end]
        max_line = self.limits.max_line_length
        if len(line) > max_line:
            self.sink.error(
                _decode.LINE_TOO_LONG,
                lineno,
                0,
                f"line is {len(line)} characters long, over the limit of {max_line}; skipped",
            )
        else:
            meta = _SIMPLE_META.fullmatch(line)
            if meta is None:
                self.careful(line, lineno)
            else:
                # The common `# HELP name text` / `# TYPE name word`: what comment() would find,
                # without re-scanning the line token by token.
                keyword, name, text = meta.groups()
                column = meta.start(3) + 1
                try:
                    if keyword == "HELP":
                        self.help(name, text, line, column, lineno)
                    else:
                        self.type(name, text, column, lineno)
                except _LineError as problem:
                    self.sink.error(problem.code, lineno, problem.column, problem.message)
        return end + 1

    def current_append(self) -> tuple[_Family | None, Callable[[Sample], None] | None]:
        current = self.current
        return current, (current.samples.append if current is not None else None)

    def careful(self, line: str, lineno: int) -> None:
        try:
            self._careful(line, lineno)
        except _LineError as problem:
            self.sink.error(problem.code, lineno, problem.column, problem.message)

    def _careful(self, line: str, lineno: int) -> None:
        position = _WS.match(line).end()  # type: ignore[union-attr]
        if position == len(line):
            return  # blank line
        if line[position] == "#":
            self.comment(line, position, lineno)
            return
        self.sample(line, position, lineno)

    # --- HELP / TYPE --------------------------------------------------------------------------

    def comment(self, line: str, position: int, lineno: int) -> None:
        meta = _META.match(line, position)
        if meta is None:
            return  # an ordinary comment
        keyword = meta.group(1)
        position = _WS.match(line, meta.end()).end()  # type: ignore[union-attr]
        name, position = self.metric_name(line, position, keyword)
        rest = line[position:]
        if rest and rest[0] not in " \t":
            raise _LineError(
                INVALID_METRIC_NAME,
                position + 1,
                f"invalid character {rest[0]!r} in the metric name of a {keyword} line",
            )
        text = rest[1:]
        if keyword == "HELP":
            self.help(name, text, line, position + 2, lineno)
        else:
            self.type(name, text, position + 2, lineno)

    def metadata_family(self, name: str, keyword: str, lineno: int) -> _Family | None:
        family = self.families.get(name)
        if family is None:
            current = self.current
            if current is not None and self._member_of(name) is current:
                self.sink.error(
                    METADATA_FOR_MEMBER,
                    lineno,
                    1,
                    f"{keyword} for {name}, which is a sample name of {current.type} {current.name}, "
                    f"not a family: write # {keyword} {current.name} (expfmt applies it to "
                    f"{current.name})",
                    name,
                )
                return None
            family = _Family(name, lineno)
            self.families[name] = family
            self.order.append(family)
            self.by_sample.clear()
        self.current = family
        return family

    def help(self, name: str, raw: str, line: str, column: int, lineno: int) -> None:
        text = raw
        if "\\" in raw:
            text, unknown = unescape(raw, "\\n")
            for offset, escape in unknown:
                self.sink.warning(
                    UNKNOWN_ESCAPE,
                    lineno,
                    column + offset,
                    f"HELP text escape {escape!r} is not \\\\ or \\n: Prometheus keeps it literally, "
                    "expfmt.TextParser (promtool) rejects it; write \\\\ for a backslash",
                    name,
                )
        family = self.metadata_family(name, "HELP", lineno)
        if family is None:
            return
        if family.help is not None:
            self.sink.error(
                DUPLICATE_HELP, lineno, 1, f"second HELP line for {name}; the first is kept", name
            )
            return
        family.help = text

    def type(self, name: str, word: str, column: int, lineno: int) -> None:
        metric_type = _TEXT_TYPES.get(word)
        if metric_type is None:
            hint = ""
            stripped = word.strip(" \t")
            if stripped.lower() in _TEXT_TYPES:
                hint = f" (Prometheus accepts exactly {stripped.lower()!r}: lower case, nothing after it)"
            elif stripped.lower() in ("unknown", "gaugehistogram", "info", "stateset"):
                hint = f" ({stripped.lower()} exists only in OpenMetrics; the text format has untyped)"
            self.sink.error(
                INVALID_TYPE,
                lineno,
                column,
                f"unknown metric type {word!r} for {name}; expected counter, gauge, histogram, summary "
                f"or untyped{hint}",
                name,
            )
            return
        family = self.metadata_family(name, "TYPE", lineno)
        if family is None:
            return
        if family.has_type:
            self.sink.error(
                DUPLICATE_TYPE, lineno, 1, f"second TYPE line for {name}; the first is kept", name
            )
            return
        if family.samples:
            self.sink.error(
                TYPE_AFTER_SAMPLES,
                lineno,
                1,
                f"TYPE for {name} comes after its samples (first at line {family.samples[0].line}); "
                "it must come before them, so the family stays untyped",
                name,
            )
            return
        family.type = metric_type
        family.has_type = True
        self.by_sample.clear()

    def metric_name(self, line: str, position: int, keyword: str) -> tuple[str, int]:
        if position < len(line) and line[position] == '"':
            name, end = self.quoted_string(line, position, "metric name")
            if not name:
                raise _LineError(INVALID_METRIC_NAME, position + 1, "empty metric name")
            self.quoted = True
            return name, end
        match = LEGACY_METRIC_NAME.match(line, position)
        if match is None:
            found = repr(line[position]) if position < len(line) else "end of line"
            raise _LineError(
                INVALID_METRIC_NAME,
                position + 1,
                f"expected a metric name after {keyword}, found {found} (a name starts with a letter, "
                "'_' or ':'; other names must be quoted, text format 1.0.0)",
            )
        return match.group(), match.end()

    # --- samples ----------------------------------------------------------------------------

    def quoted_string(self, line: str, position: int, what: str) -> tuple[str, int]:
        """Read a ``"…"`` string starting at ``position``; return the unescaped text and the end."""
        match = QUOTED.match(line, position)
        if match is None:
            raise _LineError(SYNTAX, position + 1, f"{what} opened here is not closed by '\"'")
        quote = match.end() - 1
        raw = line[position + 1 : quote]
        text = raw
        if "\\" in raw:
            text, unknown = unescape(raw, '\\n"')
            for offset, escape in unknown:
                self.sink.warning(
                    UNKNOWN_ESCAPE,
                    self._lineno,
                    position + 2 + offset,
                    f'escape {escape!r} in a {what} is not \\\\, \\" or \\n: Prometheus keeps it '
                    "literally, expfmt.TextParser (promtool) rejects it",
                )
        return text, quote + 1

    _lineno = 0

    def sample(self, line: str, position: int, lineno: int) -> None:
        self._lineno = lineno
        name: str | None = None
        name_column = position + 1
        if line[position] != "{":
            if line[position] == '"':
                raise _LineError(
                    INVALID_METRIC_NAME,
                    position + 1,
                    'a quoted metric name goes inside the braces: {"my.metric", label="v"} 1',
                )
            match = LEGACY_METRIC_NAME.match(line, position)
            if match is None:
                raise _LineError(
                    INVALID_METRIC_NAME,
                    position + 1,
                    f"invalid metric name: a name starts with a letter, '_' or ':', found {line[position]!r}",
                )
            name = match.group()
            position = match.end()
            if position < len(line) and line[position] not in " \t{":
                raise _LineError(
                    INVALID_METRIC_NAME,
                    position + 1,
                    f"invalid character {line[position]!r} in metric name {name!r} (names with other "
                    'characters must be quoted inside the braces: {"my.metric"} 1)',
                )
            position = _WS.match(line, position).end()  # type: ignore[union-attr]
        pairs: list[tuple[str, str]] = []
        if position < len(line) and line[position] == "{":
            position, name = self.labels(line, position, name, pairs)
            position = _WS.match(line, position).end()  # type: ignore[union-attr]
        if name is None:
            raise _LineError(
                INVALID_METRIC_NAME,
                name_column,
                'no metric name: put it before the braces or quoted inside them ({"my.metric"} 1)',
            )
        token = _TOKEN.match(line, position).group()  # type: ignore[union-attr]
        if not token:
            raise _LineError(SYNTAX, position + 1, f"expected a value after metric {name}, found end of line")
        value, reason = parse_go_float(token)
        if value is None:
            hint = ""
            if any(c in token for c in "pP_"):
                hint = " (Prometheus rejects hex floats and '_')"
            elif token.lower().lstrip("+-") == "nan":
                hint = " (NaN takes no sign)"
            elif token.endswith("\r"):
                hint = " (a carriage return ends the value)"
            raise _LineError(
                INVALID_VALUE, position + 1, f"expected a float value for {name}: {reason}{hint}"
            )
        position = _WS.match(line, position + len(token)).end()  # type: ignore[union-attr]
        timestamp: float | None = None
        if position < len(line):
            token = _TOKEN.match(line, position).group()  # type: ignore[union-attr]
            if not token.isdigit() or not token.isascii():
                extra = ""
                if token.lstrip("-").isdigit():
                    extra = " (Prometheus's scrape parser takes digits only; a negative timestamp fails)"
                elif "." in token or "e" in token.lower():
                    extra = " (the text format has integer milliseconds, OpenMetrics has float seconds)"
                raise _LineError(
                    INVALID_TIMESTAMP,
                    position + 1,
                    f"expected an integer timestamp in milliseconds, found {token!r}{extra}",
                )
            if int(token) > _INT64_MAX:
                raise _LineError(INVALID_TIMESTAMP, position + 1, f"timestamp {token} overflows int64")
            timestamp = int(token) / 1000
            position = _WS.match(line, position + len(token)).end()  # type: ignore[union-attr]
            if position < len(line):
                raise _LineError(
                    SYNTAX,
                    position + 1,
                    f"expected end of line after the timestamp, found {line[position : position + 20]!r}",
                )
        seen: set[str] = set()
        for label_name, _ in pairs:
            if label_name in seen:
                raise _LineError(
                    DUPLICATE_LABEL,
                    0,
                    f"label {label_name!r} appears twice in one sample of {name}",
                )
            seen.add(label_name)
        interner = self.interner
        labels = interner.labels([(sys.intern(n), v) for n, v in pairs])
        self.add(name, labels, value, timestamp, lineno)

    def labels(
        self, line: str, position: int, name: str | None, pairs: list[tuple[str, str]]
    ) -> tuple[int, str | None]:
        """Read ``{…}`` from ``position``; fill ``pairs``; return the end and the metric name."""
        limits = self.limits
        length = len(line)
        position += 1
        while True:
            position = _WS.match(line, position).end()  # type: ignore[union-attr]
            if position >= length:
                raise _LineError(SYNTAX, position + 1, "expected a label name or '}', found end of line")
            char = line[position]
            if char == "}":
                return position + 1, name
            start = position
            quoted = char == '"'
            if quoted:
                label_name, position = self.quoted_string(line, position, "label name")
                self.quoted = True
            else:
                match = LABEL_NAME.match(line, position)
                if match is None:
                    raise _LineError(
                        INVALID_LABEL_NAME,
                        position + 1,
                        f"expected a label name, found {char!r} (a name starts with a letter or '_'; "
                        'other names must be quoted: {"label.name"="v"})',
                    )
                label_name = match.group()
                position = match.end()
            position = _WS.match(line, position).end()  # type: ignore[union-attr]
            following = line[position] if position < length else ""
            if quoted and following in (",", "}"):
                if name is not None:
                    raise _LineError(
                        SYNTAX,
                        start + 1,
                        f"metric name given twice: {name!r} and {label_name!r}",
                    )
                if not label_name:
                    raise _LineError(INVALID_METRIC_NAME, start + 1, "empty metric name")
                name = label_name
                if following == ",":
                    position += 1
                continue
            if following != "=":
                found = repr(following) if following else "end of line"
                raise _LineError(
                    SYNTAX, position + 1, f"expected '=' after label name {label_name!r}, found {found}"
                )
            if not label_name:
                raise _LineError(INVALID_LABEL_NAME, start + 1, "empty label name")
            if len(label_name) > limits.max_label_name_length:
                raise _LineError(
                    _decode.LABEL_NAME_TOO_LONG,
                    start + 1,
                    f"label name is {len(label_name)} characters long, over the limit of "
                    f"{limits.max_label_name_length}; the sample is skipped",
                )
            position = _WS.match(line, position + 1).end()  # type: ignore[union-attr]
            if position >= length or line[position] != '"':
                found = repr(line[position]) if position < length else "end of line"
                raise _LineError(
                    SYNTAX,
                    position + 1,
                    f"expected '\"' to start the value of label {label_name!r}, found {found}",
                )
            value_start = position
            label_value, position = self.quoted_string(line, position, "label value")
            if len(label_value) > limits.max_label_value_length:
                raise _LineError(
                    _decode.LABEL_VALUE_TOO_LONG,
                    value_start + 1,
                    f"value of label {label_name!r} is {len(label_value)} characters long, over the "
                    f"limit of {limits.max_label_value_length}; the sample is skipped",
                )
            pairs.append((label_name, label_value))
            if len(pairs) > limits.max_labels:
                raise _LineError(
                    _decode.TOO_MANY_LABELS,
                    position + 1,
                    f"more than {limits.max_labels} labels on one sample; the sample is skipped",
                )
            position = _WS.match(line, position).end()  # type: ignore[union-attr]
            following = line[position] if position < length else ""
            if following == ",":
                position += 1
            elif following != "}":
                found = repr(following) if following else "end of line"
                raise _LineError(
                    SYNTAX,
                    position + 1,
                    f"expected ',' or '}}' after the value of label {label_name!r}, found {found}"
                    + (
                        " (Prometheus's scrape parser tolerates a missing comma; expfmt and the spec do not)"
                        if following and following not in "}"
                        else ""
                    ),
                )


_INF = float("inf")
_NINF = float("-inf")


def parse_text(text: str, sink: DiagnosticSink, limits: ParseLimits) -> tuple[list[MetricFamily], int, str]:
    """Parse Prometheus text (0.0.4 or 1.0.0) into families; problems go to ``sink``.

    Returns ``(families, lines read, version)``; version is ``"1.0.0"`` when a
    quoted metric or label name was seen, else ``"0.0.4"``.
    """
    return _parse(text, sink, limits)


def parse_text_cached(
    text: str, sink: DiagnosticSink, limits: ParseLimits, cache: ParseCache
) -> tuple[list[MetricFamily], int, str, TextTemplate | None]:
    """:func:`parse_text` for one source read again and again, with the same result.

    A body shaped like the cache's template (see :class:`TextTemplate`) is read from it;
    any other body is parsed in full and becomes the template. Also returns the template
    the result matches (None when the body is too large to keep, or hit ``max_samples``).
    """
    template = cache.template
    if template is not None:
        reused = template.reuse(text, sink, limits)
        if reused is not None:
            cache.hits += 1
            return reused, template.lines, template.version, template
    cache.template = None
    if len(text) > cache.max_bytes:
        cache.too_large += 1
        families, lines, version = _parse(text, sink, limits)
        return families, lines, version, None
    cache.misses += 1
    # The parser reports into a sink of its own, replayed into ``sink`` with the same limit, so
    # the template holds every diagnostic the body gave, whatever was in ``sink`` before.
    recorder = DiagnosticSink(sink.limit)
    parser = _TextParser(recorder, limits)
    families, lines = parser.parse(text)
    version = "1.0.0" if parser.quoted else "0.0.4"
    sink.extend(recorder.diagnostics)
    sink.suppressed += recorder.suppressed
    if parser.stopped:
        return families, lines, version, None
    template = TextTemplate.build(parser, text, families, lines, version, recorder)
    cache.template = template
    return families, lines, version, template


def _parse(text: str, sink: DiagnosticSink, limits: ParseLimits) -> tuple[list[MetricFamily], int, str]:
    parser = _TextParser(sink, limits)
    families, lines = parser.parse(text)
    return families, lines, "1.0.0" if parser.quoted else "0.0.4"


# --- the scrape cache ----------------------------------------------------------------------------------

_PLAIN_VALUE = frozenset("0123456789.eE+-")
"""The characters of the fast path's first value form; other values are matched by :data:`_VALUE_TOKEN`."""
_VALUE_TOKEN = re.compile(r"[-+0-9.eE]+|[-+]?(?i:inf(?:inity)?)|(?i:nan)")
"""The value group of :data:`_FAST`."""

_Picker = Callable[[Sequence[str]], tuple[str, ...]]


def _picker(indexes: list[int]) -> _Picker:
    """A function that picks ``indexes`` from a sequence, always as a tuple."""
    if not indexes:
        return lambda sequence: ()
    if len(indexes) == 1:
        (index,) = indexes
        return lambda sequence: (sequence[index],)
    return itemgetter(*indexes)


class TextTemplate:
    """The shape of a text exposition, so the next body of the same source is read without parsing.

    Prometheus keeps a per-target scrape cache for the same reason: consecutive scrapes of a
    target repeat the same lines with new values. The template splits the body's lines in two:

    * **slots**: sample lines that took the fast path without a timestamp, ``<series> <value>``.
      A new body matches a slot when the line starts with the same ``<series> `` and the rest is a
      value the fast path takes (its value pattern, ``float``, Go's range, the line-length limit).
    * **fixed** lines: everything else (HELP, TYPE, comments, blank lines, lines with a timestamp,
      lines the careful path read or rejected), which must repeat exactly.

    When the new body has the same number of lines, every fixed line equal and every slot
    matched, the parser would make exactly the same decisions as for the body the template came
    from: every line's effect on the parser's state (families, current family, TYPE and HELP
    seen, interleaving) depends on its text up to the value, never on the value, and a fixed
    line's text is the same. So the result is the same families with new values in the slot
    samples, the same fixed samples (values are immutable, so they are shared), the same line
    count and version, and the same diagnostics in the same order (kept whole and replayed into
    the sink, which applies its own limit). Any other body is parsed in full, and becomes the
    template. Memory is bounded by the body: one template per source, replaced on every change.
    """

    __slots__ = (
        "count",
        "diagnostics",
        "families",
        "fixed",
        "fixed_lines",
        "fixed_samples",
        "heads",
        "labels",
        "limits",
        "lines",
        "max_head",
        "names",
        "numbers",
        "roomy",
        "semantics",
        "slots",
        "suppressed",
        "version",
    )

    def __init__(self) -> None:
        self.limits = ParseLimits()
        self.roomy = 0
        self.count = 0
        """Lines of the body, counted as ``text.split("\\n")`` counts them."""
        self.fixed: _Picker = _picker([])
        self.fixed_lines: tuple[str, ...] = ()
        self.slots: _Picker = _picker([])
        self.heads: tuple[str, ...] = ()
        """Each slot's ``<series> ``."""
        self.max_head = 0
        self.names: tuple[str, ...] = ()
        self.labels: tuple[Labels, ...] = ()
        self.numbers: tuple[int, ...] = ()
        """Each slot's line number. (Tuples of strings and numbers: the collector stops tracking them.)"""
        self.fixed_samples: list[Sample] = []
        self.families: list[tuple[str, MetricType, str | None, int, slice | tuple[int, ...]]] = []
        """``(name, type, help, line, members)``; members index the slot samples, then the fixed ones."""
        self.diagnostics: list[Diagnostic] = []
        self.suppressed = 0
        self.lines = 0
        self.version = "0.0.4"
        self.semantics: SemanticsMemo | None = None
        """What :func:`~promscope.exposition.semantics.check_semantics` remembers of these families."""

    @classmethod
    def build(
        cls,
        parser: _TextParser,
        text: str,
        families: list[MetricFamily],
        lines: int,
        version: str,
        recorder: DiagnosticSink,
    ) -> TextTemplate:
        template = cls()
        template.limits = parser.limits
        template.roomy = _roomy(parser.limits)
        pieces = text.split("\n")
        template.count = len(pieces)
        rejected = set(parser.rejected)
        slot_indexes: list[int] = []
        heads: list[str] = []
        names: list[str] = []
        labels: list[Labels] = []
        numbers: list[int] = []
        fixed_samples = template.fixed_samples
        members_of: list[list[int]] = []
        for family in families:
            members: list[int] = []
            for sample in family.samples:
                line = sample.line
                if sample.timestamp is None and line not in rejected:
                    # The fast path read this line whole: ``<series> <value>``, no space in the value.
                    members.append(len(names))
                    slot_indexes.append(line - 1)
                    heads.append(pieces[line - 1].rpartition(" ")[0] + " ")
                    names.append(sample.name)
                    labels.append(sample.labels)
                    numbers.append(line)
                else:
                    members.append(~len(fixed_samples))
                    fixed_samples.append(sample)
            members_of.append(members)
        slots = len(names)
        for family, members in zip(families, members_of, strict=True):
            positions = [m if m >= 0 else slots + ~m for m in members]
            spec: slice | tuple[int, ...]
            first = positions[0] if positions else 0
            if positions == list(range(first, first + len(positions))):
                spec = slice(first, first + len(positions))
            else:
                spec = tuple(positions)
            template.families.append((family.name, family.type, family.help, family.line, spec))
        slot_set = set(slot_indexes)
        fixed_indexes = [i for i in range(len(pieces)) if i not in slot_set]
        template.fixed = _picker(fixed_indexes)
        template.fixed_lines = template.fixed(pieces)
        template.slots = _picker(slot_indexes)
        template.heads = tuple(heads)
        template.names = tuple(names)
        template.labels = tuple(labels)
        template.numbers = tuple(numbers)
        template.max_head = max(map(len, heads), default=0)
        template.diagnostics = recorder.diagnostics
        template.suppressed = recorder.suppressed
        template.lines = lines
        template.version = version
        return template

    def reuse(self, text: str, sink: DiagnosticSink, limits: ParseLimits) -> list[MetricFamily] | None:
        """The families of ``text`` when it matches this template (diagnostics into ``sink``), else None."""
        if limits is not self.limits and limits != self.limits:
            return None
        pieces = text.split("\n")
        if len(pieces) != self.count or self.fixed(pieces) != self.fixed_lines:
            return None
        lines = self.slots(pieces)
        if not all(map(str.startswith, lines, self.heads)):
            return None
        tokens = list(map(str.removeprefix, lines, self.heads))
        if tokens:
            if not all(map(_PLAIN_VALUE.issuperset, tokens)) and not all(map(_VALUE_TOKEN.fullmatch, tokens)):
                return None
            if self.max_head + max(map(len, tokens)) > self.roomy:
                return None  # some line may be over a limit: let the parser decide
        try:
            values = list(map(float, tokens))
        except ValueError:
            return None
        if _INF in values or _NINF in values:
            for token, value in zip(tokens, values, strict=True):
                if value in (_INF, _NINF) and parse_go_float(token)[0] is None:
                    return None
        pool = new_samples(self.names, self.labels, values, self.numbers)
        pool.extend(self.fixed_samples)
        families: list[MetricFamily] = []
        for name, kind, help_text, line, spec in self.families:
            members = tuple(pool[spec]) if isinstance(spec, slice) else tuple(map(pool.__getitem__, spec))
            families.append(new_family(name, kind, help_text, None, members, line))
        sink.extend(self.diagnostics)
        sink.suppressed += self.suppressed
        return families


def _roomy(limits: ParseLimits) -> int:
    """Lines at most this long cannot hold a label name/value over the limits nor too many labels."""
    return min(
        limits.max_line_length,
        limits.max_label_name_length,
        limits.max_label_value_length,
        4 * limits.max_labels,
    )
