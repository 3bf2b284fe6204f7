"""A recursive-descent parser for the PromQL subset promscope evaluates.

Precedence, lowest first, as Prometheus's grammar has it: ``or``; ``and``
``unless``; comparisons; ``+ -``; ``* / %``; ``^`` (right-associative).
Unary minus binds tighter than ``*`` but looser than ``^`` (``-2 ^ 2`` is
``-4``). Type checks happen here, as in Prometheus's ``checkAST``, so a query
that cannot run fails before any data is read, with the column of the
offending part.

What promscope does not evaluate is refused with a message that says so
(subqueries, ``@``, ``group_left``/``group_right``, functions outside the
subset), never parsed into something else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from promscope.query.ast import (
    AGGREGATIONS,
    COMPARISONS,
    SET_OPERATORS,
    Aggregate,
    Binary,
    Call,
    Expr,
    LabelMatcher,
    MatrixSelector,
    NumberLiteral,
    Paren,
    StringLiteral,
    Unary,
    ValueType,
    VectorMatching,
    VectorSelector,
)
from promscope.query.lexer import QueryError, Token, TokenKind, number_value, parse_duration, tokenize

__all__ = ["FUNCTIONS", "Function", "parse"]


@dataclass(frozen=True, slots=True)
class Function:
    """A function's signature: argument types (the last ``optional`` may be left out) and result."""

    name: str
    args: tuple[ValueType, ...]
    returns: ValueType
    optional: int = 0


_S, _V, _M = ValueType.SCALAR, ValueType.VECTOR, ValueType.MATRIX

RANGE_FUNCTIONS = (
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "deriv",
    "changes",
    "resets",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "last_over_time",
)
ELEMENTWISE = ("abs", "ceil", "floor", "exp", "sqrt", "ln", "log2", "log10", "sgn")

FUNCTIONS: dict[str, Function] = {
    **{name: Function(name, (_M,), _V) for name in RANGE_FUNCTIONS},
    **{name: Function(name, (_V,), _V) for name in ELEMENTWISE},
    "round": Function("round", (_V, _S), _V, optional=1),
    "clamp": Function("clamp", (_V, _S, _S), _V),
    "clamp_min": Function("clamp_min", (_V, _S), _V),
    "clamp_max": Function("clamp_max", (_V, _S), _V),
    "histogram_quantile": Function("histogram_quantile", (_S, _V), _V),
    "time": Function("time", (), _S),
    "vector": Function("vector", (_S,), _V),
    "scalar": Function("scalar", (_V,), _S),
    "sort": Function("sort", (_V,), _V),
    "sort_desc": Function("sort_desc", (_V,), _V),
    "timestamp": Function("timestamp", (_V,), _V),
}
"""Every function promscope evaluates, by name."""

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    **dict.fromkeys(COMPARISONS, 3),
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "^": 6,
}
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse(expression: str) -> Expr:
    """Parse ``expression`` into a checked syntax tree. Raises :class:`QueryError` with the column."""
    return _Parser(expression).parse()


class _Parser:
    def __init__(self, expression: str) -> None:
        self.text = expression
        self.tokens = tokenize(expression)
        self.index = 0

    # -- token helpers --------------------------------------------------------------------------------

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def at(self, kind: TokenKind) -> bool:
        """True when the current token is of ``kind`` (a method, so type checkers do not narrow it)."""
        return self.token.kind is kind

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not TokenKind.EOF:
            self.index += 1
        return token

    def error(self, reason: str, pos: int | None = None) -> QueryError:
        return QueryError(reason, self.text, self.token.pos if pos is None else pos)

    def unexpected(self, context: str = "", token: Token | None = None) -> QueryError:
        token = token or self.token
        words = f"unexpected {token.describe()}"
        if context:
            words += f" {context}"
        return QueryError(words, self.text, token.pos)

    def expect(self, kind: TokenKind, context: str) -> Token:
        if self.token.kind is not kind:
            raise self.unexpected(context)
        return self.advance()

    def is_keyword(self, word: str, token: Token | None = None) -> bool:
        token = token or self.token
        return token.kind is TokenKind.IDENT and token.lower == word

    # -- grammar --------------------------------------------------------------------------------------

    def parse(self) -> Expr:
        if self.at(TokenKind.EOF):
            raise self.error("no expression found in input")
        expr = self.binary(0)
        if self.at(TokenKind.RIGHT_PAREN):
            raise self.unexpected()
        if not self.at(TokenKind.EOF):
            raise self.unexpected()
        return expr

    def binary_operator(self) -> str | None:
        token = self.token
        if token.kind is TokenKind.OPERATOR and token.text in _PRECEDENCE:
            return token.text
        if token.kind is TokenKind.IDENT and token.lower in SET_OPERATORS:
            return token.lower
        if token.kind is TokenKind.IDENT and token.lower == "atan2":
            raise self.error("the atan2 operator is not supported by promscope")
        return None

    def binary(self, min_precedence: int) -> Expr:
        lhs = self.unary()
        while True:
            op = self.binary_operator()
            if op is None:
                return lhs
            precedence = _PRECEDENCE[op]
            if precedence < min_precedence:
                return lhs
            op_token = self.advance()
            bool_modifier = False
            if self.is_keyword("bool"):
                if op not in COMPARISONS:
                    raise self.error("bool modifier can only be used on comparison operators")
                self.advance()
                bool_modifier = True
            matching = self.vector_matching()
            rhs = self.binary(precedence if op == "^" else precedence + 1)
            lhs = self.check_binary(
                Binary(op, lhs, rhs, bool_modifier, matching, pos=lhs.pos, op_pos=op_token.pos), op_token
            )

    def vector_matching(self) -> VectorMatching:
        if not (self.is_keyword("on") or self.is_keyword("ignoring")):
            if self.is_keyword("group_left") or self.is_keyword("group_right"):
                raise self.error(f"{self.token.lower} needs on(...) or ignoring(...) before it")
            return VectorMatching()
        on = self.advance().lower == "on"
        labels = self.label_list("in vector matching")
        if self.is_keyword("on") or self.is_keyword("ignoring"):
            raise self.unexpected()
        if self.is_keyword("group_left") or self.is_keyword("group_right"):
            raise self.error(
                f"{self.token.lower} (many-to-one matching) is not supported by promscope; "
                "use one-to-one matching with on(...) or ignoring(...)"
            )
        return VectorMatching(on=on, labels=labels, written=True)

    def label_list(self, context: str) -> tuple[str, ...]:
        self.expect(TokenKind.LEFT_PAREN, f'{context}, expected "("')
        labels: list[str] = []
        while not self.at(TokenKind.RIGHT_PAREN):
            token = self.token
            if (token.kind is TokenKind.IDENT and _LABEL_NAME.match(token.text)) or (
                token.kind is TokenKind.STRING
            ):
                labels.append(token.text)
            else:
                raise self.unexpected(f"{context}, expected label")
            self.advance()
            if self.at(TokenKind.COMMA):
                self.advance()
            elif not self.at(TokenKind.RIGHT_PAREN):
                raise self.unexpected(f'{context}, expected "," or ")"')
        self.advance()
        return tuple(labels)

    def unary(self) -> Expr:
        token = self.token
        if token.kind is TokenKind.OPERATOR and token.text in ("+", "-"):
            self.advance()
            operand = self.binary(_PRECEDENCE["^"])
            if operand.type not in (ValueType.SCALAR, ValueType.VECTOR):
                raise QueryError(
                    "unary expression only allowed on expressions of type scalar or instant vector, "
                    f'got "{operand.type.description}"',
                    self.text,
                    token.pos,
                )
            if isinstance(operand, NumberLiteral):
                value = -operand.value if token.text == "-" else operand.value
                return NumberLiteral(value, pos=token.pos)
            if token.text == "+":
                return operand
            return Unary("-", operand, pos=token.pos)
        return self.postfix(self.primary())

    def postfix(self, expr: Expr) -> Expr:
        while True:
            token = self.token
            if token.kind is TokenKind.LEFT_BRACKET:
                expr = self.range_or_subquery(expr)
            elif self.is_keyword("offset"):
                expr = self.offset(expr)
            elif token.kind is TokenKind.AT:
                raise self.error("the @ modifier is not supported by promscope")
            else:
                return expr

    def range_or_subquery(self, expr: Expr) -> Expr:
        bracket = self.advance()
        duration = self.token
        if duration.kind is not TokenKind.DURATION and not (
            duration.kind is TokenKind.NUMBER and self.peek().kind is TokenKind.RIGHT_BRACKET
        ):
            if duration.kind is TokenKind.COLON:
                raise self.error("subqueries are not supported by promscope")
            raise self.unexpected("in range selector, expected duration")
        self.advance()
        if self.at(TokenKind.COLON):
            raise self.error("subqueries are not supported by promscope", bracket.pos)
        self.expect(TokenKind.RIGHT_BRACKET, 'in range selector, expected "]"')
        if not isinstance(expr, VectorSelector):
            raise QueryError("ranges only allowed for vector selectors", self.text, expr.pos)
        if expr.offset:
            raise QueryError("offset must follow the range: write foo[5m] offset 1h", self.text, expr.pos)
        seconds = self.duration_seconds(duration)
        if seconds <= 0:
            raise QueryError("range must be greater than 0", self.text, duration.pos)
        return MatrixSelector(expr, seconds, pos=expr.pos)

    def duration_seconds(self, token: Token) -> float:
        if token.kind is TokenKind.NUMBER:
            return number_value(token)
        return parse_duration(token.text, token.pos, self.text)

    def offset(self, expr: Expr) -> Expr:
        keyword = self.advance()
        sign = 1.0
        if self.at(TokenKind.OPERATOR) and self.token.text in ("-", "+"):
            sign = -1.0 if self.advance().text == "-" else 1.0
        if not self.at(TokenKind.DURATION):
            raise self.unexpected("in offset, expected duration")
        seconds = sign * parse_duration(self.token.text, self.token.pos, self.text)
        self.advance()
        if isinstance(expr, VectorSelector):
            if expr.offset:
                raise QueryError("offset may not be set multiple times", self.text, expr.pos)
            return VectorSelector(expr.name, expr.matchers, seconds, pos=expr.pos)
        if isinstance(expr, MatrixSelector):
            inner = expr.vector
            if inner.offset:
                raise QueryError("offset may not be set multiple times", self.text, expr.pos)
            return MatrixSelector(
                VectorSelector(inner.name, inner.matchers, seconds, pos=inner.pos), expr.range, pos=expr.pos
            )
        raise QueryError(
            "offset modifier must be preceded by an instant vector selector or range vector selector "
            "or a subquery",
            self.text,
            expr.pos if expr.pos < keyword.pos else keyword.pos,
        )

    def primary(self) -> Expr:
        token = self.token
        kind = token.kind
        if kind is TokenKind.NUMBER:
            self.advance()
            return NumberLiteral(number_value(token), pos=token.pos)
        if kind is TokenKind.STRING:
            self.advance()
            return StringLiteral(token.text, pos=token.pos)
        if kind is TokenKind.LEFT_PAREN:
            self.advance()
            if self.at(TokenKind.RIGHT_PAREN):
                raise self.unexpected()
            inner = self.binary(0)
            if not self.at(TokenKind.RIGHT_PAREN):
                if self.at(TokenKind.EOF):
                    raise QueryError("unclosed left parenthesis", self.text, token.pos)
                raise self.unexpected()
            self.advance()
            return Paren(inner, pos=token.pos)
        if kind is TokenKind.LEFT_BRACE:
            return self.selector(None, token.pos)
        if kind is TokenKind.IDENT:
            return self.identifier()
        if kind is TokenKind.RIGHT_PAREN:
            raise self.unexpected()
        if kind is TokenKind.EOF:
            raise self.error("unexpected end of input")
        raise self.unexpected()

    def identifier(self) -> Expr:
        token = self.token
        following = self.peek()
        lower = token.lower
        if lower in AGGREGATIONS and (
            following.kind is TokenKind.LEFT_PAREN
            or self.is_keyword("by", following)
            or self.is_keyword("without", following)
        ):
            return self.aggregate()
        if following.kind is TokenKind.LEFT_PAREN:
            return self.call()
        if (
            lower in ("by", "without", "bool", "on", "ignoring", "group_left", "group_right")
            or lower in SET_OPERATORS
        ):
            raise self.unexpected()
        self.advance()
        return self.selector(token.text, token.pos)

    def call(self) -> Expr:
        name_token = self.advance()
        function = FUNCTIONS.get(name_token.text)
        if function is None:
            known = name_token.text in _KNOWN_UPSTREAM
            reason = (
                f'function "{name_token.text}" is not supported by promscope'
                if known
                else f'unknown function with name "{name_token.text}"'
            )
            raise QueryError(reason, self.text, name_token.pos)
        self.advance()  # (
        args: list[Expr] = []
        while not self.at(TokenKind.RIGHT_PAREN):
            if self.at(TokenKind.EOF):
                raise QueryError(
                    "unclosed left parenthesis", self.text, name_token.pos + len(name_token.text)
                )
            args.append(self.binary(0))
            if self.at(TokenKind.COMMA):
                self.advance()
            elif self.at(TokenKind.EOF):
                raise QueryError("unclosed left parenthesis", self.text, name_token.end)
            elif not self.at(TokenKind.RIGHT_PAREN):
                raise self.unexpected('in call, expected "," or ")"')
        self.advance()
        self.check_call(function, args, name_token)
        return Call(function.name, tuple(args), function.returns, pos=name_token.pos)

    def check_call(self, function: Function, args: Sequence[Expr], token: Token) -> None:
        name = function.name
        required = len(function.args) - function.optional
        if function.optional:
            if len(args) < required:
                raise QueryError(
                    f'expected at least {required} argument(s) in call to "{name}", got {len(args)}',
                    self.text,
                    token.pos,
                )
            if len(args) > len(function.args):
                raise QueryError(
                    f'expected at most {len(function.args)} argument(s) in call to "{name}", got {len(args)}',
                    self.text,
                    token.pos,
                )
        elif len(args) != len(function.args):
            raise QueryError(
                f'expected {len(function.args)} argument(s) in call to "{name}", got {len(args)}',
                self.text,
                token.pos,
            )
        for arg, expected in zip(args, function.args, strict=False):
            if arg.type is not expected:
                raise QueryError(
                    f'expected type {expected.description} in call to function "{name}", '
                    f"got {arg.type.description}",
                    self.text,
                    arg.pos,
                )

    def aggregate(self) -> Expr:
        op_token = self.advance()
        op = op_token.lower
        grouping: tuple[str, ...] = ()
        without = False
        has_grouping = False
        if self.is_keyword("by") or self.is_keyword("without"):
            without = self.advance().lower == "without"
            grouping = self.label_list("in grouping opts")
            has_grouping = True
        if not self.at(TokenKind.LEFT_PAREN):
            raise self.unexpected('in aggregation, expected "("')
        open_paren = self.advance()
        args: list[Expr] = []
        while not self.at(TokenKind.RIGHT_PAREN):
            if self.at(TokenKind.EOF):
                raise QueryError("unclosed left parenthesis", self.text, open_paren.pos)
            args.append(self.binary(0))
            if self.at(TokenKind.COMMA):
                self.advance()
            elif self.at(TokenKind.EOF):
                raise QueryError("unclosed left parenthesis", self.text, open_paren.pos)
            elif not self.at(TokenKind.RIGHT_PAREN):
                raise self.unexpected('in aggregation, expected "," or ")"')
        self.advance()
        if self.is_keyword("by") or self.is_keyword("without"):
            if has_grouping:
                raise self.unexpected("in aggregation: grouping given twice")
            without = self.advance().lower == "without"
            grouping = self.label_list("in grouping opts")
            has_grouping = True
        wanted = 2 if op in ("topk", "bottomk") else 1
        if len(args) != wanted:
            raise QueryError(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {wanted}, got {len(args)}",
                self.text,
                op_token.pos,
            )
        param = args[0] if wanted == 2 else None
        expr = args[-1]
        if param is not None and param.type is not ValueType.SCALAR:
            raise QueryError(
                f"expected type scalar in aggregation parameter, got {param.type.description}",
                self.text,
                param.pos,
            )
        if expr.type is not ValueType.VECTOR:
            raise QueryError(
                f"expected type instant vector in aggregation expression, got {expr.type.description}",
                self.text,
                expr.pos,
            )
        return Aggregate(op, expr, param, grouping, without, has_grouping, pos=op_token.pos)

    def selector(self, name: str | None, pos: int) -> VectorSelector:
        matchers: list[LabelMatcher] = []
        if self.at(TokenKind.LEFT_BRACE):
            self.advance()
            while not self.at(TokenKind.RIGHT_BRACE):
                if self.at(TokenKind.STRING) and self.peek().kind in (
                    TokenKind.COMMA,
                    TokenKind.RIGHT_BRACE,
                ):
                    quoted = self.advance()
                    if name is not None:
                        raise QueryError(
                            f'metric name must not be set twice: "{name}" or "{quoted.text}"',
                            self.text,
                            quoted.pos,
                        )
                    name = quoted.text
                else:
                    matchers.append(self.matcher())
                if self.at(TokenKind.COMMA):
                    self.advance()
                elif not self.at(TokenKind.RIGHT_BRACE):
                    raise self.unexpected('in label matching, expected "," or "}"')
            self.advance()
        for matcher in matchers:
            if matcher.name == "__name__" and matcher.op == "=" and name is not None:
                raise QueryError(
                    f'metric name must not be set twice: "{name}" or "{matcher.value}"', self.text, pos
                )
        if name is not None:
            matchers.insert(0, LabelMatcher.make("__name__", "=", name))
        if not any(not m.matches_empty for m in matchers):
            raise QueryError("vector selector must contain at least one non-empty matcher", self.text, pos)
        return VectorSelector(name, tuple(matchers), pos=pos)

    def matcher(self) -> LabelMatcher:
        label = self.token
        if label.kind is TokenKind.STRING or (
            label.kind is TokenKind.IDENT and _LABEL_NAME.match(label.text)
        ):
            name = label.text
        else:
            raise self.unexpected("in label matching, expected label")
        self.advance()
        op_token = self.token
        if op_token.kind is TokenKind.EQUAL:
            op = "="
        elif op_token.kind is TokenKind.OPERATOR and op_token.text in ("!=", "=~", "!~"):
            op = op_token.text
        else:
            raise self.unexpected("in label matching, expected label matching operator")
        self.advance()
        value = self.token
        if value.kind is not TokenKind.STRING:
            raise self.unexpected("in label matching, expected string")
        self.advance()
        try:
            return LabelMatcher.make(name, op, value.text)
        except re.error as exc:
            where = value.pos + 1 + (exc.pos or 0)
            raise QueryError(
                f"invalid regular expression {value.text!r}: {exc.msg}", self.text, where
            ) from None

    # -- checks ---------------------------------------------------------------------------------------

    def check_binary(self, node: Binary, op_token: Token) -> Binary:
        op = node.op
        lhs_type, rhs_type = node.lhs.type, node.rhs.type
        for side in (node.lhs, node.rhs):
            if side.type not in (ValueType.SCALAR, ValueType.VECTOR):
                raise QueryError(
                    "binary expression must contain only scalar and instant vector types", self.text, side.pos
                )
        scalars = lhs_type is ValueType.SCALAR and rhs_type is ValueType.SCALAR
        if op in SET_OPERATORS:
            if lhs_type is ValueType.SCALAR or rhs_type is ValueType.SCALAR:
                raise QueryError(
                    f'set operator "{op}" not allowed in binary scalar expression', self.text, op_token.pos
                )
        elif op in COMPARISONS and scalars and not node.bool_modifier:
            raise QueryError("comparisons between scalars must use BOOL modifier", self.text, op_token.pos)
        if node.matching.written and (lhs_type is ValueType.SCALAR or rhs_type is ValueType.SCALAR):
            raise QueryError("vector matching only allowed between instant vectors", self.text, op_token.pos)
        return node


_KNOWN_UPSTREAM = frozenset(
    {
        "absent",
        "absent_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "holt_winters",
        "hour",
        "label_join",
        "label_replace",
        "minute",
        "month",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "year",
        "acos",
        "asin",
        "atan",
        "cos",
        "sin",
        "tan",
        "deg",
        "rad",
        "pi",
    }
)
