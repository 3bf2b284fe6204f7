"""Split a PromQL expression into tokens, each with its 0-based offset.

The lexer follows Prometheus's (``promql/parser/lex.go``) where it matters to
users: keywords and aggregation names are case-insensitive, function names
are not; ``5m`` is a duration wherever it appears (the parser decides whether
one is allowed there); numbers take Go's forms (``1e3``, ``0x1f``, ``.5``,
``Inf``, ``NaN``); strings take double or single quotes with Go escapes, or
backticks raw. An error is a :class:`~promscope.query.errors.QueryError`
naming the column.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from promscope.errors import PromscopeError

__all__ = ["KEYWORDS", "QueryError", "Token", "TokenKind", "number_value", "parse_duration", "tokenize"]


class QueryError(PromscopeError):
    """A query that cannot be parsed or evaluated.

    ``column`` is 1-based (0: the error is about the whole query, not a
    place in it); ``message`` reads as Prometheus's does, prefixed with the
    position (``1:5: parse error: unexpected <op:*>``); ``reason`` is the
    bare wording.
    """

    def __init__(self, reason: str, expression: str, pos: int | None, *, kind: str = "parse error") -> None:
        column = 0 if pos is None else pos + 1
        line, line_column = _line_and_column(expression, pos)
        where = f"{line}:{line_column}: " if pos is not None else ""
        super().__init__(f"{where}{kind}: {reason}", hint=_HINTS.get(kind, ""))
        self.reason = reason
        self.expression = expression
        self.column = column
        self.kind = kind

    def caret(self) -> str:
        """The expression's line with the problem and a caret under the column (two lines)."""
        if not self.column:
            return self.expression
        offset = self.column - 1
        line_start = self.expression.rfind("\n", 0, offset) + 1
        line_end = self.expression.find("\n", offset)
        line = self.expression[line_start : line_end if line_end >= 0 else None]
        return f"{line}\n{' ' * (offset - line_start)}^"


_HINTS = {
    "parse error": "see the caret under the expression; PromQL's syntax: https://prometheus.io/docs/prometheus/latest/querying/basics/"
}


def _line_and_column(expression: str, pos: int | None) -> tuple[int, int]:
    if pos is None:
        return 1, 0
    line = expression.count("\n", 0, pos) + 1
    return line, pos - (expression.rfind("\n", 0, pos) + 1) + 1


class TokenKind(enum.Enum):
    NUMBER = "number"
    STRING = "string"
    DURATION = "duration"
    IDENT = "identifier"
    OPERATOR = "operator"
    LEFT_PAREN = "("
    RIGHT_PAREN = ")"
    LEFT_BRACE = "{"
    RIGHT_BRACE = "}"
    LEFT_BRACKET = "["
    RIGHT_BRACKET = "]"
    COMMA = ","
    COLON = ":"
    AT = "@"
    EQUAL = "="
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    """The token as written (for STRING: the unquoted value)."""
    pos: int
    end: int

    @property
    def lower(self) -> str:
        return self.text.lower()

    def describe(self) -> str:
        """How an error message names the token, in Prometheus's words."""
        if self.kind is TokenKind.EOF:
            return "end of input"
        if self.kind is TokenKind.OPERATOR:
            return f"<op:{self.text}>"
        if self.kind is TokenKind.IDENT and self.lower in KEYWORDS:
            return f"<{self.lower}>"
        if self.kind is TokenKind.IDENT:
            return f"identifier {self.text!r}".replace("'", '"')
        if self.kind is TokenKind.NUMBER:
            return f'number "{self.text}"'
        if self.kind is TokenKind.DURATION:
            return f'duration "{self.text}"'
        if self.kind is TokenKind.STRING:
            return "string"
        names = {
            TokenKind.LEFT_PAREN: "left parenthesis '('",
            TokenKind.RIGHT_PAREN: "right parenthesis ')'",
            TokenKind.LEFT_BRACE: "left brace '{'",
            TokenKind.RIGHT_BRACE: "right brace '}'",
            TokenKind.LEFT_BRACKET: "left bracket '['",
            TokenKind.RIGHT_BRACKET: "right bracket ']'",
            TokenKind.COMMA: '","',
            TokenKind.COLON: '":"',
            TokenKind.AT: "<@>",
            TokenKind.EQUAL: "<=>",
        }
        return names.get(self.kind, self.text)


KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"}
)
"""Words with a meaning of their own (compared lower-cased, as Prometheus does)."""

_OPERATORS = ("==", "!=", ">=", "<=", "=~", "!~", "+", "-", "*", "/", "%", "^", ">", "<")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_DURATION = re.compile(r"(?:[0-9]+(?:ms|y|w|d|h|m|s))+")
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_SPECIAL_NUMBERS = {"inf": float("inf"), "nan": float("nan")}
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_UNIT_ORDER = ("y", "w", "d", "h", "m", "s", "ms")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}


def parse_duration(text: str, pos: int = 0, expression: str = "") -> float:
    """A Prometheus duration (``1h30m``, ``500ms``) in seconds; units must go from largest to smallest."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise QueryError(f'not a valid duration string: "{text}"', expression, pos)
    last = -1
    total = 0.0
    for number, unit in parts:
        rank = _UNIT_ORDER.index(unit)
        if rank <= last:
            raise QueryError(f'not a valid duration string: "{text}"', expression, pos)
        last = rank
        total += int(number) * _UNIT_SECONDS[unit]
    return total


def tokenize(expression: str) -> list[Token]:
    """The tokens of ``expression``, ending with an EOF token. Raises QueryError."""
    tokens: list[Token] = []
    text = expression
    pos = 0
    length = len(text)
    brace_depth = 0
    bracket_depth = 0
    while pos < length:
        ch = text[pos]
        if ch.isspace():
            pos += 1
            continue
        if ch == "#":  # a comment runs to the end of the line
            newline = text.find("\n", pos)
            pos = length if newline < 0 else newline
            continue
        start = pos
        if ch in "\"'`":
            value, pos = _string(text, pos)
            tokens.append(Token(TokenKind.STRING, value, start, pos))
            continue
        if ch.isdigit() or (ch == "." and pos + 1 < length and text[pos + 1].isdigit()):
            duration = _DURATION.match(text, pos)
            if duration and not _continues_word(text, duration.end()):
                pos = duration.end()
                tokens.append(Token(TokenKind.DURATION, text[start:pos], start, pos))
                continue
            number = _NUMBER.match(text, pos)
            assert number is not None
            pos = number.end()
            if _continues_word(text, pos):
                raise QueryError(f'bad number or duration syntax: "{text[start : pos + 1]}"', text, start)
            tokens.append(Token(TokenKind.NUMBER, text[start:pos], start, pos))
            continue
        if ch == ":" and bracket_depth:
            pos += 1
            tokens.append(Token(TokenKind.COLON, ch, start, pos))
            continue
        if ch.isalpha() or ch in "_:":
            found = _IDENT.match(text, pos)
            assert found is not None
            pos = found.end()
            word = found.group()
            if word.lower() in _SPECIAL_NUMBERS and brace_depth == 0:
                tokens.append(Token(TokenKind.NUMBER, word, start, pos))
            else:
                tokens.append(Token(TokenKind.IDENT, word, start, pos))
            continue
        two = text[pos : pos + 2]
        if two in _OPERATORS:
            pos += 2
            tokens.append(Token(TokenKind.OPERATOR, two, start, pos))
            continue
        if ch == "=":
            pos += 1
            tokens.append(Token(TokenKind.EQUAL, ch, start, pos))
            continue
        if ch == "!":
            following = text[pos + 1 : pos + 2]
            if following:
                raise QueryError(f"unexpected character after '!': {following!r}", text, pos + 1)
            raise QueryError("unexpected end of input after '!'", text, pos)
        if ch in _OPERATORS:
            pos += 1
            tokens.append(Token(TokenKind.OPERATOR, ch, start, pos))
            continue
        kind = _PUNCTUATION.get(ch)
        if kind is None:
            raise QueryError(f"unexpected character: {ch!r}", text, pos)
        if kind is TokenKind.LEFT_BRACE:
            brace_depth += 1
        elif kind is TokenKind.RIGHT_BRACE:
            brace_depth = max(0, brace_depth - 1)
        elif kind is TokenKind.LEFT_BRACKET:
            bracket_depth += 1
        elif kind is TokenKind.RIGHT_BRACKET:
            bracket_depth = max(0, bracket_depth - 1)
        pos += 1
        tokens.append(Token(kind, ch, start, pos))
    tokens.append(Token(TokenKind.EOF, "", length, length))
    return tokens


_PUNCTUATION = {
    "(": TokenKind.LEFT_PAREN,
    ")": TokenKind.RIGHT_PAREN,
    "{": TokenKind.LEFT_BRACE,
    "}": TokenKind.RIGHT_BRACE,
    "[": TokenKind.LEFT_BRACKET,
    "]": TokenKind.RIGHT_BRACKET,
    ",": TokenKind.COMMA,
    ":": TokenKind.COLON,
    "@": TokenKind.AT,
}


def _continues_word(text: str, pos: int) -> bool:
    return pos < len(text) and (text[pos].isalnum() or text[pos] == "_")


def _string(text: str, pos: int) -> tuple[str, int]:
    quote = text[pos]
    start = pos
    pos += 1
    if quote == "`":
        end = text.find("`", pos)
        if end < 0:
            raise QueryError("unterminated raw string", text, start)
        return text[pos:end], end + 1
    out: list[str] = []
    while pos < len(text):
        ch = text[pos]
        if ch == quote:
            return "".join(out), pos + 1
        if ch == "\n":
            raise QueryError("unterminated quoted string", text, start)
        if ch != "\\":
            out.append(ch)
            pos += 1
            continue
        escaped = text[pos + 1 : pos + 2]
        if not escaped:
            break
        if escaped == quote:
            out.append(quote)
            pos += 2
        elif escaped in _ESCAPES:
            out.append(_ESCAPES[escaped])
            pos += 2
        elif escaped in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[escaped]
            digits = text[pos + 2 : pos + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise QueryError(f"invalid escape sequence '\\{escaped}'", text, pos)
            out.append(chr(int(digits, 16)))
            pos += 2 + width
        elif escaped in "01234567":
            digits = text[pos + 1 : pos + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits):
                raise QueryError(f"invalid escape sequence '\\{digits}'", text, pos)
            out.append(chr(int(digits, 8)))
            pos += 4
        else:
            raise QueryError(f"unknown escape sequence '\\{escaped}'", text, pos)
    raise QueryError("unterminated quoted string", text, start)


def number_value(token: Token) -> float:
    """The float a NUMBER token stands for."""
    special = _SPECIAL_NUMBERS.get(token.lower)
    if special is not None:
        return special
    if token.text[:2] in ("0x", "0X"):
        return float(int(token.text, 16))
    return float(token.text)
