"""Every exposition under fixtures/ parses the way its directory (and sidecar) says.

* ``fixtures/valid/<text|openmetrics|protobuf>/NAME.<prom|om|pb>``: no error-severity
  diagnostic; when ``NAME.expected`` exists, exactly the diagnostics it lists.
* ``fixtures/invalid/<text|openmetrics|protobuf|semantics>/NAME.<ext>`` + ``NAME.expected``:
  exactly the listed diagnostics.

Each non-empty line of a ``.expected`` file not starting with ``#`` reads
``LINE:COL SEVERITY CODE`` (``COL`` may be ``*``); a trailing ``# comment`` is
allowed. The comparison is on the multiset of ``(line, severity, code)``; a
given column must match too. The format comes from the extension:
``.prom`` text, ``.om`` OpenMetrics, ``.pb`` protobuf.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import pathlib
import sys
import types
from dataclasses import dataclass

import pytest

from promscope.exposition import parse
from promscope.model import Diagnostic, Format, MetricType, ParseResult, Severity

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures"
FORMAT_BY_SUFFIX = {".prom": Format.TEXT, ".om": Format.OPENMETRICS, ".pb": Format.PROTOBUF}
VALID_DIRS = ("text", "openmetrics", "protobuf")
INVALID_DIRS = ("text", "openmetrics", "protobuf", "semantics")
NODE_EXPORTER = FIXTURES / "node_exporter"


@dataclass(frozen=True)
class Expected:
    line: int
    column: int | None
    severity: Severity
    code: str
    source: str
    """``file:line`` of the .expected entry, for messages."""


def _inputs(kind: str, subdirs: tuple[str, ...]) -> list[pathlib.Path]:
    found: list[pathlib.Path] = []
    for subdir in subdirs:
        directory = FIXTURES / kind / subdir
        if directory.is_dir():
            found.extend(p for p in directory.rglob("*") if p.is_file() and p.suffix in FORMAT_BY_SUFFIX)
    return sorted(found)


def _params(kind: str, subdirs: tuple[str, ...]) -> list[object]:
    paths = _inputs(kind, subdirs)
    if not paths:
        return [
            pytest.param(None, id="none", marks=pytest.mark.skip(reason=f"no fixtures under {kind}/ yet"))
        ]
    return [pytest.param(p, id=p.relative_to(FIXTURES / kind).as_posix()) for p in paths]


def _rel(path: pathlib.Path) -> str:
    return path.relative_to(FIXTURES).as_posix() if path.is_relative_to(FIXTURES) else str(path)


def _sidecar(path: pathlib.Path) -> pathlib.Path:
    return path.with_suffix(".expected")


def parse_expected(path: pathlib.Path) -> list[Expected]:
    """Read a ``.expected`` sidecar; a malformed line fails the test with its position."""
    entries: list[Expected] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = raw.split(" #", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        where = f"{_rel(path)}:{number}"
        fields = text.split()
        if len(fields) != 3 or fields[0].count(":") != 1:
            pytest.fail(f"{where}: expected 'LINE:COL SEVERITY CODE', got {raw!r}", pytrace=False)
        position, severity, code = fields
        line_text, column_text = position.split(":")
        try:
            line = int(line_text)
            column = None if column_text == "*" else int(column_text)
            level = Severity(severity)
        except ValueError:
            pytest.fail(
                f"{where}: cannot read {raw!r} (LINE and COL are integers, COL may be '*'; "
                f"SEVERITY is one of {', '.join(s.value for s in Severity)})",
                pytrace=False,
            )
        entries.append(Expected(line, column, level, code, where))
    return entries


def _describe(diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> str:
    if not diagnostics:
        return "  (none)"
    return "\n".join(f"  {d.line}:{d.column} {d.severity.value} {d.code}  {d.message}" for d in diagnostics)


def _parse_fixture(path: pathlib.Path) -> ParseResult:
    return parse(path.read_bytes(), format=FORMAT_BY_SUFFIX[path.suffix])


def assert_diagnostics_match(path: pathlib.Path, result: ParseResult, expected: list[Expected]) -> None:
    actual = collections.Counter((d.line, d.severity, d.code) for d in result.diagnostics)
    wanted = collections.Counter((e.line, e.severity, e.code) for e in expected)
    problems: list[str] = []
    if actual != wanted:
        missing = wanted - actual
        extra = actual - wanted
        if missing:
            problems.append(
                "missing: " + ", ".join(f"{ln} {sv.value} {cd}" for ln, sv, cd in sorted(missing))
            )
        if extra:
            problems.append(
                "unexpected: " + ", ".join(f"{ln} {sv.value} {cd}" for ln, sv, cd in sorted(extra))
            )
    with_columns = collections.Counter((d.line, d.severity, d.code, d.column) for d in result.diagnostics)
    for entry in expected:
        if entry.column is None:
            continue
        key = (entry.line, entry.severity, entry.code, entry.column)
        if with_columns[key] <= 0:
            problems.append(f"{entry.source}: no {entry.code} at column {entry.column} of line {entry.line}")
        else:
            with_columns[key] -= 1
    if problems:
        pytest.fail(
            f"{_rel(path)}:\n  "
            + "\n  ".join(problems)
            + "\nparse() gave:\n"
            + _describe(result.diagnostics),
            pytrace=False,
        )


@pytest.mark.parametrize("path", _params("valid", VALID_DIRS))
def test_valid_fixture(path: pathlib.Path) -> None:
    result = _parse_fixture(path)
    errors = result.errors()
    assert not errors, f"{_rel(path)} should parse cleanly, got:\n{_describe(errors)}"
    assert result.families, f"{_rel(path)} gave no metric families"
    sidecar = _sidecar(path)
    if sidecar.exists():
        assert_diagnostics_match(path, result, parse_expected(sidecar))


@pytest.mark.parametrize("path", _params("invalid", INVALID_DIRS))
def test_invalid_fixture(path: pathlib.Path) -> None:
    sidecar = _sidecar(path)
    assert sidecar.exists(), f"{_rel(path)} has no {sidecar.name} listing its diagnostics"
    expected = parse_expected(sidecar)
    assert expected, f"{_rel(sidecar)} lists no diagnostics; an invalid fixture must"
    assert_diagnostics_match(path, _parse_fixture(path), expected)


def _all_sidecars() -> list[pathlib.Path]:
    return sorted(p for kind in ("valid", "invalid") for p in (FIXTURES / kind).rglob("*.expected"))


def test_every_sidecar_belongs_to_an_input() -> None:
    orphans = [
        p.relative_to(FIXTURES).as_posix()
        for p in _all_sidecars()
        if not any(p.with_suffix(s).exists() for s in FORMAT_BY_SUFFIX)
    ]
    assert not orphans, f".expected files with no .prom/.om/.pb beside them: {orphans}"


def test_every_expected_code_is_declared() -> None:
    from promscope.codes import all_codes

    declared = all_codes()
    unknown = sorted(
        {
            f"{entry.code} ({entry.source})"
            for p in _all_sidecars()
            for entry in parse_expected(p)
            if entry.code not in declared
        }
    )
    assert not unknown, f"codes listed in .expected files but not in promscope.codes.all_codes(): {unknown}"


# --- the harness itself -----------------------------------------------------------------------------


def _result(*diagnostics: Diagnostic) -> ParseResult:
    return ParseResult(families=(), diagnostics=diagnostics, format=Format.TEXT)


def test_expected_sidecar_format(tmp_path: pathlib.Path) -> None:
    sidecar = tmp_path / "x.expected"
    sidecar.write_text("# a comment\n\n3:* error PS-201\n4:7 warning SEM-001  # why\n", encoding="utf-8")
    assert [(e.line, e.column, e.severity, e.code) for e in parse_expected(sidecar)] == [
        (3, None, Severity.ERROR, "PS-201"),
        (4, 7, Severity.WARNING, "SEM-001"),
    ]
    sidecar.write_text("3 error PS-201\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="LINE:COL SEVERITY CODE"):
        parse_expected(sidecar)
    sidecar.write_text("3:1 fatal PS-201\n", encoding="utf-8")
    with pytest.raises(pytest.fail.Exception, match="SEVERITY is one of"):
        parse_expected(sidecar)


def test_matching_is_a_multiset_with_optional_columns(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.prom"
    twice = [
        Expected(2, None, Severity.ERROR, "PS-201", "x:1"),
        Expected(2, 5, Severity.ERROR, "PS-201", "x:2"),
    ]
    found = _result(
        Diagnostic("PS-201", Severity.ERROR, 2, 1, "a"), Diagnostic("PS-201", Severity.ERROR, 2, 5, "b")
    )
    assert_diagnostics_match(path, found, twice)
    with pytest.raises(pytest.fail.Exception, match="missing: 2 error PS-201"):
        assert_diagnostics_match(path, _result(Diagnostic("PS-201", Severity.ERROR, 2, 5, "b")), twice)
    with pytest.raises(pytest.fail.Exception, match="no PS-201 at column 5"):
        assert_diagnostics_match(
            path,
            _result(
                Diagnostic("PS-201", Severity.ERROR, 2, 1, "a"),
                Diagnostic("PS-201", Severity.ERROR, 2, 9, "c"),
            ),
            twice,
        )
    with pytest.raises(pytest.fail.Exception, match="unexpected: 3 warning SEM-001"):
        assert_diagnostics_match(
            path, _result(*found.diagnostics, Diagnostic("SEM-001", Severity.WARNING, 3, 0, "")), twice
        )


# --- real captures ----------------------------------------------------------------------------------


def _normalized_names(result: ParseResult) -> set[str]:
    """Family names with ``_total`` removed: text keeps it on counters, OpenMetrics drops it."""
    return {f.name.removesuffix("_total") for f in result.families}


@pytest.mark.parametrize("name", ["node_exporter.prom", "node_exporter.om", "node_exporter.pb"])
def test_node_exporter_capture_parses_cleanly(name: str) -> None:
    path = NODE_EXPORTER / name
    result = _parse_fixture(path)
    assert not result.errors(), f"{name} should parse cleanly, got:\n{_describe(result.errors())}"
    assert len(result.families) > 100, f"{name}: only {len(result.families)} families"


def test_node_exporter_captures_agree() -> None:
    text = _parse_fixture(NODE_EXPORTER / "node_exporter.prom")
    openmetrics = _parse_fixture(NODE_EXPORTER / "node_exporter.om")
    protobuf = _parse_fixture(NODE_EXPORTER / "node_exporter.pb")
    # The .om file is the .prom scrape re-rendered, so even the series are the same.
    assert _normalized_names(text) == _normalized_names(openmetrics)
    text_series = {s.key() for f in text.families for s in f.samples}
    om_series = {s.key() for f in openmetrics.families for s in f.samples}
    assert text_series == om_series
    # The .pb file is a separate scrape of the same exporter: same families, same types.
    assert {(f.name, f.type) for f in text.families} == {(f.name, f.type) for f in protobuf.families}


def test_node_exporter_capture_facts() -> None:
    facts = json.loads((NODE_EXPORTER / "capture.json").read_text(encoding="utf-8"))
    assert facts["responses"]["protobuf"]["content_type"].startswith("application/vnd.google.protobuf")
    openmetrics = _parse_fixture(NODE_EXPORTER / "node_exporter.om")
    for name in facts.get("openmetrics_retyped_as_unknown", []):
        family = openmetrics.family(name)
        assert family is not None and family.type is MetricType.UNKNOWN, name


# --- the large-file generator -------------------------------------------------------------------------


def _generator() -> types.ModuleType:
    """``fixtures/generate_large.py`` as a module (fixtures/ is not a package)."""
    if "generate_large" not in sys.modules:
        spec = importlib.util.spec_from_file_location("generate_large", FIXTURES / "generate_large.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["generate_large"] = module  # dataclasses look their module up while being created
        spec.loader.exec_module(module)
    return sys.modules["generate_large"]


@pytest.mark.parametrize("fmt", ["text", "openmetrics"])
def test_generated_exposition_is_valid_and_has_every_type(fmt: str) -> None:
    generator = _generator()
    series = 40 * generator.SERIES_PER_POD + 17
    result = parse(generator.generate(series, seed=3, fmt=fmt), format=fmt)
    # Benchmarks measure the happy path: not even a warning (e.g. a non-canonical OpenMetrics le).
    assert not result.diagnostics, f"generate_large ({fmt}) gave:\n{_describe(list(result.diagnostics))}"
    created = sum(1 for f in result.families for s in f.samples if s.name.endswith("_created"))
    assert result.sample_count - created == series
    types = {f.type for f in result.families}
    wanted = {
        MetricType.COUNTER,
        MetricType.GAUGE,
        MetricType.HISTOGRAM,
        MetricType.SUMMARY,
        MetricType.UNKNOWN,
    }
    if fmt == "openmetrics":
        wanted |= {MetricType.INFO, MetricType.STATESET}
        assert created > 0
    assert wanted <= types


def test_generator_is_deterministic_by_seed() -> None:
    generator = _generator()
    assert generator.generate(500, seed=1) == generator.generate(500, seed=1)
    assert generator.generate(500, seed=1) != generator.generate(500, seed=2)
    assert "".join(generator.iter_chunks(500, 1, "openmetrics")) == generator.generate(500, 1, "openmetrics")
