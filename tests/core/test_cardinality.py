"""Cardinality analysis: series per family, the label that drives it, labels that look like IDs."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from promscope.check import CheckOptions, Ignore, check_result
from promscope.check.cardinality import CODES, CardinalityOptions, analyze, id_kind
from promscope.model import Format, MetricFamily, MetricType, ParseResult, Sample, Severity


def family(
    name: str, rows: list[dict[str, str]], type_: MetricType = MetricType.GAUGE, line: int = 1
) -> MetricFamily:
    samples = tuple(Sample(name, tuple(labels.items()), 1.0, line=line + i) for i, labels in enumerate(rows))
    return MetricFamily(name, type_, "help", None, samples, line)


def histogram(
    name: str, label_sets: list[dict[str, str]], buckets: tuple[str, ...] = ("1", "+Inf")
) -> MetricFamily:
    samples: list[Sample] = []
    for labels in label_sets:
        pairs = tuple(labels.items())
        samples.extend(Sample(f"{name}_bucket", (*pairs, ("le", le)), 1.0) for le in buckets)
        samples.append(Sample(f"{name}_sum", pairs, 1.0))
        samples.append(Sample(f"{name}_count", pairs, 1.0))
    return MetricFamily(name, MetricType.HISTOGRAM, "help", None, tuple(samples), 1)


def test_codes_are_declared_as_warnings() -> None:
    assert set(CODES) == {"CARD-001", "CARD-002", "CARD-003", "CARD-004"}
    assert all(code.severity is Severity.WARNING for code in CODES.values())


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("3f2504e0-4f89-11d3-9a0c-0305e82c3301", "uuid"),
        ("10.0.3.17:8080", "ip:port"),
        ("[2001:db8::1]:443", "ip:port"),
        ("192.168.1.20", "ip"),
        ("1712345678", "timestamp"),
        ("1712345678123", "timestamp"),
        ("2024-04-05T10:11:12Z", "timestamp"),
        ("4f9a1c2be8d7a6f5", "hex"),
        ("0x7ffd4a2b91c3", "hex"),
        ("sha256e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"[6:], "hex"),
        ("123456789", "number"),
        ("/api/users/12345/orders", "path with ID"),
        ("https://example.com/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "path with ID"),
        ("/v1/blobs/9f86d081884c7d65", "path with ID"),
    ],
)
def test_id_kind_recognises(value: str, kind: str) -> None:
    assert id_kind(value) == kind


@pytest.mark.parametrize(
    "value",
    [
        "get",
        "200",
        "us-east-1",
        "deadbeefcafe",
        "/api/users",
        "/api/v1/orders",
        "sda1",
        "node-7",
        "",
        "1.2.3",
    ],
)
def test_id_kind_leaves_ordinary_values(value: str) -> None:
    assert id_kind(value) is None


def test_series_per_family_and_top_label() -> None:
    rows = [{"method": m, "path": f"/p{i}"} for i, m in enumerate(["get", "post"] * 10)]
    report = analyze([family("reqs_total", rows, MetricType.COUNTER), family("up", [{}])])
    assert report.total_series == 21
    assert [f.name for f in report.families] == ["reqs_total", "up"]
    top = report.families[0]
    assert top.series == 20 and top.label_sets == 20
    assert top.top_label is not None and top.top_label.name == "path" and top.top_label.distinct == 20
    assert {s.name: s.distinct for s in top.labels} == {"path": 20, "method": 2}
    assert report.share(top) == pytest.approx(20 / 21)
    assert report.family("up") is not None and report.family("up").top_label is None  # type: ignore[union-attr]
    assert report.top(1) == (top,)


def test_histogram_structure_is_not_cardinality() -> None:
    h = histogram("latency_seconds", [{"route": f"r{i}"} for i in range(5)], buckets=("0.1", "1", "+Inf"))
    report = analyze([h])
    stats = report.families[0]
    assert stats.series == 5 * 5
    assert stats.label_sets == 5
    assert [s.name for s in stats.labels] == ["route"]
    assert stats.labels[0].unique_ratio == 1.0


def test_id_labels_are_flagged() -> None:
    rows = [{"request_id": str(uuid.UUID(int=i + 1)), "code": "200"} for i in range(30)]
    report = analyze([family("handled", rows, line=4)])
    diagnostics = [d for d in report.diagnostics if d.code == "CARD-001"]
    assert len(diagnostics) == 1
    (diagnostic,) = diagnostics
    assert diagnostic.metric == "handled" and diagnostic.line == 4
    assert diagnostic.message.startswith(
        "label request_id has 30 distinct values (100% unique), looks like an ID (uuid), e.g. "
    )
    stats = report.families[0].labels[0]
    assert stats.id_kind == "uuid" and stats.id_ratio == 1.0 and len(stats.examples) == 3


def test_pod_names_with_high_uniqueness_are_flagged_without_id_look() -> None:
    rows = [{"pod": f"web-{i}"} for i in range(95)] + [{"pod": "web-0"} for _ in range(5)]
    report = analyze([family("restarts_total", [dict(r, n=str(i)) for i, r in enumerate(rows)])])
    codes = {(d.code, d.message.split(" has ")[0]) for d in report.diagnostics}
    assert ("CARD-002", "label n") in codes
    assert ("CARD-002", "label pod") in codes
    assert report.families[0].labels[0].name == "n"


def test_few_series_are_not_judged_on_ratio() -> None:
    rows = [{"pod": f"web-{i}"} for i in range(10)]
    assert analyze([family("x", rows)]).diagnostics == ()


def test_thresholds_for_series_and_values() -> None:
    rows = [{"user": f"u{i}"} for i in range(30)]
    options = CardinalityOptions(max_family_series=20, max_label_values=25, min_series=1000)
    report = analyze([family("logins_total", rows, MetricType.COUNTER)], options)
    assert sorted(d.code for d in report.diagnostics) == ["CARD-003", "CARD-004"]
    messages = {d.code: d.message for d in report.diagnostics}
    assert messages["CARD-003"] == "30 series in one family (more than 20); top label: user"
    assert messages["CARD-004"] == "label user has 30 distinct values (more than 25)"


def test_split_family_counts_once() -> None:
    first = family("x", [{"a": "1"}])
    second = family("x", [{"a": "2"}], line=10)
    report = analyze([first, second])
    assert len(report.families) == 1 and report.families[0].series == 2 and report.families[0].line == 1


def test_report_is_plain_data() -> None:
    report = analyze([family("x", [{"a": str(i)} for i in range(3)])])
    encoded = json.dumps(dataclasses.asdict(report), default=str)
    assert '"total_series": 3' in encoded


def test_check_result_includes_cardinality_when_asked() -> None:
    rows = [{"trace": f"{i:032x}"} for i in range(1, 40)]
    result = ParseResult(
        families=(family("spans_total", rows, MetricType.COUNTER),), diagnostics=(), format=Format.TEXT
    )
    assert check_result(result).cardinality is None
    report = check_result(result, CheckOptions(cardinality=True))
    assert report.cardinality is not None and report.cardinality.total_series == 39
    assert "CARD-001" in {d.code for d in report.diagnostics}
    ignored = check_result(result, CheckOptions(cardinality=True, ignores=(Ignore.parse("CARD-*:spans_*"),)))
    assert "CARD-001" not in {d.code for d in ignored.diagnostics} and ignored.ignored >= 1


@pytest.mark.timeout(120)  # a hang guard; bench/ measures speed
def test_hundred_thousand_series_is_analyzed() -> None:
    families = []
    for f in range(100):
        rows = [
            {"pod": f"api-{i % 250}", "instance": f"10.0.{i % 200}.{i % 250}:9100", "code": str(200 + i % 5)}
            for i in range(1000)
        ]
        families.append(family(f"metric_{f}_total", rows, MetricType.COUNTER))
    report = analyze(families)
    assert report.total_series == 100_000
