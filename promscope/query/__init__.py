"""A PromQL subset evaluated over promscope's data.

::

    from promscope.query import Engine, SeriesSet, parse, QueryError

    expr = parse('sum by (namespace) (rate(http_requests_total{code=~"5.."}[5m]))')
    engine = Engine(SeriesSet.from_samples(samples))        # or any SeriesSource (the live store)
    engine.instant(expr, time=t).data()                     # Prometheus's /api/v1/query "data"
    engine.range(expr, start, end, step).data()             # /api/v1/query_range "data"

The subset: number and string literals; instant and range selectors with
``=``, ``!=``, ``=~``, ``!~`` (and ``{__name__=~"…"}``) and ``offset``;
rate, irate, increase, delta, idelta, deriv, changes, resets,
avg/min/max/sum/count/last_over_time, histogram_quantile (classic buckets),
abs, ceil, floor, round, exp, sqrt, ln, log2, log10, sgn, clamp, clamp_min,
clamp_max, time, vector, scalar, sort, sort_desc, timestamp; sum, avg, min,
max, count, topk, bottomk with ``by``/``without`` before or after the
argument; ``+ - * / % ^``, ``== != > < >= <=`` (with ``bool``),
``and``/``or``/``unless``, one-to-one ``on(…)``/``ignoring(…)`` matching;
parentheses and unary minus, with PromQL's precedence.

Not evaluated, and refused with a message that says so: subqueries, ``@``,
``group_left``/``group_right``, and functions outside the list.

Modules: :mod:`~promscope.query.lexer` (tokens, :class:`QueryError`),
:mod:`~promscope.query.parser` (:func:`parse`, the function table),
:mod:`~promscope.query.ast` (the tree), :mod:`~promscope.query.engine`
(:class:`Engine`, :class:`SeriesSet`, results).
"""

from __future__ import annotations

from promscope.query.ast import Expr, LabelMatcher, ValueType
from promscope.query.engine import (
    DEFAULT_LOOKBACK,
    Engine,
    QueryResult,
    ResultSeries,
    Series,
    SeriesLike,
    SeriesSet,
    SeriesSource,
    format_value,
)
from promscope.query.lexer import QueryError
from promscope.query.parser import FUNCTIONS, parse

__all__ = [
    "DEFAULT_LOOKBACK",
    "FUNCTIONS",
    "Engine",
    "Expr",
    "LabelMatcher",
    "QueryError",
    "QueryResult",
    "ResultSeries",
    "Series",
    "SeriesLike",
    "SeriesSet",
    "SeriesSource",
    "ValueType",
    "format_value",
    "parse",
]
