"""The Prometheus text parser: values, grouping, every PS-2xx code, resync, and prometheus_client parity."""

from __future__ import annotations

import gc
import math
import pathlib
import random
import re
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from promscope.exposition import ParseCache, parse, text
from promscope.exposition._diag import DiagnosticSink, ParseLimits
from promscope.exposition._lex import collector_paused
from promscope.model import MetricFamily, MetricType, ParseResult, Severity

View = list[tuple[str, list[tuple[str, tuple[tuple[str, str], ...], float, float | None]]]]

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"


def run(body: str) -> ParseResult:
    return parse(body.encode(), format="text", semantics=False)


def found(body: str) -> list[tuple[int, int, str]]:
    return [(d.line, d.column, d.code) for d in run(body).diagnostics]


# --- values and layout --------------------------------------------------------------------------


def test_families_types_help_and_line_numbers() -> None:
    result = run(
        '# HELP a The a.\n# TYPE a counter\na{x="1"} 1\na{x="2"} 2 1700000000123\n\n# plain comment\nb 3\n'
    )
    assert result.diagnostics == ()
    a, b = result.families
    assert (a.name, a.type, a.help, a.line) == ("a", MetricType.COUNTER, "The a.", 1)
    assert [(s.labels, s.value, s.timestamp, s.line) for s in a.samples] == [
        ((("x", "1"),), 1.0, None, 3),
        ((("x", "2"),), 2.0, 1700000000.123, 4),
    ]
    assert (b.name, b.type, b.help, b.samples[0].line) == ("b", MetricType.UNKNOWN, None, 7)
    assert result.lines == 7
    assert result.extra == {"version": "0.0.4"}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("1", 1.0),
        ("-1.5", -1.5),
        ("1e3", 1000.0),
        ("1.5E-3", 0.0015),
        (".5", 0.5),
        ("5.", 5.0),
        ("0042", 42.0),
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("Inf", math.inf),
        ("inf", math.inf),
        ("+infinity", math.inf),
        ("NaN", math.nan),
        ("nan", math.nan),
    ],
)
def test_values_go_parsefloat_accepts(token: str, expected: float) -> None:
    result = run(f"m {token}\n")
    assert result.diagnostics == ()
    value = result.families[0].samples[0].value
    assert (math.isnan(value) and math.isnan(expected)) or value == expected


@pytest.mark.parametrize(
    "token", ["0x1p3", "1_000", "+NaN", "-nan", "1e999", "--1", "1e", "\u0661", "0x10", "Infinit"]
)
def test_values_go_parsefloat_rejects(token: str) -> None:
    assert [code for _, _, code in found(f"m {token}\n")] == [text.INVALID_VALUE]


def test_escapes_in_help_and_label_values() -> None:
    result = run('# HELP m a \\\\ b \\n c\nm{p="C:\\\\x",q="say \\"hi\\"\\nbye"} 1\n')
    family = result.families[0]
    assert family.help == "a \\ b \n c"
    assert family.samples[0].labels == (("p", "C:\\x"), ("q", 'say "hi"\nbye'))


def test_whitespace_variants_match_the_fast_path() -> None:
    plain = run('m{a="1",b="2"} 3 1000\n').families[0].samples[0]
    spaced = run('  m { a = "1" ,\tb="2" , }\t3   1000  \n').families[0].samples[0]
    assert (plain.name, plain.labels, plain.value, plain.timestamp) == (
        spaced.name,
        spaced.labels,
        spaced.value,
        spaced.timestamp,
    )


def test_label_pairs_and_names_are_shared_between_samples() -> None:
    families = run('m{a="x"} 1\nm{a="x",b="y"} 2\n').families
    first, second = families[0].samples
    assert first.labels[0] is second.labels[0]
    assert first.name is second.name


_BODIES = [
    # all but the last label shared: one look-up; then a repeated name in the last place
    'm{a="1",b="2",le="1"} 1',
    'm{a="1",b="2",le="2"} 2',
    'm{a="1",b="2",a="3"} 3',
    'm{a="1",b="2",b="3"} 4',
    'm{a="1",b="2",le="3"} 5',
    # the remembered body without its last label (a _sum after the _bucket lines)
    'm{a="1",b="2"} 6',
    'm{a="1",b="2",} 7',
    # all but the last two shared, same names; then other names, a repeat, a quote, braces
    'm{a="1",b="4",le="1"} 8',
    'm{a="1",c="4",le="1"} 9',
    'm{a="1",a="4",le="1"} 10',
    'm{a="1",b="4",b="1"} 11',
    'm{a="1",b="4",le="x\\"y"} 12',
    'm{a="1",b="}",le="{"} 13',
    'm{a="1"} 14',
    'm{a="1",a="1"} 15',
    'm{"} 16',
    'm{",} 17',
    "m{} 18",
]


def sample_view(body: str) -> list[tuple[int, tuple[tuple[str, str], ...]]]:
    result = run(body)
    samples = [s for family in result.families for s in family.samples]
    return sorted((int(s.value), s.labels) for s in samples) + [
        (d.line, (("code", d.code),)) for d in result.diagnostics
    ]


def test_remembered_label_bodies_read_as_each_line_alone() -> None:
    """The fast path reuses the previous body's labels; every line must read as it does alone."""
    together = sample_view("\n".join(_BODIES) + "\n")
    alone: list[tuple[int, tuple[tuple[str, str], ...]]] = []
    for lineno, line in enumerate(_BODIES, 1):
        for value, labels in sample_view(line + "\n"):
            alone.append((lineno if labels and labels[0][0] == "code" else value, labels))
    assert sorted(together) == sorted(alone)
    assert [line for line, labels in together if labels and labels[0][0] == "code"] == [
        3,
        4,
        10,
        11,
        15,
        16,
        17,
    ]


def test_new_sample_equals_the_dataclass_constructor() -> None:
    from promscope.exposition._lex import new_sample
    from promscope.model import Sample

    labels = (("a", "1"),)
    made = new_sample("m", labels, 1.5, 2.0, 7)
    assert type(made) is Sample
    assert made == Sample("m", labels, 1.5, 2.0, None, 7)
    assert hash(made) == hash(Sample("m", labels, 1.5, 2.0, None, 7))
    assert (made.exemplar, made.native_histogram) == (None, None)


@pytest.mark.parametrize(
    ("body", "lines"),
    [("", 0), ("\n", 1), ("m 1", 1), ("m 1\n", 1), ("m 1\n\n", 2), ("# c\nm 1\nm{", 3), ("m{\nm 1\n", 2)],
)
def test_line_count_and_numbers(body: str, lines: int) -> None:
    result = run(body)
    assert result.lines == lines
    assert [s.line for f in result.families for s in f.samples] == [
        n for n, line in enumerate(body.split("\n"), 1) if line == "m 1"
    ]


# --- grouping -----------------------------------------------------------------------------------


def test_histogram_and_summary_members_group_into_one_family() -> None:
    result = run(
        '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 3\nh_count 2\n'
        '# TYPE s summary\ns{quantile="0.5"} 1\ns_sum 2\ns_count 3\n'
        "# TYPE g gauge\ng_sum 1\n"
    )
    names = {f.name: [s.name for s in f.samples] for f in result.families}
    assert names == {
        "h": ["h_bucket", "h_bucket", "h_sum", "h_count"],
        "s": ["s", "s_sum", "s_count"],
        "g": [],
        "g_sum": ["g_sum"],  # a gauge has no _sum member: the sample starts its own untyped family
    }
    assert result.family("g_sum") == MetricFamily(
        "g_sum", MetricType.UNKNOWN, None, None, result.families[3].samples, 11
    )


def test_counter_type_names_the_sample_itself() -> None:
    result = run("# TYPE c_total counter\nc_total 1\n")
    assert [(f.name, f.type, len(f.samples)) for f in result.families] == [("c_total", MetricType.COUNTER, 1)]


def test_quoted_names_give_version_1_0_0() -> None:
    result = run('# HELP "my.metric" Dots.\n# TYPE "my.metric" gauge\n{"my.metric","a.b"="v"} 1\n')
    assert result.extra == {"version": "1.0.0"}
    family = result.families[0]
    assert (family.name, family.type, family.help) == ("my.metric", MetricType.GAUGE, "Dots.")
    assert family.samples[0].labels == (("a.b", "v"),)


def test_interleaved_family_is_merged_with_a_warning() -> None:
    result = run('a 1\nb 1\na{x="2"} 2\n')
    assert [(f.name, len(f.samples)) for f in result.families] == [("a", 2), ("b", 1)]
    assert [(d.line, d.code, d.severity) for d in result.diagnostics] == [
        (3, text.INTERLEAVED, Severity.WARNING)
    ]


# --- every PS-2xx code --------------------------------------------------------------------------

CASES = [
    (text.SYNTAX, 'm{a="1" b="2"} 1\n', (1, 9)),
    (text.SYNTAX, "m\n", (1, 2)),
    (text.SYNTAX, "m{a} 1\n", (1, 4)),
    (text.SYNTAX, "m 1 2 3\n", (1, 7)),
    (text.INVALID_METRIC_NAME, "m-x 1\n", (1, 2)),
    (text.INVALID_METRIC_NAME, "1m 1\n", (1, 1)),
    (text.INVALID_METRIC_NAME, '{a="b"} 1\n', (1, 1)),
    (text.INVALID_METRIC_NAME, "# HELP 1m x\n", (1, 8)),
    (text.INVALID_LABEL_NAME, 'm{1a="x"} 1\n', (1, 3)),
    (text.INVALID_VALUE, "m abc\n", (1, 3)),
    (text.INVALID_TIMESTAMP, "m 1 -1\n", (1, 5)),
    (text.INVALID_TIMESTAMP, "m 1 99999999999999999999\n", (1, 5)),
    (text.DUPLICATE_LABEL, 'm{a="1",a="2"} 1\n', (1, 0)),
    (text.DUPLICATE_HELP, "# HELP m a\n# HELP m b\n", (2, 1)),
    (text.DUPLICATE_TYPE, "# TYPE m gauge\n# TYPE m gauge\n", (2, 1)),
    (text.TYPE_AFTER_SAMPLES, "m 1\n# TYPE m gauge\n", (2, 1)),
    (text.INVALID_TYPE, "# TYPE m COUNTER\n", (1, 10)),
    (text.INVALID_TYPE, "# TYPE m stateset\n", (1, 10)),
    (text.INTERLEAVED, 'a 1\nb 1\na{x="1"} 1\n', (3, 1)),
    (text.METADATA_FOR_MEMBER, '# TYPE h histogram\nh_bucket{le="+Inf"} 1\n# TYPE h_count counter\n', (3, 1)),
    (text.UNKNOWN_ESCAPE, 'm{a="\\t"} 1\n', (1, 6)),
    (text.UNKNOWN_ESCAPE, "# HELP m \\x\n", (1, 10)),
    (text.NOT_A_MEMBER, "# TYPE h histogram\nh 1\n", (2, 1)),
]


@pytest.mark.parametrize(("code", "body", "where"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_code(code: str, body: str, where: tuple[int, int]) -> None:
    assert found(body) == [(*where, code)]


def test_every_declared_code_has_a_case() -> None:
    assert {case[0] for case in CASES} == set(text.CODES)
    assert all(
        text.CODES[code].severity is Severity.ERROR
        or code in (text.INTERLEAVED, text.UNKNOWN_ESCAPE, text.NOT_A_MEMBER)
        for code in text.CODES
    )


def test_every_problem_in_one_pass_and_good_lines_still_parsed() -> None:
    body = 'good 1\nbad{a=1} 2\ngood{x="2"} 3\nbad 1_0\n# TYPE t nonsense\ngood{x="3"} 4\nm-x 5\n'
    result = run(body)
    assert [(d.line, d.code) for d in result.diagnostics] == [
        (2, text.SYNTAX),
        (4, text.INVALID_VALUE),
        (5, text.INVALID_TYPE),
        (7, text.INVALID_METRIC_NAME),
    ]
    assert [s.line for s in result.families[0].samples] == [1, 3, 6]


def test_parse_text_api_returns_lines_and_version() -> None:
    sink = DiagnosticSink()
    families, lines, version = text.parse_text("a 1\nb 2\n", sink, ParseLimits())
    assert [f.name for f in families] == ["a", "b"] and lines == 2 and version == "0.0.4"


# --- prometheus_client parity -------------------------------------------------------------------


def _client_view(
    body: str,
) -> list[tuple[str, list[tuple[str, tuple[tuple[str, str], ...], float, float | None]]]]:
    out = []
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
            out.append((metric.type, samples))
    return out


def _our_view(
    families: tuple[MetricFamily, ...],
) -> list[tuple[str, list[tuple[str, tuple[tuple[str, str], ...], float, float | None]]]]:
    names = {MetricType.UNKNOWN: "unknown"}
    return [
        (
            names.get(f.type, f.type.value),
            [(s.name, tuple(sorted(s.labels)), s.value, s.timestamp) for s in f.samples],
        )
        for f in families
        if f.samples
    ]


def _normalise(view: list) -> list:  # type: ignore[type-arg]
    """NaN compares equal to NaN; client_python returns timestamps as Timestamp or float seconds."""
    return repr(view).replace("nan", "NaN")  # type: ignore[return-value]


VALID = sorted((FIXTURES / "valid" / "text").glob("*.prom"))


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_same_families_as_prometheus_client(path: pathlib.Path) -> None:
    body = path.read_text(encoding="utf-8")
    if '{"' in body:
        pytest.skip("client_python's text parser handles quoted names differently per version")
    ours = _our_view(run(body).families)
    theirs = _client_view(body)
    assert _normalise(ours) == _normalise(theirs)


# Where prometheus_client accepts what the text format forbids. The format's spec
# (prometheus.io/docs/instrumenting/exposition_formats, "Text format details"):
# "value is a float represented as required by Go's ParseFloat() function" and
# "timestamp is an int64 (milliseconds since epoch)".
DIFFERENCES = [
    ("signed NaN: Go's ParseFloat rejects '+nan'", "m +nan\n", text.INVALID_VALUE),
    ("overflowing literal: Go's ParseFloat returns ErrRange for 1e999", "m 1e999\n", text.INVALID_VALUE),
    ("fractional timestamp: the spec says int64 milliseconds", "m 1 1.5\n", text.INVALID_TIMESTAMP),
]


@pytest.mark.parametrize(("why", "body", "code"), DIFFERENCES, ids=[d[0] for d in DIFFERENCES])
def test_deliberate_differences_from_prometheus_client(why: str, body: str, code: str) -> None:
    assert list(text_string_to_metric_families(body))  # prometheus_client accepts it
    assert [c for _, _, c in found(body)] == [code], why


# --- the scrape cache: a cached parse is the same as a full parse ------------------------------------

CACHE_BASE = """# HELP http_requests_total Requests served.
# TYPE http_requests_total counter
http_requests_total{code="200",method="get"} 10
http_requests_total{code="500",method="get"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{path="/",le="0.1"} 1
latency_seconds_bucket{path="/",le="1"} 2
latency_seconds_bucket{path="/",le="+Inf"} 3
latency_seconds_sum{path="/"} 1.5
latency_seconds_count{path="/"} 3
# TYPE rpc_seconds summary
rpc_seconds{quantile="0.5"} 0.2
rpc_seconds{quantile="0.99"} 0.9
rpc_seconds_sum 10
rpc_seconds_count 20
# HELP temperature Room temperature.
# TYPE temperature gauge
temperature{room="a"} 21.5
temperature{room="b"} 19
plain 1
"""

CACHE_TOKENS = (
    ["0", "1", "2", "3", "10", "-1", "0.5", "1e3", "1.5E-3", ".5", "5.", "+5", "-0", "0042"] * 3
    + ["NaN", "nan", "+Inf", "-Inf", "Inf", "Infinity", "-infinity"]
    + ["1e999", "-1e999", "1_0", "0x1p3", "+nan", "1e", "..", "", "1x", "\u0663", "5\r", "1 2", "1\t"]
    + ["12345678901234567890.25"]
)
"""Values: mostly good ones, some that Go's ParseFloat rejects or that need the careful path."""

CACHE_HELP_TEXTS = ["New text.", "With \\\\ and \\n.", "", "A \\t tab."]

CACHE_EXTRA_LINES = [
    'new_series{x="1"} 5',
    'http_requests_total{code="404",method="get"} 2',
    'latency_seconds_bucket{path="/",le="0.5"} 1',
    'latency_seconds_bucket{path="/x",le="+Inf"} 1',
    "latency_seconds 4",
    "# HELP temperature Another help.",
    "# TYPE plain gauge",
    "# TYPE latency_seconds_count counter",
    "# HELP esc A \\q escape and a \\n newline.",
    "bad line here",
    'dup{x="1",x="2"} 1',
    'esc{x="a\\qb"} 1',
    '{"my.metric", x="1"} 1',
    "ts_series 1 1700000000000",
    "ts_series 2 -5",
    "",
    "# just a comment",
    'temperature{room="a"} 3',
    "  spaced   2",
    "tabbed\t3",
    'trailing{x="1",} 7',
    'spaced_labels{ x = "1" } 7',
    "rpc_seconds_count 4",
    'rpc_seconds{quantile="2"} 1',
    'plain{__reserved="x"} 1',
]


def _cache_view(result: ParseResult) -> object:
    """Everything in a ParseResult, with values as repr so NaN equals NaN and -0.0 differs from 0.0."""
    return (
        [
            (
                f.name,
                f.type,
                f.help,
                f.unit,
                f.line,
                [
                    (s.name, s.labels, repr(s.value), s.timestamp, s.exemplar, s.line, s.native_histogram)
                    for s in f.samples
                ],
            )
            for f in result.families
        ],
        result.diagnostics,
        result.format,
        result.lines,
        result.size,
        result.suppressed,
        result.extra,
    )


_SERIES_VALUE = re.compile(r"^(\S.*?[}\w\"]) (\S*)$")


def _mutate(lines: list[str], rng: random.Random) -> list[str]:
    """One step of a source's life: mostly new values, sometimes a change of shape."""
    lines = list(lines)
    sample_lines = [i for i, line in enumerate(lines) if line and not line.startswith("#")]
    for index in rng.sample(sample_lines, k=min(len(sample_lines), rng.randint(0, 6))):
        match = _SERIES_VALUE.match(lines[index])
        if match:
            token = rng.choice(CACHE_TOKENS) if rng.random() < 0.3 else str(rng.randint(0, 50) / 4)
            lines[index] = f"{match.group(1)} {token}"
    if rng.random() < 0.5:
        return lines  # values only: the shape stays, so the next parse is read from the template
    change = rng.randrange(9)
    if change == 0 and lines:  # remove a line
        del lines[rng.randrange(len(lines))]
    elif change == 1:  # add a line
        lines.insert(rng.randint(0, len(lines)), rng.choice(CACHE_EXTRA_LINES))
    elif change == 2:  # reorder: move a family's block (from one comment line to the next) elsewhere
        starts = [i for i, line in enumerate(lines) if line.startswith("# HELP") or line.startswith("# TYPE")]
        if starts:
            start = rng.choice(starts)
            end = next((i for i in starts if i > start + 1), len(lines))
            block = lines[start:end]
            del lines[start:end]
            position = rng.randint(0, len(lines))
            lines[position:position] = block
    elif change == 3 and sample_lines:  # a line becomes invalid (or odd)
        index = rng.choice([i for i in range(len(lines)) if lines[i]] or [0])
        line = lines[index]
        where = rng.randint(0, len(line))
        lines[index] = rng.choice(
            [line[:where] + "!" + line[where:], line + " 1700000000000", line.replace("}", ""), line + " x"]
        )
    elif change == 4:  # HELP text changes
        helps = [i for i, line in enumerate(lines) if line.startswith("# HELP")]
        if helps:
            index = rng.choice(helps)
            name = lines[index].split(" ")[2]
            lines[index] = f"# HELP {name} " + rng.choice(CACHE_HELP_TEXTS)
    elif change == 5 and lines:  # swap two lines
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
    elif change == 6 and sample_lines:  # duplicate a sample line
        index = rng.choice(sample_lines)
        lines.insert(index + 1, lines[index])
    elif change == 7:  # the body ends without a newline, or with one again
        if lines and lines[-1] == "":
            lines.pop()
        else:
            lines.append("")
    elif change == 8 and sample_lines:  # CRLF on one line
        index = rng.choice(sample_lines)
        lines[index] = lines[index] + "\r"
    return lines


@pytest.mark.parametrize("seed", range(40))
def test_cached_parse_equals_full_parse_over_a_changing_source(seed: int) -> None:
    rng = random.Random(seed)
    lines = CACHE_BASE.split("\n")
    caches = {
        limits: ParseCache()
        for limits in (ParseLimits(), ParseLimits(max_diagnostics=3), ParseLimits(max_line_length=40))
    }
    for _ in range(60):
        lines = _mutate(lines, rng)
        body = "\n".join(lines).encode()
        for limits, cache in caches.items():
            cached = parse(body, "text", limits=limits, cache=cache)
            full = parse(body, "text", limits=limits)
            assert _cache_view(cached) == _cache_view(full), body.decode()
    assert all(cache.hits and cache.misses for cache in caches.values())


def test_cache_reads_a_repeated_shape_from_its_template() -> None:
    cache = ParseCache()
    first = parse(b"# TYPE a_total counter\na_total 1\nb 2 1700000000000\n", "text", cache=cache)
    second = parse(b"# TYPE a_total counter\na_total -3\nb 2 1700000000000\n", "text", cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    assert [s.value for f in second.families for s in f.samples] == [-3.0, 2.0]
    assert second.families[1].samples[0] is first.families[1].samples[0]  # a fixed line's sample is shared
    assert [d.code for d in second.diagnostics] == ["SEM-030"]  # the type rules see the new values
    parse(b"# TYPE a_total counter\na_total 1\nb 3 1700000000000\n", "text", cache=cache)  # fixed line
    parse(b"# TYPE a_total counter\na_total 1e999\nb 3 1700000000000\n", "text", cache=cache)  # range
    assert (cache.hits, cache.misses) == (1, 3)


def test_cache_skips_bodies_over_its_size_and_other_formats() -> None:
    cache = ParseCache(max_bytes=10)
    parse(b"a_long_metric_name 1\n", "text", cache=cache)
    assert (cache.too_large, cache.template) == (1, None)
    cache = ParseCache()
    parse(b"a 1\n", "text", cache=cache)
    assert cache.template is not None
    parse(b"# TYPE a gauge\na 1\n# EOF\n", "openmetrics", cache=cache)
    assert cache.template is None


def test_the_collector_pause_is_reentrant_shared_by_threads_and_restores_the_state() -> None:
    def pause_in_a_thread() -> None:
        with collector_paused:
            pass

    collecting = gc.isenabled()
    try:
        gc.enable()
        with collector_paused:
            with collector_paused:
                assert not gc.isenabled()
            worker = threading.Thread(target=pause_in_a_thread)
            worker.start()
            worker.join()
            assert not gc.isenabled()  # a pause ending elsewhere does not end this one
        assert gc.isenabled()
        gc.disable()  # off before the pause (as the CLI keeps it while starting): stays off
        with collector_paused:
            pass
        assert not gc.isenabled()
    finally:
        if collecting:
            gc.enable()
        else:
            gc.disable()
