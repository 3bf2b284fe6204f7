"""statsd_exporter's mapping configuration: YAML rules that turn StatsD names into Prometheus series.

:class:`MappingConfig` reads the same YAML ``statsd_exporter --statsd.mapping-config`` reads and
:meth:`MappingConfig.match` answers what statsd_exporter's mapper answers, plus *which* rule
matched and why the others did not (:meth:`MappingConfig.trace`), so a person can see the rule
behind every series.

What is understood, as statsd_exporter understands it:

* ``defaults``: ``observer_type`` (``timer_type`` is its deprecated spelling), ``match_type``
  (``glob``, the default, or ``regex``), ``glob_disable_ordering``, ``ttl``, ``summary_options``
  (``quantiles``, ``max_age``, ``age_buckets``, ``buf_cap``), ``histogram_options``
  (``buckets``), and the deprecated top-level ``buckets``/``quantiles``.
* ``mappings``: ``match``, ``name``, ``labels``, ``match_type``, ``match_metric_type``
  (``counter``, ``gauge`` or ``observer``), ``observer_type``/``timer_type``
  (``summary``/``histogram``), ``buckets``/``quantiles`` (legacy) or ``histogram_options``/
  ``summary_options``, ``help``, ``action`` (``map``, the default, or ``drop``), ``ttl``,
  ``scale`` and ``honor_labels``.
* Glob rules: ``*`` matches within one dot-separated component (``[^.]*``). They are tried
  before regex rules; in file order, unless ``glob_disable_ordering`` is set, in which case a
  literal component beats a ``*`` at the first place two rules differ. Regex rules are tried
  after every glob rule, in file order (statsd_exporter's FSM first, then its regex list).
* Templates in ``name`` and label values: ``$1``, ``${1}``, and for regex rules ``$name``/
  ``${name}`` for named groups; a reference to a group that does not exist becomes empty, as
  Go's ``regexp.Expand`` does; ``$$`` is a literal ``$``.
* Unmatched names and the name a rule produces are escaped as statsd_exporter's
  ``EscapeMetricName`` does (:func:`escape_metric_name`).

Configuration mistakes are :class:`~promscope.errors.ConfigError` with the file and the rule's
line, never a traceback.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from promscope.errors import ConfigError

__all__ = [
    "DEFAULT_BUCKETS",
    "DEFAULT_QUANTILES",
    "Action",
    "HistogramOptions",
    "MappingConfig",
    "MappingDefaults",
    "MappingRule",
    "MatchResult",
    "MatchType",
    "ObserverType",
    "Quantile",
    "RuleTrial",
    "StatsdMetricType",
    "SummaryOptions",
    "escape_metric_name",
    "parse_go_duration",
]

DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""client_golang's ``prometheus.DefBuckets``, statsd_exporter's default histogram buckets."""


class StatsdMetricType(enum.StrEnum):
    """The metric type a mapping rule can match on (``match_metric_type``)."""

    COUNTER = "counter"
    GAUGE = "gauge"
    OBSERVER = "observer"
    """Timers (``ms``), histograms (``h``) and distributions (``d``)."""


class ObserverType(enum.StrEnum):
    DEFAULT = ""
    SUMMARY = "summary"
    HISTOGRAM = "histogram"


class MatchType(enum.StrEnum):
    GLOB = "glob"
    REGEX = "regex"


class Action(enum.StrEnum):
    MAP = "map"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Quantile:
    quantile: float
    error: float


DEFAULT_QUANTILES: tuple[Quantile, ...] = (Quantile(0.5, 0.05), Quantile(0.9, 0.01), Quantile(0.99, 0.001))
"""statsd_exporter's default summary objectives."""


@dataclass(frozen=True, slots=True)
class SummaryOptions:
    quantiles: tuple[Quantile, ...] = ()
    max_age: float = 0.0
    """Seconds; 0 means client_golang's default (10 minutes)."""
    age_buckets: int = 0
    buf_cap: int = 0


@dataclass(frozen=True, slots=True)
class HistogramOptions:
    buckets: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class MappingDefaults:
    observer_type: ObserverType = ObserverType.DEFAULT
    match_type: MatchType = MatchType.GLOB
    glob_disable_ordering: bool = False
    ttl: float = 0.0
    summary_options: SummaryOptions = SummaryOptions(quantiles=DEFAULT_QUANTILES)
    histogram_options: HistogramOptions = HistogramOptions(buckets=DEFAULT_BUCKETS)


@dataclass(frozen=True, slots=True)
class MappingRule:
    """One ``mappings:`` entry, with defaults applied as statsd_exporter applies them."""

    index: int
    """1-based position in the file (``rule #3``)."""
    match: str
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    """Label name and value template, in file order."""
    match_type: MatchType = MatchType.GLOB
    match_metric_type: StatsdMetricType | None = None
    observer_type: ObserverType = ObserverType.DEFAULT
    help: str = ""
    action: Action = Action.MAP
    ttl: float = 0.0
    scale: float | None = None
    honor_labels: bool = False
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    quantiles: tuple[Quantile, ...] = DEFAULT_QUANTILES
    summary_max_age: float = 0.0
    line: int = 0
    """1-based line of the rule in the YAML (0 when built in code)."""
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """``rule #2 (glob "test.*.*", line 7)``."""
        where = f", line {self.line}" if self.line else ""
        return f'rule #{self.index} ({self.match_type.value} "{self.match}"{where})'


@dataclass(frozen=True, slots=True)
class MatchResult:
    """What a name and type map to: the rule (None when unmatched), the Prometheus name and labels."""

    rule: MappingRule | None
    name: str
    """The escaped Prometheus name ("" when a rule's template produced nothing)."""
    labels: tuple[tuple[str, str], ...] = ()
    """Labels the rule sets (tags from the line are merged by the receiver)."""
    action: Action = Action.MAP
    observer_type: ObserverType = ObserverType.SUMMARY
    """Resolved: never DEFAULT."""
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    quantiles: tuple[Quantile, ...] = DEFAULT_QUANTILES
    summary_max_age: float = 600.0
    help: str = ""
    scale: float | None = None
    honor_labels: bool = False
    ttl: float = 0.0

    @property
    def matched(self) -> bool:
        return self.rule is not None


@dataclass(frozen=True, slots=True)
class RuleTrial:
    """One rule tried by :meth:`MappingConfig.trace` and what became of it."""

    rule: MappingRule
    outcome: str
    """``matched``, ``no match`` or ``metric type differs (rule wants gauge)``."""


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]+")
_TEMPLATE_REF = r"(\$\{?\d+\}?)"
_METRIC_NAME_TEMPLATE = re.compile(rf"([a-zA-Z_]|{_TEMPLATE_REF})([a-zA-Z0-9_]|{_TEMPLATE_REF})*")
_GLOB_COMPONENT = re.compile(r"[a-zA-Z0-9_\-*]+")
_EXPAND = re.compile(r"\$(\$|\{([a-zA-Z0-9_]+)\}|([a-zA-Z0-9_]+))")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NOT_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_DASHES = re.compile(r"--+")
_CLEAN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def escape_metric_name(name: str) -> str:
    """statsd_exporter's ``EscapeMetricName``: each character outside ``[a-zA-Z0-9_]`` becomes ``_``.

    A run of dashes becomes one ``_`` (``with--doubledash`` -> ``with_doubledash``) and a leading
    digit gets a ``_`` prefix. Used for names and for DogStatsD tag keys.
    """
    if _CLEAN_NAME.fullmatch(name):
        return name
    if not name:
        return ""
    out = _NOT_NAME_CHAR.sub("_", _DASHES.sub("-", name))
    if name[0].isascii() and name[0].isdigit():
        out = "_" + out
    return out


def parse_go_duration(value: object, *, what: str = "duration") -> float:
    """A Go ``time.Duration`` string (``1m30s``, ``500ms``) or a number of seconds, as seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a duration like 1m30s, got {value!r}")
    if isinstance(value, int | float):
        if value != 0:
            raise ValueError(f"{what}: a bare number must be 0; give a unit, e.g. {value}s")
        return 0.0
    if not isinstance(value, str):
        raise ValueError(f"{what}: expected a duration like 1m30s, got {value!r}")
    text = value.strip()
    if text in ("0", ""):
        return 0.0
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text) or not text:
        raise ValueError(f"{what}: {value!r} is not a Go duration (e.g. 1m30s, 500ms)")
    return sign * total


def _go_expand(template: str, groups: Sequence[str | None], named: Mapping[str, str | None]) -> str:
    """Go's ``regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``; unknown refs are empty."""
    if "$" not in template:
        return template

    def replace(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        ref = match.group(2) or match.group(3) or ""
        if ref.isdigit():
            index = int(ref)
            if 0 <= index < len(groups):
                return groups[index] or ""
            return ""
        return named.get(ref) or ""

    return _EXPAND.sub(replace, template)


def _glob_regex(match: str) -> re.Pattern[str]:
    parts = []
    for component in match.split("."):
        parts.append("([^.]*)".join(re.escape(piece) for piece in component.split("*")))
    return re.compile(r"\.".join(parts))


def _glob_priority(match: str) -> tuple[tuple[int, str], ...]:
    """With ``glob_disable_ordering``: a literal component sorts before ``*`` at the first difference."""
    return tuple((1, "") if "*" in part else (0, part) for part in match.split("."))


class MappingConfig:
    """A loaded mapping file: defaults and rules, ready to match.

    >>> config = MappingConfig.from_yaml('mappings:\\n- match: "a.*"\\n  name: "a_total"\\n')
    >>> config.match("a.b", StatsdMetricType.COUNTER).name
    'a_total'
    """

    def __init__(
        self, rules: Sequence[MappingRule] = (), defaults: MappingDefaults | None = None, *, source: str = ""
    ) -> None:
        self.defaults = defaults or MappingDefaults()
        self.rules: tuple[MappingRule, ...] = tuple(rules)
        self.source = source
        globs = [rule for rule in self.rules if rule.match_type is MatchType.GLOB]
        if self.defaults.glob_disable_ordering:
            globs.sort(key=lambda rule: _glob_priority(rule.match))
        self._ordered: tuple[MappingRule, ...] = (
            *globs,
            *(rule for rule in self.rules if rule.match_type is MatchType.REGEX),
        )

    # --- loading ------------------------------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path) -> MappingConfig:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(
                f"cannot read the mapping file: {error.strerror or error}", path=str(path)
            ) from None
        except UnicodeDecodeError:
            raise ConfigError("the mapping file is not UTF-8", path=str(path)) from None
        return cls.from_yaml(text, source=str(path))

    @classmethod
    def from_yaml(cls, text: str, *, source: str = "") -> MappingConfig:
        """Parse statsd_exporter mapping YAML; mistakes raise :class:`ConfigError` naming the rule."""
        where = source or None
        try:
            root_node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            raise ConfigError(f"invalid YAML{at}: {problem}", path=where) from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                "the mapping file must be a YAML mapping with 'defaults' and 'mappings'", path=where
            )
        unknown = set(data) - {"defaults", "mappings"}
        if unknown:
            raise ConfigError(f"unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}", path=where)
        lines = _rule_lines(root_node)
        defaults = _load_defaults(data.get("defaults") or {}, where)
        raw_rules = data.get("mappings") or []
        if not isinstance(raw_rules, list):
            raise ConfigError("'mappings' must be a list of rules", path=where)
        rules = [
            _load_rule(raw, index, lines[index - 1] if index - 1 < len(lines) else 0, defaults, where)
            for index, raw in enumerate(raw_rules, start=1)
        ]
        return cls(rules, defaults, source=source)

    # --- matching -----------------------------------------------------------------------------------

    def match(self, name: str, metric_type: StatsdMetricType) -> MatchResult:
        """The mapping statsd_exporter applies to a StatsD ``name`` of ``metric_type``."""
        return self._match(name, metric_type, None)

    def trace(self, name: str, metric_type: StatsdMetricType) -> tuple[MatchResult, tuple[RuleTrial, ...]]:
        """Like :meth:`match`, plus every rule tried in order and what became of it."""
        trials: list[RuleTrial] = []
        result = self._match(name, metric_type, trials)
        return result, tuple(trials)

    def _match(self, name: str, metric_type: StatsdMetricType, trials: list[RuleTrial] | None) -> MatchResult:
        for rule in self._ordered:
            assert rule.regex is not None
            found = (
                rule.regex.fullmatch(name) if rule.match_type is MatchType.GLOB else rule.regex.search(name)
            )
            if found is None:
                if trials is not None:
                    trials.append(RuleTrial(rule, "no match"))
                continue
            if rule.match_metric_type is not None and rule.match_metric_type is not metric_type:
                if trials is not None:
                    trials.append(
                        RuleTrial(rule, f"metric type differs (rule wants {rule.match_metric_type})")
                    )
                continue
            if trials is not None:
                trials.append(RuleTrial(rule, "matched"))
            groups = (found.group(0), *found.groups())
            named = found.groupdict() if rule.match_type is MatchType.REGEX else {}
            mapped = _go_expand(rule.name, groups, named)
            labels = tuple((key, _go_expand(value, groups, named)) for key, value in rule.labels)
            return self._result(rule, escape_metric_name(mapped), labels)
        return self._result(None, escape_metric_name(name), ())

    def _result(
        self, rule: MappingRule | None, name: str, labels: tuple[tuple[str, str], ...]
    ) -> MatchResult:
        defaults = self.defaults
        if rule is None:
            observer = defaults.observer_type or ObserverType.SUMMARY
            return MatchResult(
                None,
                name,
                (),
                Action.MAP,
                observer,
                defaults.histogram_options.buckets or DEFAULT_BUCKETS,
                defaults.summary_options.quantiles or DEFAULT_QUANTILES,
                defaults.summary_options.max_age or 600.0,
                ttl=defaults.ttl,
            )
        return MatchResult(
            rule,
            name,
            labels,
            rule.action,
            rule.observer_type or ObserverType.SUMMARY,
            rule.buckets,
            rule.quantiles,
            rule.summary_max_age or 600.0,
            rule.help,
            rule.scale,
            rule.honor_labels,
            rule.ttl,
        )


# --- loading helpers -------------------------------------------------------------------------------


def _rule_lines(root: yaml.Node | None) -> list[int]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if (
            isinstance(key, yaml.ScalarNode)
            and key.value == "mappings"
            and isinstance(value, yaml.SequenceNode)
        ):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def _enum(kind: type[enum.StrEnum], value: object, what: str, where: str | None, allowed: str) -> Any:
    if value is None:
        value = ""
    try:
        return kind(str(value))
    except ValueError:
        raise ConfigError(f"{what}: {value!r} is not one of {allowed}", path=where) from None


def _floats(value: object, what: str, where: str | None) -> tuple[float, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    ):
        raise ConfigError(f"{what} must be a list of numbers", path=where)
    return tuple(float(v) for v in value)


def _quantiles(value: object, what: str, where: str | None) -> tuple[Quantile, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"{what} must be a list of {{quantile, error}}", path=where)
    out = []
    for item in value:
        if not isinstance(item, dict) or "quantile" not in item:
            raise ConfigError(f"{what}: each entry needs 'quantile' (and 'error')", path=where)
        try:
            quantile = float(item["quantile"])
            error = float(item.get("error", 0.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: quantile and error must be numbers", path=where) from None
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError(f"{what}: quantile {quantile} is outside [0, 1]", path=where)
        out.append(Quantile(quantile, error))
    return tuple(out)


def _duration(value: object, what: str, where: str | None) -> float:
    try:
        return parse_go_duration(value, what=what)
    except ValueError as error:
        raise ConfigError(str(error), path=where) from None


def _summary_options(value: object, what: str, where: str | None) -> SummaryOptions | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping", path=where)
    return SummaryOptions(
        _quantiles(value.get("quantiles"), f"{what}.quantiles", where),
        _duration(value.get("max_age", 0), f"{what}.max_age", where),
        int(value.get("age_buckets") or 0),
        int(value.get("buf_cap") or 0),
    )


def _histogram_options(value: object, what: str, where: str | None) -> HistogramOptions | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a mapping", path=where)
    buckets = _floats(value.get("buckets"), f"{what}.buckets", where)
    if list(buckets) != sorted(set(buckets)):
        raise ConfigError(f"{what}.buckets must be strictly increasing", path=where)
    return HistogramOptions(buckets)


def _load_defaults(raw: object, where: str | None) -> MappingDefaults:
    if not isinstance(raw, dict):
        raise ConfigError("'defaults' must be a mapping", path=where)
    observer = raw.get("observer_type") or raw.get("timer_type") or ""
    summary = (
        _summary_options(raw.get("summary_options"), "defaults.summary_options", where) or SummaryOptions()
    )
    histogram = (
        _histogram_options(raw.get("histogram_options"), "defaults.histogram_options", where)
        or HistogramOptions()
    )
    legacy_quantiles = _quantiles(raw.get("quantiles"), "defaults.quantiles", where)
    legacy_buckets = _floats(raw.get("buckets"), "defaults.buckets", where)
    if not summary.quantiles:
        summary = SummaryOptions(
            legacy_quantiles or DEFAULT_QUANTILES, summary.max_age, summary.age_buckets, summary.buf_cap
        )
    if not histogram.buckets:
        histogram = HistogramOptions(legacy_buckets or DEFAULT_BUCKETS)
    return MappingDefaults(
        observer_type=_enum(ObserverType, observer, "defaults.observer_type", where, "summary, histogram"),
        match_type=_enum(
            MatchType, raw.get("match_type") or "glob", "defaults.match_type", where, "glob, regex"
        ),
        glob_disable_ordering=bool(raw.get("glob_disable_ordering", False)),
        ttl=_duration(raw.get("ttl", 0), "defaults.ttl", where),
        summary_options=summary,
        histogram_options=histogram,
    )


_RULE_KEYS = {
    "match",
    "name",
    "labels",
    "observer_type",
    "timer_type",
    "buckets",
    "quantiles",
    "match_type",
    "help",
    "action",
    "match_metric_type",
    "ttl",
    "summary_options",
    "histogram_options",
    "scale",
    "honor_labels",
}


def _load_rule(
    raw: object, index: int, line: int, defaults: MappingDefaults, source: str | None
) -> MappingRule:
    where = f"{source or '<mapping>'}:{line}" if line else source
    label = f"rule #{index}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label}: each mapping must be a YAML mapping", path=where)
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise ConfigError(f"{label}: unknown key(s) {', '.join(sorted(map(str, unknown)))}", path=where)
    match = raw.get("match")
    if not isinstance(match, str) or not match:
        raise ConfigError(f"{label}: 'match' is required", path=where)
    name = raw.get("name")
    action = _enum(Action, raw.get("action") or "map", f"{label}: action", where, "map, drop")
    if not isinstance(name, str) or not name:
        if action is not Action.DROP:
            raise ConfigError(f"{label}: metric mapping didn't set a metric name", path=where)
        name = "dropped"
    if not _METRIC_NAME_TEMPLATE.fullmatch(name):
        raise ConfigError(
            f"{label}: metric name {name!r} is not a valid name template ([a-zA-Z_][a-zA-Z0-9_]* with $n)",
            path=where,
        )
    labels_raw = raw.get("labels") or {}
    if not isinstance(labels_raw, dict):
        raise ConfigError(f"{label}: 'labels' must be a mapping of label name to value", path=where)
    labels: list[tuple[str, str]] = []
    for key, value in labels_raw.items():
        if not isinstance(key, str) or not _LABEL_NAME.fullmatch(key):
            raise ConfigError(
                f"{label}: invalid label key {key!r} (statsd_exporter wants [a-zA-Z_][a-zA-Z0-9_]+)",
                path=where,
            )
        labels.append((key, "" if value is None else str(value)))
    match_type = _enum(
        MatchType, raw.get("match_type") or defaults.match_type, f"{label}: match_type", where, "glob, regex"
    )
    if match_type is MatchType.GLOB:
        if not all(_GLOB_COMPONENT.fullmatch(part) for part in match.split(".")):
            raise ConfigError(f"{label}: invalid glob match {match!r}", path=where)
        regex = _glob_regex(match)
    else:
        try:
            regex = re.compile(match)
        except re.error as error:
            raise ConfigError(f"{label}: invalid regex {match!r}: {error}", path=where) from None
    mmt_raw = raw.get("match_metric_type")
    if mmt_raw == "timer":
        raise ConfigError(f"{label}: match_metric_type 'timer' is now 'observer'", path=where)
    match_metric_type = (
        None
        if mmt_raw in (None, "")
        else _enum(
            StatsdMetricType, mmt_raw, f"{label}: match_metric_type", where, "counter, gauge, observer"
        )
    )
    observer = _enum(
        ObserverType,
        raw.get("observer_type") or raw.get("timer_type") or defaults.observer_type,
        f"{label}: observer_type",
        where,
        "summary, histogram",
    )
    summary = _summary_options(raw.get("summary_options"), f"{label}: summary_options", where)
    histogram = _histogram_options(raw.get("histogram_options"), f"{label}: histogram_options", where)
    legacy_buckets = _floats(raw.get("buckets"), f"{label}: buckets", where)
    legacy_quantiles = _quantiles(raw.get("quantiles"), f"{label}: quantiles", where)
    if summary is not None and summary.quantiles and legacy_quantiles:
        raise ConfigError(
            f"{label}: cannot use quantiles in both the top level and summary options at the same time",
            path=where,
        )
    if histogram is not None and histogram.buckets and legacy_buckets:
        raise ConfigError(
            f"{label}: cannot use buckets in both the top level and histogram options at the same time",
            path=where,
        )
    if observer is ObserverType.HISTOGRAM and summary is not None:
        raise ConfigError(
            f"{label}: cannot use histogram observer and summary options at the same time", path=where
        )
    if observer is ObserverType.SUMMARY and histogram is not None:
        raise ConfigError(
            f"{label}: cannot use summary observer and histogram options at the same time", path=where
        )
    buckets = (histogram.buckets if histogram else ()) or legacy_buckets or defaults.histogram_options.buckets
    quantiles = (
        (summary.quantiles if summary else ()) or legacy_quantiles or defaults.summary_options.quantiles
    )
    max_age = (summary.max_age if summary else 0.0) or defaults.summary_options.max_age
    scale_raw = raw.get("scale")
    if scale_raw is not None and (not isinstance(scale_raw, int | float) or isinstance(scale_raw, bool)):
        raise ConfigError(f"{label}: scale must be a number", path=where)
    help_text = raw.get("help") or ""
    return MappingRule(
        index=index,
        match=match,
        name=name,
        labels=tuple(labels),
        match_type=match_type,
        match_metric_type=match_metric_type,
        observer_type=observer,
        help=str(help_text),
        action=action,
        ttl=_duration(raw.get("ttl", 0), f"{label}: ttl", where) or defaults.ttl,
        scale=None if scale_raw is None else float(scale_raw),
        honor_labels=bool(raw.get("honor_labels", False)),
        buckets=tuple(buckets),
        quantiles=tuple(quantiles),
        summary_max_age=max_age,
        line=line,
        regex=regex,
    )
