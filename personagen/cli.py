"""The `personagen` command line: a click group; each command is a thin function in personagen/commands/."""

from __future__ import annotations

import sys

import click

from personagen import commands
from personagen._version import __version__
from personagen.errors import PersonagenError


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(commands.COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return commands.load(cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="personagen")
def cli() -> None:
    """Census-grounded synthetic persona panels: build, elicit, calibrate, publish."""


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input exits 2 with one line on stderr, runtime failures exit 1."""
    try:
        cli.main(args=argv, prog_name="personagen", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except PersonagenError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(0)


if __name__ == "__main__":
    main()
