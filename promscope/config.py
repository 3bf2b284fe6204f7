"""Configuration: a TOML file, ``PROMSCOPE_*`` environment variables and flags, as frozen dataclasses.

Where the file comes from (first found wins):

1. ``explicit`` (``--config PATH``), then ``$PROMSCOPE_CONFIG``;
2. ``promscope.toml`` in the start directory or a parent, up to the repository
   root (the first directory holding ``.git``) or the filesystem root;
3. ``[tool.promscope]`` of a ``pyproject.toml`` met on the same walk
   (``promscope.toml`` in the same directory is preferred).

The file::

    [check]
    ignore = ["LINT-001:go_*", "LINT-004"]       # CODE[:METRIC-GLOB], globs allowed
    severity = {"LINT-002" = "warning", "CARD-*" = "error", "LINT-009" = "off"}
    fail_on = "warning"                          # error | warning | style
    lint = true
    promtool_only = false
    cardinality = false

    [cardinality]                                # thresholds of the CARD-… warnings
    max_family_series = 10000
    max_label_values = 1000
    unique_ratio = 0.9
    min_series = 50

(in ``pyproject.toml`` the tables are ``[tool.promscope.check]`` and
``[tool.promscope.cardinality]``). A severity of ``"off"`` ignores the
code. Anything unknown or malformed is a :class:`~promscope.errors.ConfigError`
naming the file, the key and what is wrong.

Precedence is flags > environment > file > defaults: :func:`load_config`
reads the file and applies the environment; :func:`apply_overrides` applies
flags. Scalars are replaced, ``severity`` maps are merged key by key, and
``ignore`` lists add up (a flag cannot un-ignore what the file ignores).

Environment variables: ``PROMSCOPE_CONFIG``, ``PROMSCOPE_CHECK_IGNORE``
(comma-separated), ``PROMSCOPE_CHECK_SEVERITY`` (``CODE=severity,…``),
``PROMSCOPE_CHECK_FAIL_ON``, ``PROMSCOPE_CHECK_LINT``,
``PROMSCOPE_CHECK_PROMTOOL_ONLY``, ``PROMSCOPE_CHECK_CARDINALITY`` (booleans:
1/0, true/false, yes/no, on/off).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from promscope.check import CheckOptions
from promscope.check.ignore import Ignore, code_is_known, is_code_pattern, known_codes
from promscope.check.options import CardinalityOptions
from promscope.errors import ConfigError
from promscope.model import Severity

if TYPE_CHECKING:
    from pathlib import Path

    from promscope.scrape.targets import ScrapeSettings

__all__ = [
    "CONFIG_FILE",
    "CheckConfig",
    "Config",
    "apply_env",
    "apply_overrides",
    "find_config",
    "load_config",
    "parse_config",
]

CONFIG_FILE = "promscope.toml"
ENV_PREFIX = "PROMSCOPE_"
_OFF = "off"
_SEVERITY_WORDS = ", ".join([*(s.value for s in Severity), _OFF])


def _frozen_map(data: Mapping[str, Severity] | None = None) -> Mapping[str, Severity]:
    return MappingProxyType(dict(data or {}))


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """The ``[check]`` table."""

    ignore: tuple[Ignore, ...] = ()
    severity: Mapping[str, Severity] = field(default_factory=_frozen_map)
    fail_on: Severity = Severity.ERROR
    lint: bool = True
    promtool_only: bool = False
    cardinality: bool = False
    cardinality_options: CardinalityOptions = field(default_factory=CardinalityOptions)

    def options(self) -> CheckOptions:
        """The :class:`~promscope.check.CheckOptions` this configuration asks for."""
        return CheckOptions(
            lint=self.lint,
            promtool_only=self.promtool_only,
            cardinality=self.cardinality,
            cardinality_options=self.cardinality_options,
            ignores=self.ignore,
            severity_overrides=self.severity,
            fail_on=self.fail_on,
        )


@dataclass(frozen=True, slots=True)
class Config:
    """Everything configurable, and where the file part came from."""

    path: Path | None = None
    """The file read, or None when defaults (and environment) only."""
    check: CheckConfig = field(default_factory=CheckConfig)
    scrape: ScrapeSettings | None = None
    """``[scrape]`` and ``[[targets]]`` (see :mod:`promscope.scrape.targets`); None when the file
    has neither, so live verbs use ``ScrapeSettings.defaults()``."""


# --- reading values --------------------------------------------------------------------------------


class _Where:
    """Names the file and key in every error."""

    def __init__(self, path: str | None) -> None:
        self.path = path

    def fail(self, key: str, problem: str, hint: str = "") -> ConfigError:
        return ConfigError(f"{key}: {problem}", path=self.path, hint=hint)


def _codes_catalogue() -> frozenset[str] | None:
    try:
        codes = known_codes()
    except Exception:  # a half-installed engine must not make the config unreadable
        return None
    return codes or None


def _severity(value: object, key: str, where: _Where) -> Severity | None:
    """A severity word; None for ``off``."""
    if not isinstance(value, str):
        raise where.fail(key, f"expected a severity ({_SEVERITY_WORDS}), got {_describe(value)}")
    word = value.strip().lower()
    if word == _OFF:
        return None
    try:
        return Severity(word)
    except ValueError:
        raise where.fail(key, f"unknown severity {value!r} (expected one of {_SEVERITY_WORDS})") from None


def _code(value: str, key: str, where: _Where, known: Collection[str] | None) -> str:
    code = value.strip().upper()
    if not is_code_pattern(code):
        raise where.fail(key, f"{value!r} is not a diagnostic code like LINT-001 or a glob like LINT-*")
    if known is not None and not code_is_known(code, known):
        raise where.fail(
            key,
            f"unknown diagnostic code {code}",
            hint="codes look like LINT-001; globs like LINT-* are allowed",
        )
    return code


def _ignore(value: object, key: str, where: _Where, known: Collection[str] | None) -> Ignore:
    if not isinstance(value, str):
        raise where.fail(key, f"expected a string CODE[:METRIC-GLOB], got {_describe(value)}")
    try:
        return Ignore.parse(value, known)
    except ValueError as exc:
        raise where.fail(key, str(exc)) from None


def _bool(value: object, key: str, where: _Where) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off", ""):
            return False
    raise where.fail(key, f"expected true or false, got {_describe(value)}")


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _int(value: object, key: str, where: _Where, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.fail(key, f"expected an integer, got {_describe(value)}")
    if value < minimum:
        raise where.fail(key, f"must be at least {minimum}, got {value}")
    return value


def _ratio(value: object, key: str, where: _Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.fail(key, f"expected a number between 0 and 1, got {_describe(value)}")
    if not 0.0 <= float(value) <= 1.0:
        raise where.fail(key, f"must be between 0 and 1, got {value}")
    return float(value)


_CARDINALITY_KEYS: dict[str, Callable[[object, str, _Where], object]] = {
    "max_family_series": lambda v, k, w: _int(v, k, w, 1),
    "max_label_values": lambda v, k, w: _int(v, k, w, 1),
    "unique_ratio": _ratio,
    "min_series": lambda v, k, w: _int(v, k, w, 1),
    "id_ratio": _ratio,
    "min_id_values": lambda v, k, w: _int(v, k, w, 1),
    "classify_limit": lambda v, k, w: _int(v, k, w, 1),
    "examples": lambda v, k, w: _int(v, k, w, 0),
}

_SECTIONS = ("check", "cardinality", "scrape", "targets")
_CHECK_KEYS = ("ignore", "severity", "fail_on", "lint", "promtool_only", "cardinality")


def _unknown(key: str, allowed: Iterable[str], where: _Where) -> ConfigError:
    return where.fail(key, "unknown key", hint=f"known keys: {', '.join(sorted(allowed))}")


def _parse_check(table: object, prefix: str, where: _Where) -> CheckConfig:
    if not isinstance(table, dict):
        raise where.fail(prefix, f"expected a table, got {_describe(table)}")
    known = _codes_catalogue()
    ignores: list[Ignore] = []
    severity: dict[str, Severity] = {}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}.{key}"
        if key == "ignore":
            if not isinstance(value, list):
                raise where.fail(
                    full, f"expected a list of CODE[:METRIC-GLOB] strings, got {_describe(value)}"
                )
            ignores.extend(_ignore(item, f"{full}[{i}]", where, known) for i, item in enumerate(value))
        elif key == "severity":
            if not isinstance(value, dict):
                raise where.fail(
                    full, f'expected a table like {{"LINT-001" = "warning"}}, got {_describe(value)}'
                )
            for code_text, word in value.items():
                code = _code(code_text, f"{full}.{code_text}", where, known)
                level = _severity(word, f"{full}.{code_text}", where)
                if level is None:
                    ignores.append(Ignore(code))
                else:
                    severity[code] = level
        elif key == "fail_on":
            level = _severity(value, full, where)
            if level is None:
                raise where.fail(full, "cannot be 'off' (use 'error' to fail only on errors)")
            kwargs["fail_on"] = level
        elif key in ("lint", "promtool_only"):
            kwargs[key] = _bool(value, full, where)
        elif key == "cardinality":
            kwargs["cardinality"] = _bool(value, full, where)
        else:
            raise _unknown(full, _CHECK_KEYS, where)
    return CheckConfig(ignore=tuple(ignores), severity=_frozen_map(severity), **kwargs)


def _parse_cardinality(table: dict[str, object], prefix: str, where: _Where) -> CardinalityOptions:
    values: dict[str, Any] = {}
    for key, value in table.items():
        reader = _CARDINALITY_KEYS.get(key)
        if reader is None:
            raise _unknown(f"{prefix}.{key}", _CARDINALITY_KEYS, where)
        values[key] = reader(value, f"{prefix}.{key}", where)
    return CardinalityOptions(**values)


def parse_config(data: Mapping[str, object], path: Path | None = None, *, prefix: str = "") -> Config:
    """Build a :class:`Config` from a parsed TOML document (``[check]``, ``[cardinality]``)."""
    where = _Where(str(path) if path else None)
    check = CheckConfig()
    limits: CardinalityOptions | None = None
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key == "check":
            check = _parse_check(value, full, where)
        elif key == "cardinality":
            if not isinstance(value, dict):
                raise where.fail(full, f"expected a table, got {_describe(value)}")
            limits = _parse_cardinality(value, full, where)
        elif key not in ("scrape", "targets"):
            raise _unknown(full, _SECTIONS, where)
    if limits is not None:
        check = dataclasses.replace(check, cardinality_options=limits)
    scrape: ScrapeSettings | None = None
    if "scrape" in data or "targets" in data:
        # Loaded only when the file has these tables: `promscope check` never pays for them.
        from promscope.scrape.targets import parse_scrape_tables

        scrape = parse_scrape_tables(data, str(path) if path else None, prefix=prefix)
    return Config(path=path, check=check, scrape=scrape)


# --- finding and loading ---------------------------------------------------------------------------


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file to read: keeps `promscope check` quick to start

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("file not found", path=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a TOML file", path=str(path)) from None
    except PermissionError:
        raise ConfigError("not readable (permission denied)", path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", path=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", path=str(path)) from None


def _pyproject_section(path: Path) -> dict[str, Any] | None:
    document = _read_toml(path)
    tool = document.get("tool")
    if not isinstance(tool, dict) or "promscope" not in tool:
        return None
    section = tool["promscope"]
    if not isinstance(section, dict):
        raise ConfigError("tool.promscope: expected a table", path=str(path))
    return section


def _mentions_promscope(path: str) -> bool:
    """Whether a pyproject.toml can hold a ``tool.promscope`` table at all.

    Most pyproject.toml files have none; a substring test spares parsing them (and
    importing tomllib) on every start. An unreadable file answers True, so reading it
    properly reports the problem.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return True
    if b"promscope" not in data:
        return False
    # `[tool.promscope…]`, `tool.promscope.x = …` (any quoting and spacing), or a `promscope`
    # key under a bare `[tool]` table.
    if re.search(rb"""tool["']?\s*\.\s*["']?promscope""", data):
        return True
    return bool(
        re.search(rb"""^\s*\[\s*["']?tool["']?\s*\]""", data, re.MULTILINE)
        and re.search(rb"""^\s*["']?promscope["']?\s*[.=]""", data, re.MULTILINE)
    )


def find_config(start: Path | None = None) -> Path | None:
    """The config file that applies in ``start`` (default: the working directory), or None.

    The walk uses ``os.path``; :mod:`pathlib` (a few milliseconds to import) is loaded only
    when a file is found.
    """
    directory = os.path.realpath(os.fspath(start) if start is not None else os.getcwd())
    if os.path.isfile(directory):
        directory = os.path.dirname(directory)
    while True:
        own = os.path.join(directory, CONFIG_FILE)
        if os.path.isfile(own):
            return _path(own)
        pyproject = os.path.join(directory, "pyproject.toml")
        if os.path.isfile(pyproject) and _mentions_promscope(pyproject):
            found = _path(pyproject)
            if _pyproject_section(found) is not None:
                return found
        parent = os.path.dirname(directory)
        if os.path.exists(os.path.join(directory, ".git")) or parent == directory:
            return None
        directory = parent


def _path(name: str) -> Path:
    from pathlib import Path

    return Path(name)


def _load_file(path: Path) -> Config:
    if path.name == "pyproject.toml":
        section = _pyproject_section(path)
        if section is None:
            return Config(path=path)
        return parse_config(section, path, prefix="tool.promscope.")
    return parse_config(_read_toml(path), path)


def load_config(
    start: Path | None = None,
    explicit: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """The file's configuration with the environment applied (``env`` defaults to ``os.environ``).

    Raises :class:`~promscope.errors.ConfigError` for anything wrong.
    """
    env = os.environ if env is None else env
    path = explicit
    if path is None and env.get(f"{ENV_PREFIX}CONFIG"):
        path = _path(env[f"{ENV_PREFIX}CONFIG"])
    if path is None:
        path = find_config(start)
    config = _load_file(path) if path is not None else Config()
    return apply_env(config, env)


# --- layering --------------------------------------------------------------------------------------


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def apply_env(config: Config, env: Mapping[str, str] | None = None) -> Config:
    """``config`` with the ``PROMSCOPE_CHECK_*`` variables applied over it."""
    env = os.environ if env is None else env
    where = _Where("environment")
    ignore: list[str] = []
    severity: dict[str, str] = {}
    fail_on: str | None = None
    flags: dict[str, bool] = {}
    name = f"{ENV_PREFIX}CHECK_IGNORE"
    if env.get(name):
        ignore = _split(env[name])
    name = f"{ENV_PREFIX}CHECK_SEVERITY"
    if env.get(name):
        for item in _split(env[name]):
            code, sep, word = item.partition("=")
            if not sep:
                raise where.fail(name, f"expected CODE=SEVERITY items, got {item!r}")
            severity[code.strip()] = word.strip()
    name = f"{ENV_PREFIX}CHECK_FAIL_ON"
    if env.get(name):
        fail_on = env[name]
    for key in ("lint", "promtool_only", "cardinality"):
        name = f"{ENV_PREFIX}CHECK_{key.upper()}"
        if name in env:
            flags[key] = _bool(env[name], name, where)
    return _layer(config, where, ignore, severity, fail_on, flags, "environment variable")


def apply_overrides(
    config: Config,
    *,
    ignore: Iterable[str] = (),
    severity: Mapping[str, str] | None = None,
    fail_on: str | None = None,
    lint: bool | None = None,
    promtool_only: bool | None = None,
    cardinality: bool | None = None,
) -> Config:
    """``config`` with command-line flags applied over it (None: flag not given)."""
    flags = {
        key: value
        for key, value in (("lint", lint), ("promtool_only", promtool_only), ("cardinality", cardinality))
        if value is not None
    }
    return _layer(config, _Where(None), list(ignore), dict(severity or {}), fail_on, flags, "option")


def _layer(
    config: Config,
    where: _Where,
    ignore: list[str],
    severity: Mapping[str, str],
    fail_on: str | None,
    flags: Mapping[str, bool],
    source: str,
) -> Config:
    if not (ignore or severity or fail_on or flags):
        return config
    known = _codes_catalogue() if (ignore or severity) else None
    check = config.check
    ignores = list(check.ignore)
    ignores.extend(_ignore(item, f"{source} ignore", where, known) for item in ignore)
    merged = dict(check.severity)
    for code_text, word in severity.items():
        code = _code(code_text, f"{source} severity {code_text}", where, known)
        level = _severity(word, f"{source} severity {code_text}", where)
        if level is None:
            ignores.append(Ignore(code))
            merged.pop(code, None)
        else:
            merged[code] = level
    changes: dict[str, Any] = {"ignore": tuple(ignores), "severity": _frozen_map(merged)}
    if fail_on:
        level = _severity(fail_on, f"{source} fail-on", where)
        if level is None:
            raise where.fail(f"{source} fail-on", "cannot be 'off'")
        changes["fail_on"] = level
    changes.update(flags)
    return dataclasses.replace(config, check=dataclasses.replace(check, **changes))
