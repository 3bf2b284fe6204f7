"""``promscope check`` end to end: inputs, outputs, exit codes, configuration, promtool parity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.exit_codes import ExitCode
from cli.main import cli

REPO = Path(__file__).resolve().parents[2]

CLEAN = b"# HELP up_total Whether it is up.\n# TYPE up_total counter\nup_total 1\n"
LINTY = b"# TYPE requests counter\nrequests 1\n"
"""Parses cleanly; promlint objects twice (no help text, counter without _total)."""
BROKEN = b'# HELP a_total A.\n# TYPE a_total counter\na_total{path="/x" 1\n'
"""A label set that is never closed: a syntax error on line 3."""
QUOTED = b'# HELP "my.metric" M.\n# TYPE "my.metric" gauge\n{"my.metric",a="1"} 1\n'
"""Text format 1.0.0 (a quoted UTF-8 name): promscope parses it, promtool 2.42's decoder cannot."""


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No colour forcing, no PROMSCOPE_* settings, and no config file found by walking up."""
    for name in list(os.environ):
        if name.startswith("PROMSCOPE_") or name in ("NO_COLOR", "FORCE_COLOR"):
            monkeypatch.delenv(name)
    (tmp_path / ".git").mkdir()  # the config search stops at a repository root
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["check", *args], input=input)


# -- exit codes ---------------------------------------------------------------------------------------


def test_clean_file_exits_0_with_a_summary(tmp_path: Path) -> None:
    result = run(write(tmp_path, "ok.prom", CLEAN))
    assert result.exit_code == ExitCode.OK
    assert result.stdout == "0 errors, 0 warnings, 0 style in 1 file\n"
    assert result.stderr == ""


def test_syntax_error_exits_1_and_points_at_the_column(tmp_path: Path) -> None:
    result = run(write(tmp_path, "bad.prom", BROKEN))
    assert result.exit_code == ExitCode.PROBLEMS
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("bad.prom:3:"))
    assert " error PS-" in header
    i = lines.index(header)
    assert lines[i + 1] == ' 3 | a_total{path="/x" 1'
    column = int(header.split(":")[2])
    assert lines[i + 2].index("^") - lines[i + 2].index("|") - 2 == column - 1
    assert lines[-1].startswith("1 error")


def test_style_problems_fail_only_with_fail_on_style(tmp_path: Path) -> None:
    name = write(tmp_path, "lint.prom", LINTY)
    relaxed = run(name)
    assert relaxed.exit_code == ExitCode.OK
    assert "style LINT-" in relaxed.stdout
    assert relaxed.stdout.splitlines()[-1] == "0 errors, 0 warnings, 2 style in 1 file"
    assert run("--fail-on", "warning", name).exit_code == ExitCode.OK
    assert run("--fail-on", "style", name).exit_code == ExitCode.PROBLEMS


def test_unreadable_file_exits_3_with_one_line_and_the_others_are_still_checked(tmp_path: Path) -> None:
    result = run("missing.prom", write(tmp_path, "bad.prom", BROKEN))
    assert result.exit_code == ExitCode.UNREADABLE  # outranks the problems in bad.prom
    assert result.stderr == "promscope: error: missing.prom: no such file\n"
    assert "bad.prom:3:" in result.stdout
    assert result.stdout.splitlines()[-1] == "1 error, 0 warnings, 0 style in 1 file (1 unreadable)"


def test_bad_flag_exits_2_with_one_line() -> None:
    result = run("--bogus")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("promscope check: error: No such option")
    assert "--bogus" in result.stderr
    assert "try 'promscope check --help'" in result.stderr


def test_bad_choice_exits_2() -> None:
    result = run("--fail-on", "fatal", "x.prom")
    assert result.exit_code == ExitCode.USAGE
    assert "--fail-on" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unknown_command_exits_2() -> None:
    result = CliRunner().invoke(cli, ["chek"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("promscope: error: No such command 'chek'")


def test_help_documents_exit_codes_and_version_is_printed() -> None:
    help_text = CliRunner().invoke(cli, ["check", "--help"]).stdout
    for line in ("0  no problem", "1  problems", "2  usage", "3  an input was unreadable"):
        assert line in help_text
    assert "3  lint problems" in help_text
    top = CliRunner().invoke(cli, ["--help"])
    assert top.exit_code == 0
    assert "check" in top.stdout and "Exit codes:" in top.stdout
    version = CliRunner().invoke(cli, ["--version"])
    assert version.stdout.startswith("promscope ")


# -- inputs -------------------------------------------------------------------------------------------


def test_stdin_with_dash_and_with_no_argument() -> None:
    dashed = run("-", input=BROKEN)
    assert dashed.exit_code == ExitCode.PROBLEMS
    assert "<stdin>:3:" in dashed.stdout
    implicit = run(input=CLEAN)
    assert implicit.exit_code == ExitCode.OK
    assert "in 1 file" in implicit.stdout


def test_no_input_on_a_terminal_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.commands import check as check_module

    monkeypatch.setattr(check_module, "_stdin_is_terminal", lambda: True)
    result = run()
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("promscope check: error: no input: give a file, a directory, a URL, or -")


def test_several_files_are_all_reported(tmp_path: Path) -> None:
    names = [
        write(tmp_path, "a.prom", BROKEN),
        write(tmp_path, "b.prom", LINTY),
        write(tmp_path, "c.prom", CLEAN),
    ]
    result = run(*names)
    assert result.exit_code == ExitCode.PROBLEMS
    assert "a.prom:3:" in result.stdout
    assert "b.prom:1:1: style LINT-" in result.stdout
    assert "c.prom" not in result.stdout
    assert result.stdout.splitlines()[-1] == "1 error, 0 warnings, 2 style in 3 files"


def test_a_directory_means_its_exposition_files(tmp_path: Path) -> None:
    write(tmp_path, "d/x.prom", CLEAN)
    write(tmp_path, "d/sub/y.prom", BROKEN)
    write(tmp_path, "d/notes.txt", b"not metrics {")
    result = run("d")
    assert result.exit_code == ExitCode.PROBLEMS
    assert "in 2 files" in result.stdout
    assert "notes.txt" not in result.stdout
    (tmp_path / "empty").mkdir()
    empty = run("empty")
    assert empty.exit_code == ExitCode.UNREADABLE
    assert "empty: no exposition files" in empty.stderr


def test_extension_picks_the_format_and_format_flag_overrides(tmp_path: Path) -> None:
    openmetrics = b"# TYPE a counter\n# HELP a A.\na_total 1\n# EOF\n"
    name = write(tmp_path, "a.om", openmetrics)
    as_om = json.loads(run("--output", "json", name).stdout)
    assert as_om["files"][0]["format"] == "openmetrics"
    as_text = json.loads(run("--output", "json", "--format", "text", name).stdout)
    assert as_text["files"][0]["format"] == "text"


def test_missing_eof_in_an_om_file_is_an_error(tmp_path: Path) -> None:
    result = run(write(tmp_path, "a.om", b"# TYPE a gauge\na 1\n"))
    assert result.exit_code == ExitCode.PROBLEMS
    assert "error OM-" in result.stdout


# -- ignores and configuration ------------------------------------------------------------------------


def codes_in(result: Result) -> list[str]:
    document = json.loads(result.stdout)
    return [d["code"] for f in document["files"] for d in f["diagnostics"]]


def test_ignore_drops_codes_and_counts_them(tmp_path: Path) -> None:
    name = write(tmp_path, "lint.prom", LINTY)
    everything = codes_in(run("-o", "json", name))
    assert len(everything) == 2
    dropped = everything[0]
    result = run("-o", "json", "--ignore", dropped, name)
    assert dropped not in codes_in(result)
    assert json.loads(result.stdout)["summary"]["ignored"] == 1
    by_glob = run("--ignore", "LINT-*:requests", name)
    assert "LINT-" not in by_glob.stdout.replace("(2 ignored)", "")
    assert by_glob.stdout.splitlines()[-1] == "0 errors, 0 warnings, 0 style in 1 file (2 ignored)"
    other_metric = run("-o", "json", "--ignore", "LINT-*:other_*", name)
    assert len(codes_in(other_metric)) == 2


def test_malformed_ignore_is_a_usage_error(tmp_path: Path) -> None:
    result = run("--ignore", "not a code", write(tmp_path, "ok.prom", CLEAN))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("promscope: error: ")
    assert "Traceback" not in result.output


def test_no_lint_skips_naming_lint(tmp_path: Path) -> None:
    result = run("-o", "json", "--no-lint", write(tmp_path, "lint.prom", LINTY))
    assert codes_in(result) == []


def test_config_file_then_environment_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = write(tmp_path, "lint.prom", LINTY)
    (tmp_path / "promscope.toml").write_text('[check]\nfail_on = "style"\n')
    assert run(name).exit_code == ExitCode.PROBLEMS  # the file asks to fail on style
    monkeypatch.setenv("PROMSCOPE_CHECK_FAIL_ON", "warning")
    assert run(name).exit_code == ExitCode.OK  # the environment beats the file
    assert run("--fail-on", "style", name).exit_code == ExitCode.PROBLEMS  # the flag beats both


def test_config_ignores_add_up_with_flag_ignores(tmp_path: Path) -> None:
    name = write(tmp_path, "lint.prom", LINTY)
    first, second = codes_in(run("-o", "json", name))
    (tmp_path / "promscope.toml").write_text(f'[check]\nignore = ["{first}"]\nfail_on = "style"\n')
    assert codes_in(run("-o", "json", name)) == [second]
    assert run("--ignore", second, name).exit_code == ExitCode.OK


def test_pyproject_section_and_explicit_config(tmp_path: Path) -> None:
    name = write(tmp_path, "lint.prom", LINTY)
    (tmp_path / "pyproject.toml").write_text('[tool.promscope.check]\nfail_on = "style"\n')
    assert run(name).exit_code == ExitCode.PROBLEMS
    (tmp_path / "lenient.toml").write_text('[check]\nfail_on = "error"\n')
    assert run("--config", "lenient.toml", name).exit_code == ExitCode.OK


def test_severity_override_from_config_changes_the_verdict(tmp_path: Path) -> None:
    name = write(tmp_path, "lint.prom", LINTY)
    (tmp_path / "promscope.toml").write_text('[check.severity]\n"LINT-*" = "error"\n')
    result = run(name)
    assert result.exit_code == ExitCode.PROBLEMS
    assert "error LINT-" in result.stdout


def test_bad_config_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "promscope.toml").write_text('[check]\nfail_on = "sometimes"\n')
    result = run(write(tmp_path, "ok.prom", CLEAN))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("promscope: error: ")
    assert "promscope.toml" in result.stderr
    assert "Traceback" not in result.output
    missing = run("--config", "nope.toml", "ok.prom")
    assert missing.exit_code == ExitCode.USAGE


# -- outputs ------------------------------------------------------------------------------------------


def test_json_output(tmp_path: Path) -> None:
    result = run("-o", "json", write(tmp_path, "bad.prom", BROKEN), "missing.prom")
    assert result.exit_code == ExitCode.UNREADABLE
    document = json.loads(result.stdout)
    assert document["version"] == 1
    bad, missing = document["files"]
    assert bad["path"] == "bad.prom"
    assert bad["format"] == "text"
    assert bad["lines"] >= 3
    assert {d["severity"] for d in bad["diagnostics"]} == {"error"}
    assert missing["error"] == "no such file"
    assert document["summary"]["unreadable"] == 1


def test_github_output(tmp_path: Path) -> None:
    result = run("-o", "github", write(tmp_path, "bad.prom", BROKEN), write(tmp_path, "lint.prom", LINTY))
    lines = result.stdout.splitlines()
    assert any(line.startswith("::error file=bad.prom,line=3,col=") for line in lines)
    assert any(line.startswith("::notice file=lint.prom,line=1,title=LINT-") for line in lines)
    assert result.exit_code == ExitCode.PROBLEMS


def test_sarif_output(tmp_path: Path) -> None:
    result = run("-o", "sarif", write(tmp_path, "bad.prom", BROKEN))
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    ids = {rule["id"] for rule in rules}
    assert any(code.startswith("LINT-") for code in ids)  # the whole catalogue, not just what fired
    results = log["runs"][0]["results"]
    assert results and all(r["ruleId"] in ids for r in results)
    assert results[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 3


def test_junit_output(tmp_path: Path) -> None:
    result = run(
        "-o",
        "junit",
        "--fail-on",
        "style",
        write(tmp_path, "lint.prom", LINTY),
        write(tmp_path, "ok.prom", CLEAN),
    )
    root = ET.fromstring(result.stdout)
    linty, clean = root.findall("testsuite")
    assert linty.get("failures") == "2"
    assert clean.get("failures") == "0"
    assert [c.get("name") for c in clean.findall("testcase")] == ["clean"]
    assert result.exit_code == ExitCode.PROBLEMS


def test_colour_only_when_asked_or_on_a_terminal(tmp_path: Path) -> None:
    name = write(tmp_path, "bad.prom", BROKEN)
    assert "\x1b[" not in run(name).stdout
    assert "\x1b[" in run("--color", "always", name).stdout
    assert "\x1b[" not in run("--color", "always", "-o", "json", name).stdout


def test_quiet_prints_only_failures(tmp_path: Path) -> None:
    result = run("--quiet", write(tmp_path, "lint.prom", LINTY), write(tmp_path, "bad.prom", BROKEN))
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("bad.prom:3:")


def test_cardinality_report(tmp_path: Path) -> None:
    lines = [b"# HELP req_total R.", b"# TYPE req_total counter"]
    lines += [b'req_total{id="%d"} 1' % i for i in range(20)]
    name = write(tmp_path, "card.prom", b"\n".join(lines) + b"\n")
    text = run("--cardinality", name)
    assert "card.prom: 20 series in 1 family" in text.stdout
    assert "req_total" in text.stdout
    document = json.loads(run("--cardinality", "-o", "json", name).stdout)
    assert document["files"][0]["cardinality"]["total_series"] == 20
    assert "cardinality" not in json.loads(run("-o", "json", name).stdout)["files"][0]


def test_list_codes(tmp_path: Path) -> None:
    result = run("--list-codes")
    assert result.exit_code == ExitCode.OK
    codes = [line.split()[0] for line in result.stdout.splitlines()]
    assert codes == sorted(codes)
    assert any(code.startswith("PS-") for code in codes)
    assert any(code.startswith("LINT-") for code in codes)
    document = json.loads(run("--list-codes", "-o", "json").stdout)
    assert {"code", "severity", "summary"} == set(document[0])


# -- promtool mode ------------------------------------------------------------------------------------


def test_promtool_mode_lines_and_exit_codes(tmp_path: Path) -> None:
    linty = run("-o", "promtool", write(tmp_path, "lint.prom", LINTY))
    assert linty.exit_code == 3
    assert linty.stdout == ""
    assert linty.stderr.splitlines() == [
        'requests counter metrics should have "_total" suffix',
        "requests no help text",
    ]
    clean = run("-o", "promtool", write(tmp_path, "ok.prom", CLEAN))
    assert (clean.exit_code, clean.stdout, clean.stderr) == (0, "", "")
    broken = run("-o", "promtool", input=BROKEN)
    assert broken.exit_code == 1
    assert broken.stderr.startswith("error while linting: text format parsing error in line 3: ")
    assert broken.stderr.count("\n") == 1
    missing = run("-o", "promtool", "missing.prom")
    assert missing.exit_code == 1
    assert missing.stderr == "error while linting: missing.prom: no such file\n"


@pytest.mark.parametrize("data", [QUOTED, b'x{"label.name"="1"} 1\n'], ids=["metric", "label"])
def test_promtool_mode_cannot_lint_quoted_names_like_promtool_242(tmp_path: Path, data: bytes) -> None:
    result = run("-o", "promtool", write(tmp_path, "quoted.prom", data))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error while linting: text format parsing error")
    assert result.stderr.count("\n") == 1
    assert run(write(tmp_path, "quoted.prom", data)).exit_code == ExitCode.OK  # promscope itself reads it


PARITY_INPUTS = {
    "clean": CLEAN,
    "counter_without_total": LINTY,
    "units_and_camel_case": b"# HELP bar_milliseconds B.\n# TYPE bar_milliseconds gauge\n"
    b'bar_milliseconds{aB="1"} 3\nbar_milliseconds{aB="2"} 3\n',
    "reserved_and_colon": b"# HELP a:b_count X.\n# TYPE a:b_count gauge\na:b_count 1\n",
    "type_in_name": b"# HELP foo_gauge X.\n# TYPE foo_gauge gauge\nfoo_gauge 1\n"
    b"# HELP bytes_kb_total X.\n# TYPE bytes_kb_total counter\nbytes_kb_total 1\n",
    "histogram": b"# HELP h_seconds H.\n# TYPE h_seconds histogram\n"
    b'h_seconds_bucket{le="1"} 1\nh_seconds_bucket{le="+Inf"} 2\nh_seconds_sum 3\nh_seconds_count 2\n',
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(PARITY_INPUTS))
def test_promtool_mode_matches_real_promtool(name: str) -> None:
    promtool = Path("/usr/bin/promtool")
    if not promtool.exists():
        pytest.skip("promtool not installed (apt-get install prometheus)")
    data = PARITY_INPUTS[name]
    upstream = subprocess.run(
        [str(promtool), "check", "metrics"], input=data, capture_output=True, timeout=60
    )
    ours = subprocess.run(
        [sys.executable, "-m", "cli.main", "check", "--output", "promtool"],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert ours.returncode == upstream.returncode
    assert ours.stdout == upstream.stdout == b""
    assert ours.stderr.decode() == upstream.stderr.decode()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("data", "prefix"),
    [
        (BROKEN, b"error while linting: text format parsing error in line 3: "),
        (QUOTED, b"error while linting: text format parsing error"),
    ],
    ids=["syntax-error", "quoted-name"],
)
def test_promtool_mode_parse_failure_matches_promtool_shape(data: bytes, prefix: bytes) -> None:
    promtool = Path("/usr/bin/promtool")
    if not promtool.exists():
        pytest.skip("promtool not installed (apt-get install prometheus)")
    upstream = subprocess.run(
        [str(promtool), "check", "metrics"], input=data, capture_output=True, timeout=60
    )
    ours = subprocess.run(
        [sys.executable, "-m", "cli.main", "check", "-o", "promtool"],
        input=data,
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )
    assert ours.returncode == upstream.returncode == 1
    assert upstream.stderr.startswith(prefix)
    assert ours.stderr.startswith(prefix)
    assert ours.stderr.count(b"\n") == upstream.stderr.count(b"\n") == 1


# -- as a process -------------------------------------------------------------------------------------


def promscope(*args: str, input: bytes | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )


def test_process_exit_codes_and_no_tracebacks(tmp_path: Path) -> None:
    write(tmp_path, "bad.prom", BROKEN)
    assert promscope("check", "bad.prom", cwd=tmp_path).returncode == ExitCode.PROBLEMS
    missing = promscope("check", "missing.prom", cwd=tmp_path)
    assert missing.returncode == ExitCode.UNREADABLE
    assert missing.stderr == "promscope: error: missing.prom: no such file\n"
    usage = promscope("check", "--output", "yaml", cwd=tmp_path)
    assert usage.returncode == ExitCode.USAGE
    assert usage.stderr.count("\n") == 1
    assert "Traceback" not in usage.stderr
    piped = promscope("check", input=CLEAN, cwd=tmp_path)
    assert piped.returncode == ExitCode.OK


def test_output_cut_short_by_a_closed_pipe_is_not_an_error_report(tmp_path: Path) -> None:
    many = b"".join(b"# TYPE m%d counter\nm%d 1\n" % (i, i) for i in range(3000))
    write(tmp_path, "many.prom", many)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "check", "many.prom"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(100)
    proc.stdout.close()
    stderr = proc.stderr.read()
    proc.wait(timeout=60)
    assert b"Traceback" not in stderr


# -- URLs ---------------------------------------------------------------------------------------------


class _Exporter(BaseHTTPRequestHandler):
    body = BROKEN

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def exporter() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_url_is_scraped_and_checked(exporter: str) -> None:
    result = run("-o", "json", f"{exporter}/metrics")
    assert result.exit_code == ExitCode.PROBLEMS
    document = json.loads(result.stdout)
    assert document["files"][0]["path"] == f"{exporter}/metrics"
    assert document["files"][0]["diagnostics"][0]["line"] == 3
    text = run(f"{exporter}/metrics")
    assert ' 3 | a_total{path="/x" 1' in text.stdout


def test_url_with_an_error_status_is_unreadable(exporter: str) -> None:
    result = run(f"{exporter}/nope")
    assert result.exit_code == ExitCode.UNREADABLE
    assert result.stderr.startswith(f"promscope: error: {exporter}/nope: ")
    assert result.stderr.count("\n") == 1


def test_unreachable_url_exits_3(free_port: object) -> None:
    port = free_port()  # type: ignore[operator]
    result = run(f"http://127.0.0.1:{port}/metrics")
    assert result.exit_code == ExitCode.UNREADABLE
    assert result.stderr.startswith(f"promscope: error: http://127.0.0.1:{port}/metrics: ")


def test_gzip_files_and_stdin_are_checked_as_what_they_hold(tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "metrics.prom.gz"
    packed.write_bytes(gzip.compress(LINTY))
    plain = run(write(tmp_path, "metrics.prom", LINTY))
    from_file = run(str(packed))
    from_stdin = run("-", input=gzip.compress(LINTY))
    assert from_file.exit_code == plain.exit_code
    assert "LINT-" in from_file.stdout and "PS-110" not in from_file.stdout
    assert "LINT-" in from_stdin.stdout


def test_a_gzip_bomb_is_refused_not_inflated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gzip

    from cli import options

    monkeypatch.setattr(options, "MAX_GUNZIP_BYTES", 1 << 20)
    bomb = tmp_path / "bomb.prom.gz"
    bomb.write_bytes(gzip.compress(b"0" * (8 << 20)))
    result = run(str(bomb))
    assert result.exit_code == ExitCode.UNREADABLE
    assert "decompresses to more than" in result.stderr
