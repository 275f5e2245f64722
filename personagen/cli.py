"""The `personagen` command line: a click group; each command is a thin function in personagen/commands/."""

from __future__ import annotations

import sys

import click

from personagen import commands
from personagen._version import __version__
from personagen.errors import BadInput, PersonagenError


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(commands.COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return commands.load(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """`personagen --help` lists commands with their one-line help, importing none of them (fast start-up)."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, commands.HELP.get(name, "")) for name in self.list_commands(ctx)])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="personagen")
@click.option("--debug", is_flag=True, help="Show Python tracebacks of failures.")
def cli(debug: bool) -> None:
    """Census-grounded synthetic persona panels: build, elicit, calibrate, publish."""


def _say(msg: str) -> None:
    """One line on stderr, secrets redacted (whatever path the text took)."""
    from personagen.llm import redact

    click.echo(redact(" ".join(str(msg).split())), err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input exits 2 with one line on stderr, runtime failures exit 1 with one
    line; a traceback only under `personagen --debug ...`."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[: next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))]
    try:
        cli.main(args=args, prog_name="personagen", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        if debug:
            raise
        _say(f"error: {e.format_message()}")
        sys.exit(e.exit_code)
    except click.exceptions.Abort as e:
        if debug:
            raise
        cause = e.__cause__ or e.__context__
        _say("aborted" if cause is None or isinstance(cause, KeyboardInterrupt) else
             f"error: {type(cause).__name__}: {cause or 'unexpected end of input'}")
        sys.exit(1)
    except PersonagenError as e:
        if debug:
            raise
        _say(f"error: {commands.cli_message(e, args) if isinstance(e, BadInput) else e}")  # the flag, not the field
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except PermissionError as e:
        if debug:
            raise
        _say(f"error: {e.filename or ''}: permission denied (choose a writable location)")
        sys.exit(2)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            raise
        _say(f"error: {type(e).__name__}: {e} (rerun with personagen --debug for details)")
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
