"""promscope's lint in promtool mode says what ``promtool check metrics`` says.

For every Prometheus-text fixture (``fixtures/lint/``, ``fixtures/valid/text/``,
``fixtures/node_exporter/``) and for a live node_exporter, the real promtool
and ``check(..., CheckOptions(promtool_only=True))`` must give the same
multiset of ``<metric> <message>`` lines and the same exit status class
(0 clean, 1 unparsable, 3 lint problems).

Where promscope deliberately differs, a named test below says so and shows it:

* names with two unit words: promtool 2.42's verdict is random (Go map order);
* the newest promlint's rules (``metric not unique``, ``_timestamp_seconds``)
  are absent from promtool 2.42 and left out in promtool mode.

Skipped, with the reason, only when ``/usr/bin/promtool`` is not installed.
"""

from __future__ import annotations

import collections
import pathlib
import re
import subprocess
from dataclasses import dataclass

import httpx
import pytest

from promscope.check import CheckOptions, check
from promscope.check.lint import ambiguous_in_promtool

PROMTOOL = pathlib.Path("/usr/bin/promtool")
FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not PROMTOOL.exists(), reason="/usr/bin/promtool is not installed (apt-get install prometheus)"
    ),
]


@dataclass(frozen=True)
class Verdict:
    lines: tuple[str, ...]
    exit_code: int

    @property
    def exit_class(self) -> str:
        return {0: "clean", 1: "unparsable", 3: "lint problems"}.get(self.exit_code, f"exit {self.exit_code}")


def promtool(data: bytes) -> Verdict:
    done = subprocess.run(
        [str(PROMTOOL), "check", "metrics"], input=data, capture_output=True, timeout=60, check=False
    )
    lines = tuple(line for line in done.stderr.decode("utf-8", "replace").splitlines() if line)
    return Verdict(lines, done.returncode)


def promscope(data: bytes, *, promtool_only: bool = True) -> Verdict:
    report = check(data, "text", options=CheckOptions(promtool_only=promtool_only))
    return Verdict(tuple(report.promtool_lines()), report.promtool_exit_code())


_UNIT_LINE = re.compile(r'^(\S+) use base unit "[^"]+" instead of "[^"]+"$')


def comparable(lines: tuple[str, ...]) -> collections.Counter[str]:
    """The lines, without base-unit verdicts promtool 2.42 gives at random (see the named test)."""
    kept = []
    for line in lines:
        unit = _UNIT_LINE.match(line)
        if unit and ambiguous_in_promtool(unit.group(1)):
            continue
        kept.append(line)
    return collections.Counter(kept)


def assert_same(data: bytes) -> None:
    theirs = promtool(data)
    ours = promscope(data)
    if theirs.exit_code == 1:
        assert ours.exit_code == 1, f"promtool could not parse it ({theirs.lines}), promscope linted it"
        return
    assert ours.exit_code != 1, f"promscope could not parse it: {ours.lines}"
    ours_kept, theirs_kept = comparable(ours.lines), comparable(theirs.lines)
    assert ours_kept == theirs_kept
    random_verdicts = ours_kept.total() != len(ours.lines) or theirs_kept.total() != len(theirs.lines)
    if not random_verdicts:
        assert ours.exit_class == theirs.exit_class


# Fixtures promtool 2.42 reads differently on purpose; each has its own named test below.
DEVIATIONS = {
    "valid/text/whitespace.prom": "test_deviation_blanks_after_the_timestamp",
}


def _fixture_params() -> list[object]:
    paths: list[pathlib.Path] = []
    for directory in ("lint", "valid/text", "node_exporter"):
        paths.extend(sorted((FIXTURES / directory).glob("*.prom")))
    return [
        pytest.param(path, id=path.relative_to(FIXTURES).as_posix())
        for path in paths
        if path.relative_to(FIXTURES).as_posix() not in DEVIATIONS
    ]


@pytest.mark.parametrize("path", _fixture_params())
def test_fixture_matches_promtool(path: pathlib.Path) -> None:
    assert_same(path.read_bytes())


def test_node_exporter_fixture_is_linted_line_for_line() -> None:
    """The capture has dozens of problems; order and repeats match too, not just the multiset."""
    data = (FIXTURES / "node_exporter" / "node_exporter.prom").read_bytes()
    theirs, ours = promtool(data), promscope(data)
    assert theirs.exit_code == ours.exit_code == 3
    assert ours.lines == theirs.lines


def test_live_node_exporter_matches_promtool(node_exporter: object) -> None:
    url = node_exporter.url("/metrics")  # type: ignore[attr-defined]
    body = httpx.get(url, headers={"Accept": "text/plain; version=0.0.4"}, timeout=10).content
    assert body
    assert_same(body)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b'# TYPE x gauge\nx{a="1",a="2"} 1\n', id="duplicate-label"),
        pytest.param(b'x{a="1" 1\n', id="unclosed-braces"),
        pytest.param(b"# TYPE x gauge\nx not_a_number\n", id="bad-value"),
        pytest.param(b"# TYPE x gauge\n# TYPE x counter\nx 1\n", id="second-type-line"),
        pytest.param(b'# TYPE "my.metric" gauge\n{"my.metric",a="1"} 1\n', id="quoted-utf8-name"),
        pytest.param(b'x{"label.name"="1"} 1\n', id="quoted-label-name"),
    ],
)
def test_unparsable_input_is_exit_1_in_both(data: bytes) -> None:
    theirs, ours = promtool(data), promscope(data)
    assert theirs.exit_code == 1 and theirs.lines[0].startswith("error while linting: ")
    assert ours.exit_code == 1 and ours.lines[0].startswith("error while linting: ")


# --- deliberate differences, each named ------------------------------------------------------------


def test_deviation_two_unit_words_are_random_in_promtool_242() -> None:
    """promtool 2.42 tries units in Go map order: for ``transfer_milliseconds_bytes`` it
    reports "milliseconds" on some runs and nothing on others. promscope, like the
    newest promlint, lets the first unit word decide, which is one of promtool's answers."""
    data = (FIXTURES / "lint" / "multi_unit.prom").read_bytes()
    seen = {promtool(data).lines for _ in range(40)}
    ours = promscope(data).lines
    assert ours in seen
    assert ours == ('transfer_milliseconds_bytes use base unit "seconds" instead of "milliseconds"',)
    assert len(seen) == 2, f"promtool gave one answer in 40 runs: {seen}"


@pytest.mark.parametrize(
    ("fixture", "newest_only"),
    [
        ("duplicates.prom", ["temperature_celsius metric not unique"]),
        (
            "timestamp_seconds.prom",
            ['last_success_timestamp_seconds non-gauge metrics should not have "_timestamp_seconds" suffix'],
        ),
    ],
)
def test_deviation_newest_promlint_rules_are_not_in_promtool_242(
    fixture: str, newest_only: list[str]
) -> None:
    """LintDuplicateMetric and LintGauge came after the client_golang promtool 2.42 vendors:
    promtool mode leaves them out (and matches), the default mode reports them."""
    data = (FIXTURES / "lint" / fixture).read_bytes()
    theirs = promtool(data)
    assert not set(newest_only) & set(theirs.lines)
    assert comparable(promscope(data).lines) == comparable(theirs.lines)
    full = promscope(data, promtool_only=False).lines
    assert collections.Counter(full) == collections.Counter(theirs.lines) + collections.Counter(newest_only)


def test_deviation_blanks_after_the_timestamp() -> None:
    """promtool 2.42's decoder (expfmt) rejects blanks after a sample's timestamp
    ("spurious string after timestamp"); Prometheus's scrape parser, which promscope
    follows, skips them. promscope cannot see the blanks from parsed families, so
    promtool mode lints the input where promtool gives up."""
    data = (FIXTURES / "valid" / "text" / "whitespace.prom").read_bytes()
    theirs, ours = promtool(data), promscope(data)
    assert theirs.exit_code == 1
    assert "spurious string after timestamp" in theirs.lines[0]
    assert ours.exit_code != 1
    assert DEVIATIONS["valid/text/whitespace.prom"] == test_deviation_blanks_after_the_timestamp.__name__
