"""promscope.toml / [tool.promscope]: discovery, validation, and flags > env > file > defaults."""

from __future__ import annotations

import pathlib

import pytest

from promscope.check import Ignore
from promscope.check.cardinality import CardinalityOptions
from promscope.config import (
    CheckConfig,
    Config,
    apply_env,
    apply_overrides,
    find_config,
    load_config,
    parse_config,
)
from promscope.errors import ConfigError
from promscope.model import Severity

NO_ENV: dict[str, str] = {}


def write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    return tmp_path / "repo"


def test_defaults_without_a_file(repo: pathlib.Path) -> None:
    config = load_config(repo, env=NO_ENV)
    assert config == Config()
    assert config.check.fail_on is Severity.ERROR and config.check.lint and not config.check.cardinality
    options = config.check.options()
    assert options.ignores == () and dict(options.severity_overrides) == {}


def test_full_file(repo: pathlib.Path) -> None:
    write(
        repo / "promscope.toml",
        """
[check]
ignore = ["LINT-001:go_*", "lint-004"]
severity = {"LINT-002" = "warning", "CARD-*" = "error", "LINT-009" = "off"}
fail_on = "warning"
promtool_only = true
cardinality = true

[cardinality]
max_family_series = 500
unique_ratio = 0.8
""",
    )
    config = load_config(repo, env=NO_ENV)
    assert config.path == repo / "promscope.toml"
    check = config.check
    assert check.ignore == (Ignore("LINT-001", "go_*"), Ignore("LINT-004"), Ignore("LINT-009"))
    assert dict(check.severity) == {"LINT-002": Severity.WARNING, "CARD-*": Severity.ERROR}
    assert check.fail_on is Severity.WARNING
    assert check.promtool_only and check.cardinality
    assert check.cardinality_options == CardinalityOptions(max_family_series=500, unique_ratio=0.8)
    options = check.options()
    assert options.fail_on is Severity.WARNING and options.cardinality_options.max_family_series == 500


def test_found_in_a_parent_up_to_the_repo_root(repo: pathlib.Path) -> None:
    write(repo / "promscope.toml", '[check]\nfail_on = "style"\n')
    deep = repo / "a" / "b"
    deep.mkdir(parents=True)
    assert find_config(deep) == repo / "promscope.toml"
    assert load_config(deep, env=NO_ENV).check.fail_on is Severity.STYLE


def test_search_stops_at_the_repo_root(tmp_path: pathlib.Path, repo: pathlib.Path) -> None:
    write(tmp_path / "promscope.toml", '[check]\nfail_on = "style"\n')
    assert find_config(repo) is None


def test_pyproject_tool_section(repo: pathlib.Path) -> None:
    write(repo / "pyproject.toml", '[project]\nname = "x"\n\n[tool.promscope.check]\nignore = ["LINT-001"]\n')
    config = load_config(repo, env=NO_ENV)
    assert config.path == repo / "pyproject.toml"
    assert config.check.ignore == (Ignore("LINT-001"),)


def test_pyproject_without_section_is_passed_over(repo: pathlib.Path) -> None:
    write(repo / "pyproject.toml", '[project]\nname = "x"\n')
    sub = repo / "svc"
    write(sub / "pyproject.toml", '[project]\nname = "svc"\n')
    assert find_config(sub) is None


def test_promscope_toml_beats_pyproject_in_the_same_directory(repo: pathlib.Path) -> None:
    write(repo / "pyproject.toml", '[tool.promscope.check]\nfail_on = "style"\n')
    write(repo / "promscope.toml", '[check]\nfail_on = "warning"\n')
    assert load_config(repo, env=NO_ENV).check.fail_on is Severity.WARNING


def test_explicit_path_and_env_path(tmp_path: pathlib.Path, repo: pathlib.Path) -> None:
    write(repo / "promscope.toml", '[check]\nfail_on = "warning"\n')
    other = write(tmp_path / "other.toml", '[check]\nfail_on = "style"\n')
    assert load_config(repo, explicit=other, env=NO_ENV).check.fail_on is Severity.STYLE
    assert load_config(repo, env={"PROMSCOPE_CONFIG": str(other)}).check.fail_on is Severity.STYLE


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[check]\nignroe = []\n", "check.ignroe: unknown key"),
        ("[chek]\n", "chek: unknown key"),
        ('[check]\nfail_on = "fatal"\n', "check.fail_on: unknown severity 'fatal'"),
        ('[check]\nfail_on = "off"\n', "check.fail_on: cannot be 'off'"),
        ("[check]\nfail_on = 3\n", "check.fail_on: expected a severity"),
        ('[check]\nseverity = {"LINT-002" = "loud"}\n', "check.severity.LINT-002: unknown severity 'loud'"),
        (
            '[check]\nseverity = {"nonsense" = "style"}\n',
            "check.severity.nonsense: 'nonsense' is not a diagnostic code",
        ),
        (
            '[check]\nseverity = {"LINT-999" = "style"}\n',
            "check.severity.LINT-999: unknown diagnostic code LINT-999",
        ),
        ('[check]\nignore = "LINT-001"\n', "check.ignore: expected a list"),
        ('[check]\nignore = ["LINT_001"]\n', "check.ignore[0]: ignore 'LINT_001'"),
        ('[check]\nignore = ["LINT-999:x"]\n', "unknown code LINT-999"),
        ("[check]\nignore = [1]\n", "check.ignore[0]: expected a string"),
        ('[check]\nlint = "maybe"\n', "check.lint: expected true or false"),
        (
            "[cardinality]\nmax_family_series = 0\n",
            "cardinality.max_family_series: must be at least 1",
        ),
        (
            "[cardinality]\nunique_ratio = 2\n",
            "cardinality.unique_ratio: must be between 0 and 1",
        ),
        ("[cardinality]\nwat = 1\n", "cardinality.wat: unknown key"),
        ("check = 1\n", "check: expected a table"),
        ("[check\n", "invalid TOML"),
    ],
)
def test_errors_name_the_file_and_the_key(repo: pathlib.Path, text: str, message: str) -> None:
    path = write(repo / "promscope.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(repo, env=NO_ENV)
    assert caught.value.path == str(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_unknown_key_error_lists_the_known_ones(repo: pathlib.Path) -> None:
    write(repo / "promscope.toml", "[check]\nfailon = 'warning'\n")
    with pytest.raises(ConfigError) as caught:
        load_config(repo, env=NO_ENV)
    assert "fail_on" in caught.value.hint


def test_missing_explicit_file(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path, explicit=tmp_path / "nope.toml", env=NO_ENV)


def test_pyproject_errors_use_the_tool_prefix(repo: pathlib.Path) -> None:
    write(repo / "pyproject.toml", "[tool.promscope.check]\nbogus = 1\n")
    with pytest.raises(ConfigError, match=r"tool\.promscope\.check\.bogus: unknown key"):
        load_config(repo, env=NO_ENV)


def test_environment_over_file(repo: pathlib.Path) -> None:
    write(repo / "promscope.toml", '[check]\nignore = ["LINT-001"]\nseverity = {"LINT-002" = "warning"}\n')
    env = {
        "PROMSCOPE_CHECK_IGNORE": "LINT-003:foo_*, LINT-004",
        "PROMSCOPE_CHECK_SEVERITY": "LINT-002=error,LINT-005=warning",
        "PROMSCOPE_CHECK_FAIL_ON": "style",
        "PROMSCOPE_CHECK_CARDINALITY": "yes",
    }
    check = load_config(repo, env=env).check
    assert check.ignore == (Ignore("LINT-001"), Ignore("LINT-003", "foo_*"), Ignore("LINT-004"))
    assert dict(check.severity) == {"LINT-002": Severity.ERROR, "LINT-005": Severity.WARNING}
    assert check.fail_on is Severity.STYLE and check.cardinality


def test_environment_errors_say_environment() -> None:
    with pytest.raises(ConfigError, match="environment: PROMSCOPE_CHECK_SEVERITY"):
        apply_env(Config(), {"PROMSCOPE_CHECK_SEVERITY": "LINT-001"})
    with pytest.raises(ConfigError, match="unknown severity"):
        apply_env(Config(), {"PROMSCOPE_CHECK_FAIL_ON": "bad"})
    with pytest.raises(ConfigError, match="PROMSCOPE_CHECK_LINT: expected true or false"):
        apply_env(Config(), {"PROMSCOPE_CHECK_LINT": "perhaps"})


def test_flags_over_environment_over_file(repo: pathlib.Path) -> None:
    write(repo / "promscope.toml", '[check]\nfail_on = "warning"\nseverity = {"LINT-002" = "warning"}\n')
    config = load_config(repo, env={"PROMSCOPE_CHECK_FAIL_ON": "style"})
    assert config.check.fail_on is Severity.STYLE
    final = apply_overrides(
        config,
        ignore=["LINT-010"],
        severity={"LINT-002": "off"},
        fail_on="error",
        promtool_only=True,
        cardinality=None,
    )
    assert final.check.fail_on is Severity.ERROR
    assert final.check.promtool_only and not final.check.cardinality
    assert final.check.ignore == (Ignore("LINT-010"), Ignore("LINT-002"))
    assert dict(final.check.severity) == {}
    assert final.path == config.path


def test_no_overrides_returns_the_same_config() -> None:
    config = Config()
    assert apply_overrides(config) is config
    assert apply_env(config, {}) is config


def test_flag_errors_have_no_path() -> None:
    with pytest.raises(ConfigError) as caught:
        apply_overrides(Config(), ignore=["bad code:x"])
    assert caught.value.path is None
    assert "option ignore" in str(caught.value)


def test_parse_config_directly() -> None:
    config = parse_config({"check": {"fail_on": "warning"}})
    assert config == Config(check=CheckConfig(fail_on=Severity.WARNING))


def test_config_values_are_frozen() -> None:
    config = parse_config({"check": {"severity": {"LINT-001": "error"}}})
    with pytest.raises(TypeError):
        config.check.severity["LINT-001"] = Severity.STYLE  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        '[tool.promscope.check]\nfail_on = "warning"\n',
        '[ tool . "promscope" . check ]\nfail_on = "warning"\n',
        '[tool]\npromscope.check.fail_on = "warning"\n',
        'tool.promscope.check.fail_on = "warning"\n',
    ],
)
def test_every_spelling_of_tool_promscope_is_found(tmp_path: pathlib.Path, text: str) -> None:
    # Dotted keys at the top (before any table), then the project table.
    layout = (
        text + '[project]\nname = "x"\n' if text.startswith("tool.") else '[project]\nname = "x"\n' + text
    )
    (tmp_path / "pyproject.toml").write_text(layout)
    (tmp_path / ".git").mkdir()
    config = load_config(start=tmp_path, env={})
    assert config.check.fail_on is Severity.WARNING


def test_a_pyproject_that_only_names_promscope_is_not_a_config(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "promscope-plugin"\ndependencies = ["promscope"]\n'
    )
    (tmp_path / ".git").mkdir()
    assert find_config(tmp_path) is None


def test_scrape_tables_are_read_with_the_check_tables(tmp_path: pathlib.Path) -> None:
    (tmp_path / "promscope.toml").write_text(
        '[check]\nfail_on = "warning"\n\n[scrape]\ninterval = "15s"\n\n'
        '[[targets]]\njob = "node"\nurls = ["http://127.0.0.1:9100/metrics"]\n'
    )
    config = load_config(start=tmp_path, env={})
    assert config.check.fail_on is Severity.WARNING
    assert config.scrape is not None and config.scrape.interval == 15.0


def test_a_file_without_scrape_tables_has_no_scrape_settings(tmp_path: pathlib.Path) -> None:
    (tmp_path / "promscope.toml").write_text('[check]\nfail_on = "warning"\n')
    assert load_config(start=tmp_path, env={}).scrape is None
