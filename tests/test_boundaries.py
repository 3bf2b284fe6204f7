"""The layering of ARCHITECTURE.md, checked rather than hoped for.

* ``promscope`` (the engine) never imports ``textual``, ``tui``, ``cli`` or ``click``;
* ``tui`` never imports ``cli``;
* ``cli`` imports ``textual`` and ``tui`` only inside functions (the commands that open the TUI);
* ``promscope check FILE`` loads neither Textual nor httpx (nor Rich for plain output): a
  subprocess runs the real command and reports what ended up in ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str
    top_level: bool
    """At module level (not inside a function)."""

    @property
    def root(self) -> str:
        return self.module.split(".")[0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: import {self.module}"


def _package_of(path: Path) -> list[str]:
    return list(path.relative_to(REPO).with_suffix("").parts[:-1])


def imports_in(path: Path, package: list[str] | None = None) -> Iterator[Import]:
    """Every import in a file, relative ones resolved, marked top-level or not."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _package_of(path) if package is None else package

    def visit(node: ast.AST, top_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(path, child.lineno, alias.name, top_level)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    module = ".".join([*base, child.module] if child.module else base)
                else:
                    module = child.module or ""
                yield Import(path, child.lineno, module, top_level)
            inner = top_level and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(child, inner)

    yield from visit(tree, True)


def sources(package: str) -> list[Path]:
    root = REPO / package
    return sorted(p for p in root.rglob("*.py") if "_proto" not in p.parts or not p.name.endswith("_pb2.py"))


def test_the_tree_is_there() -> None:
    assert sources("promscope"), "promscope/ has no Python sources"
    assert sources("cli")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("promscope", {"textual", "tui", "cli", "click"}),
        ("tui", {"cli"}),
    ],
)
def test_layer_never_imports_the_layers_above(package: str, forbidden: set[str]) -> None:
    offenders = [str(i) for path in sources(package) for i in imports_in(path) if i.root in forbidden]
    assert offenders == [], f"{package}/ must not import {sorted(forbidden)}"


def test_cli_loads_the_tui_only_inside_commands() -> None:
    offenders = [
        str(i)
        for path in sources("cli")
        for i in imports_in(path)
        if i.top_level and i.root in ("textual", "tui")
    ]
    assert offenders == [], "cli/ may import textual or tui only inside the commands that open the TUI"


def test_the_import_walker_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    module = tmp_path / "mod.py"
    module.write_text(
        "import os\n"
        "from .. import tui\n"
        "from .sibling import thing\n"
        "class C:\n"
        "    def method(self):\n"
        "        import textual.app\n"
        "def f():\n"
        "    if True:\n"
        "        from cli import main\n"
    )
    found = {(i.module, i.top_level) for i in imports_in(module, ["promscope", "exposition"])}
    assert found == {
        ("os", True),
        ("promscope", True),
        ("promscope.exposition.sibling", True),
        ("textual.app", False),
        ("cli", False),
    }


_DRIVER = textwrap.dedent(
    """
    import json, sys
    report, args = sys.argv[1], sys.argv[2:]
    from cli.main import cli
    try:
        cli.main(args=args, prog_name="promscope")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    with open(report, "w") as handle:
        json.dump({"exit": code, "modules": sorted(sys.modules)}, handle)
    """
)


def run_in_process(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    """Run ``promscope ARGS`` in a fresh interpreter; its exit code and the modules it loaded."""
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    report = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(REPO)
    completed = subprocess.run(
        [sys.executable, str(driver), str(report), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.exists(), completed.stderr
    data = json.loads(report.read_text())
    return int(data["exit"] or 0), {name.split(".")[0] for name in data["modules"]}


@pytest.fixture
def metrics_file(tmp_path: Path) -> Path:
    path = tmp_path / "metrics.prom"
    path.write_text("# HELP up_total Up.\n# TYPE up_total counter\nup_total 1\n# TYPE bad counter\nbad 1\n")
    (tmp_path / ".git").mkdir()  # no config file found above the test directory
    return path


@pytest.mark.parametrize("output", ["text", "json", "promtool"])
def test_check_of_a_file_loads_neither_textual_nor_httpx(
    tmp_path: Path, metrics_file: Path, output: str
) -> None:
    code, modules = run_in_process(
        tmp_path, "check", "--output", output, "--fail-on", "style", str(metrics_file)
    )
    assert code == (3 if output == "promtool" else 1)  # the file has lint problems: it really was checked
    assert "textual" not in modules
    assert "tui" not in modules
    assert "httpx" not in modules
    assert "rich" not in modules  # plain output needs no Rich


def test_help_loads_no_command_module(tmp_path: Path) -> None:
    code, modules = run_in_process(tmp_path, "--help")
    assert code == 0
    assert "textual" not in modules and "httpx" not in modules
    _, full = run_in_process(tmp_path, "--version")
    assert "promscope" in full
