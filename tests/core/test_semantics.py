"""The format-independent value rules, on families built by hand (no parser involved)."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest

from promscope.codes import Code
from promscope.exposition import semantics
from promscope.exposition._diag import DiagnosticSink
from promscope.exposition.semantics import CODES, check_semantics, parse_number
from promscope.model import (
    Diagnostic,
    Exemplar,
    Format,
    MetricFamily,
    MetricType,
    NativeHistogram,
    Sample,
    Severity,
)

E = Severity.ERROR
W = Severity.WARNING
NAN = math.nan
INF = math.inf


def run(families: list[MetricFamily], fmt: Format = Format.OPENMETRICS) -> list[Diagnostic]:
    sink = DiagnosticSink()
    check_semantics(families, fmt, sink)
    return sorted(sink.diagnostics, key=Diagnostic.sort_key)


def codes(families: list[MetricFamily], fmt: Format = Format.OPENMETRICS) -> list[tuple[str, Severity, int]]:
    return [(d.code, d.severity, d.line) for d in run(families, fmt)]


def fam(
    name: str, kind: MetricType, *samples: Sample, unit: str | None = None, line: int = 1
) -> MetricFamily:
    return MetricFamily(name, kind, None, unit, tuple(samples), line)


def s(
    name: str,
    value: float,
    line: int,
    ts: float | None = None,
    exemplar: Exemplar | None = None,
    **labels: str,
) -> Sample:
    return Sample(name, tuple(labels.items()), value, ts, exemplar, line)


def bucket(name: str, le: str, value: float, line: int, **labels: str) -> Sample:
    return Sample(name + "_bucket", (*labels.items(), ("le", le)), value, None, None, line)


def histogram(
    name: str = "h",
    buckets: tuple[tuple[str, float], ...] = (("0.1", 1), ("1.0", 2), ("+Inf", 3)),
    count: float | None = 3,
    total: float | None = 4.5,
    kind: MetricType = MetricType.HISTOGRAM,
    **labels: str,
) -> MetricFamily:
    samples = [bucket(name, le, v, i + 2, **labels) for i, (le, v) in enumerate(buckets)]
    line = len(samples) + 2
    gauge = kind is MetricType.GAUGEHISTOGRAM
    if count is not None:
        samples.append(s(name + ("_gcount" if gauge else "_count"), count, line, **labels))
        line += 1
    if total is not None:
        samples.append(s(name + ("_gsum" if gauge else "_sum"), total, line, **labels))
    return fam(name, kind, *samples)


# --- the catalogue --------------------------------------------------------------------------------------


def test_codes_are_declared_in_range_with_summaries() -> None:
    assert CODES
    for code, info in CODES.items():
        assert code.startswith("SEM-") and code[4:].isdigit() and len(code) == 7
        assert isinstance(info, Code)
        assert info.summary and info.severity in (E, W)


def test_every_emitted_code_is_declared() -> None:
    source = Path(semantics.__file__).read_text(encoding="utf-8")

    used = set(re.findall(r'"(SEM-\d{3})"', source))
    assert used == set(CODES)


# --- valid input is quiet -----------------------------------------------------------------------------


def test_clean_families_give_no_diagnostics() -> None:
    families = [
        fam("g", MetricType.GAUGE, s("g", NAN, 1, a="x"), s("g", -INF, 2, a="y")),
        fam("c", MetricType.COUNTER, s("c_total", 5, 3), s("c_created", 1.7e9, 4)),
        histogram(),
        histogram("gh", kind=MetricType.GAUGEHISTOGRAM, total=-1.0, buckets=(("-1.0", 1), ("+Inf", 3))),
        fam(
            "sm",
            MetricType.SUMMARY,
            s("sm", 0.2, 9, quantile="0.5"),
            s("sm_sum", 3, 10),
            s("sm_count", 2, 11),
        ),
        fam("i", MetricType.INFO, s("i_info", 1, 12, version="1")),
        fam("st", MetricType.STATESET, s("st", 1, 13, st="a"), s("st", 0, 14, st="b")),
        fam("u_seconds", MetricType.GAUGE, s("u_seconds", 1, 15), unit="seconds"),
    ]
    for fmt in Format:
        assert run(families, fmt) == []


def test_empty_input() -> None:
    assert run([]) == []
    assert run([fam("x", MetricType.HISTOGRAM)]) == []


# --- series-wide rules --------------------------------------------------------------------------------


def test_duplicate_series_in_any_label_order() -> None:
    f = fam(
        "g", MetricType.GAUGE, s("g", 1, 1, a="1", b="2"), s("g", 2, 2, b="2", a="1"), s("g", 3, 3, a="2")
    )
    for fmt in Format:
        assert codes([f], fmt) == [("SEM-001", E, 2)]


def test_duplicate_found_when_one_sample_orders_its_labels_differently() -> None:
    """Families in one label order key series by the tuples as given; a sample in another
    order must still be caught as a repeat, within a family, across families and in a histogram."""
    many = [s("g", 1, i, a=str(i), b="x") for i in range(1, 1001)]
    swapped = Sample("g", (("b", "x"), ("a", "500")), 2, None, None, 1001)
    for fmt in Format:
        assert codes([fam("g", MetricType.GAUGE, *many, swapped)], fmt) == [("SEM-001", E, 1001)]
    later = [fam("g", MetricType.GAUGE, *many), fam("g", MetricType.GAUGE, swapped)]
    assert codes(later, Format.TEXT) == [("SEM-001", E, 1001)]
    h = histogram(job="a", pod="p")
    repeats = (
        Sample("h_count", (("pod", "p"), ("job", "a")), 3, None, None, 7),
        Sample("h_bucket", (("le", "+Inf"), ("pod", "p"), ("job", "a")), 3, None, None, 8),
    )
    f = fam("h", MetricType.HISTOGRAM, *h.samples, *repeats)
    assert codes([f]) == [("SEM-001", E, 7), ("SEM-001", E, 8), ("SEM-014", E, 8)]
    assert codes([f], Format.TEXT) == [("SEM-001", E, 7), ("SEM-001", E, 8), ("SEM-014", W, 8)]


def test_duplicate_across_families() -> None:
    a = fam("x", MetricType.GAUGE, s("x", 1, 1))
    b = fam("x", MetricType.UNTYPED if hasattr(MetricType, "UNTYPED") else MetricType.UNKNOWN, s("x", 1, 5))
    assert codes([a, b], Format.TEXT) == [("SEM-001", E, 5)]


def test_points_of_one_series_need_increasing_timestamps() -> None:
    ok = fam("g", MetricType.GAUGE, s("g", 1, 1, ts=10.0), s("g", 2, 2, ts=11.0))
    assert run([ok]) == []
    same = fam("g", MetricType.GAUGE, s("g", 1, 1, ts=10.0), s("g", 2, 2, ts=10.0))
    assert codes([same]) == [("SEM-001", E, 2)]
    back = fam("g", MetricType.GAUGE, s("g", 1, 1, ts=10.0), s("g", 2, 2, ts=12.0), s("g", 3, 3, ts=11.0))
    assert codes([back]) == [("SEM-002", E, 3)]
    mixed = fam("g", MetricType.GAUGE, s("g", 1, 1, ts=10.0), s("g", 2, 2))
    assert codes([mixed]) == [("SEM-001", E, 2)]


def test_mixed_timestamps_across_series_are_fine() -> None:
    f = fam("g", MetricType.GAUGE, s("g", 1, 1, ts=10.0, a="1"), s("g", 2, 2, a="2"))
    assert run([f]) == []


def test_reserved_label_names() -> None:
    f = fam("g", MetricType.GAUGE, s("g", 1, 1, __meta="x"), s("g", 1, 2, _ok="x"))
    for fmt in Format:
        assert codes([f], fmt) == [("SEM-003", E, 1)]


# --- metadata -----------------------------------------------------------------------------------------


def test_unit_must_be_a_suffix() -> None:
    bad = fam("foo", MetricType.COUNTER, s("foo_total", 1, 2), unit="seconds", line=1)
    assert codes([bad]) == [("SEM-040", E, 1)]
    assert codes([bad], Format.PROTOBUF) == [("SEM-040", W, 1)]
    assert codes([bad], Format.TEXT) == []
    # "foo_xseconds" does not end in "_seconds"
    assert codes([fam("foo_xseconds", MetricType.GAUGE, unit="seconds")]) == [("SEM-040", E, 1)]
    assert run([fam("foo", MetricType.GAUGE, unit="")]) == []


def test_no_unit_on_info_or_stateset() -> None:
    f = fam("x_bytes", MetricType.INFO, unit="bytes")
    assert codes([f]) == [("SEM-041", E, 1)]


# --- counters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "severity"), [(Format.OPENMETRICS, E), (Format.TEXT, W), (Format.PROTOBUF, W)]
)
def test_counter_values(fmt: Format, severity: Severity) -> None:
    f = fam(
        "c",
        MetricType.COUNTER,
        s("c_total", -1, 1, a="1"),
        s("c_total", NAN, 2, a="2"),
        s("c_total", INF, 3, a="3"),
        s("c_created", NAN, 4, a="2"),
        s("c_created", -5, 5, a="3"),
    )
    assert codes([f], fmt) == [
        ("SEM-030", severity, 1),
        ("SEM-031", severity, 2),
        ("SEM-031", severity, 4),
        ("SEM-032", W, 5),
    ]


def test_text_counter_named_after_its_samples() -> None:
    f = fam("c_total", MetricType.COUNTER, s("c_total", -1, 1))
    assert codes([f], Format.TEXT) == [("SEM-030", W, 1)]
    bare = fam("c", MetricType.COUNTER, s("c", -1, 1))
    assert codes([bare], Format.TEXT) == [("SEM-030", W, 1)]


# --- histograms ---------------------------------------------------------------------------------------


def test_histogram_le_missing_and_unparseable() -> None:
    f = fam(
        "h",
        MetricType.HISTOGRAM,
        s("h_bucket", 1, 1),
        bucket("h", "abc", 1, 2),
        bucket("h", "NaN", 1, 3),
        bucket("h", "1_0", 1, 4),
        bucket("h", " 1", 1, 5),
        bucket("h", "+Inf", 1, 6),
    )
    assert codes([f]) == [
        ("SEM-010", E, 1),
        ("SEM-011", E, 2),
        ("SEM-011", E, 3),
        ("SEM-011", E, 4),
        ("SEM-011", E, 5),
    ]
    assert [c for c, _, _ in codes([f], Format.TEXT)] == [
        "SEM-010",
        "SEM-011",
        "SEM-011",
        "SEM-011",
        "SEM-011",
    ]
    assert {sev for _, sev, _ in codes([f], Format.TEXT)} == {W}


def test_le_canonical_only_in_openmetrics() -> None:
    f = histogram(buckets=(("1", 1), ("10.0", 2), ("Inf", 3)))
    assert codes([f]) == [("SEM-012", W, 2), ("SEM-013", E, 4)]
    assert codes([f], Format.TEXT) == []


def test_histogram_sorting_and_repeats() -> None:
    f = histogram(buckets=(("1.0", 1), ("0.1", 1), ("+Inf", 3)))
    assert codes([f]) == [("SEM-014", E, 3)]
    assert codes([f], Format.TEXT) == [("SEM-014", W, 3)]
    repeated = histogram(buckets=(("1.0", 1), ("1.0", 2), ("+Inf", 3)))
    # the second identical le is also a duplicate series
    assert codes([repeated]) == [("SEM-001", E, 3), ("SEM-014", E, 3)]
    same_bound = histogram(buckets=(("1.0", 1), ("1e0", 2), ("+Inf", 3)), count=3)
    assert ("SEM-014", E, 3) in codes([same_bound])


def test_histogram_inf_bucket() -> None:
    f = histogram(buckets=(("0.1", 1), ("1.0", 2)), count=2)
    assert codes([f]) == [("SEM-015", E, 3)]
    assert codes([f], Format.TEXT) == [("SEM-015", W, 3)]
    # protobuf leaves +Inf implicit
    assert codes([f], Format.PROTOBUF) == []


def test_histogram_cumulative() -> None:
    f = histogram(buckets=(("0.1", 5), ("1.0", 2), ("+Inf", 5)), count=5)
    assert codes([f]) == [("SEM-016", E, 3)]
    # checked on the sorted buckets even when the input order is wrong
    g = histogram(buckets=(("1.0", 2), ("0.1", 5), ("+Inf", 5)), count=5)
    assert codes([g], Format.TEXT) == [("SEM-016", W, 2), ("SEM-014", W, 3)]


def test_histogram_count_matches_inf() -> None:
    f = histogram(count=4)
    assert codes([f]) == [("SEM-017", E, 5)]
    assert codes([f], Format.TEXT) == [("SEM-017", W, 5)]
    nan = histogram(buckets=(("+Inf", NAN),), count=NAN)
    assert [c for c, _, _ in codes([nan], Format.TEXT)] == ["SEM-031", "SEM-031"]


def test_sum_and_count_together_in_openmetrics() -> None:
    assert codes([histogram(count=None)]) == [("SEM-018", E, 5)]
    assert codes([histogram(total=None)]) == [("SEM-018", E, 5)]
    assert codes([histogram(count=None, total=None)]) == []
    assert codes([histogram(count=None)], Format.TEXT) == []


def test_negative_sums() -> None:
    assert codes([histogram(total=-1)]) == [("SEM-019", E, 6)]
    assert codes([histogram(total=-1)], Format.TEXT) == []
    neg = histogram(buckets=(("-1.0", 1), ("+Inf", 3)))
    assert codes([neg]) == [("SEM-020", E, 5)]
    gh = histogram(kind=MetricType.GAUGEHISTOGRAM, total=-1)
    assert codes([gh]) == [("SEM-019", E, 6)]
    gh_neg = histogram(kind=MetricType.GAUGEHISTOGRAM, total=-1, buckets=(("-1.0", 1), ("+Inf", 3)))
    assert codes([gh_neg]) == []


def test_histogram_negative_and_nan_counts() -> None:
    f = histogram(buckets=(("0.1", -1), ("+Inf", 3)), total=NAN)
    assert codes([f]) == [("SEM-030", E, 2), ("SEM-031", E, 5)]


def test_histogram_groups_by_labels_and_timestamp() -> None:
    samples = []
    line = 1
    for job in ("a", "b"):
        for le, v in (("1.0", 1), ("+Inf", 2)):
            samples.append(Sample("h_bucket", (("job", job), ("le", le)), v, None, None, line))
            line += 1
        samples.append(Sample("h_count", (("job", job),), 2, None, None, line))
        samples.append(Sample("h_sum", (("job", job),), 2, None, None, line + 1))
        line += 2
    assert run([fam("h", MetricType.HISTOGRAM, *samples)]) == []
    # two points of one histogram at different timestamps
    pts = [
        Sample("h_bucket", (("le", "+Inf"),), 1, 10.0, None, 1),
        Sample("h_count", (), 1, 10.0, None, 2),
        Sample("h_sum", (), 1, 10.0, None, 3),
        Sample("h_bucket", (("le", "+Inf"),), 5, 20.0, None, 4),
        Sample("h_count", (), 5, 20.0, None, 5),
        Sample("h_sum", (), 1, 20.0, None, 6),
    ]
    assert run([fam("h", MetricType.HISTOGRAM, *pts)]) == []


def test_native_histogram_without_classic_buckets() -> None:
    native = NativeHistogram(schema=3, zero_threshold=1e-128, zero_count=0, count=4, sum=2.5)
    f = fam("h", MetricType.HISTOGRAM, Sample("h", (), 4, None, None, 1, native))
    assert run([f], Format.PROTOBUF) == []


# --- summaries ----------------------------------------------------------------------------------------


def test_summary_quantiles() -> None:
    f = fam(
        "q",
        MetricType.SUMMARY,
        s("q", 1, 1),
        s("q", 1, 2, quantile="x"),
        s("q", 1, 3, quantile="1.5"),
        s("q", 1, 4, quantile="-0.1"),
        s("q", 1, 5, quantile="0.50"),
        s("q", -1, 6, quantile="0.9"),
        s("q", NAN, 7, quantile="0.99"),
    )
    assert codes([f]) == [
        ("SEM-021", E, 1),
        ("SEM-022", E, 2),
        ("SEM-022", E, 3),
        ("SEM-022", E, 4),
        ("SEM-012", W, 5),
        ("SEM-023", E, 6),
    ]
    assert codes([f], Format.TEXT) == [
        ("SEM-021", W, 1),
        ("SEM-022", W, 2),
        ("SEM-022", W, 3),
        ("SEM-022", W, 4),
    ]


def test_summary_counts_and_sums() -> None:
    f = fam("q", MetricType.SUMMARY, s("q_count", -1, 1), s("q_sum", -3, 2), s("q_created", NAN, 3))
    assert codes([f]) == [("SEM-030", E, 1), ("SEM-030", E, 2), ("SEM-031", E, 3)]
    # Prometheus clients may observe negative values: a negative text summary sum is fine
    assert codes([f], Format.TEXT) == [("SEM-030", W, 1), ("SEM-031", W, 3)]


# --- info and stateset --------------------------------------------------------------------------------


def test_info_value_is_one() -> None:
    f = fam("i", MetricType.INFO, s("i_info", 2, 1), s("i_info", 1, 2, a="b"))
    assert codes([f]) == [("SEM-042", E, 1)]


def test_stateset() -> None:
    f = fam("st", MetricType.STATESET, s("st", 2, 1, st="a"), s("st", 1, 2, other="b"), s("st", 0, 3, st="c"))
    assert codes([f]) == [("SEM-043", E, 1), ("SEM-044", E, 2)]


# --- exemplars ----------------------------------------------------------------------------------------


def test_exemplar_placement() -> None:
    ex = Exemplar((("trace_id", "abc"),), 0.5, 1.0)
    ok = [
        fam("c", MetricType.COUNTER, s("c_total", 1, 1, exemplar=ex)),
        fam("h", MetricType.HISTOGRAM, bucket("h", "+Inf", 1, 2), s("h_count", 1, 3), s("h_sum", 1, 4)),
    ]
    ok[1] = MetricFamily(
        "h", MetricType.HISTOGRAM, None, None, (replace_exemplar(ok[1].samples[0], ex), *ok[1].samples[1:]), 2
    )
    assert run(ok) == []
    bad = [
        fam("g", MetricType.GAUGE, s("g", 1, 1, exemplar=ex)),
        fam("c", MetricType.COUNTER, s("c_created", 1, 2, exemplar=ex)),
        fam(
            "h",
            MetricType.HISTOGRAM,
            bucket("h", "+Inf", 1, 3),
            s("h_count", 1, 4, exemplar=ex),
            s("h_sum", 1, 5),
        ),
    ]
    assert codes(bad) == [("SEM-050", E, 1), ("SEM-050", E, 2), ("SEM-050", E, 4)]
    assert {sev for _, sev, _ in codes(bad, Format.PROTOBUF)} == {W}


def replace_exemplar(sample: Sample, exemplar: Exemplar) -> Sample:
    return Sample(sample.name, sample.labels, sample.value, sample.timestamp, exemplar, sample.line)


def test_exemplar_label_length_counts_characters_not_bytes() -> None:
    at_limit = Exemplar((("id", "é" * 126),), 1.0)  # 128 characters, 254 bytes
    over = Exemplar((("id", "x" * 127),), 1.0)
    f = fam(
        "c",
        MetricType.COUNTER,
        s("c_total", 1, 1, exemplar=at_limit),
        s("c_total", 1, 2, a="1", exemplar=over),
    )
    for fmt in Format:
        assert codes([f], fmt) == [("SEM-051", E, 2)]


def test_exemplar_within_bucket() -> None:
    f = histogram(buckets=(("0.1", 1), ("1.0", 2), ("+Inf", 3)))
    samples = list(f.samples)
    samples[0] = replace_exemplar(samples[0], Exemplar((), 0.5))
    samples[1] = replace_exemplar(samples[1], Exemplar((), 0.5))
    samples[2] = replace_exemplar(samples[2], Exemplar((), 1e9))
    g = MetricFamily("h", MetricType.HISTOGRAM, None, None, tuple(samples), 1)
    assert codes([g]) == [("SEM-052", E, 2)]


# --- helpers and limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1.0), ("+Inf", INF), ("-inf", -INF), ("1e3", 1000.0), ("0x1p-2", 0.25), (".5", 0.5)],
)
def test_parse_number_accepts_go_floats(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", " 1", "1 ", "1_000", "abc", "\u0661", "0x"])
def test_parse_number_rejects_what_go_rejects(text: str) -> None:
    assert parse_number(text) is None


def test_diagnostic_limit_is_respected() -> None:
    f = fam("g", MetricType.GAUGE, *(s("g", 1, i) for i in range(1, 20)))
    sink = DiagnosticSink(limit=5)
    check_semantics([f], Format.TEXT, sink)
    assert len(sink.diagnostics) == 5 and sink.suppressed == 13


def test_metric_is_set_on_diagnostics() -> None:
    (diagnostic,) = run([histogram(count=9)])
    assert diagnostic.metric == "h" and diagnostic.column == 0 and "+Inf" in diagnostic.message


def test_fmt_may_be_a_string() -> None:
    assert codes([histogram(count=9)], "text") == [("SEM-017", W, 5)]  # type: ignore[arg-type]


class _RandomFamily:
    """Mostly well-formed families of every type with, now and then (``odd``), one defect of the
    kind a fast path must notice: a value, a bound, a label order, a repeat, a timestamp, an exemplar."""

    def __init__(self, rng: random.Random, odd: float) -> None:
        self.rng = rng
        self.odd = odd
        self.samples: list[Sample] = []
        self.timestamped = rng.random() < odd

    def value(self, v: float) -> float:
        return self.rng.choice([NAN, -1.0, INF, 7.0]) if self.rng.random() < self.odd else v

    def add(self, name: str, base: list[tuple[str, str]], v: float, *last: tuple[str, str]) -> None:
        rng = self.rng
        pairs = [*base, *last]
        if pairs and rng.random() < self.odd:
            rng.choice([rng.shuffle, lambda p: p.append(("__x", "1")), lambda p: p.append(p[0])])(pairs)
        ts = float(rng.randint(0, 2)) if self.timestamped else None
        ex = None
        if rng.random() < self.odd:
            ex = Exemplar((("id", "x" * rng.choice([1, 130])),), rng.choice([0.1, 1e9]))
        self.samples.append(Sample(name, tuple(pairs), self.value(v), ts, ex, len(self.samples) + 1))

    def build(self, name: str, kind: MetricType) -> MetricFamily:
        rng, odd = self.rng, self.odd
        for i in range(rng.randint(0, 5)):
            base = [("job", "j"), ("pod", str(rng.randint(0, 3) if rng.random() < odd else i))]
            base = base[: rng.randint(0, 2)]
            if kind in (MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM):
                les = ["0.1", "1", "1.0", "+Inf"] if rng.random() < odd else ["0.1", "1.0", "+Inf"]
                for n, le in enumerate(les):
                    bad = rng.choice(["2", "NaN"]) if rng.random() < odd else le
                    self.add(name + "_bucket", base, n, ("le", bad))
                for suffix in ("_count", "_sum", "_gsum", "_created"):
                    if rng.random() < (0.9 if suffix in ("_count", "_sum") else odd):
                        self.add(name + suffix, base, len(les) - 1.0)
            elif kind is MetricType.SUMMARY:
                for q in ["0.5", "0.50", "2"][: 1 + 2 * (rng.random() < odd)]:
                    self.add(name, base, 1.0, ("quantile", q))
                self.add(name + "_count", base, 3.0)
                self.add(name + "_sum", base, -1.0)
            elif kind is MetricType.STATESET:
                self.add(name, base, 1.0, (name if rng.random() > odd else "x", "on"))
            else:
                self.add(name + rng.choice(["", "_total", "_created", "_info"]), base, 1.0)
        if self.samples and rng.random() < odd:
            self.samples.append(rng.choice(self.samples))
        return fam(name, kind, *self.samples)


def _random_families(rng: random.Random) -> list[MetricFamily]:
    odd = rng.choice([0.0, 0.02, 0.2])
    return [
        _RandomFamily(rng, odd).build(rng.choice(["m", "m", "m_count", "n"]), rng.choice(list(MetricType)))
        for _ in range(rng.randint(1, 4))
    ]


def test_fast_paths_agree_with_the_per_sample_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same diagnostics, in the same order, whether or not the fast paths may run."""
    rng = random.Random(20240521)
    cases = [(fmt, _random_families(rng)) for fmt in Format for _ in range(400)]
    fast = []
    for fmt, families in cases:
        sink = DiagnosticSink(limit=rng.choice([3, 10_000]))
        check_semantics(families, fmt, sink)
        fast.append((sink.diagnostics, sink.suppressed, sink.limit))
    monkeypatch.setattr(semantics, "_FAST_RULES", {})
    monkeypatch.setattr(semantics, "_series_fast", lambda *args: False)
    for (fmt, families), (diagnostics, suppressed, limit) in zip(cases, fast, strict=True):
        sink = DiagnosticSink(limit=limit)
        check_semantics(families, fmt, sink)
        assert (sink.diagnostics, sink.suppressed) == (diagnostics, suppressed)


@pytest.mark.timeout(120)  # a hang guard; bench/ measures speed
def test_large_clean_input_gives_nothing() -> None:
    """100k series through every rule in well under a second (parsing them takes several)."""
    samples: list[Sample] = []
    line = 1
    for i in range(10_000):
        labels = (("pod", f"pod-{i}"), ("namespace", "default"))
        for le, v in (("0.1", 1.0), ("1.0", 2.0), ("10.0", 3.0), ("+Inf", 4.0)):
            samples.append(Sample("h_bucket", (*labels, ("le", le)), v, None, None, line))
            line += 1
        samples.append(Sample("h_count", labels, 4.0, None, None, line))
        samples.append(Sample("h_sum", labels, 7.0, None, None, line + 1))
        line += 2
    gauges = [
        Sample("g", (("pod", f"pod-{i}"), ("namespace", "default")), 1.0, None, None, i)
        for i in range(40_000)
    ]
    families = [fam("h", MetricType.HISTOGRAM, *samples), fam("g", MetricType.GAUGE, *gauges)]
    assert run(families) == []
