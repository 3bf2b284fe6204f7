"""statsd_exporter mapping YAML: glob and regex rules, templates, drop, observer types, defaults, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from promscope.errors import ConfigError
from promscope.model import MetricType
from promscope.receive.statsd import StatsdReceiver
from promscope.receive.statsd_mapping import (
    DEFAULT_BUCKETS,
    Action,
    MappingConfig,
    ObserverType,
    StatsdMetricType,
    escape_metric_name,
    parse_go_duration,
)

MAPPING = Path(__file__).resolve().parents[2] / "fixtures" / "statsd" / "mapping.yml"
C, G, OBS = StatsdMetricType.COUNTER, StatsdMetricType.GAUGE, StatsdMetricType.OBSERVER


@pytest.fixture(scope="module")
def config() -> MappingConfig:
    return MappingConfig.from_file(MAPPING)


def test_glob_with_captures_and_constant_labels(config: MappingConfig) -> None:
    result = config.match("test.dispatcher.FooProcessor.send.success", C)
    assert result.rule is not None and result.rule.index == 1 and result.rule.line > 0
    assert result.name == "dispatcher_events_total"
    assert dict(result.labels) == {
        "processor": "FooProcessor",
        "action": "send",
        "outcome": "success",
        "job": "test_dispatcher",
    }
    assert result.help == "Dispatcher events by processor, action and outcome."
    signup = config.match("foo_product.signup.facebook.failure", C)
    assert dict(signup.labels) == {"provider": "facebook", "outcome": "failure", "job": "foo_product_server"}


def test_unmatched_names_are_escaped(config: MappingConfig) -> None:
    result = config.match("test.web-server.foo.bar", C)
    assert result.rule is None and result.name == "test_web_server_foo_bar" and result.labels == ()
    assert config.match("test.dispatcher.too.few", C).rule is None  # a glob * is one component


def test_observer_type_buckets_and_quantiles(config: MappingConfig) -> None:
    histogram = config.match("api.timing.users", OBS)
    assert histogram.observer_type is ObserverType.HISTOGRAM and histogram.buckets == (0.01, 0.1, 1.0)
    summary = config.match("other.timer", OBS)
    assert summary.observer_type is ObserverType.SUMMARY
    assert [q.quantile for q in summary.quantiles] == [0.5, 0.99]  # from defaults.summary_options


def test_match_metric_type(config: MappingConfig) -> None:
    assert config.match("typed.x", G).name == "typed_gauge"
    counter, trials = config.trace("typed.x", C)
    assert counter.rule is None and counter.name == "typed_x"
    assert any("metric type differs" in t.outcome for t in trials)


def test_drop_regex_named_groups_and_empty_name(config: MappingConfig) -> None:
    assert config.match("noisy.thing", C).action is Action.DROP
    regex = config.match("regex.login.404", C)
    assert regex.name == "regex_login_total" and dict(regex.labels) == {"code": "404"}
    assert config.match("empty.x", C).name == ""  # $5 does not exist


def test_globs_are_tried_before_regexes_and_ordering_can_be_disabled() -> None:
    text = """
mappings:
- match: 'a\\..*'
  match_type: regex
  name: first_regex
- match: "a.*"
  name: later_glob
"""
    assert MappingConfig.from_yaml(text).match("a.b", C).name == "later_glob"
    ordered = "mappings:\n- match: 'a.*.c'\n  name: wild\n- match: 'a.b.c'\n  name: literal\n"
    assert MappingConfig.from_yaml(ordered).match("a.b.c", C).name == "wild"
    unordered = "defaults:\n  glob_disable_ordering: true\n" + ordered
    assert MappingConfig.from_yaml(unordered).match("a.b.c", C).name == "literal"


def test_defaults_and_legacy_keys() -> None:
    config = MappingConfig.from_yaml(
        "defaults:\n  timer_type: histogram\n  buckets: [1, 2]\n  ttl: 1m30s\nmappings:\n"
        "- match: x.*\n  name: x\n  quantiles: [{quantile: 0.9, error: 0.01}]\n  timer_type: summary\n"
    )
    assert config.defaults.observer_type is ObserverType.HISTOGRAM
    assert config.defaults.histogram_options.buckets == (1.0, 2.0) and config.defaults.ttl == 90.0
    assert config.match("y", OBS).observer_type is ObserverType.HISTOGRAM
    rule = config.match("x.a", OBS)
    assert rule.observer_type is ObserverType.SUMMARY and [q.quantile for q in rule.quantiles] == [0.9]
    assert rule.ttl == 90.0
    assert MappingConfig().match("t", OBS).buckets == DEFAULT_BUCKETS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mappings:\n- match: a.*\n", "didn't set a metric name"),
        ("mappings:\n- match: a.*\n  name: 1bad\n", "not a valid name template"),
        ("mappings:\n- match: a.*\n  name: x\n  labels: {k: v}\n", "invalid label key"),
        ("mappings:\n- match: 'a.(*'\n  match_type: regex\n  name: x\n", "invalid regex"),
        ("mappings:\n- match: 'a b'\n  name: x\n", "invalid glob"),
        ("mappings:\n- match: a\n  name: x\n  match_metric_type: timer\n", "now 'observer'"),
        ("mappings:\n- match: a\n  name: x\n  observer_type: sumary\n", "not one of summary, histogram"),
        (
            "mappings:\n- match: a\n  name: x\n  observer_type: histogram\n  summary_options: {}\n",
            "at the same time",
        ),
        (
            "mappings:\n- match: a\n  name: x\n  quantiles: [{quantile: 0.5}]\n  summary_options:\n"
            "    quantiles: [{quantile: 0.9}]\n",
            "both the top level",
        ),
        ("defaults:\n  ttl: 5x\n", "not a Go duration"),
        ("mappings: [\n", "invalid YAML"),
        ("unknown: 1\n", "unknown top-level"),
        ("mappings:\n- match: a\n  name: x\n  bogus: 1\n", "unknown key"),
    ],
)
def test_config_errors_name_the_rule(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        MappingConfig.from_yaml(text, source="m.yml")
    assert message in str(caught.value)
    assert "m.yml" in str(caught.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        MappingConfig.from_file(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    ("name", "escaped"),
    [
        ("clean", "clean"),
        ("0starts_with_digit", "_0starts_with_digit"),
        ("with--doubledash", "with_doubledash"),
        ("with---multiple-dashes", "with_multiple_dashes"),
        ("with.dot", "with_dot"),
        ("with😱emoji", "with_emoji"),
        ("with.*.multiple", "with___multiple"),
        ("test.web-server.foo.bar", "test_web_server_foo_bar"),
        ("", ""),
    ],
)
def test_escape_metric_name_matches_statsd_exporter(name: str, escaped: str) -> None:
    assert escape_metric_name(name) == escaped


def test_go_durations() -> None:
    assert parse_go_duration("1h2m3.5s") == 3723.5 and parse_go_duration("250ms") == 0.25
    assert parse_go_duration(0) == 0.0
    with pytest.raises(ValueError):
        parse_go_duration("10")


def test_receiver_applies_the_mapping(config: MappingConfig) -> None:
    seen = []
    r = StatsdReceiver(udp=None, tcp=None, mapping=config, sink=seen.append)
    r.feed(b"api.timing.users:20|ms\napi.timing.users:200|ms")
    r.feed(b"scaled.bytes:2|c")
    r.feed(b"honor.dev:1|c|#env:prod\nhonor.dev:1|c")
    r.feed(b"noisy.x:1|c")
    r.feed(b"empty.x:1|c")
    families = {f.name: f for f in r.series_families()}
    assert families["api_request_seconds"].type is MetricType.HISTOGRAM
    buckets = {
        dict(s.labels)["le"]: s.value
        for s in families["api_request_seconds"].samples
        if "le" in dict(s.labels)
    }
    assert buckets == {"0.01": 0.0, "0.1": 1.0, "1.0": 2.0, "+Inf": 2.0}
    assert families["scaled_bytes_total"].samples[0].value == 2048.0
    assert {dict(s.labels)["env"]: s.value for s in families["honor"].samples} == {"prod": 1.0, "dev": 1.0}
    assert "noisy_x" not in families and "dropped" not in families
    stats = r.stats()
    assert stats.actions["drop"] == 1 and stats.events_errors == {"empty_metric_name": 1}
    assert "dropped by rule #7" in seen[-2].message
    assert seen[-1].diagnostics[0].code == "SD-131"
    assert seen[0].transport.extra["rules"] == "rule #3 x2"
