"""The README's examples are run, so the documentation cannot drift from the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from promscope.config import parse_config
from promscope.model import Severity

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_starts_with_two_command_quick_start() -> None:
    text = README.read_text(encoding="utf-8")
    quick = text[text.index("## Quick start") : text.index("\n## ", text.index("## Quick start") + 1)]
    commands = re.findall(r"```sh\n(.*?)```", quick, flags=re.S)
    assert len(commands) == 2
    assert all(len(block.strip().splitlines()) == 1 for block in commands)
    assert "promscope check" in commands[0] and "promscope scrape" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -e '.[test]'" in ci and "-m pytest" in ci


def test_readme_config_example_is_valid() -> None:
    examples = [block for block in _blocks("toml") if "[check]" in block]
    assert examples, "README lost its promscope.toml example"
    for block in examples:
        config = parse_config(tomllib.loads(block), Path("README.md"))
        assert config.check.fail_on is Severity.WARNING
