"""The OpenMetrics parser: strict syntax, structure, exemplars, every OM code, prometheus_client parity."""

from __future__ import annotations

import math
import pathlib

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from promscope.exposition import openmetrics, parse
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.model import Exemplar, MetricFamily, MetricType, ParseResult, Severity

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"

View = list[tuple[str, str, list[tuple[str, tuple[tuple[str, str], ...], float, float | None]]]]


def run(body: str) -> ParseResult:
    return parse(body.encode(), format="openmetrics", semantics=False)


def found(body: str) -> list[tuple[int, int, str]]:
    return [(d.line, d.column, d.code) for d in run(body).diagnostics]


def test_metadata_samples_and_seconds_timestamps() -> None:
    result = run(
        '# TYPE foo_seconds counter\n# UNIT foo_seconds seconds\n# HELP foo_seconds Foo \\"x\\".\n'
        'foo_seconds_total{a="1"} 17.0 1520879607.789\nfoo_seconds_created{a="1"} 1520430000.123\n# EOF\n'
    )
    assert result.diagnostics == ()
    (family,) = result.families
    assert (family.name, family.type, family.unit, family.help) == (
        "foo_seconds",
        MetricType.COUNTER,
        "seconds",
        'Foo "x".',
    )
    assert [(s.name, s.value, s.timestamp, s.line) for s in family.samples] == [
        ("foo_seconds_total", 17.0, 1520879607.789, 4),
        ("foo_seconds_created", 1520430000.123, None, 5),
    ]
    assert result.lines == 6


def test_exemplars_are_parsed() -> None:
    result = run(
        "# TYPE h histogram\n"
        'h_bucket{le="1.0"} 3 # {trace_id="abc",span="x"} 0.5 1520879607.5\n'
        'h_bucket{le="+Inf"} 4 # {} 2\n'
        "h_count 4\nh_sum 3.5\n# EOF\n"
    )
    assert result.diagnostics == ()
    samples = result.families[0].samples
    assert samples[0].exemplar == Exemplar((("trace_id", "abc"), ("span", "x")), 0.5, 1520879607.5)
    assert samples[1].exemplar == Exemplar((), 2.0, None)
    assert samples[2].exemplar is None


def test_number_grammar() -> None:
    body = "".join(
        f'm{{v="{i}"}} {tok}\n' for i, tok in enumerate(["1", "-1.5e3", ".5", "+Inf", "-inf", "NaN"])
    )
    result = run(body + "# EOF\n")
    assert result.diagnostics == ()
    values = [s.value for s in result.families[0].samples]
    assert values[:5] == [1.0, -1500.0, 0.5, math.inf, -math.inf] and math.isnan(values[5])


def test_final_newline_after_eof_is_optional() -> None:
    assert run("m 1\n# EOF").diagnostics == ()
    assert [c for _, _, c in found("m 1\n# EOF\n\n")] == [openmetrics.AFTER_EOF]


def test_lines_after_eof_are_counted_and_not_read() -> None:
    result = run("m 1\n# EOF\nm 2\n\nm{ 3\n")
    assert [(d.line, d.code) for d in result.diagnostics] == [(3, openmetrics.AFTER_EOF)]
    assert "3 line(s) after # EOF (line 2)" in result.diagnostics[0].message
    assert [s.value for s in result.families[0].samples] == [1.0]
    assert result.lines == 5


def test_label_bodies_shared_with_the_previous_line_are_still_checked() -> None:
    body = 'm{a="1",b="2"} 1\nm{a="1",a="2"} 2\nm{a="1",b="3"} 3\nm{a="1",b="3",} 4\nm{a="1"} 5\n# EOF\n'
    result = run(body)
    assert [(d.line, d.code) for d in result.diagnostics] == [
        (2, openmetrics.DUPLICATE_LABEL),
        (4, openmetrics.SYNTAX),
    ]
    assert [(s.labels, s.value) for s in result.families[0].samples] == [
        ((("a", "1"), ("b", "2")), 1.0),
        ((("a", "1"), ("b", "3")), 3.0),
        ((("a", "1"),), 5.0),
    ]


def test_type_decides_the_sample_names_a_family_may_have() -> None:
    for type_word, good in [
        ("counter", ["x_total", "x_created"]),
        ("histogram", ["x_bucket", "x_count", "x_sum", "x_created"]),
        ("gaugehistogram", ["x_bucket", "x_gcount", "x_gsum"]),
        ("summary", ["x", "x_count", "x_sum", "x_created"]),
        ("info", ["x_info"]),
        ("stateset", ["x"]),
        ("gauge", ["x"]),
        ("unknown", ["x"]),
    ]:
        labels = '{le="+Inf"}' if type_word.endswith("histogram") else ""
        body = f"# TYPE x {type_word}\n" + "".join(
            f"{n}{labels if n.endswith('_bucket') else ''} 1\n" for n in good
        )
        result = run(body + "# EOF\n")
        assert result.diagnostics == (), type_word
        assert [len(f.samples) for f in result.families] == [len(good)], type_word


def test_counter_named_with_total_gets_a_hint() -> None:
    result = run("# TYPE c_total counter\nc_total 1\n# EOF\n")
    assert [d.code for d in result.diagnostics] == [openmetrics.WRONG_SUFFIX]
    assert "# TYPE c counter" in result.diagnostics[0].message


def test_unknown_family_starts_at_a_sample_that_is_not_a_member() -> None:
    result = run("# TYPE g gauge\ng 1\ng_total 2\n# EOF\n")
    assert [(f.name, f.type) for f in result.families] == [
        ("g", MetricType.GAUGE),
        ("g_total", MetricType.UNKNOWN),
    ]
    assert result.diagnostics == ()


def test_interleaved_families_are_an_error_and_merged() -> None:
    result = run('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n# EOF\n')
    assert [(d.line, d.code, d.severity) for d in result.diagnostics] == [
        (5, openmetrics.INTERLEAVED, Severity.ERROR)
    ]
    assert [(f.name, len(f.samples)) for f in result.families] == [("a", 2), ("b", 1)]


CASES = [
    (openmetrics.MISSING_EOF, "m 1\n", (1, 0)),
    (openmetrics.AFTER_EOF, "m 1\n# EOF\nm 2\n", (3, 1)),
    (openmetrics.BLANK_LINE, "m 1\n\nn 1\n# EOF\n", (2, 0)),
    (openmetrics.SYNTAX, "m  1\n# EOF\n", (1, 3)),
    (openmetrics.SYNTAX, 'm{a="1",} 1\n# EOF\n', (1, 9)),
    (openmetrics.SYNTAX, "# HELP m\n# EOF\n", (1, 9)),
    (openmetrics.INVALID_METRIC_NAME, "1m 1\n# EOF\n", (1, 1)),
    (openmetrics.INVALID_METRIC_NAME, "# TYPE 1m gauge\n# EOF\n", (1, 8)),
    (openmetrics.INVALID_LABEL_NAME, 'm{1a="x"} 1\n# EOF\n', (1, 3)),
    (openmetrics.INVALID_VALUE, "m -nan\n# EOF\n", (1, 3)),
    (openmetrics.INVALID_VALUE, "m 1e999\n# EOF\n", (1, 3)),
    (openmetrics.INVALID_TIMESTAMP, "m 1 +Inf\n# EOF\n", (1, 5)),
    (openmetrics.DUPLICATE_LABEL, 'm{a="1",a="2"} 1\n# EOF\n', (1, 9)),
    (openmetrics.DUPLICATE_METADATA, "# UNIT m_s s\n# UNIT m_s s\n# EOF\n", (2, 1)),
    (openmetrics.METADATA_AFTER_SAMPLES, "m 1\n# HELP m x\n# EOF\n", (2, 1)),
    (openmetrics.INVALID_TYPE, "# TYPE m untyped\n# EOF\n", (1, 10)),
    (openmetrics.INTERLEAVED, 'a 1\nb 1\na{x="1"} 1\n# EOF\n', (3, 1)),
    (openmetrics.INTERLEAVED, "# TYPE a gauge\n# TYPE b gauge\n# HELP a x\n# EOF\n", (3, 1)),
    (openmetrics.WRONG_SUFFIX, "# TYPE c counter\nc 1\n# EOF\n", (2, 1)),
    (openmetrics.COMMENT, "# hello\n# EOF\n", (1, 1)),
    (openmetrics.INVALID_EXEMPLAR, 'm_total 1 # {a="b"}\n# EOF\n', (1, 20)),
    (openmetrics.INVALID_EXEMPLAR, "m_total 1 # x\n# EOF\n", (1, 13)),
    (openmetrics.INVALID_EXEMPLAR, 'm_total 1 # {a="1",a="2"} 1\n# EOF\n', (1, 20)),
    (openmetrics.UNDEFINED_ESCAPE, 'm{a="\\q"} 1\n# EOF\n', (1, 6)),
    (openmetrics.NAME_CLASH, "# TYPE c counter\n# TYPE c_created gauge\n# EOF\n", (2, 0)),
]


@pytest.mark.parametrize(("code", "body", "where"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_code(code: str, body: str, where: tuple[int, int]) -> None:
    assert found(body) == [(*where, code)]


def test_every_declared_code_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(openmetrics.CODES)


def test_every_problem_in_one_pass() -> None:
    body = '# TYPE g gauge\ng 1\ng  2\ng{a="x"} 3\n# nope\ng{a="y"} 1_0\ng{a="z"} 4\n# EOF\n'
    result = run(body)
    assert [(d.line, d.code) for d in result.diagnostics] == [
        (3, openmetrics.SYNTAX),
        (5, openmetrics.COMMENT),
        (6, openmetrics.INVALID_VALUE),
    ]
    assert [s.line for s in result.families[0].samples] == [2, 4, 7]


def test_parse_openmetrics_api() -> None:
    sink = DiagnosticSink()
    families, lines = openmetrics.parse_openmetrics("a 1\n# EOF\n", sink, ParseLimits())
    assert [f.name for f in families] == ["a"] and lines == 2 and sink.diagnostics == []


# --- prometheus_client parity -------------------------------------------------------------------


def _client_view(body: str) -> View:
    out: View = []
    for metric in text_string_to_metric_families(body):
        samples = [
            (
                s.name,
                tuple(sorted(s.labels.items())),
                float(s.value),
                None if s.timestamp is None else float(s.timestamp),
            )
            for s in metric.samples
        ]
        if samples:
            out.append((metric.name, metric.type, samples))
    return out


def _our_view(families: tuple[MetricFamily, ...]) -> View:
    return [
        (f.name, f.type.value, [(s.name, tuple(sorted(s.labels)), s.value, s.timestamp) for s in f.samples])
        for f in families
        if f.samples
    ]


VALID = sorted((FIXTURES / "valid" / "openmetrics").glob("*.om"))


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_same_families_as_prometheus_client(path: pathlib.Path) -> None:
    body = path.read_text(encoding="utf-8")
    ours = _our_view(run(body).families)
    assert repr(ours).replace("nan", "NaN") == repr(_client_view(body)).replace("nan", "NaN")


def test_exemplars_match_prometheus_client() -> None:
    body = (FIXTURES / "valid" / "openmetrics" / "exemplars_and_timestamps.om").read_text(encoding="utf-8")
    theirs = [
        (s.exemplar.labels, s.exemplar.value, s.exemplar.timestamp)
        for m in text_string_to_metric_families(body)
        for s in m.samples
        if s.exemplar
    ]
    ours = [
        (dict(s.exemplar.labels), s.exemplar.value, s.exemplar.timestamp)
        for f in run(body).families
        for s in f.samples
        if s.exemplar
    ]
    assert [(labels, float(v), None if t is None else float(t)) for labels, v, t in theirs] == ours


# Where prometheus_client accepts what OpenMetrics 1.0 forbids.
DIFFERENCES = [
    (
        'overflowing value: "Floating point numbers MUST fit within the range of a 64-bit floating '
        'point value" (Text format, Numbers)',
        "m 1e999\n# EOF\n",
        openmetrics.INVALID_VALUE,
    ),
    (
        'signed NaN: the ABNF has number =/ "nan" with no SIGN (only inf/infinity take one)',
        "m +nan\n# EOF\n",
        openmetrics.INVALID_VALUE,
    ),
]


@pytest.mark.parametrize(("why", "body", "code"), DIFFERENCES, ids=["overflow", "signed-nan"])
def test_deliberate_differences_from_prometheus_client(why: str, body: str, code: str) -> None:
    assert list(text_string_to_metric_families(body)), "prometheus_client accepts it"
    assert [c for _, _, c in found(body)] == [code], why
