"""Series selectors for filtering an exposition: ``name{label="v", other=~"re"}``.

The syntax is PromQL's instant-vector selector, with one addition: the
metric name may be a shell glob (``node_cpu_*``, ``http_request?_total``)::

    http_requests_total
    http_*{code=~"5..", method!="GET"}
    {job="api", __name__=~"go_.*"}
    {"my.utf8.metric", zone="eu"}            # Prometheus 3 quoted names

Matchers are ``=``, ``!=``, ``=~`` and ``!~``; regexes are anchored at both
ends, as in PromQL; a label a sample does not have matches as the empty
string. Strings may use double quotes, single quotes (both with backslash
escapes) or backticks (raw). A name matches a sample when it matches the
sample's own name (``foo_bucket``) or its family's (``foo``).

A syntax error is a :class:`SelectorError` that says at which column.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

from promscope.errors import PromscopeError
from promscope.model import MetricFamily, Sample

__all__ = ["MatchOp", "Matcher", "Selector", "SelectorError", "parse_selector"]


class SelectorError(PromscopeError):
    """A selector that does not parse; ``column`` is 1-based."""

    def __init__(self, message: str, *, selector: str, column: int) -> None:
        super().__init__(
            f"invalid selector at column {column}: {message}",
            hint="e.g. --match 'http_requests_total{code=~\"5..\"}'",
        )
        self.selector = selector
        self.column = column
        self.reason = message

    def caret(self) -> str:
        """The selector and a caret under the column, two lines."""
        return f"{self.selector}\n{' ' * (self.column - 1)}^"


class MatchOp(enum.StrEnum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher; ``pattern`` is compiled for the regex operators."""

    name: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = None

    def matches(self, actual: str) -> bool:
        if self.op is MatchOp.EQ:
            return actual == self.value
        if self.op is MatchOp.NE:
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op is MatchOp.RE else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


@dataclass(frozen=True, slots=True)
class Selector:
    """A metric name (exact or glob, optional) and label matchers."""

    name: str | None = None
    matchers: tuple[Matcher, ...] = ()
    text: str = ""

    @property
    def is_glob(self) -> bool:
        return self.name is not None and any(ch in self.name for ch in "*?[")

    def name_matches(self, name: str) -> bool:
        if self.name is None:
            return True
        if self.is_glob:
            return fnmatch.fnmatchcase(name, self.name)
        return name == self.name

    def matches(self, sample: Sample, family: str | None = None) -> bool:
        """True when ``sample`` (of family ``family``) is selected."""
        if self.name is not None and not (
            self.name_matches(sample.name) or (family is not None and self.name_matches(family))
        ):
            return False
        for matcher in self.matchers:
            if matcher.name == "__name__":
                names = (sample.name,) if family is None else (sample.name, family)
                if matcher.op in (MatchOp.EQ, MatchOp.RE):
                    selected = any(matcher.matches(n) for n in names)
                else:
                    selected = all(matcher.matches(n) for n in names)
            else:
                selected = matcher.matches(sample.label(matcher.name) or "")
            if not selected:
                return False
        return True

    def filter(self, families: Iterable[MetricFamily]) -> list[MetricFamily]:
        """The families with at least one selected sample, each keeping only those samples.

        A family with no samples at all is kept when its name matches and the
        selector has no label matchers.
        """
        out: list[MetricFamily] = []
        for family in families:
            if not family.samples:
                if not self.matchers and self.name_matches(family.name):
                    out.append(family)
                continue
            kept = tuple(s for s in family.samples if self.matches(s, family.name))
            if kept:
                out.append(family if len(kept) == len(family.samples) else _with_samples(family, kept))
        return out

    def __str__(self) -> str:
        inner = ", ".join(str(m) for m in self.matchers)
        if self.name is None:
            return f"{{{inner}}}"
        return f"{self.name}{{{inner}}}" if inner else self.name


def _with_samples(family: MetricFamily, samples: tuple[Sample, ...]) -> MetricFamily:
    return MetricFamily(
        name=family.name,
        type=family.type,
        help=family.help,
        unit=family.unit,
        samples=samples,
        line=family.line,
    )


_NAME_START = re.compile(r"[A-Za-z_:*?\[]")
_NAME_CHARS = re.compile(r"[A-Za-z0-9_:*?\[\]!\-]*")
_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b"}


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> SelectorError:
        return SelectorError(message, selector=self.text, column=(self.pos if pos is None else pos) + 1)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def parse(self) -> Selector:
        self.skip_space()
        if not self.peek():
            raise self.fail("empty selector: give a metric name, a {label matcher}, or both")
        name: str | None = None
        if self.peek() == "{":
            pass
        elif self.peek() in "\"'`":
            name = self.string()
        elif _NAME_START.match(self.peek()):
            found = _NAME_CHARS.match(self.text, self.pos + 1)
            end = found.end() if found else self.pos + 1
            name = self.text[self.pos : end]
            if "[" in name and not _valid_glob(name):
                raise self.fail(f"unbalanced '[' in name pattern {name!r}")
            self.pos = end
        else:
            raise self.fail(f"unexpected {self.peek()!r}: a selector starts with a metric name or '{{'")
        self.skip_space()
        matchers: list[Matcher] = []
        if self.peek() == "{":
            self.pos += 1
            name, matchers = self.braces(name)
        self.skip_space()
        if self.peek():
            raise self.fail(f"unexpected {self.peek()!r} after the selector")
        if name is None and not matchers:
            raise self.fail("the selector matches everything: give a metric name or a matcher", 0)
        return Selector(name=name, matchers=tuple(matchers), text=self.text)

    def braces(self, name: str | None) -> tuple[str | None, list[Matcher]]:
        matchers: list[Matcher] = []
        while True:
            self.skip_space()
            if self.peek() == "}":
                self.pos += 1
                return name, matchers
            if not self.peek():
                raise self.fail("missing '}'")
            start = self.pos
            if self.peek() in "\"'`":
                label = self.string()
                self.skip_space()
                if self.peek() in (",", "}"):
                    if name is not None:
                        raise self.fail("the metric name is given twice", start)
                    name = label
                    self.after_item()
                    continue
            else:
                found = _LABEL.match(self.text, self.pos)
                if not found:
                    raise self.fail(f"expected a label name, found {self.peek()!r}")
                label = found.group()
                self.pos = found.end()
            self.skip_space()
            op = self.operator()
            self.skip_space()
            if not self.peek() or self.peek() not in "\"'`":
                raise self.fail("expected a quoted value")
            value_at = self.pos
            value = self.string()
            pattern: re.Pattern[str] | None = None
            if op in (MatchOp.RE, MatchOp.NRE):
                try:
                    pattern = re.compile(value, re.DOTALL)
                except re.error as exc:
                    where = value_at if exc.pos is None else value_at + 1 + exc.pos
                    raise self.fail(f"invalid regular expression: {exc.msg}", where) from None
            matchers.append(Matcher(label, op, value, pattern))
            self.after_item()

    def after_item(self) -> None:
        self.skip_space()
        if self.peek() == ",":
            self.pos += 1
        elif self.peek() != "}":
            raise self.fail("expected ',' or '}'" if self.peek() else "missing '}'")

    def operator(self) -> MatchOp:
        two = self.text[self.pos : self.pos + 2]
        if two in ("=~", "!=", "!~"):
            self.pos += 2
            return MatchOp(two)
        if self.peek() == "=":
            self.pos += 1
            return MatchOp.EQ
        found = self.peek()
        raise self.fail(
            "expected '=', '!=', '=~' or '!~'" + (f", found {found!r}" if found else " at the end")
        )

    def string(self) -> str:
        quote = self.peek()
        start = self.pos
        self.pos += 1
        if quote == "`":
            end = self.text.find("`", self.pos)
            if end < 0:
                raise self.fail("unterminated string", start)
            value = self.text[self.pos : end]
            self.pos = end + 1
            return value
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped in _ESCAPES:
                    out.append(_ESCAPES[escaped])
                    self.pos += 2
                    continue
                if escaped == "":
                    break
                # PromQL keeps unknown escapes for regexes (\d, \.): keep the backslash.
                out.append("\\" + escaped)
                self.pos += 2
                continue
            if ch == "\n":
                raise self.fail("line break in a string", self.pos)
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated string", start)


def _valid_glob(pattern: str) -> bool:
    depth = 0
    for ch in pattern:
        if ch == "[":
            if depth:
                return False
            depth = 1
        elif ch == "]" and depth:
            depth = 0
    return depth == 0


def parse_selector(text: str) -> Selector:
    """Parse a selector. Raises :class:`SelectorError` with the 1-based column of the problem."""
    return _Parser(text).parse()
