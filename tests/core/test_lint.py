"""promlint-parity lint on families built by hand (no parser needed).

Every expected line below was checked against ``promtool check metrics`` of
Prometheus 2.42 (the rules with ``promtool_compatible=True``) or read off the
newest promlint source (the others).
"""

from __future__ import annotations

import collections
import pathlib
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promscope.check import CheckOptions, Ignore, check, check_result
from promscope.check.lint import (
    CODES,
    MSG_LE,
    RULES,
    LintFinding,
    ambiguous_in_promtool,
    lint,
    lint_family,
    promtool_lines,
    to_diagnostics,
)
from promscope.codes import Code
from promscope.model import Diagnostic, Format, MetricFamily, MetricType, ParseResult, Sample, Severity


def fam(
    name: str,
    type_: MetricType = MetricType.GAUGE,
    *samples: tuple[str, dict[str, str]] | str,
    help: str | None = "help",
    line: int = 1,
) -> MetricFamily:
    built: list[Sample] = []
    for index, sample in enumerate(samples or (name,)):
        sample_name, labels = (sample, {}) if isinstance(sample, str) else sample
        built.append(Sample(sample_name, tuple(labels.items()), 1.0, line=line + 2 + index))
    return MetricFamily(name, type_, help, None, tuple(built), line)


def lines(*families: MetricFamily, fmt: Format = Format.TEXT, promtool_only: bool = True) -> list[str]:
    return promtool_lines(lint(families, fmt, promtool_only=promtool_only))


# --- the catalogue ---------------------------------------------------------------------------------


def test_codes_are_declared_with_style_severity() -> None:
    assert set(CODES) == {rule.code for rule in RULES}
    assert all(isinstance(code, Code) and code.severity is Severity.STYLE for code in CODES.values())
    assert all(code.startswith("LINT-") for code in CODES)


def test_promtool_242_has_the_original_eight_validations() -> None:
    upstream = {rule.upstream for rule in RULES if rule.promtool_compatible}
    assert upstream == {
        "lintHelp",
        "lintMetricUnits",
        "lintCounter",
        "lintHistogramSummaryReserved",
        "lintMetricTypeInName",
        "lintReservedChars",
        "lintCamelCase",
        "lintUnitAbbreviations",
    }
    newer = {rule.upstream for rule in RULES if not rule.promtool_compatible}
    assert newer == {"LintDuplicateMetric", "LintGauge"}


# --- one rule at a time ----------------------------------------------------------------------------


def test_clean_family_has_no_findings() -> None:
    assert lines(fam("http_requests_total", MetricType.COUNTER)) == []
    assert lint([fam("process_resident_memory_bytes")], promtool_only=False) == []


@pytest.mark.parametrize("help_text", [None, ""])
def test_no_help_text(help_text: str | None) -> None:
    assert lines(fam("foo", help=help_text)) == ["foo no help text"]


def test_split_family_is_linted_once() -> None:
    first = fam("foo", MetricType.UNKNOWN, ("foo", {"bar": "1"}), help=None, line=1)
    second = fam("foo", MetricType.UNKNOWN, ("foo", {"bar": "2"}), help=None, line=3)
    assert lines(first, fam("baz", help=None), second) == ["baz no help text", "foo no help text"]
    (finding, *_) = lint([first, second])
    assert finding.line == 1


def test_family_without_samples_is_not_linted() -> None:
    empty = MetricFamily("fooBar:baz", MetricType.COUNTER, None, None, (), 1)
    assert lint([empty], promtool_only=False) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("request_duration_milliseconds", 'use base unit "seconds" instead of "milliseconds"'),
        ("disk_kilobytes", 'use base unit "bytes" instead of "kilobytes"'),
        ("link_speed_megabits", 'use base unit "bytes" instead of "megabits"'),
        ("uptime_hours", 'use base unit "seconds" instead of "hours"'),
        ("temp_fahrenheit", 'use base unit "celsius" instead of "fahrenheit"'),
        ("weight_pounds", 'use base unit "grams" instead of "pounds"'),
        ("energy_kilojoules", 'use base unit "joules" instead of "kilojoules"'),
        ("color_kelvins", 'use base unit "kelvin" instead of "kelvins"'),
    ],
)
def test_base_units(name: str, expected: str) -> None:
    assert lines(fam(name)) == [f"{name} {expected}"]


@pytest.mark.parametrize("name", ["foo_seconds", "foo_bytes", "thermometers", "foo_celsius", "foo_metres"])
def test_base_units_pass(name: str) -> None:
    assert lines(fam(name)) == []


def test_first_unit_word_decides_like_the_newest_promlint() -> None:
    assert lines(fam("a_milliseconds_bytes")) == [
        'a_milliseconds_bytes use base unit "seconds" instead of "milliseconds"'
    ]
    assert lines(fam("a_bytes_milliseconds")) == []
    assert ambiguous_in_promtool("a_milliseconds_bytes")
    assert ambiguous_in_promtool("a_bytes_milliseconds")
    assert not ambiguous_in_promtool("a_milliseconds")
    assert not ambiguous_in_promtool("a_seconds_bytes")


def test_counter_total_suffix() -> None:
    assert lines(fam("requests", MetricType.COUNTER)) == [
        'requests counter metrics should have "_total" suffix'
    ]
    assert lines(fam("queue_total", MetricType.GAUGE)) == [
        'queue_total non-counter metrics should not have "_total" suffix'
    ]
    assert lines(fam("queue_total", MetricType.UNKNOWN)) == []


def test_openmetrics_counters_carry_total_on_samples() -> None:
    family = MetricFamily("requests", MetricType.COUNTER, "h", None, (Sample("requests_total", (), 1.0),), 1)
    assert lines(family, fmt=Format.OPENMETRICS) == []
    assert lines(family, fmt=Format.TEXT) == ['requests counter metrics should have "_total" suffix']


def test_reserved_suffixes() -> None:
    assert lines(fam("x_bucket")) == ['x_bucket non-histogram metrics should not have "_bucket" suffix']
    assert lines(fam("x_count")) == [
        'x_count non-histogram and non-summary metrics should not have "_count" suffix'
    ]
    assert lines(fam("x_sum")) == [
        'x_sum non-histogram and non-summary metrics should not have "_sum" suffix'
    ]
    summary_bucket = fam("s_bucket", MetricType.SUMMARY, ("s_bucket_sum", {}))
    assert lines(summary_bucket) == ['s_bucket non-histogram metrics should not have "_bucket" suffix']
    assert lines(fam("x_bucket", MetricType.UNKNOWN)) == []


def test_reserved_labels_once_per_metric() -> None:
    gauge = fam("g", MetricType.GAUGE, ("g", {"le": "1"}), ("g", {"le": "2"}))
    assert lines(gauge) == ['g non-histogram metrics should not have "le" label'] * 2
    # A summary is one metric per label set (quantile set aside): two sets, two problems.
    summary = fam(
        "s",
        MetricType.SUMMARY,
        ("s", {"quantile": "0.5", "le": "1"}),
        ("s", {"quantile": "0.9", "le": "1"}),
        ("s_count", {"le": "1"}),
        ("s_sum", {"le": "1"}),
        ("s", {"quantile": "0.5", "le": "2"}),
    )
    assert lines(summary) == ['s non-histogram metrics should not have "le" label'] * 2
    histogram = fam(
        "h",
        MetricType.HISTOGRAM,
        ("h_bucket", {"le": "1", "quantile": "1"}),
        ("h_bucket", {"le": "+Inf", "quantile": "1"}),
        ("h_count", {"quantile": "1"}),
        ("h_sum", {"quantile": "1"}),
    )
    assert lines(histogram) == ['h non-summary metrics should not have "quantile" label']
    untyped = fam("u", MetricType.UNKNOWN, ("u", {"le": "1", "quantile": "2"}))
    assert lines(untyped) == []


def test_type_in_name() -> None:
    assert lines(fam("baz_gauge_histogram")) == [
        "baz_gauge_histogram metric name should not include type 'gauge'",
        "baz_gauge_histogram metric name should not include type 'gauge_histogram'",
        "baz_gauge_histogram metric name should not include type 'histogram'",
    ]
    assert lines(fam("my_Counter_thing")) == [
        "my_Counter_thing metric name should not include type 'counter'"
    ]
    assert lines(fam("summary_of_things")) == []


def test_colon() -> None:
    assert lines(fam("job:requests:rate5m")) == ["job:requests:rate5m metric names should not contain ':'"]


def test_camel_case() -> None:
    assert lines(fam("fooBar")) == ["fooBar metric names should be written in 'snake_case' not 'camelCase'"]
    assert lines(fam("Foo_Bar")) == []
    labelled = fam("foo", MetricType.GAUGE, ("foo", {"aB": "1", "cD": "2"}), ("foo", {"aB": "3"}))
    assert lines(labelled) == ["foo label names should be written in 'snake_case' not 'camelCase'"] * 3


def test_abbreviated_units_once_per_abbreviation() -> None:
    assert lines(fam("Foo_Bar_Ms")) == ["Foo_Bar_Ms metric names should not contain abbreviated units"]
    assert (
        lines(fam("latency_ms_s")) == ["latency_ms_s metric names should not contain abbreviated units"] * 2
    )
    assert lines(fam("status_code")) == []


def test_metric_not_unique_is_newest_promlint_only() -> None:
    family = fam(
        "g", MetricType.GAUGE, ("g", {"a": "1"}), ("g", {"a": "1"}), ("g", {"a": "1"}), ("g", {"a": "2"})
    )
    assert lines(family) == []
    assert lines(family, promtool_only=False) == ["g metric not unique"] * 2
    reordered = fam("r", MetricType.GAUGE, ("r", {"a": "1", "b": "2"}), ("r", {"b": "2", "a": "1"}))
    assert lines(reordered, promtool_only=False) == ["r metric not unique"]
    histogram = fam("h", MetricType.HISTOGRAM, ("h_bucket", {"le": "1"}), ("h_bucket", {"le": "1"}))
    assert lines(histogram, promtool_only=False) == []
    om_counter = fam("c", MetricType.COUNTER, ("c_total", {"a": "1"}), ("c_created", {"a": "1"}))
    assert lines(om_counter, fmt=Format.OPENMETRICS, promtool_only=False) == []


def test_timestamp_seconds_is_newest_promlint_only() -> None:
    family = fam("boot_timestamp_seconds", MetricType.COUNTER)
    assert lines(family) == ['boot_timestamp_seconds counter metrics should have "_total" suffix']
    assert lines(family, promtool_only=False) == [
        'boot_timestamp_seconds counter metrics should have "_total" suffix',
        'boot_timestamp_seconds non-gauge metrics should not have "_timestamp_seconds" suffix',
    ]
    assert lines(fam("boot_timestamp_seconds", MetricType.GAUGE), promtool_only=False) == []


# --- the label rules against a sample-by-sample reference ------------------------------------------

_REFERENCE_KIND = {
    MetricType.HISTOGRAM: "histogram",
    MetricType.GAUGEHISTOGRAM: "histogram",
    MetricType.SUMMARY: "summary",
    MetricType.UNKNOWN: "untyped",
}


def reference_label_counts(family: MetricFamily) -> collections.Counter[str]:
    """LINT-006, LINT-010 and LINT-012 as promlint counts them, one sample at a time, no shortcuts."""
    kind = _REFERENCE_KIND.get(family.type, "other")
    special = {"histogram": "le", "summary": "quantile"}.get(kind)
    metrics: dict[object, tuple[tuple[str, str], ...]] = {}
    for index, sample in enumerate(family.samples):
        if special is None:
            metrics[index] = sample.labels
        else:
            kept = tuple(pair for pair in sample.labels if pair[0] != special)
            metrics.setdefault(tuple(sorted(kept)), kept)
    counts: collections.Counter[str] = collections.Counter()
    for labels in metrics.values():
        for name, _ in labels:
            if kind != "untyped" and kind != "histogram" and name == "le":
                counts["LINT-006 le"] += 1
            if kind != "untyped" and kind != "summary" and name == "quantile":
                counts["LINT-006 quantile"] += 1
            if re.search("[a-z][A-Z]", name):
                counts["LINT-010"] += 1
    if special is None:
        keys = [(s.name, tuple(sorted(s.labels))) for s in family.samples]
        counts["LINT-012"] = len(keys) - len(set(keys))
    return +counts


def label_counts(findings: list[LintFinding]) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for finding in findings:
        if finding.code == "LINT-006":
            out["LINT-006 le" if finding.message == MSG_LE else "LINT-006 quantile"] += finding.count
        elif finding.code in ("LINT-010", "LINT-012"):
            out[finding.code] += finding.count
    return out


_NAMES = st.sampled_from(["job", "instance", "le", "quantile", "podName", "a", "b"])
_VALUES = st.sampled_from(["1", "2"])


@st.composite
def label_families(draw: st.DrawFn) -> MetricFamily:
    """Families whose samples share one label order (the fast path), or leave it in every way:
    reordered labels, a missing or extra label, repeated names, duplicate series, other sample names."""
    type_ = draw(st.sampled_from(list(MetricType)))
    template = draw(st.lists(_NAMES, max_size=4, unique=draw(st.booleans())))
    shapes = draw(
        st.sampled_from(
            [
                ["same"],
                ["same", "shuffled"],
                ["same", "twice"],
                ["same", "shuffled", "shorter", "longer", "repeated", "twice"],
            ]
        )
    )
    samples = []
    for _ in range(draw(st.integers(1, 12))):
        labels = [(name, draw(_VALUES)) for name in template]
        shape = draw(st.sampled_from(shapes))
        if shape == "shuffled":
            labels = draw(st.permutations(labels))
        elif shape == "shorter" and labels:
            labels.pop(draw(st.integers(0, len(labels) - 1)))
        elif shape == "longer":
            labels.insert(draw(st.integers(0, len(labels))), (draw(_NAMES), draw(_VALUES)))
        elif shape == "repeated" and labels:
            labels.append(labels[0])
        elif shape == "twice":  # the names twice over, in order: a, b, a, b
            labels += [(name, draw(_VALUES)) for name in template]
        name = draw(st.sampled_from(["m", "m", "m", "m_total", "m_created", "m_bucket"]))
        samples.append(Sample(name, tuple(labels), 1.0))
    return MetricFamily("m", type_, "help", None, tuple(samples), 1)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_families(), st.sampled_from([Format.TEXT, Format.OPENMETRICS]))
def test_label_rules_count_like_a_sample_by_sample_reference(family: MetricFamily, fmt: Format) -> None:
    assert label_counts(lint_family(family, fmt)) == reference_label_counts(family)
    promtool_only = label_counts(lint([family], fmt, promtool_only=True))
    assert promtool_only == reference_label_counts(family) - collections.Counter({"LINT-012": 10**9})


def test_duplicates_in_one_label_order_are_counted_without_sorting() -> None:
    # Same names in the same order everywhere: equal as written is equal as a set.
    family = fam("g", MetricType.GAUGE, *[("g", {"a": str(i % 3), "b": "x"}) for i in range(9)])
    assert lines(family, promtool_only=False) == ["g metric not unique"] * 6
    # One sample with the labels the other way round still duplicates the first.
    reordered = fam("g", MetricType.GAUGE, ("g", {"a": "1", "b": "x"}), ("g", {"b": "x", "a": "1"}))
    assert lines(reordered, promtool_only=False) == ["g metric not unique"]
    # All the label names in a row repeat the first sample's (a), lengths evened out by the two
    # unlabelled samples, but a=1,a=2 and a=2,a=1 are still one series (and so are the two {}).
    twice = MetricFamily(
        "g",
        MetricType.GAUGE,
        "help",
        None,
        tuple(
            Sample("g", labels, 1.0)
            for labels in [(("a", "1"),), (("a", "1"), ("a", "2")), (), (("a", "2"), ("a", "1")), ()]
        ),
        1,
    )
    assert lines(twice, promtool_only=False) == ["g metric not unique"] * 2


# --- order, diagnostics, options -------------------------------------------------------------------


def test_problems_sorted_by_metric_then_text() -> None:
    found = lines(fam("zeta", help=None), fam("alpha_Gauge", help=None), fam("Alpha", help=None))
    assert found == [
        "Alpha no help text",
        "alpha_Gauge metric name should not include type 'gauge'",
        "alpha_Gauge no help text",
        "zeta no help text",
    ]


def test_to_diagnostics_points_at_family_line() -> None:
    findings = lint([fam("fooBar", line=7, help=None)], promtool_only=False)
    diagnostics = to_diagnostics(findings)
    assert {(d.code, d.line, d.metric, d.severity) for d in diagnostics} == {
        ("LINT-001", 7, "fooBar", Severity.STYLE),
        ("LINT-009", 7, "fooBar", Severity.STYLE),
    }
    assert {f"{d.metric} {d.message}" for d in diagnostics} == {
        "fooBar no help text",
        "fooBar metric names should be written in 'snake_case' not 'camelCase'",
    }


def test_lint_family_counts_repeats() -> None:
    family = fam("g", MetricType.GAUGE, ("g", {"le": "1"}), ("g", {"le": "2"}), ("g", {"le": "3"}))
    (finding,) = lint_family(family)
    assert finding.code == "LINT-006" and finding.count == 3


def _result(*families: MetricFamily, diagnostics: tuple[Diagnostic, ...] = ()) -> ParseResult:
    return ParseResult(families=families, diagnostics=diagnostics, format=Format.TEXT)


def test_check_result_applies_ignores_and_overrides() -> None:
    result = _result(fam("go_thing", help=None, line=3), fam("app_thing", help=None, line=9))
    report = check_result(
        result,
        CheckOptions(ignores=(Ignore.parse("LINT-001:go_*"),), severity_overrides={"LINT-*": Severity.ERROR}),
    )
    assert [(d.code, d.metric, d.severity) for d in report.diagnostics] == [
        ("LINT-001", "app_thing", Severity.ERROR)
    ]
    assert report.ignored == 1
    assert report.failed()
    assert report.promtool_lines() == ["app_thing no help text"]
    assert report.promtool_exit_code() == 3


def test_check_result_keeps_parse_diagnostics_sorted_by_line() -> None:
    parse_error = Diagnostic("PS-201", Severity.ERROR, 5, 3, "bad", None)
    result = _result(fam("a_total", MetricType.COUNTER, help=None, line=8), diagnostics=(parse_error,))
    report = check_result(result)
    assert [d.line for d in report.diagnostics] == [5, 8]
    assert report.promtool_exit_code() == 1
    assert report.promtool_lines()[0].startswith("error while linting: ")
    assert report.failed()
    assert not check_result(_result(fam("a_total", MetricType.COUNTER))).failed(Severity.STYLE)


def test_quoted_names_are_unparsable_for_promtool_242() -> None:
    result = ParseResult(
        families=(fam("my.metric"),), diagnostics=(), format=Format.TEXT, extra={"version": "1.0.0"}
    )
    report = check_result(result, CheckOptions(promtool_only=True))
    assert report.promtool_exit_code() == 1
    assert report.promtool_lines()[0].startswith("error while linting: text format parsing error")
    assert not report.failed()


def test_semantic_errors_do_not_make_promtool_mode_fail_to_parse() -> None:
    sem = Diagnostic("SEM-001", Severity.ERROR, 2, 0, "bucket counts decrease", "h")
    report = check_result(_result(fam("a_total", MetricType.COUNTER), diagnostics=(sem,)))
    assert report.promtool_exit_code() == 0
    assert report.failed()


def test_promtool_only_and_lint_off() -> None:
    family = fam("g", MetricType.GAUGE, ("g", {}), ("g", {}))
    assert [d.code for d in check_result(_result(family)).diagnostics] == ["LINT-012"]
    assert check_result(_result(family), CheckOptions(promtool_only=True)).diagnostics == ()
    assert check_result(_result(fam("x", help=None)), CheckOptions(lint=False)).diagnostics == ()


def test_fail_on_thresholds() -> None:
    report = check_result(_result(fam("x", help=None)), CheckOptions(fail_on=Severity.WARNING))
    assert not report.failed()
    assert report.failed(Severity.STYLE)
    assert report.counts()[Severity.STYLE] == 1
    assert report.worst() is Severity.STYLE


@pytest.mark.parametrize(
    ("text", "code", "metric"),
    [
        ("LINT-001", "LINT-001", None),
        ("lint-001:go_*", "LINT-001", "go_*"),
        ("LINT-*:job:rate*", "LINT-*", "job:rate*"),
        ("*", "*", None),
    ],
)
def test_ignore_parse(text: str, code: str, metric: str | None) -> None:
    ignore = Ignore.parse(text)
    assert (ignore.code, ignore.metric) == (code, metric)


@pytest.mark.parametrize("text", ["", ":foo", "LINT-001:", "not a code", "LINT_001"])
def test_ignore_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        Ignore.parse(text)


def test_ignore_parse_checks_known_codes() -> None:
    with pytest.raises(ValueError, match="unknown code LINT-999"):
        Ignore.parse("LINT-999", known=set(CODES))
    assert Ignore.parse("LINT-9*", known=set(CODES)).code == "LINT-9*"


def test_ignore_matching() -> None:
    diagnostic = Diagnostic("LINT-003", Severity.STYLE, 1, 0, "m", "job:x")
    assert Ignore.parse("LINT-00?").matches(diagnostic)
    assert Ignore.parse("LINT-003:job:*").matches(diagnostic)
    assert not Ignore.parse("LINT-003:go_*").matches(diagnostic)
    assert not Ignore.parse("LINT-003:*").matches(Diagnostic("LINT-003", Severity.STYLE, 1, 0, "m", None))


# --- fixtures/lint/ (needs the text parser) --------------------------------------------------------

LINT_FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "lint"


def _expected_lint(path: pathlib.Path) -> list[str]:
    text = path.with_suffix(".lint").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", sorted(LINT_FIXTURES.glob("*.prom")), ids=lambda p: p.name)
def test_lint_fixture(path: pathlib.Path) -> None:
    report = check(path.read_bytes(), "text")
    assert not report.syntax_errors(), report.syntax_errors()
    found = [f"{f.code} {f.metric} {f.message}" for f in report.lint_findings for _ in range(f.count)]
    assert collections.Counter(found) == collections.Counter(_expected_lint(path))
    # The diagnostics carry the same findings, once each, at the family's line.
    lint_diagnostics = [d for d in report.diagnostics if d.code.startswith("LINT-")]
    assert len(lint_diagnostics) == len(report.lint_findings)
    families = {family.name: family.line for family in report.result.families}
    assert all(d.line == families[d.metric or ""] > 0 for d in lint_diagnostics)


def test_lint_fixtures_exercise_every_rule() -> None:
    codes = {line.split()[0] for path in LINT_FIXTURES.glob("*.prom") for line in _expected_lint(path)}
    assert codes == set(CODES)
