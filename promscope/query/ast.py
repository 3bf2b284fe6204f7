"""The PromQL syntax tree: frozen nodes that know their type and where they start.

Every node carries ``pos``, the 0-based character offset of its first
character in the expression, so an evaluation error can point at the part of
the query it is about (errors report it 1-based, as a column). ``str(node)``
prints the node back as PromQL, normalised (one space around binary
operators, matchers as written, durations in Prometheus's shortest form).
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "AGGREGATIONS",
    "ARITHMETIC",
    "COMPARISONS",
    "SET_OPERATORS",
    "Aggregate",
    "Binary",
    "Call",
    "Expr",
    "LabelMatcher",
    "MatrixSelector",
    "NumberLiteral",
    "Paren",
    "StringLiteral",
    "Unary",
    "ValueType",
    "VectorMatching",
    "VectorSelector",
    "format_duration",
    "walk",
]


class ValueType(enum.StrEnum):
    """What an expression evaluates to, named as Prometheus's API names result types."""

    SCALAR = "scalar"
    VECTOR = "vector"
    MATRIX = "matrix"
    STRING = "string"

    @property
    def description(self) -> str:
        """The words Prometheus's error messages use (``instant vector``, ``range vector``)."""
        return {"vector": "instant vector", "matrix": "range vector"}.get(self.value, self.value)


ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})
COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})
AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count", "topk", "bottomk"})


@dataclass(frozen=True, slots=True)
class LabelMatcher:
    """``name op "value"``; regexes are anchored at both ends, as in PromQL."""

    name: str
    op: str
    """``=``, ``!=``, ``=~`` or ``!~``."""
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> LabelMatcher:
        """Build a matcher, compiling the regex (raises ``re.error``)."""
        pattern = re.compile(value, re.DOTALL) if op in ("=~", "!~") else None
        return cls(name, op, value, pattern)

    def matches(self, actual: str) -> bool:
        """True when a label value (``""`` for a missing label) satisfies the matcher."""
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    @property
    def matches_empty(self) -> bool:
        return self.matches("")

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


class Expr:
    """Base of every node."""

    __slots__ = ()

    pos: int

    @property
    def type(self) -> ValueType:
        raise NotImplementedError

    def children(self) -> tuple[Expr, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class NumberLiteral(Expr):
    value: float
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return ValueType.SCALAR

    def __str__(self) -> str:
        return _format_number(self.value)


@dataclass(frozen=True, slots=True)
class StringLiteral(Expr):
    value: str
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return ValueType.STRING

    def __str__(self) -> str:
        return _quote(self.value)


@dataclass(frozen=True, slots=True)
class VectorSelector(Expr):
    """``name{matchers} offset d``: the name is also a ``__name__="name"`` matcher in ``matchers``."""

    name: str | None
    matchers: tuple[LabelMatcher, ...]
    offset: float = 0.0
    """Seconds (negative offsets look ahead)."""
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR

    def __str__(self) -> str:
        shown = [
            m for m in self.matchers if not (m.name == "__name__" and m.op == "=" and m.value == self.name)
        ]
        inner = "{" + ", ".join(str(m) for m in shown) + "}" if shown or self.name is None else ""
        text = (self.name or "") + inner
        return text + (f" offset {format_duration(self.offset)}" if self.offset else "")


@dataclass(frozen=True, slots=True)
class MatrixSelector(Expr):
    """``selector[range]``: the offset lives on the inner vector selector."""

    vector: VectorSelector
    range: float
    """Seconds."""
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return ValueType.MATRIX

    def children(self) -> tuple[Expr, ...]:
        return (self.vector,)

    def __str__(self) -> str:
        inner = VectorSelector(self.vector.name, self.vector.matchers, 0.0, self.vector.pos)
        text = f"{inner}[{format_duration(self.range)}]"
        return text + (f" offset {format_duration(self.vector.offset)}" if self.vector.offset else "")


@dataclass(frozen=True, slots=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]
    return_type: ValueType
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return self.return_type

    def children(self) -> tuple[Expr, ...]:
        return self.args

    def __str__(self) -> str:
        return f"{self.func}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True, slots=True)
class Aggregate(Expr):
    """``op [by|without (labels)] ([param,] expr)``."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    has_grouping: bool = False
    """True when ``by``/``without`` was written (``sum by () (x)`` differs from ``sum(x)`` only in text)."""
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return ValueType.VECTOR

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,) if self.param is None else (self.param, self.expr)

    def __str__(self) -> str:
        text = self.op
        if self.has_grouping:
            text += f" {'without' if self.without else 'by'} ({', '.join(self.grouping)})"
        args = f"{self.param}, {self.expr}" if self.param is not None else str(self.expr)
        return f"{text} ({args})"


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """How two vectors pair up: ``on(labels)`` or ``ignoring(labels)`` (one-to-one)."""

    on: bool = False
    labels: tuple[str, ...] = ()
    written: bool = False
    """True when ``on``/``ignoring`` appeared in the expression."""

    def __str__(self) -> str:
        if not self.written:
            return ""
        return f"{'on' if self.on else 'ignoring'}({', '.join(self.labels)}) "


@dataclass(frozen=True, slots=True)
class Binary(Expr):
    op: str
    lhs: Expr
    rhs: Expr
    bool_modifier: bool = False
    matching: VectorMatching = VectorMatching()
    pos: int = 0
    op_pos: int = 0
    """Offset of the operator itself (evaluation errors point here)."""

    @property
    def type(self) -> ValueType:
        if self.lhs.type is ValueType.SCALAR and self.rhs.type is ValueType.SCALAR:
            return ValueType.SCALAR
        return ValueType.VECTOR

    def children(self) -> tuple[Expr, ...]:
        return (self.lhs, self.rhs)

    def __str__(self) -> str:
        modifier = "bool " if self.bool_modifier else ""
        return f"{self.lhs} {self.op} {modifier}{self.matching}{self.rhs}"


@dataclass(frozen=True, slots=True)
class Unary(Expr):
    op: str
    expr: Expr
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)

    def __str__(self) -> str:
        return f"{self.op}{self.expr}"


@dataclass(frozen=True, slots=True)
class Paren(Expr):
    expr: Expr
    pos: int = 0

    @property
    def type(self) -> ValueType:
        return self.expr.type

    def children(self) -> tuple[Expr, ...]:
        return (self.expr,)

    def __str__(self) -> str:
        return f"({self.expr})"


def walk(node: Expr) -> Iterator[Expr]:
    """Every node of the tree, parents before children."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))


_DURATION_UNITS = (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def format_duration(seconds: float) -> str:
    """Seconds as Prometheus prints a duration: ``5m``, ``1h30m``, ``1500ms``, ``-5m``."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis % 1000:
        whole, rest = divmod(millis, 1000)
        return (format_duration(whole) if whole else "") + f"{rest}ms"
    remaining = millis // 1000
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
