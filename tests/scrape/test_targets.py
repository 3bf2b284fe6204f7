"""Targets: Prometheus config files, promscope.toml tables, command-line URLs, labels and jitter."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from promscope.errors import ConfigError
from promscope.exposition.negotiate import ACCEPT_TEXT
from promscope.scrape.targets import (
    ScrapeConfig,
    ScrapeTarget,
    TargetGroup,
    format_duration,
    load_prometheus_config,
    load_scrape_settings,
    parse_duration,
    parse_size,
    targets_from_urls,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2d", 172800), ("0", 0), (7, 7), (1.5, 1.5)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "1.5s", "s", "-1s", "1m1h", True])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration_round_trips() -> None:
    for text in ("15s", "1m30s", "500ms", "1h", "0s", "1d2h3m4s5ms"):
        assert format_duration(parse_duration(text)) == text


@pytest.mark.parametrize(
    ("text", "size"), [(0, 0), ("0", 0), ("512KB", 512 << 10), ("100MiB", 100 << 20), ("1GB", 1 << 30)]
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="not a valid size"):
        parse_size("ten megs")


PROMETHEUS_YML = """
global:
  scrape_interval: 30s
  scrape_timeout: 5s
  external_labels: {region: eu}
  evaluation_interval: 1m
rule_files: [rules.yml]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: ["10.0.0.1:9100", "10.0.0.2:9100"]
        labels: {env: prod}
  - job_name: blackbox
    scrape_interval: 10s
    scrape_timeout: 3s
    scheme: https
    metrics_path: /probe
    params: {module: [http_2xx], target: [example.org]}
    honor_labels: true
    honor_timestamps: false
    sample_limit: 500
    body_size_limit: 10MB
    basic_auth: {username: admin, password_file: secrets/pw}
    tls_config: {ca_file: ca.pem, insecure_skip_verify: true, server_name: probe.internal}
    scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4]
    enable_compression: false
    static_configs:
      - targets: ["probe:9115"]
  - job_name: files
    authorization: {credentials_file: secrets/token}
    file_sd_configs:
      - files: ["sd/*.json", "sd/extra.yml"]
        refresh_interval: 1m
    dns_sd_configs:
      - names: [_node._tcp.example.org]
      - names: [db.example.org]
        type: A
        port: 9187
    relabel_configs:
      - source_labels: [__address__]
        target_label: host
    metric_relabel_configs: []
    kubernetes_sd_configs:
      - role: pod
    label_limit: 30
    oauth2: {client_id: x}
"""


@pytest.fixture
def prom_config(tmp_path: Path) -> Path:
    write(tmp_path, "secrets/pw", "s3cret\n")
    write(tmp_path, "secrets/token", "tok\n")
    return write(tmp_path, "prometheus.yml", PROMETHEUS_YML)


def test_prometheus_config_jobs_and_defaults(prom_config: Path) -> None:
    config = load_prometheus_config(prom_config)
    assert [c.job_name for c in config.scrape_configs] == ["node", "blackbox", "files"]
    node = config.job("node")
    assert node is not None
    assert (node.interval, node.timeout, node.scheme, node.metrics_path) == (30.0, 5.0, "http", "/metrics")
    targets, errors = node.static_targets()
    assert errors == []
    assert [t.url for t in targets] == ["http://10.0.0.1:9100/metrics", "http://10.0.0.2:9100/metrics"]
    assert targets[0].labels == (("env", "prod"), ("instance", "10.0.0.1:9100"), ("job", "node"))
    assert targets[0].identity == "node/10.0.0.1:9100"


def test_prometheus_config_request_settings(prom_config: Path, tmp_path: Path) -> None:
    blackbox = load_prometheus_config(prom_config).job("blackbox")
    assert blackbox is not None
    (target,) = blackbox.static_targets()[0]
    assert target.url == "https://probe:9115/probe?module=http_2xx&target=example.org"
    assert (target.interval, target.timeout) == (10.0, 3.0)
    assert target.honor_labels and not target.honor_timestamps and target.sample_limit == 500
    request = target.request
    assert request.body_size_limit == 10 << 20
    assert request.basic_auth is not None and request.basic_auth.password == "s3cret"
    assert request.tls.ca_file == str(tmp_path / "ca.pem")
    assert request.tls.insecure_skip_verify and request.tls.server_name == "probe.internal"
    assert request.accept == ACCEPT_TEXT
    assert request.compression is False


def test_prometheus_config_reports_what_it_does_not_apply(prom_config: Path, tmp_path: Path) -> None:
    config = load_prometheus_config(prom_config)
    keys = {issue.key.rsplit(".", 1)[-1]: issue.message for issue in config.issues}
    assert set(keys) == {
        "relabel_configs",
        "metric_relabel_configs",
        "kubernetes_sd_configs",
        "label_limit",
        "oauth2",
    }
    assert "without relabeling" in keys["relabel_configs"]
    assert "kubernetes service discovery is not supported" in keys["kubernetes_sd_configs"]
    assert all(str(prom_config) in str(issue) for issue in config.issues)
    files = config.job("files")
    assert files is not None
    assert files.bearer_token_file == str(tmp_path / "secrets/token")
    assert files.file_sd_configs[0].files == (str(tmp_path / "sd/*.json"), str(tmp_path / "sd/extra.yml"))
    assert files.file_sd_configs[0].refresh_interval == 60
    assert [(d.type, d.port) for d in files.dns_sd_configs] == [("SRV", 0), ("A", 9187)]
    with pytest.raises(ConfigError, match="relabel_configs"):
        load_prometheus_config(prom_config, strict=True)


@pytest.mark.parametrize(
    ("yml", "message"),
    [
        ("scrape_configs:\n  - static_configs: []\n", "needs a job_name"),
        ("scrape_configs:\n  - job_name: a\n  - job_name: a\n", "multiple scrape configs with job name 'a'"),
        (
            "scrape_configs:\n  - job_name: a\n    scrape_interval: 5s\n    scrape_timeout: 10s\n",
            "greater than",
        ),
        ("scrape_configs:\n  - job_name: a\n    scrape_interval: often\n", "not a valid duration"),
        ("scrape_configs:\n  - job_name: a\n    scheme: ftp\n", "unknown scheme"),
        (
            "scrape_configs:\n  - job_name: a\n    file_sd_configs: [{files: [sd.txt]}]\n",
            "not valid for file",
        ),
        ("scrape_configs: [\n", "not valid YAML at line"),
        (
            "scrape_configs:\n  - job_name: a\n    basic_auth: {username: u}\n    bearer_token: t\n",
            "at most one",
        ),
    ],
)
def test_prometheus_config_errors(tmp_path: Path, yml: str, message: str) -> None:
    path = write(tmp_path, "p.yml", yml)
    with pytest.raises(ConfigError, match=message) as info:
        load_prometheus_config(path)
    assert str(path) in str(info.value)


def test_timeout_defaults_to_the_interval_when_the_global_timeout_is_longer(tmp_path: Path) -> None:
    path = write(tmp_path, "p.yml", "scrape_configs:\n  - job_name: fast\n    scrape_interval: 2s\n")
    job = load_prometheus_config(path).job("fast")
    assert job is not None and (job.interval, job.timeout) == (2.0, 2.0)


def test_scrape_config_files_are_read(tmp_path: Path) -> None:
    write(
        tmp_path,
        "jobs/a.yml",
        "scrape_configs:\n  - job_name: extra\n    static_configs: [{targets: [h:1]}]\n",
    )
    path = write(tmp_path, "p.yml", "scrape_config_files: [jobs/*.yml]\nscrape_configs: []\n")
    assert [c.job_name for c in load_prometheus_config(path).scrape_configs] == ["extra"]


def test_discovered_labels_override_the_config_as_in_prometheus() -> None:
    config = ScrapeConfig(job_name="j", interval=30, timeout=10, params=(("module", ("a", "b")),))
    group = TargetGroup(
        ("h:1",),
        (
            ("__metrics_path__", "/other"),
            ("__scheme__", "https"),
            ("__param_module", "z"),
            ("__scrape_interval__", "1m"),
            ("__meta_x", "y"),
            ("instance", "custom"),
            ("empty", ""),
        ),
    )
    (target,), errors = config.targets(group)
    assert errors == []
    assert target.url == "https://h:1/other?module=z&module=b"
    assert target.interval == 60.0
    assert target.labels == (("instance", "custom"), ("job", "j"))
    assert ("__meta_x", "y") in target.discovered


def test_bad_addresses_are_reported_not_raised() -> None:
    config = ScrapeConfig(job_name="j")
    built, errors = config.targets(TargetGroup(("good:1", "bad/path:2"), source="f.json:0"))
    assert [t.instance for t in built] == ["good:1"]
    assert len(errors) == 1 and "bad/path:2" in errors[0] and "f.json:0" in errors[0]


def test_targets_from_urls() -> None:
    targets = targets_from_urls(["http://127.0.0.1:9100/metrics", "https://user@h/m?x=1"], interval=5)
    assert [t.identity for t in targets] == ["promscope/127.0.0.1:9100", "promscope/h"]
    assert targets[0].timeout == 5.0 and targets[0].origin == "cli"
    with pytest.raises(ConfigError):
        targets_from_urls(["ftp://x"])


def test_timeout_above_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match="greater than the scrape interval"):
        targets_from_urls(["http://h:1/"], interval=1, timeout=2)


def test_offset_is_deterministic_within_the_interval_and_pinned_to_absolute_time() -> None:
    (target,) = targets_from_urls(["http://h:1/metrics"], interval=15)
    first = target.offset(1000.0)
    assert 0 <= first <= 15
    assert target.offset(1000.0) == first
    # Asked later within the same interval, the same absolute phase is reached.
    assert (1000.0 + first) % 15 == pytest.approx((1003.0 + target.offset(1003.0)) % 15)
    assert target.offset(1000.0, seed=12345) != first
    others = targets_from_urls([f"http://h:{port}/metrics" for port in range(2, 40)], interval=15)
    phases = {round(t.offset(1000.0), 3) for t in others}
    assert len(phases) > 30  # spread, not all at once


def test_equal_targets_compare_equal_ignoring_display_fields() -> None:
    (a,) = targets_from_urls(["http://h:1/metrics"], interval=5)
    b = ScrapeTarget(a.request, a.labels, 5, origin="elsewhere", discovered=(("x", "y"),))
    assert a == b and a.key == b.key
    (c,) = targets_from_urls(["http://h:1/metrics"], interval=10)
    assert c.key == a.key and c != a


TOML = """
[check]
lint = true

[scrape]
interval = "10s"
sample_limit = 1000
body_size_limit = "50MiB"
max_connections = 32
prometheus_config = ["prometheus.yml"]
prometheus_server = ["http://127.0.0.1:9090"]

[[targets]]
job = "node"
urls = ["http://127.0.0.1:9100/metrics"]
labels = { env = "dev" }
interval = "5s"
authorization = { credentials = "tok" }
headers = { "X-Scope-OrgID" = "a" }
accept = "text"

[[targets]]
static = ["10.0.0.1:8080"]
file_sd = ["sd/*.yml"]
dns_srv = ["_app._tcp.example.org"]
metrics_path = "/stats"
basic_auth = { username = "u", password = "p" }
tls = { insecure_skip_verify = true }
"""


def test_promscope_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "promscope.toml", TOML)
    settings = load_scrape_settings(path)
    assert (settings.interval, settings.timeout, settings.max_connections) == (10.0, 10.0, 32)
    assert settings.prometheus_configs == (str(tmp_path / "prometheus.yml"),)
    assert settings.prometheus_servers == ("http://127.0.0.1:9090",)
    node, app = settings.jobs
    (target,), _ = node.static_targets()
    assert target.labels == (("env", "dev"), ("instance", "127.0.0.1:9100"), ("job", "node"))
    assert (target.interval, target.timeout, target.sample_limit) == (5.0, 5.0, 1000)
    assert target.request.bearer_token == "tok"
    assert target.request.headers == (("X-Scope-OrgID", "a"),)
    assert target.request.accept == ACCEPT_TEXT
    assert target.request.body_size_limit == 50 << 20
    assert app.job_name == "promscope"
    (static,), _ = app.static_targets()
    assert static.url == "http://10.0.0.1:8080/stats"
    assert app.file_sd_configs[0].files == (str(tmp_path / "sd/*.yml"),)
    assert app.dns_sd_configs[0].names == ("_app._tcp.example.org",)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[scrape]\nintervall = "5s"\n', "scrape.intervall: unknown key"),
        ('[[targets]]\njob = "x"\n', "give at least one of urls"),
        ('[[targets]]\nurls = ["ftp://x"]\n', "is not an http"),
        ('[[targets]]\nurls = ["http://x"]\ninterval = "1s"\ntimeout = "2s"\n', "greater than"),
        ('[[targets]]\nurls = ["http://x"]\ncolour = 1\n', "targets\\[0\\].colour: unknown key"),
        ('[[targets]]\nurls = ["http://x"]\naccept = "yaml"\n', "unknown Accept choice"),
        ("[scrape]\nmax_targets = 0\n", "at least 1"),
    ],
)
def test_promscope_toml_errors(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, "promscope.toml", toml)
    with pytest.raises(ConfigError, match=message):
        load_scrape_settings(path)


def test_pyproject_tool_table(tmp_path: Path) -> None:
    path = write(tmp_path, "pyproject.toml", '[tool.promscope.scrape]\ninterval = "7s"\n')
    assert load_scrape_settings(path).interval == 7.0
