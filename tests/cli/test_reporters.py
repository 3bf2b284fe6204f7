"""The check reporters, on hand-made runs (no parser involved)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest

from cli import reporters
from cli.reporters import (
    JSON_SCHEMA_VERSION,
    OUTPUTS,
    CheckRun,
    FileOutcome,
    github_command,
    junit_xml,
    promtool_exit_code,
    promtool_lines,
    report,
    run_dict,
    sarif_dict,
)
from promscope.codes import Code
from promscope.model import Diagnostic, Severity

SOURCE = b'# TYPE foo counter\nfoo{a="1" 1\n\tbar 2\n'

ERR = Diagnostic("PS-201", Severity.ERROR, 2, 11, "expected '}' or ','", "foo")
STYLE = Diagnostic("LINT-001", Severity.STYLE, 1, 0, "no help text", "foo")
WARN = Diagnostic("PS-105", Severity.WARNING, 3, 2, "tab, used as whitespace", "bar")


def make_run(fail_on: Severity = Severity.ERROR, **extra: object) -> CheckRun:
    outcome = FileOutcome(
        "dir/x.prom",
        "text",
        (STYLE, ERR, WARN),
        source=SOURCE,
        lines=3,
        families=1,
        samples=2,
        ignored=2,
    )
    files = (outcome, FileOutcome("gone.prom", error="no such file"))
    return CheckRun(files=files, fail_on=fail_on, **extra)  # type: ignore[arg-type]


def clean_run() -> CheckRun:
    return CheckRun(
        files=(FileOutcome("ok.prom", "text", (), source=b"a 1\n", lines=1, families=1, samples=1),)
    )


def render(output: str, run: CheckRun, **kwargs: bool) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    report(output, run, out=out, err=err, **kwargs)
    return out.getvalue(), err.getvalue()


# -- text ---------------------------------------------------------------------------------------------


def test_text_locates_each_diagnostic_and_puts_a_caret_under_the_column() -> None:
    out, _ = render("text", make_run())
    lines = out.splitlines()
    i = lines.index("dir/x.prom:2:11: error PS-201 foo: expected '}' or ','")
    assert lines[i + 1] == ' 2 | foo{a="1" 1'
    assert lines[i + 2] == "   |           ^"
    assert lines[i + 2].index("^") - lines[i + 2].index("|") == lines[i + 1].index(" 1", 5) - 2


def test_text_counts_a_tab_as_one_column() -> None:
    out, _ = render("text", make_run())
    lines = out.splitlines()
    i = lines.index("dir/x.prom:3:2: warning PS-105 bar: tab, used as whitespace")
    assert lines[i + 1] == " 3 |  bar 2"
    assert lines[i + 2] == "   |  ^"


def test_text_whole_line_diagnostic_is_at_column_one_without_a_caret() -> None:
    out, _ = render("text", make_run())
    lines = out.splitlines()
    i = lines.index("dir/x.prom:1:1: style LINT-001 foo: no help text")
    assert lines[i + 1] == " 1 | # TYPE foo counter"
    assert not lines[i + 2].lstrip().startswith("|")


def test_text_summary_counts_severities_files_ignored_and_unreadable() -> None:
    out, _ = render("text", make_run())
    assert out.splitlines()[-1] == "1 error, 1 warning, 1 style in 1 file (2 ignored, 1 unreadable)"


def test_text_summary_of_a_clean_run() -> None:
    out, err = render("text", clean_run())
    assert out == "0 errors, 0 warnings, 0 style in 1 file\n"
    assert err == ""


def test_text_quiet_shows_only_failures_without_snippets_or_summary() -> None:
    out, _ = render("text", make_run(Severity.WARNING), quiet=True)
    assert out.splitlines() == [
        "dir/x.prom:2:11: error PS-201 foo: expected '}' or ','",
        "dir/x.prom:3:2: warning PS-105 bar: tab, used as whitespace",
    ]


def test_text_has_no_escape_codes_unless_colour_is_on() -> None:
    plain, _ = render("text", make_run())
    coloured, _ = render("text", make_run(), color=True)
    assert "\x1b[" not in plain
    assert "\x1b[1;31merror\x1b[0m" in coloured


def test_text_never_echoes_control_characters_from_input() -> None:
    diagnostic = Diagnostic("PS-101", Severity.ERROR, 1, 3, "bad byte \x1b[2J", None)
    run = CheckRun(files=(FileOutcome("x.prom", "text", (diagnostic,), source=b"ab\x1b[2J 1\n"),))
    out, _ = render("text", run)
    assert "\x1b" not in out
    assert "\\x1b[2J" in out
    snippet = out.splitlines()[1:3]
    assert snippet[1].index("^") - snippet[1].index("|") == snippet[0].index("\ufffd") - snippet[0].index("|")


def test_text_cuts_a_long_line_around_the_column() -> None:
    line = "x" * 1000 + "!" + "y" * 1000
    diagnostic = Diagnostic("PS-201", Severity.ERROR, 1, 1001, "bang", None)
    run = CheckRun(files=(FileOutcome("x.prom", "text", (diagnostic,), source=line.encode()),))
    out, _ = render("text", run)
    source_line, caret_line = out.splitlines()[1:3]
    assert len(source_line) < 200
    assert source_line[caret_line.index("^")] == "!"


@pytest.mark.parametrize(
    "source",
    [
        b"",
        b"a 1\n",
        b"no newline at the end",
        b"a 1\r\nb 2\r\n\r\n",
        b"cut \xe2\x82\nbad \xff byte\n\n\n",
        b"".join(b"line %d %s\n" % (i, b"x" * (i % 13)) for i in range(60)),
    ],
    ids=["empty", "one-line", "no-final-newline", "crlf", "invalid-utf8", "many-lines"],
)
def test_quoted_lines_are_the_lines_of_the_whole_split(
    source: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reporters, "_SKIP_BLOCK", 7)  # newlines counted across many blocks
    outcome = FileOutcome("x.prom", "text", source=source)
    every = outcome.source_lines()
    expected = {number: text for number, text in enumerate(every, start=1)}
    assert outcome.source_line_texts(range(-1, len(every) + 3)) == expected
    wanted = [len(every), 3, 1, 3, len(every) + 1]
    assert outcome.source_line_texts(wanted) == {n: expected[n] for n in wanted if n in expected}


def test_text_quotes_a_far_line_without_splitting_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_split(self: FileOutcome) -> list[str]:
        raise AssertionError("the whole input was split into lines")

    monkeypatch.setattr(FileOutcome, "source_lines", no_split)
    source = b"ok 1\n" * 100_000 + b"fooBar 1\n"
    diagnostic = Diagnostic("LINT-009", Severity.STYLE, 100_001, 1, "snake_case please", "fooBar")
    text, _ = render("text", CheckRun(files=(FileOutcome("big.prom", "text", (diagnostic,), source=source),)))
    assert text.splitlines()[1:3] == [" 100001 | fooBar 1", "        | ^"]


def test_text_unreadable_inputs_are_left_to_the_command_on_stderr() -> None:
    out, err = render("text", make_run())
    assert "gone.prom" not in out
    assert err == ""


# -- json ---------------------------------------------------------------------------------------------


def test_json_document_follows_the_documented_schema() -> None:
    out, _ = render("json", make_run(Severity.WARNING))
    document = json.loads(out)
    assert document["version"] == JSON_SCHEMA_VERSION
    assert document["tool"]["name"] == "promscope"
    assert document["fail_on"] == "warning"
    assert document["failed"] is True
    first, second = document["files"]
    assert set(first) == {
        "path",
        "format",
        "error",
        "lines",
        "families",
        "samples",
        "ignored",
        "suppressed",
        "diagnostics",
    }
    assert first["diagnostics"][1] == {
        "code": "PS-201",
        "severity": "error",
        "line": 2,
        "column": 11,
        "message": "expected '}' or ','",
        "metric": "foo",
    }
    assert second["error"] == "no such file"
    assert second["format"] is None
    assert document["summary"] == {
        "files": 2,
        "unreadable": 1,
        "errors": 1,
        "warnings": 1,
        "style": 1,
        "ignored": 2,
    }


def test_json_includes_cardinality_only_when_given() -> None:
    assert "cardinality" not in run_dict(make_run())["files"][0]
    run = CheckRun(files=(FileOutcome("a.prom", "text", cardinality={"series": 3}),))
    assert run_dict(run)["files"][0]["cardinality"] == {"series": 3}


def test_json_is_plain_even_when_colour_is_asked_for() -> None:
    out, _ = render("json", make_run(), color=True)
    assert "\x1b" not in out
    json.loads(out)


# -- github -------------------------------------------------------------------------------------------


def test_github_annotations_per_severity() -> None:
    out, _ = render("github", make_run())
    assert out.splitlines() == [
        "::notice file=dir/x.prom,line=1,title=LINT-001::foo: no help text",
        "::error file=dir/x.prom,line=2,col=11,title=PS-201::foo: expected '}' or ','",
        "::warning file=dir/x.prom,line=3,col=2,title=PS-105::bar: tab, used as whitespace",
        "::error file=gone.prom,title=unreadable input::gone.prom: no such file",
    ]


def test_github_escapes_data_and_properties() -> None:
    line = github_command("error", "50% done\nnext", file="a,b:c.prom", line=3, title="X-1")
    assert line == "::error file=a%2Cb%3Ac.prom,line=3,title=X-1::50%25 done%0Anext"


def test_github_url_inputs_are_not_files() -> None:
    run = CheckRun(files=(FileOutcome("http://h:9100/metrics", "text", (ERR,)),))
    out, _ = render("github", run)
    assert out == "::error title=PS-201::http://h:9100/metrics: foo: expected '}' or ','\n"


# -- sarif --------------------------------------------------------------------------------------------


def test_sarif_log_shape() -> None:
    codes = {
        "LINT-001": Code(Severity.STYLE, "a family has no HELP text"),
        "PS-201": Code(Severity.ERROR, "malformed label set"),
        "PS-999": Code(Severity.WARNING, "never emitted here"),
    }
    log = sarif_dict(make_run(codes=codes))
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    assert run["columnKind"] == "unicodeCodePoints"
    rules = run["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert ids == sorted(ids)
    assert {"LINT-001", "PS-201", "PS-999", "PS-105"} == set(ids)  # catalogue plus what was emitted
    assert rules[ids.index("PS-201")]["shortDescription"]["text"] == "malformed label set"
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {"LINT-001": "note", "PS-201": "error", "PS-105": "warning"}
    by_rule = {r["ruleId"]: r["locations"][0]["physicalLocation"] for r in run["results"]}
    assert by_rule["PS-201"] == {
        "artifactLocation": {"uri": "dir/x.prom"},
        "region": {"startLine": 2, "startColumn": 11},
    }
    assert by_rule["LINT-001"]["region"] == {"startLine": 1}
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"] == "gone.prom: no such file"


def test_sarif_uris() -> None:
    run = CheckRun(
        files=(
            FileOutcome("my dir/a.prom", "text", (ERR,)),
            FileOutcome("/abs/b.prom", "text", (ERR,)),
            FileOutcome("<stdin>", "text", (ERR,)),
        )
    )
    uris = [
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        for r in sarif_dict(run)["runs"][0]["results"]
    ]
    assert uris == ["my%20dir/a.prom", "file:///abs/b.prom", "stdin"]


# -- junit --------------------------------------------------------------------------------------------


def test_junit_one_suite_per_input_failures_at_or_above_fail_on() -> None:
    root = ET.fromstring(junit_xml(make_run(Severity.WARNING)))
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "2", "1")
    first, second = root.findall("testsuite")
    assert first.get("name") == "dir/x.prom"
    cases = first.findall("testcase")
    assert [c.get("name") for c in cases] == ["LINT-001 at line 1", "PS-201 at 2:11", "PS-105 at 3:2"]
    assert [c.find("failure") is not None for c in cases] == [False, True, True]
    assert cases[1].find("failure").get("type") == "PS-201"  # type: ignore[union-attr]
    assert cases[0].findtext("system-out") == "dir/x.prom:1:1: style LINT-001 foo: no help text"
    assert second.find("testcase/error").get("message") == "no such file"  # type: ignore[union-attr]


def test_junit_clean_input_is_one_passing_case() -> None:
    root = ET.fromstring(junit_xml(clean_run()))
    (suite,) = root.findall("testsuite")
    (case,) = suite.findall("testcase")
    assert case.get("name") == "clean"
    assert list(case) == []
    assert root.get("failures") == "0"


def test_junit_survives_characters_xml_cannot_carry() -> None:
    diagnostic = Diagnostic("PS-101", Severity.ERROR, 1, 1, "NUL \x00 here", None)
    run = CheckRun(files=(FileOutcome("x.prom", "text", (diagnostic,)),))
    root = ET.fromstring(junit_xml(run))
    assert root.find("testsuite/testcase/failure").get("message") == "NUL \ufffd here"  # type: ignore[union-attr]


# -- promtool -----------------------------------------------------------------------------------------


def test_promtool_lines_sorted_like_promlint_and_on_stderr() -> None:
    d = [
        Diagnostic("LINT-001", Severity.STYLE, 3, 0, "no help text", "foo"),
        Diagnostic("LINT-003", Severity.STYLE, 3, 0, 'counter metrics should have "_total" suffix', "foo"),
        Diagnostic("LINT-001", Severity.STYLE, 1, 0, "no help text", "bar"),
        Diagnostic("LINT-008", Severity.STYLE, 5, 0, "label names should be written in 'snake_case'", "baz"),
        Diagnostic("LINT-008", Severity.STYLE, 5, 0, "label names should be written in 'snake_case'", "baz"),
    ]
    run = CheckRun(files=(FileOutcome("-", "text", tuple(d)),))
    out, err = render("promtool", run)
    assert out == ""
    assert err.splitlines() == [
        "bar no help text",
        "baz label names should be written in 'snake_case'",
        "baz label names should be written in 'snake_case'",
        'foo counter metrics should have "_total" suffix',
        "foo no help text",
    ]
    assert promtool_exit_code(run) == 3


def test_promtool_parse_failure_and_exit_codes() -> None:
    failed = CheckRun(files=(FileOutcome("-", "text", error="text format parsing error in line 1: bad"),))
    assert promtool_lines(failed) == ["error while linting: text format parsing error in line 1: bad"]
    assert promtool_exit_code(failed) == 1
    unreadable = CheckRun(files=(FileOutcome("gone.prom", error="no such file"),))
    assert promtool_lines(unreadable) == ["error while linting: gone.prom: no such file"]
    assert promtool_exit_code(unreadable) == 1
    assert promtool_exit_code(clean_run()) == 0


@pytest.mark.parametrize("output", OUTPUTS)
def test_every_reporter_handles_an_empty_run(output: str) -> None:
    render(output, CheckRun(files=()))


def test_protobuf_positions_are_message_indexes_not_lines() -> None:
    diagnostic = Diagnostic("LINT-009", Severity.STYLE, 160, 0, "snake_case please", "fooBar")
    run = CheckRun(files=(FileOutcome("n.pb", "protobuf", (diagnostic,)),), fail_on=Severity.STYLE)
    text, _ = render("text", run)
    assert text.splitlines()[0] == "n.pb (message 160): style LINT-009 fooBar: snake_case please"
    github, _ = render("github", run)
    assert github == "::notice file=n.pb,title=LINT-009::fooBar: snake_case please\n"
    (result,) = sarif_dict(run)["runs"][0]["results"]
    assert "region" not in result["locations"][0]["physicalLocation"]
    assert result["properties"] == {"metric": "fooBar", "message_index": 160}
    case = ET.fromstring(junit_xml(run)).find("testsuite/testcase")
    assert case is not None and case.get("name") == "LINT-009 at message 160" and case.get("line") is None
