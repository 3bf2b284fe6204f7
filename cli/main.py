"""The ``promscope`` command: a click group whose verbs load only when used.

``promscope check metrics.prom`` must start fast and never import Textual or
httpx, so each verb lives in ``cli/commands/<verb>.py`` and is imported only
when it is the one invoked (``promscope --help`` reads the short help from
:data:`COMMANDS` without importing anything).

Errors never end in a traceback for a user's mistake: :class:`PromscopeGroup`
turns click usage errors and :class:`~promscope.errors.PromscopeError` into
one stderr line and an :class:`~cli.exit_codes.ExitCode`. It does this in
``main()`` itself, so ``click.testing.CliRunner`` sees the same behaviour as
the console script.
"""

from __future__ import annotations

import gc

# Starting up allocates thousands of long-lived objects (modules, classes, functions) and no
# garbage; the cyclic collector would walk them again and again. It stays off until the verb's
# module is loaded, then everything allocated so far is frozen out of its way and it is back on.
gc.disable()

import importlib  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

import click  # noqa: E402

from cli.exit_codes import EPILOG, ExitCode  # noqa: E402
from cli.output import print_error  # noqa: E402
from promscope import __version__  # noqa: E402

__all__ = ["COMMANDS", "PromscopeGroup", "cli", "exit_code_for", "main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("cli.commands.check:check", "Validate and lint expositions (files, stdin, URLs)."),
    "scrape": (
        "cli.commands.scrape:scrape",
        "Scrape a target once, or targets every interval, and show what came back.",
    ),
    "diff": (
        "cli.commands.diff:diff",
        "Compare two expositions, one against a baseline, or one endpoint over time.",
    ),
    "replay": ("cli.commands.replay:replay", "Replay a recorded session (summary, then every observation)."),
    "query": (
        "cli.commands.query:query",
        "Evaluate PromQL over a target, a file, a session or a Prometheus.",
    ),
    "push": ("cli.commands.push:push", "Push an exposition to a Pushgateway, with retries and clear errors."),
    "tail": (
        "cli.commands.tail:tail",
        "Receive pushes (Pushgateway, StatsD, remote_write, OTLP) and print each as it arrives.",
    ),
}
"""Verb -> (``module:attribute`` of its click command, one-line help for ``--help``)."""


def exit_code_for(error: BaseException) -> ExitCode:
    """The documented exit code for an exception that ends a run."""
    from promscope.errors import ConfigError, InputError, ListenError, TransportError

    if isinstance(error, click.UsageError | ConfigError):
        return ExitCode.USAGE
    if isinstance(error, InputError | TransportError | ListenError):
        return ExitCode.UNREADABLE
    return ExitCode.PROBLEMS


class PromscopeGroup(click.Group):
    """A group that imports a verb's module only when that verb runs, and reports errors in one line."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, _, attribute = spec[0].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            return None  # a verb not shipped in this build
        finally:
            _collector_on()
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{spec[0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_, help_text) in sorted(COMMANDS.items())]
        rows += [
            (name, command.get_short_help_str())
            for name, command in sorted(self.commands.items())
            if name not in COMMANDS
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        prog_name = prog_name or "promscope"
        try:
            return self._main(args, prog_name, complete_var, standalone_mode, **extra)
        finally:
            _collector_on()  # whatever path was taken (--help, a usage error), never leave it off

    def _main(
        self,
        args: Sequence[str] | None,
        prog_name: str,
        complete_var: str | None,
        standalone_mode: bool,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            _fail_usage(exc)
        except click.ClickException as exc:
            print_error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            print_error("interrupted")
            sys.exit(130)
        except KeyboardInterrupt:
            print_error("interrupted")
            sys.exit(130)
        except BrokenPipeError:
            _quiet_broken_pipe()
            sys.exit(ExitCode.PROBLEMS)
        except Exception as exc:
            from promscope.errors import PromscopeError

            if not isinstance(exc, PromscopeError):
                raise
            print_error(exc.message, hint=exc.hint)
            sys.exit(exit_code_for(exc))
        sys.exit(result if isinstance(result, int) else ExitCode.OK)


def _collector_on() -> None:
    """Start-up is over: freeze what it allocated out of the collector's way and turn it back on."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _fail_usage(exc: click.UsageError) -> NoReturn:
    command = exc.ctx.command_path if exc.ctx is not None else "promscope"
    help_hint = f"try '{command} --help'"
    print_error(f"{exc.format_message().rstrip('.')} ({help_hint})", prog=command)
    sys.exit(ExitCode.USAGE)


def _quiet_broken_pipe() -> None:
    """The reader went away (``promscope check … | head``): stop without a second error."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@click.group(
    "promscope",
    cls=PromscopeGroup,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "-V", "--version", prog_name="promscope", message="%(prog)s %(version)s")
def cli() -> None:
    """See how metrics get from a service to its monitoring.

    Pull: validate expositions with `promscope check`, scrape a target once with
    `promscope scrape`, compare with `promscope diff`, ask PromQL with `promscope query`.
    Push: receive and watch pushes with `promscope tail`, send one with `promscope push`.
    """


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Console-script entry point: run ``promscope`` and exit with its code."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="promscope")
    raise AssertionError("unreachable: PromscopeGroup.main always exits")  # pragma: no cover


if __name__ == "__main__":
    main()
