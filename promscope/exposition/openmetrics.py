"""OpenMetrics 1.0 text (OM-xxx): syntax and structure.

The grammar is the ABNF of the OpenMetrics 1.0 specification: single spaces,
no blank lines, no comments other than ``# TYPE``/``# HELP``/``# UNIT`` (each
at most once per family, before its samples), no interleaved families, and
``# EOF`` as the last line. Which sample names a family may have follows from
its type (``_total``/``_created`` for a counter, ``_bucket``/``_count``/``_sum``
/``_created`` for a histogram…).

Value rules (bucket order, counter negativity, ``le`` canonical forms, exemplar
placement and size, timestamps increasing, UNIT suffix…) belong to
:mod:`promscope.exposition.semantics`, which runs after this parser.

As in :mod:`promscope.exposition.text`, each line first meets a precompiled
pattern for the common sample line; lines that fail it (exemplars, escapes,
problems) take the careful path, which gives the precise diagnostic. A line
with a problem contributes no sample, and the next line starts afresh.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

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
    new_sample,
    parse_go_float,
    unescape,
)
from promscope.model import Exemplar, Labels, MetricFamily, MetricType, Sample, Severity

__all__ = ["CODES", "SUFFIXES", "parse_openmetrics"]

MISSING_EOF = "OM-001"
AFTER_EOF = "OM-002"
BLANK_LINE = "OM-003"
SYNTAX = "OM-004"
INVALID_METRIC_NAME = "OM-005"
INVALID_LABEL_NAME = "OM-006"
INVALID_VALUE = "OM-007"
INVALID_TIMESTAMP = "OM-008"
DUPLICATE_LABEL = "OM-009"
DUPLICATE_METADATA = "OM-010"
METADATA_AFTER_SAMPLES = "OM-011"
INVALID_TYPE = "OM-012"
INTERLEAVED = "OM-013"
WRONG_SUFFIX = "OM-014"
COMMENT = "OM-015"
INVALID_EXEMPLAR = "OM-016"
UNDEFINED_ESCAPE = "OM-017"
NAME_CLASH = "OM-018"

CODES: dict[str, Code] = {
    MISSING_EOF: Code(Severity.ERROR, "the exposition does not end with # EOF"),
    AFTER_EOF: Code(Severity.ERROR, "content after # EOF"),
    BLANK_LINE: Code(Severity.ERROR, "blank line"),
    SYNTAX: Code(Severity.ERROR, "syntax error; the line is skipped"),
    INVALID_METRIC_NAME: Code(Severity.ERROR, "invalid metric name"),
    INVALID_LABEL_NAME: Code(Severity.ERROR, "invalid label name"),
    INVALID_VALUE: Code(Severity.ERROR, "value is not an OpenMetrics number"),
    INVALID_TIMESTAMP: Code(Severity.ERROR, "timestamp is not a real number of seconds"),
    DUPLICATE_LABEL: Code(Severity.ERROR, "label name repeated in one label set"),
    DUPLICATE_METADATA: Code(Severity.ERROR, "TYPE, HELP or UNIT given twice for a family"),
    METADATA_AFTER_SAMPLES: Code(Severity.ERROR, "TYPE, HELP or UNIT after the family's samples"),
    INVALID_TYPE: Code(Severity.ERROR, "unknown metric type"),
    INTERLEAVED: Code(Severity.ERROR, "a family's lines are split by another family"),
    WRONG_SUFFIX: Code(Severity.ERROR, "sample name not allowed for the family's type"),
    COMMENT: Code(Severity.ERROR, "a line starting with # that is not TYPE, HELP, UNIT or EOF"),
    INVALID_EXEMPLAR: Code(Severity.ERROR, "malformed exemplar"),
    UNDEFINED_ESCAPE: Code(Severity.WARNING, "undefined escape sequence (kept literally)"),
    NAME_CLASH: Code(Severity.ERROR, "family name clashes with another family's sample names"),
}

SUFFIXES: dict[MetricType, tuple[str, ...]] = {
    MetricType.COUNTER: ("_total", "_created"),
    MetricType.GAUGE: ("",),
    MetricType.HISTOGRAM: ("_bucket", "_count", "_sum", "_created"),
    MetricType.GAUGEHISTOGRAM: ("_bucket", "_gcount", "_gsum"),
    MetricType.SUMMARY: ("", "_count", "_sum", "_created"),
    MetricType.INFO: ("_info",),
    MetricType.STATESET: ("",),
    MetricType.UNKNOWN: ("",),
}
"""Sample name suffixes each type allows (OpenMetrics 1.0, "Suffixes")."""

_OM_TYPES = {t.value: t for t in MetricType}

_FAST = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?:([^\n]*)\")?\})?"
    r" ([-+0-9.eE]+|[-+]?(?i:inf(?:inity)?)|(?i:nan))"
    r"(?: ([-+0-9.eE]+))?"
    r"(?:\n|\Z)"
)
"""The common sample line with its newline, matched where the line starts in the whole text: no
exemplar. Group 2 is the label body without its closing quote, ``None`` for ``{}`` or no braces;
it is only checked loosely here (it may hold braces), :class:`LabelBodies` validates it."""

_REALNUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_METADATA = re.compile(r"# (TYPE|HELP|UNIT)(?: (.*))?")
_UNIT = re.compile(r"[a-zA-Z0-9_:]*")


class _Family:
    __slots__ = ("allowed", "help", "line", "metadata", "name", "samples", "type", "unit")

    def __init__(self, name: str, line: int) -> None:
        self.name = name
        self.type = MetricType.UNKNOWN
        self.help: str | None = None
        self.unit: str | None = None
        self.metadata: set[str] = set()
        self.samples: list[Sample] = []
        self.line = line
        self.allowed: frozenset[str] = frozenset((name,))

    def freeze(self) -> MetricFamily:
        return MetricFamily(
            self.name, self.type, self.help, self.unit or None, tuple(self.samples), self.line
        )


@dataclass(slots=True)
class _LineError(Exception):
    code: str
    column: int
    message: str


class _OpenMetricsParser:
    def __init__(self, sink: DiagnosticSink, limits: ParseLimits) -> None:
        self.sink = sink
        self.limits = limits
        self.order: list[_Family] = []
        self.owner: dict[str, _Family] = {}
        """Every sample name a family seen so far may have (its own name included) -> the family."""
        self.current: _Family | None = None
        self.interner = Interner()
        self.segments = SegmentCache(self.interner)
        self.bodies = LabelBodies(self.segments)
        self.samples = 0
        self.stopped = False
        self.lineno = 0
        self.eof_at = 0
        # Lines at most this long cannot hold a label name/value over the limits nor too many labels.
        self.roomy = min(
            limits.max_line_length,
            limits.max_label_name_length,
            limits.max_label_value_length,
            4 * limits.max_labels,
        )

    # --- families ---------------------------------------------------------------------------

    def new_family(self, name: str, lineno: int) -> _Family:
        family = _Family(name, lineno)
        self.order.append(family)
        self.register(family, (name,), lineno)
        self.current = family
        return family

    def register(self, family: _Family, names: tuple[str, ...], lineno: int) -> None:
        for sample_name in names:
            other = self.owner.get(sample_name)
            if other is None:
                self.owner[sample_name] = family
            elif other is not family:
                self.sink.error(
                    NAME_CLASH,
                    lineno,
                    0,
                    f"{family.type} {family.name} may have samples named {sample_name}, which "
                    f"{other.type} {other.name} (line {other.line}) may have too; family names must not "
                    "clash through their suffixes",
                    family.name,
                )

    def route(self, name: str, lineno: int) -> _Family | None:
        """The family a sample called ``name`` belongs to, reporting how it breaks structure."""
        current = self.current
        if current is not None and name in current.allowed:
            return current
        owner = self.owner.get(name)
        if owner is not None and owner is current:
            expected = " or ".join(current.name + s for s in SUFFIXES[current.type])
            hint = ""
            if current.type is MetricType.COUNTER and current.name.endswith("_total"):
                base = current.name[: -len("_total")]
                hint = (
                    f"; a counter family's name leaves _total out: # TYPE {base} counter, then {base}_total"
                )
            self.sink.error(
                WRONG_SUFFIX,
                lineno,
                1,
                f"{current.type} {current.name} cannot have a sample named {name}; expected {expected}{hint}",
                current.name,
            )
            return None
        if owner is not None:
            self.sink.error(
                INTERLEAVED,
                lineno,
                1,
                f"sample {name} belongs to {owner.type} {owner.name} (line {owner.line}), but "
                f"{current.name if current else 'another family'} came in between; OpenMetrics "
                "families must not be interleaved (promscope merges it)",
                owner.name,
            )
            self.current = owner
            return owner
        return self.new_family(name, lineno)

    def add(self, sample: Sample) -> None:
        if self.limits.max_samples and self.samples >= self.limits.max_samples:
            self.sink.error(
                _decode.TOO_MANY_SAMPLES,
                sample.line,
                1,
                f"more than {self.limits.max_samples} samples; the rest of the exposition is skipped",
            )
            self.stopped = True
            return
        family = self.route(sample.name, sample.line)
        if family is not None:
            family.samples.append(sample)
            self.samples += 1

    def current_allowed(self) -> tuple[frozenset[str], Callable[[Sample], None] | None]:
        current = self.current
        if current is None:
            return frozenset(), None
        return current.allowed, current.samples.append

    # --- lines ------------------------------------------------------------------------------

    def parse(self, text: str) -> tuple[list[MetricFamily], int]:
        with collector_paused:  # see text.py: nothing here forms cycles
            lines = self._loop(text)
        return [family.freeze() for family in self.order], lines

    def _loop(self, text: str) -> int:
        """The hot loop, as in text.py: lines are matched in place. Returns the line count."""
        fast = _FAST.match
        read_body = self.bodies.read
        reject = self.reject
        limits = self.limits
        roomy = self.roomy
        direct = limits.max_samples <= 0
        infinities = (_INF, _NINF)
        intern = self.interner.value.setdefault
        allowed, append = self.current_allowed()
        size = len(text)
        position = 0
        lineno = 0
        while position < size:
            lineno += 1
            start = position
            match = fast(text, start)
            if match is None or (
                match.end() - start > roomy and match.end() - start - (text[match.end() - 1] == "\n") > roomy
            ):
                position = reject(text, start, lineno)
                if self.eof_at:
                    if position < size:
                        lines = count_lines(text)
                        self.sink.error(
                            AFTER_EOF,
                            lineno + 1,
                            1,
                            f"{lines - lineno} line(s) after # EOF (line {lineno}); the exposition must end "
                            "there (one final newline allowed)",
                        )
                        return lines
                    return lineno
                allowed, append = self.current_allowed()
                continue
            position = match.end()
            name, body, raw_value, raw_ts = match.groups()
            try:
                value = float(raw_value)
                timestamp = None if raw_ts is None else float(raw_ts)
            except ValueError:
                position = reject(text, start, lineno)
                allowed, append = self.current_allowed()
                continue
            labels: Labels | None
            if body is None:
                labels = ()
            else:
                labels = read_body(body)
                if labels is None:
                    position = reject(text, start, lineno)
                    allowed, append = self.current_allowed()
                    continue
            if (value in infinities and parse_go_float(raw_value)[0] is None) or (
                timestamp is not None and (timestamp in infinities or _REALNUMBER.fullmatch(raw_ts) is None)
            ):
                position = reject(text, start, lineno)
                allowed, append = self.current_allowed()
                continue
            name = intern(name, name)
            if direct and name in allowed:
                append(new_sample(name, labels, value, timestamp, lineno))  # type: ignore[misc]
                continue
            self.add(new_sample(name, labels, value, timestamp, lineno))
            if self.stopped:
                return count_lines(text)
            allowed, append = self.current_allowed()
        if not self.stopped:
            self.sink.error(
                MISSING_EOF,
                lineno,
                0,
                "the exposition does not end with '# EOF'; OpenMetrics requires it so a truncated "
                "body is told apart from a complete one",
            )
        return lineno

    def reject(self, text: str, start: int, lineno: int) -> int:
        """The line at ``start`` is not for the fast path; returns where the next line starts."""
        end = text.find("\n", start)
        if end < 0:
            end = len(text)
        line = text[start:end]
        if len(line) > self.roomy:
            max_line = self.limits.max_line_length
            if len(line) > max_line:
                self.sink.error(
                    _decode.LINE_TOO_LONG,
                    lineno,
                    0,
                    f"line is {len(line)} characters long, over the limit of {max_line}; skipped",
                )
            else:
                self.careful(line, lineno)
        elif line == "# EOF":
            self.eof_at = lineno
        else:
            self.careful(line, lineno)
        return end + 1

    def careful(self, line: str, lineno: int) -> None:
        self.lineno = lineno
        try:
            if not line:
                raise _LineError(BLANK_LINE, 0, "blank line; OpenMetrics does not allow empty lines")
            if line[0] == "#":
                self.metadata(line, lineno)
            else:
                self.sample(line, lineno)
        except _LineError as problem:
            self.sink.error(problem.code, lineno, problem.column, problem.message)

    # --- metadata ---------------------------------------------------------------------------

    def metadata(self, line: str, lineno: int) -> None:
        match = _METADATA.fullmatch(line)
        if match is None:
            raise _LineError(
                COMMENT,
                1,
                "only '# TYPE', '# HELP', '# UNIT' and '# EOF' may start with '#' (one space after '#', "
                "upper case); OpenMetrics has no comments",
            )
        keyword, rest = match.group(1), match.group(2)
        column = len(keyword) + 4
        if rest is None:
            raise _LineError(SYNTAX, column - 1, f"expected ' ' and a metric name after # {keyword}")
        name_match = LEGACY_METRIC_NAME.match(rest)
        if name_match is None:
            raise _LineError(
                INVALID_METRIC_NAME,
                column,
                f"expected a metric name after # {keyword}, found {rest[:1]!r}",
            )
        name = name_match.group()
        position = name_match.end()
        if position == len(rest):
            what = "a type" if keyword == "TYPE" else "the text (it may be empty, the space may not)"
            raise _LineError(SYNTAX, column + position, f"expected ' ' and {what} after {name}")
        if rest[position] != " ":
            raise _LineError(
                INVALID_METRIC_NAME,
                column + position,
                f"invalid character {rest[position]!r} in metric name {name!r}",
            )
        value = rest[position + 1 :]
        value_column = column + position + 1
        metric_type: MetricType | None = None
        if keyword == "TYPE":
            metric_type = _OM_TYPES.get(value)
            if metric_type is None:
                hint = " (the Prometheus text format's untyped is unknown here)" if value == "untyped" else ""
                raise _LineError(
                    INVALID_TYPE,
                    value_column,
                    f"unknown metric type {value!r}; expected one of {', '.join(_OM_TYPES)}{hint}",
                )
        elif keyword == "UNIT":
            if _UNIT.fullmatch(value) is None:
                raise _LineError(
                    SYNTAX,
                    value_column,
                    f"unit {value!r} has characters a metric name cannot have",
                )
        elif "\\" in value:
            value, unknown = unescape(value, '\\n"')
            for offset, escape in unknown:
                self.sink.warning(
                    UNDEFINED_ESCAPE,
                    lineno,
                    value_column + offset,
                    f"undefined escape {escape!r} in HELP, kept as written; the spec says a single "
                    "backslash SHOULD NOT be used for undefined escapes (write \\\\)",
                    name,
                )
        family = self.metadata_family(name, keyword, lineno)
        if family is None:
            return
        family.metadata.add(keyword)
        if metric_type is not None:
            family.type = metric_type
            names = tuple(name + suffix for suffix in SUFFIXES[metric_type])
            family.allowed = frozenset(names)
            self.register(family, tuple(n for n in names if n != name), lineno)
        elif keyword == "UNIT":
            family.unit = value
        else:
            family.help = value

    def metadata_family(self, name: str, keyword: str, lineno: int) -> _Family | None:
        current = self.current
        if current is not None and current.name == name:
            if current.samples:
                self.sink.error(
                    METADATA_AFTER_SAMPLES,
                    lineno,
                    1,
                    f"# {keyword} for {name} after its samples (first at line {current.samples[0].line}); "
                    "metadata comes first",
                    name,
                )
                return None
            if keyword in current.metadata:
                self.sink.error(
                    DUPLICATE_METADATA,
                    lineno,
                    1,
                    f"second # {keyword} for {name}; the first is kept",
                    name,
                )
                return None
            return current
        previous = self.owner.get(name)
        if previous is not None and previous.name == name:
            self.sink.error(
                INTERLEAVED,
                lineno,
                1,
                f"# {keyword} for {name}, whose family started at line {previous.line} and was followed "
                "by another; OpenMetrics families must not be interleaved (line ignored)",
                name,
            )
            return None
        return self.new_family(name, lineno)

    # --- samples ----------------------------------------------------------------------------

    def sample(self, line: str, lineno: int) -> None:
        match = LEGACY_METRIC_NAME.match(line)
        if match is None:
            raise _LineError(
                INVALID_METRIC_NAME,
                1,
                f"expected a metric name, found {line[0]!r} (a name starts with a letter, '_' or ':')",
            )
        name = match.group()
        position = match.end()
        length = len(line)
        labels: tuple[tuple[str, str], ...] = ()
        if position < length and line[position] == "{":
            labels, position = self.labels(line, position, DUPLICATE_LABEL)
        if position >= length:
            raise _LineError(SYNTAX, position + 1, f"expected ' ' and a value after {name}")
        if line[position] != " ":
            code = INVALID_METRIC_NAME if not labels and line[position] != "{" else SYNTAX
            raise _LineError(
                code,
                position + 1,
                f"expected ' ' after {'the labels' if labels else repr(name)}, found {line[position]!r}",
            )
        value, position = self.number(line, position + 1, "value", INVALID_VALUE)
        timestamp: float | None = None
        exemplar: Exemplar | None = None
        if position < length:
            if line.startswith(" # ", position):
                exemplar = self.exemplar(line, position + 3)
            else:
                timestamp, position = self.timestamp(line, position + 1)
                if position < length:
                    if not line.startswith(" # ", position):
                        raise _LineError(
                            SYNTAX,
                            position + 1,
                            "expected end of line or ' # ' and an exemplar, found "
                            f"{line[position : position + 10]!r}",
                        )
                    exemplar = self.exemplar(line, position + 3)
        sample = Sample(self.interner.string(name), labels, value, timestamp, exemplar, lineno)
        self.add(sample)

    def exemplar(self, line: str, position: int) -> Exemplar:
        if position >= len(line) or line[position] != "{":
            raise _LineError(
                INVALID_EXEMPLAR,
                position + 1,
                "an exemplar starts with its label set: ' # {trace_id=\"…\"} value [timestamp]'",
            )
        labels, position = self.labels(line, position, INVALID_EXEMPLAR)
        if position >= len(line) or line[position] != " ":
            raise _LineError(
                INVALID_EXEMPLAR, position + 1, "expected ' ' and a value after the exemplar's labels"
            )
        value, position = self.number(line, position + 1, "exemplar value", INVALID_EXEMPLAR)
        timestamp: float | None = None
        if position < len(line):
            timestamp, position = self.timestamp(line, position + 1, INVALID_EXEMPLAR)
            if position < len(line):
                raise _LineError(
                    INVALID_EXEMPLAR,
                    position + 1,
                    "expected end of line after the exemplar's timestamp, found "
                    f"{line[position : position + 10]!r}",
                )
        return Exemplar(labels, value, timestamp)

    def number(self, line: str, start: int, what: str, code: str) -> tuple[float, int]:
        end = line.find(" ", start)
        if end < 0:
            end = len(line)
        token = line[start:end]
        if not token:
            raise _LineError(SYNTAX, start + 1, f"expected a {what} (exactly one space before it)")
        value, reason = parse_go_float(token)
        if value is None:
            hint = ""
            if token.lower().lstrip("+-") == "nan":
                hint = " (NaN takes no sign)"
            raise _LineError(code, start + 1, f"{what}: {reason}{hint}")
        return value, end

    def timestamp(self, line: str, start: int, code: str = INVALID_TIMESTAMP) -> tuple[float, int]:
        end = line.find(" ", start)
        if end < 0:
            end = len(line)
        token = line[start:end]
        if not token:
            raise _LineError(SYNTAX, start + 1, "expected a timestamp (exactly one space before it)")
        if _REALNUMBER.fullmatch(token) is None:
            raise _LineError(
                code,
                start + 1,
                f"timestamp {token!r} is not a real number of seconds (no Inf or NaN)",
            )
        value = float(token)
        if value in (_INF, _NINF):
            raise _LineError(code, start + 1, f"timestamp {token!r} is out of the range of a 64-bit float")
        return value, end

    def labels(
        self, line: str, position: int, duplicate_code: str
    ) -> tuple[tuple[tuple[str, str], ...], int]:
        """Read a strict OpenMetrics label set at ``position`` (``{``); return it and the end."""
        limits = self.limits
        length = len(line)
        pairs: list[tuple[str, str]] = []
        seen: set[str] = set()
        position += 1
        if position < length and line[position] == "}":
            return (), position + 1
        while True:
            match = LABEL_NAME.match(line, position)
            if match is None:
                found = repr(line[position]) if position < length else "end of line"
                code = SYNTAX if position >= length or line[position] in ' ,}"' else INVALID_LABEL_NAME
                raise _LineError(
                    code,
                    position + 1,
                    f"expected a label name, found {found} (no spaces, no trailing comma; a name starts "
                    "with a letter or '_')",
                )
            label_name = match.group()
            start = position
            position = match.end()
            if len(label_name) > limits.max_label_name_length:
                raise _LineError(
                    _decode.LABEL_NAME_TOO_LONG,
                    start + 1,
                    f"label name is {len(label_name)} characters long, over the limit of "
                    f"{limits.max_label_name_length}; the sample is skipped",
                )
            if not line.startswith('="', position):
                found = repr(line[position]) if position < length else "end of line"
                code = SYNTAX if position >= length or line[position] in ' ="' else INVALID_LABEL_NAME
                raise _LineError(
                    code, position + 1, f"expected '=\"' after label name {label_name!r}, found {found}"
                )
            quoted = QUOTED.match(line, position + 1)
            if quoted is None:
                raise _LineError(
                    SYNTAX, position + 2, f"the value of label {label_name!r} is not closed by '\"'"
                )
            raw = quoted.group(1)
            label_value = raw
            if "\\" in raw:
                label_value, unknown = unescape(raw, '\\n"')
                for offset, escape in unknown:
                    self.sink.warning(
                        UNDEFINED_ESCAPE,
                        self.lineno,
                        position + 3 + offset,
                        f"undefined escape {escape!r} in the value of label {label_name!r}, kept as written; "
                        "the spec says a single backslash SHOULD NOT be used for undefined escapes",
                    )
            if len(label_value) > limits.max_label_value_length:
                raise _LineError(
                    _decode.LABEL_VALUE_TOO_LONG,
                    position + 2,
                    f"value of label {label_name!r} is {len(label_value)} characters long, over the limit of "
                    f"{limits.max_label_value_length}; the sample is skipped",
                )
            if label_name in seen:
                raise _LineError(
                    duplicate_code, start + 1, f"label {label_name!r} appears twice in one label set"
                )
            seen.add(label_name)
            pairs.append((sys.intern(label_name), self.interner.string(label_value)))
            if len(pairs) > limits.max_labels:
                raise _LineError(
                    _decode.TOO_MANY_LABELS,
                    start + 1,
                    f"more than {limits.max_labels} labels on one sample; the sample is skipped",
                )
            position = quoted.end()
            following = line[position] if position < length else ""
            if following == "}":
                return self.interner.labels(pairs), position + 1
            if following != ",":
                found = repr(following) if following else "end of line"
                raise _LineError(
                    SYNTAX, position + 1, f"expected ',' or '}}' after a label value, found {found}"
                )
            position += 1


_INF = float("inf")
_NINF = float("-inf")


def parse_openmetrics(text: str, sink: DiagnosticSink, limits: ParseLimits) -> tuple[list[MetricFamily], int]:
    """Parse OpenMetrics 1.0 text into families; problems go to ``sink``.

    Returns ``(families, lines read)``. Timestamps are float seconds, as the format carries them.
    """
    parser = _OpenMetricsParser(sink, limits)
    return parser.parse(text)
