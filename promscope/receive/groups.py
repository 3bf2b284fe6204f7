"""Pushgateway groups: what is held, the consistency check, and the merged ``/metrics`` view.

A *group* is what one grouping key (``job`` plus the labels of the push URL)
holds: metric families, the time of the last successful push and of the last
failed one. :class:`GroupStore` keeps every group and the indexes that make
the Pushgateway's consistency check cost O(size of the push) instead of
O(everything held):

* ``family name -> {group -> family}``: which groups hold a family (its type,
  help and, merged in group order, the re-exposed family);
* ``family name -> {series identity -> group}``: who owns each series, where a
  series identity is what client_golang hashes to find duplicates (the label
  set, without ``le``/``quantile`` for histograms and summaries).

The check finds what upstream's gather-everything check finds (Pushgateway
1.5, client_golang's ``Gatherers``):

* timestamps on pushed samples (``PG-001``);
* a family whose type differs from the same family in another group, or from
  one of promscope's own metrics (``PG-002``, ``PG-006``);
* a series another group already exposes, or one the push repeats
  (``PG-003``, ``PG-004``);
* suffix collisions: ``foo_count``/``foo_sum``/``foo_bucket`` beside a summary
  or histogram ``foo`` (``PG-005``);
* label names that start with ``__`` (``PG-008``).

Unlike upstream it reports *every* problem, each with the line and column of
the sample or family it is about, not just the first one.

Differing help strings are not an error (upstream merges them too); the
re-exposed family takes the help of the group that has held it longest, and
the push gets a ``PG-007`` warning naming the other group.

Nothing here does I/O or reads a clock: times are passed in.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter

from promscope.codes import Code
from promscope.exposition.protobuf import format_go_float
from promscope.model import Diagnostic, Labels, MetricFamily, MetricType, Sample, Severity
from promscope.observation import Changes

__all__ = [
    "CODES",
    "PUSH_FAILURE_TIME",
    "PUSH_TIME",
    "Group",
    "GroupKey",
    "GroupStore",
    "PushedFamily",
    "SimpleTextMemo",
    "StoredFamily",
    "format_group",
    "go_float",
    "group_key",
    "prepare_push",
    "prepare_simple_text",
]

GroupKey = tuple[tuple[str, str], ...]
"""Grouping labels sorted by name: the identity of a group (upstream hashes the same set)."""

PUSH_TIME = "push_time_seconds"
PUSH_FAILURE_TIME = "push_failure_time_seconds"
PUSH_TIME_HELP = "Last Unix time when changing this group in the Pushgateway succeeded."
PUSH_FAILURE_TIME_HELP = "Last Unix time when changing this group in the Pushgateway failed."
_SYNTHETIC = frozenset({PUSH_TIME, PUSH_FAILURE_TIME})

CODES: dict[str, Code] = {
    "PG-001": Code(Severity.ERROR, "a pushed sample has a timestamp; the Pushgateway refuses them"),
    "PG-002": Code(Severity.ERROR, "a pushed family's type differs from the same family in another group"),
    "PG-003": Code(Severity.ERROR, "a pushed series is already exposed by another group"),
    "PG-004": Code(Severity.ERROR, "the push repeats a series"),
    "PG-005": Code(Severity.ERROR, "a _count, _sum or _bucket family collides with a summary or histogram"),
    "PG-006": Code(Severity.ERROR, "a pushed family has the name of one of promscope's own metrics"),
    "PG-007": Code(Severity.WARNING, "a pushed family's help differs from the same family in another group"),
    "PG-008": Code(Severity.ERROR, "a label name starts with '__', which Prometheus reserves"),
    "PG-009": Code(Severity.WARNING, "push_time_seconds or push_failure_time_seconds pushed; replaced"),
    "PG-010": Code(Severity.WARNING, "a body label is overridden by the grouping label of the same name"),
    "PG-011": Code(
        Severity.ERROR,
        "a new group's push_time_seconds would have another group's labels (no instance = empty instance)",
    ),
    "PG-020": Code(Severity.ERROR, "the push carries more series than the per-push limit"),
    "PG-021": Code(Severity.ERROR, "the push would take the Pushgateway over its total series limit"),
    "PG-022": Code(Severity.ERROR, "the push would create a group beyond the group limit"),
    "PG-023": Code(Severity.ERROR, "the grouping key in the URL is invalid"),
}

_TYPE_WORD = {
    MetricType.COUNTER: "counter",
    MetricType.GAUGE: "gauge",
    MetricType.HISTOGRAM: "histogram",
    MetricType.GAUGEHISTOGRAM: "gaugehistogram",
    MetricType.SUMMARY: "summary",
    MetricType.INFO: "info",
    MetricType.STATESET: "stateset",
    MetricType.UNKNOWN: "untyped",
}
_BUCKETED = frozenset({MetricType.HISTOGRAM, MetricType.GAUGEHISTOGRAM})
_SUFFIXES = ("_count", "_sum", "_bucket")
MAX_REPORTED = 100
"""Problems of one push reported one by one; beyond it, one line says how many more there were."""


def group_key(labels: Mapping[str, str]) -> GroupKey:
    """The :data:`GroupKey` of grouping labels (``job`` included)."""
    return tuple(sorted(labels.items()))


def format_group(key: Iterable[tuple[str, str]]) -> str:
    """``job=batch/instance=host1/zone=a``: job first, the rest by name (the Observation ``source``)."""
    pairs = sorted(key, key=lambda pair: (pair[0] != "job", pair[0]))
    return "/".join(f"{name}={value}" for name, value in pairs)


def _exposed(key: GroupKey) -> Labels:
    """The labels of a group's ``push_time_seconds``: its key, plus ``instance=""`` when it has none."""
    labels = dict(key)
    labels.setdefault("instance", "")
    return tuple(sorted(labels.items()))


def _ordered(key: GroupKey) -> Labels:
    return tuple(sorted(key, key=lambda pair: (pair[0] != "job", pair[0])))


def _show_labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{value}"' for name, value in labels) + "}"


def go_float(value: float) -> str:
    """Go's ``fmt.Sprint(float64)``, i.e. ``strconv.FormatFloat(v, 'g', -1, 64)``: ``3``, ``1e+06``."""
    text = format_go_float(value)
    if text.endswith(".0") and "e" not in text:
        text = text[:-2]
    return text


def _bound(text: str, cache: dict[str, str]) -> str:
    """An ``le``/``quantile`` value as upstream re-exposes it: parsed as a float, written by Go."""
    done = cache.get(text)
    if done is None:
        try:
            done = go_float(float(text))
        except ValueError:
            done = text
        cache[text] = done
    return done


def _same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# --- a push, prepared ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushedFamily:
    """A pushed family with the grouping labels applied, and the identities of its series."""

    family: MetricFamily
    identities: frozenset[Labels]
    """One per client_golang metric: the label set without ``le``/``quantile`` for histograms/summaries."""


@dataclass(slots=True)
class PreparedPush:
    """What :func:`prepare_push` made of parsed families: ready to check against the store."""

    families: dict[str, PushedFamily]
    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    timestamps: int = 0
    series: int = 0


def prepare_push(
    families: Iterable[MetricFamily], grouping: Mapping[str, str], *, keep_empty: bool = False
) -> PreparedPush:
    """Apply the grouping labels to pushed families, as upstream's ``sanitizeLabels`` does.

    Grouping labels override body labels of the same name, ``instance=""`` is
    added where a series has no ``instance`` label, and labels are sorted (with
    ``le``/``quantile`` kept last). Finds what depends on the push alone:
    timestamps, repeated series, reserved label names. A later family of the
    same name replaces an earlier one (protobuf bodies can repeat a name;
    upstream keeps the last). A family without samples is dropped unless
    ``keep_empty`` (upstream's text parser drops them; a protobuf body keeps
    them, so that a POST can empty a family).
    """
    prepared = PreparedPush(families={})
    grouping_items = tuple(grouping.items())
    has_instance = "instance" in grouping
    errors = prepared.errors
    warnings = prepared.warnings
    overridden_reported: set[str] = set()
    bounds: dict[str, str] = {}
    for family in families:
        name = family.name
        if not family.samples and not keep_empty:
            continue
        if name in _SYNTHETIC:
            warnings.append(
                Diagnostic(
                    "PG-009",
                    Severity.WARNING,
                    family.line,
                    1,
                    f"{name} is set by the Pushgateway itself; the pushed family is replaced, "
                    "as upstream does",
                    name,
                )
            )
            continue
        special = (
            "le" if family.type in _BUCKETED else "quantile" if family.type is MetricType.SUMMARY else None
        )
        samples: list[Sample] = []
        identities: set[Labels] = set()
        seen: set[tuple[str, Labels]] = set()
        cache: dict[Labels, tuple[Labels, Labels]] = {}
        for sample in family.samples:
            labels = sample.labels
            done = cache.get(labels)
            if done is None:
                base = dict(labels)
                extra: str | None = None
                if special is not None:
                    extra = base.pop(special, None)
                for label_name, value in grouping_items:
                    old = base.get(label_name)
                    if old is not None and old != value and label_name not in overridden_reported:
                        overridden_reported.add(label_name)
                        warnings.append(
                            Diagnostic(
                                "PG-010",
                                Severity.WARNING,
                                sample.line,
                                1,
                                f"{sample.name}: body label {label_name}={old!r} is replaced by the "
                                f"grouping label {label_name}={value!r} from the URL",
                                name,
                            )
                        )
                    base[label_name] = value
                if not has_instance and "instance" not in base:
                    base["instance"] = ""
                identity = tuple(sorted(base.items()))
                full = identity if extra is None else (*identity, (special or "", _bound(extra, bounds)))
                done = (identity, full)
                cache[labels] = done
                for label_name, _ in labels:
                    if label_name.startswith("__"):
                        errors.append(
                            Diagnostic(
                                "PG-008",
                                Severity.ERROR,
                                sample.line,
                                1,
                                f"{sample.name}: label name {label_name!r} starts with '__', which "
                                "Prometheus reserves (client_golang refuses it as an invalid name)",
                                name,
                            )
                        )
            identity, full = done
            identities.add(identity)
            if sample.timestamp is not None:
                prepared.timestamps += 1
                if len(errors) < MAX_REPORTED:
                    errors.append(
                        Diagnostic(
                            "PG-001",
                            Severity.ERROR,
                            sample.line,
                            1,
                            f"{sample.name}{_show_labels(sample.labels)} has a timestamp; pushed metrics "
                            "must not have timestamps",
                            name,
                        )
                    )
            whole = (sample.name, full)
            if whole in seen:
                errors.append(
                    Diagnostic(
                        "PG-004",
                        Severity.ERROR,
                        sample.line,
                        1,
                        f"{sample.name}{_show_labels(full)} appears more than once in the push",
                        name,
                    )
                )
            else:
                seen.add(whole)
            samples.append(
                Sample(
                    sample.name,
                    full,
                    sample.value,
                    None,
                    sample.exemplar,
                    sample.line,
                    sample.native_histogram,
                )
            )
        sanitized = MetricFamily(name, family.type, family.help, family.unit, tuple(samples), family.line)
        previous = prepared.families.pop(name, None)
        if previous is not None:
            prepared.series -= len(previous.family.samples)
        prepared.families[name] = PushedFamily(sanitized, frozenset(identities))
        prepared.series += len(samples)
    return prepared


# --- the fast path for simple text bodies -------------------------------------------------------------

_SIMPLE_SAMPLE = re.compile(
    r"([a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*,?)?)\})?'
    r" ([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN)"
)
_SIMPLE_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_SIMPLE_META = re.compile(r"# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (\S(?:.*\S)?)")
_SIMPLE_TYPES = {"counter": MetricType.COUNTER, "gauge": MetricType.GAUGE, "untyped": MetricType.UNKNOWN}


_TEMPLATE_LINE = re.compile(
    r"^(?:(#.*)|(.*) ([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN))$", re.MULTILINE
)
"""One line of a body as a template sees it: ``(comment, "", "")`` or ``("", series text, value)``."""


@dataclass(frozen=True, slots=True)
class _TemplateFamily:
    name: str
    type: MetricType
    help: str | None
    line: int
    names: tuple[str, ...]
    labels: tuple[Labels, ...]
    lines: tuple[int, ...]
    identities: frozenset[Labels]


@dataclass(frozen=True, slots=True)
class _Template:
    rows: list[tuple[str, str]]
    """Each line without its value: ``(comment, "")`` or ``("", series text)``."""
    families: tuple[_TemplateFamily, ...]


class SimpleTextMemo:
    """What :func:`prepare_simple_text` keeps of one group's last simple body.

    When the next body has the same lines but for the sample values (a group's
    pushes usually do), it is read with one regular-expression pass and no
    per-line parsing: the families are the last ones with the new values.
    """

    __slots__ = ("template",)

    def __init__(self) -> None:
        self.template: _Template | None = None

    @property
    def size(self) -> int:
        """Lines held (for the caller's bound)."""
        template = self.template
        return len(template.rows) if template is not None else 0


def _from_template(text: str, template: _Template) -> PreparedPush | None:
    """The push ``text`` makes when it has ``template``'s lines but for the values; else None."""
    rows = _TEMPLATE_LINE.findall(text)
    expected = template.rows
    if len(rows) != len(expected) or text.count("\n") != len(rows):
        return None
    if [row[:2] for row in rows] != expected:
        return None
    values = [float(row[2]) for row in rows if row[1]]
    prepared = PreparedPush(families={})
    families = prepared.families
    at = 0
    for item in template.families:
        count = len(item.names)
        samples = tuple(
            map(
                Sample,
                item.names,
                item.labels,
                values[at : at + count],
                repeat(None, count),
                repeat(None, count),
                item.lines,
            )
        )
        at += count
        families[item.name] = PushedFamily(
            MetricFamily(item.name, item.type, item.help, None, samples, item.line), item.identities
        )
    prepared.series = at
    return prepared


def prepare_simple_text(
    body: bytes,
    grouping: Mapping[str, str],
    labels_cache: dict[str, Labels] | None = None,
    memo: SimpleTextMemo | None = None,
) -> PreparedPush | None:
    """:func:`prepare_push` of ``parse(body, "text")`` for the common simple body, in one pass; else None.

    Simple means: UTF-8 ending in a newline, no backslash, CR, NUL or quoted
    name, no blank line; only ``# HELP``/``# TYPE`` comments with single
    spaces, types counter, gauge or untyped, each family's lines together
    and its samples named as the family; one space between series and value,
    no timestamps; no label named like a grouping label, ``instance``, or
    ``__*``; no repeated series; no ``push_time_seconds``. Anything else
    returns None and the caller takes the full parser, which gives the same
    result (a test holds the two to that) and the diagnostics.

    ``labels_cache`` maps the text between a sample's braces to its final
    labels for *this grouping key* (the caller keeps one per group and bounds
    it): a group's pushes repeat their series, so most samples skip label
    parsing and share one labels tuple with the previous push. ``memo``
    (one per group too) keeps the last body's shape (see
    :class:`SimpleTextMemo`).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if memo is not None:
        template = memo.template
        if template is not None and text.endswith("\n"):
            reused = _from_template(text, template)
            if reused is not None:
                return reused
        memo.template = None
    if not text.endswith("\n") or "\\" in text or "\r" in text or "\x00" in text or '{"' in text:
        return None
    if "{__" in text or ",__" in text:
        return None
    guard = set(grouping)
    guard.add("instance")
    for label_name in guard:
        if "{" + label_name + '="' in text or "," + label_name + '="' in text:
            return None
    extra = tuple(grouping.items()) if "instance" in grouping else (*grouping.items(), ("instance", ""))
    cache = labels_cache
    sample_match = _SIMPLE_SAMPLE.fullmatch
    labels_of = _SIMPLE_LABEL.findall
    done: dict[str, MetricFamily] = {}
    identities: dict[str, frozenset[Labels]] = {}
    name: str | None = None
    kind = MetricType.UNKNOWN
    help_text: str | None = None
    first_line = 0
    typed = helped = False
    samples: list[Sample] = []
    series = 0

    def close() -> bool:
        nonlocal series
        if name is None:
            return True
        if name in _SYNTHETIC:
            return False
        if samples:
            labelsets = frozenset(s.labels for s in samples)
            if len(labelsets) != len(samples):
                return False  # a repeated series: the full path reports it
            done[name] = MetricFamily(name, kind, help_text, None, tuple(samples), first_line)
            identities[name] = labelsets
            series += len(samples)
        return True

    lines = text.split("\n")
    lines.pop()
    rows: list[tuple[str, str]] | None = [] if memo is not None else None
    for number, line in enumerate(lines, 1):
        if not line:
            return None
        if line[0] == "#":
            meta = _SIMPLE_META.fullmatch(line)
            if meta is None:
                return None
            if rows is not None:
                rows.append((line, ""))
            word, family, value = meta.groups()
            if family != name:
                if family in done or not close():
                    return None
                name, kind, help_text, first_line, typed, helped = (
                    family,
                    MetricType.UNKNOWN,
                    None,
                    number,
                    False,
                    False,
                )
                samples = []
            elif samples and word == "TYPE":
                return None  # TYPE after the family's samples
            if word == "TYPE":
                found = _SIMPLE_TYPES.get(value)
                if found is None or typed:
                    return None
                kind, typed = found, True
            else:
                if helped:
                    return None
                help_text, helped = value, True
            continue
        match = sample_match(line)
        if match is None:
            return None
        sample_name, label_body, value = match.groups()
        if rows is not None:
            rows.append(("", line[: match.start(3) - 1]))
        if sample_name != name:
            if sample_name in done or not close():
                return None
            name, kind, help_text, first_line, typed, helped = (
                sample_name,
                MetricType.UNKNOWN,
                None,
                number,
                False,
                False,
            )
            samples = []
        full = cache.get(label_body or "") if cache is not None else None
        if full is None:
            labels = tuple(labels_of(label_body)) if label_body else ()
            if len(labels) > 1 and len(dict(labels)) != len(labels):
                return None  # a label repeated within a sample: the full path reports it
            full = tuple(sorted((*labels, *extra)))
            if cache is not None:
                cache[label_body or ""] = full
        samples.append(Sample(sample_name, full, float(value), None, None, number, None))
    if not close():
        return None
    prepared = PreparedPush(families={}, series=series)
    for family_name, family in done.items():
        prepared.families[family_name] = PushedFamily(family, identities[family_name])
    if memo is not None and rows is not None:
        memo.template = _Template(
            rows,
            tuple(
                _TemplateFamily(
                    family.name,
                    family.type,
                    family.help,
                    family.line,
                    tuple(sample.name for sample in family.samples),
                    tuple(sample.labels for sample in family.samples),
                    tuple(sample.line for sample in family.samples),
                    identities[family.name],
                )
                for family in done.values()
            ),
        )
    return prepared


# --- what is held --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredFamily:
    """A family as one group holds it."""

    family: MetricFamily
    identities: frozenset[Labels]
    time: float
    """When the push that set it arrived."""
    body_id: int = 0
    """The persisted body it came from (0: not persisted)."""


@dataclass(slots=True)
class Group:
    """One grouping key's families and history (mutable; owned by :class:`GroupStore`)."""

    key: GroupKey
    labels: Labels
    """Grouping labels, ``job`` first, then by name."""
    families: dict[str, StoredFamily] = field(default_factory=dict)
    push_time: float = 0.0
    """Last successful push (0: never; the group exists because a push to it failed)."""
    failure_time: float = 0.0
    """Last failed push (0: none)."""
    created: float = 0.0
    last_attempt: float = 0.0
    last_sender: str | None = None
    last_user_agent: str | None = None
    series: int = 0

    @property
    def source(self) -> str:
        return format_group(self.key)

    @property
    def last_push_successful(self) -> bool:
        return self.push_time >= self.failure_time

    def exposed_labels(self) -> Labels:
        """The labels of its ``push_time_seconds`` series: grouping labels plus ``instance=""`` if absent."""
        labels = dict(self.key)
        labels.setdefault("instance", "")
        return tuple(sorted(labels.items()))


class GroupStore:
    """Every group, the per-family indexes, and the merged view ``/metrics`` re-exposes.

    ``reserved`` maps family names that must not be pushed (promscope's own
    metrics) to their type; every name starting with ``reserved_prefix`` is
    refused too, so that a push can never clash with promscope's own metrics
    on the shared ``/metrics``.
    """

    def __init__(
        self, reserved: Mapping[str, MetricType] | None = None, *, reserved_prefix: str = "promscope_"
    ) -> None:
        self.groups: dict[GroupKey, Group] = {}
        self.reserved_prefix = reserved_prefix
        self._holders: dict[str, dict[GroupKey, StoredFamily]] = {}
        self._owners: dict[str, dict[Labels, GroupKey]] = {}
        self.reserved: dict[str, MetricType] = dict(reserved or {})
        self.total_series = 0
        self.version = 0
        """Bumped on every change, so readers can cache what they derive."""
        self._merged: tuple[int, list[MetricFamily]] | None = None

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[Group]:
        return iter(list(self.groups.values()))

    def get(self, key: GroupKey) -> Group | None:
        return self.groups.get(key)

    def holders(self, name: str) -> Mapping[GroupKey, StoredFamily]:
        return self._holders.get(name, {})

    # --- the check ---------------------------------------------------------------------------------

    def check(self, key: GroupKey, push: PreparedPush, *, replace: bool) -> list[Diagnostic]:
        """Problems the push would cause once applied (errors and warnings), in O(size of the push).

        Only pairs that involve a pushed family are looked at: everything held
        was consistent before, and removing families cannot make it inconsistent.
        """
        problems: list[Diagnostic] = []
        own = self.groups.get(key)
        pushed = push.families
        twin = self.twin(key) if own is None else None
        if twin is not None:
            problems.append(
                Diagnostic(
                    "PG-011",
                    Severity.ERROR,
                    0,
                    0,
                    f"group {format_group(key)} would expose push_time_seconds"
                    f"{_show_labels(_exposed(key))} like group {format_group(twin)} does: to Prometheus "
                    'a missing instance and instance="" are the same; push to that group instead',
                    PUSH_TIME,
                )
            )

        def exists(name: str) -> MetricType | None:
            """The type ``name`` will have once the push is applied, or None when nothing holds it."""
            if name in pushed:
                return pushed[name].family.type
            if own is not None and not replace:
                held = own.families.get(name)
                if held is not None:
                    return held.family.type
            for holder, stored in self._holders.get(name, {}).items():
                if holder != key:
                    return stored.family.type
            return None

        for name, item in pushed.items():
            family = item.family
            reserved = self.reserved.get(name)
            if reserved is None and self.reserved_prefix and name.startswith(self.reserved_prefix):
                reserved = family.type
            if reserved is not None:
                problems.append(
                    Diagnostic(
                        "PG-006",
                        Severity.ERROR,
                        family.line,
                        1,
                        f"{name} is one of promscope's own metric names (promscope_*); "
                        "push it under another name",
                        name,
                    )
                )
                continue
            for holder, stored in self._holders.get(name, {}).items():
                if holder == key:
                    continue
                other = stored.family
                if other.type is not family.type:
                    problems.append(
                        Diagnostic(
                            "PG-002",
                            Severity.ERROR,
                            family.line,
                            1,
                            f"{name} is pushed as {_TYPE_WORD[family.type]} but group "
                            f"{format_group(holder)} holds it as {_TYPE_WORD[other.type]}",
                            name,
                        )
                    )
                elif (other.help or "") != (family.help or ""):
                    problems.append(
                        Diagnostic(
                            "PG-007",
                            Severity.WARNING,
                            family.line,
                            1,
                            f"{name}: help {family.help or ''!r} differs from {other.help or ''!r} in group "
                            f"{format_group(holder)}; /metrics shows the latter",
                            name,
                        )
                    )
                break  # everything held agrees with itself: one other holder tells all
            owners = self._owners.get(name)
            mine = own.families.get(name) if own is not None else None
            if mine is not None and mine.identities == item.identities:
                owners = None  # the same series as this group holds now: nobody else can own them
            if owners:
                clashes = 0
                for identity in item.identities:
                    owner = owners.get(identity)
                    if owner is not None and owner != key:
                        clashes += 1
                        if clashes <= MAX_REPORTED:
                            problems.append(
                                Diagnostic(
                                    "PG-003",
                                    Severity.ERROR,
                                    _line_of(family, identity),
                                    1,
                                    f"{name}{_show_labels(identity)} is already exposed by group "
                                    f"{format_group(owner)}; give the groups different grouping labels "
                                    "or push the series to one of them",
                                    name,
                                )
                            )
                if clashes > MAX_REPORTED:
                    problems.append(
                        Diagnostic(
                            "PG-003",
                            Severity.ERROR,
                            family.line,
                            1,
                            f"{name}: {clashes - MAX_REPORTED} more series already exposed by other groups",
                            name,
                        )
                    )
            for suffix in _SUFFIXES:
                if name.endswith(suffix):
                    base = name[: -len(suffix)]
                    base_type = exists(base)
                    if (base_type is MetricType.SUMMARY and suffix != "_bucket") or base_type in _BUCKETED:
                        problems.append(
                            Diagnostic(
                                "PG-005",
                                Severity.ERROR,
                                family.line,
                                1,
                                f"{name} collides with the {_TYPE_WORD[base_type or MetricType.UNKNOWN]} "
                                f"{base}, whose {suffix} series have this name",
                                name,
                            )
                        )
            if family.type is MetricType.SUMMARY or family.type in _BUCKETED:
                wanted = _SUFFIXES if family.type in _BUCKETED else _SUFFIXES[:2]
                for suffix in wanted:
                    if exists(name + suffix) is not None:
                        problems.append(
                            Diagnostic(
                                "PG-005",
                                Severity.ERROR,
                                family.line,
                                1,
                                f"the {_TYPE_WORD[family.type]} {name} collides with the family "
                                f"{name + suffix}, which has the name of its {suffix} series",
                                name,
                            )
                        )
        return problems

    # --- changes -----------------------------------------------------------------------------------

    def apply(
        self,
        key: GroupKey,
        push: PreparedPush,
        *,
        replace: bool,
        now: float,
        sender: str | None = None,
        user_agent: str | None = None,
        body_id: int = 0,
    ) -> Changes:
        """Store a checked push (PUT: ``replace=True``; POST: same-name families) and say what changed."""
        group = self._group(key, now)
        group.push_time = now
        group.last_attempt = now
        group.last_sender = sender
        group.last_user_agent = user_agent
        added: list[str] = []
        removed: list[str] = []
        changed: list[str] = []
        series_added = series_removed = series_changed = 0
        if replace:
            for name in [n for n in group.families if n not in push.families]:
                removed.append(name)
                series_removed += len(group.families[name].family.samples)
                self._drop(group, name)
        for name, item in push.families.items():
            old = group.families.get(name)
            if old is None:
                added.append(name)
                series_added += len(item.family.samples)
            else:
                plus, minus, diff, meta = _compare(old.family, item.family)
                series_added += plus
                series_removed += minus
                series_changed += diff
                if plus or minus or diff or meta:
                    changed.append(name)
                if old.identities == item.identities:
                    self._swap(group, name, old, StoredFamily(item.family, item.identities, now, body_id))
                    continue
                self._drop(group, name)
            self._add(group, name, StoredFamily(item.family, item.identities, now, body_id))
        self._touch()
        return Changes(
            families_added=tuple(added),
            families_removed=tuple(removed),
            families_changed=tuple(changed),
            series_added=series_added,
            series_removed=series_removed,
            series_changed=series_changed,
        )

    def twin(self, key: GroupKey) -> GroupKey | None:
        """The held group, other than ``key``, whose ``push_time_seconds`` has the labels ``key``'s would.

        Only ``{job="x"}`` and ``{job="x", instance=""}`` can be such twins: both
        are exposed with ``instance=""``.
        """
        labels = dict(key)
        if "instance" not in labels:
            labels["instance"] = ""
        elif labels["instance"] == "":
            del labels["instance"]
        else:
            return None
        other = group_key(labels)
        return other if other in self.groups else None

    def record_failure(
        self, key: GroupKey, *, now: float, sender: str | None = None, user_agent: str | None = None
    ) -> Group:
        """A push to ``key`` failed the check: set its failure time, creating the group as upstream does."""
        group = self._group(key, now)
        group.failure_time = now
        group.last_attempt = now
        group.last_sender = sender
        group.last_user_agent = user_agent
        self._touch()
        return group

    def delete(self, key: GroupKey) -> Changes | None:
        """Remove the group with exactly this key; None when there is none."""
        group = self.groups.get(key)
        if group is None:
            return None
        names = list(group.families)
        series = group.series
        for name in names:
            self._drop(group, name)
        del self.groups[key]
        self._touch()
        return Changes(families_removed=tuple(names), series_removed=series)

    def wipe(self) -> int:
        """Remove every group; returns how many there were."""
        count = len(self.groups)
        self.groups.clear()
        self._holders.clear()
        self._owners.clear()
        self.total_series = 0
        self._touch()
        return count

    def restore_group(
        self,
        key: GroupKey,
        *,
        push_time: float,
        failure_time: float,
        created: float,
        last_sender: str | None,
        last_user_agent: str | None,
        families: Iterable[StoredFamily],
    ) -> Group:
        """Put back a persisted group as it was (no check: it was checked when it was pushed)."""
        group = self._group(key, created)
        group.push_time = push_time
        group.failure_time = failure_time
        group.last_attempt = max(push_time, failure_time)
        group.last_sender = last_sender
        group.last_user_agent = last_user_agent
        for stored in families:
            if stored.family.name in group.families:
                self._drop(group, stored.family.name)
            self._add(group, stored.family.name, stored)
        self._touch()
        return group

    # --- the merged view ---------------------------------------------------------------------------

    def merged_families(self) -> list[MetricFamily]:
        """Every pushed family, merged across groups as upstream's ``GetMetricFamilies`` does.

        Families are sorted by name; a family's type and help are those of the
        group that has held it longest; series follow in grouping-key order.
        The synthetic ``push_time_seconds``/``push_failure_time_seconds``
        families are not included (see :meth:`push_time_families`). Cached
        until the next change.
        """
        cached = self._merged
        if cached is not None and cached[0] == self.version:
            return cached[1]
        out: list[MetricFamily] = []
        for name in sorted(self._holders):
            holders = self._holders[name]
            if not holders:
                continue
            first = next(iter(holders.values())).family
            if len(holders) == 1:
                if first.samples:
                    out.append(first)
                continue
            samples: list[Sample] = []
            for holder in sorted(holders):
                samples.extend(holders[holder].family.samples)
            if samples:
                out.append(MetricFamily(name, first.type, first.help, first.unit, tuple(samples), 0))
        self._merged = (self.version, out)
        return out

    def push_time_families(self) -> list[MetricFamily]:
        """``push_time_seconds`` and ``push_failure_time_seconds``, one series per group."""
        ordered = sorted(self.groups.values(), key=lambda g: g.key)
        push = tuple(Sample(PUSH_TIME, g.exposed_labels(), g.push_time) for g in ordered)
        failure = tuple(Sample(PUSH_FAILURE_TIME, g.exposed_labels(), g.failure_time) for g in ordered)
        if not push:
            return []
        return [
            MetricFamily(PUSH_FAILURE_TIME, MetricType.GAUGE, PUSH_FAILURE_TIME_HELP, samples=failure),
            MetricFamily(PUSH_TIME, MetricType.GAUGE, PUSH_TIME_HELP, samples=push),
        ]

    # --- internals ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        self.version += 1

    def _group(self, key: GroupKey, now: float) -> Group:
        group = self.groups.get(key)
        if group is None:
            group = Group(key=key, labels=_ordered(key), created=now)
            self.groups[key] = group
        return group

    def _add(self, group: Group, name: str, stored: StoredFamily) -> None:
        group.families[name] = stored
        self._holders.setdefault(name, {})[group.key] = stored
        owners = self._owners.setdefault(name, {})
        key = group.key
        for identity in stored.identities:
            owners[identity] = key
        count = len(stored.family.samples)
        group.series += count
        self.total_series += count

    def _swap(self, group: Group, name: str, old: StoredFamily, new: StoredFamily) -> None:
        """Replace a family by one with the same series identities: the owner index stays as it is."""
        group.families[name] = new
        self._holders[name][group.key] = new
        delta = len(new.family.samples) - len(old.family.samples)
        group.series += delta
        self.total_series += delta

    def _drop(self, group: Group, name: str) -> None:
        stored = group.families.pop(name)
        holders = self._holders.get(name)
        if holders is not None:
            holders.pop(group.key, None)
            if not holders:
                del self._holders[name]
        owners = self._owners.get(name)
        if owners is not None:
            key = group.key
            for identity in stored.identities:
                if owners.get(identity) == key:
                    del owners[identity]
            if not owners:
                del self._owners[name]
        count = len(stored.family.samples)
        group.series -= count
        self.total_series -= count


def _line_of(family: MetricFamily, identity: Labels) -> int:
    """The line of the first sample of ``family`` whose labels (minus le/quantile) are ``identity``."""
    wanted = dict(identity)
    for sample in family.samples:
        labels = dict(sample.labels)
        labels.pop("le", None)
        labels.pop("quantile", None)
        if labels == wanted:
            return sample.line
    return family.line


_LABELS_OF = attrgetter("labels")
_NAME_OF = attrgetter("name")
_VALUE_OF = attrgetter("value")


def _compare(old: MetricFamily, new: MetricFamily) -> tuple[int, int, int, bool]:
    """``(series added, removed, changed, metadata changed)`` between two versions of a family."""
    meta = (old.type, old.help, old.unit) != (new.type, new.help, new.unit)
    if len(old.samples) == len(new.samples):  # usually the same series in the same order
        olds, news = old.samples, new.samples
        if list(map(_LABELS_OF, olds)) == list(map(_LABELS_OF, news)) and list(map(_NAME_OF, olds)) == list(
            map(_NAME_OF, news)
        ):
            before_values = list(map(_VALUE_OF, olds))
            after_values = list(map(_VALUE_OF, news))
            changed = sum(map(operator.ne, before_values, after_values))
            if changed and any(map(math.isnan, after_values)):  # NaN to NaN is no change
                changed = sum(
                    1 for a, b in zip(before_values, after_values, strict=True) if not _same_value(a, b)
                )
            return 0, 0, changed, meta
    before = {(s.name, s.labels): s.value for s in old.samples}
    added = changed = 0
    for sample in new.samples:
        value = before.pop((sample.name, sample.labels), None)
        if value is None:
            added += 1
        elif not _same_value(value, sample.value):
            changed += 1
    return added, len(before), changed, meta
