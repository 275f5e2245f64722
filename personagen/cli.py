"""The `personagen` command line: a click group; each command is a thin function in personagen/commands/."""

from __future__ import annotations

import importlib
import sys

import click

from personagen import __version__
from personagen.errors import PersonagenError

# command name -> (module in personagen.commands, attribute); imported only when the command runs,
# so `personagen build` does not pay for the LLM, publishing or plotting imports.
_COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("build", "build"),
    "describe": ("build", "describe"),
    "surveys": ("surveys", "surveys"),
    "elicit": ("elicit", "elicit"),
    "serve-local": ("elicit", "serve_local"),
    "calibrate": ("calibrate", "calibrate"),
    "bench": ("bench", "bench"),
    "enrich": ("enrich", "enrich"),
    "endow": ("enrich", "endow"),
    "mixture": ("enrich", "mixture"),
    "publish": ("publish", "publish"),
    "pull": ("publish", "pull"),
    "sample-panel": ("publish", "sample_panel"),
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        mod, attr = _COMMANDS[cmd_name]
        return getattr(importlib.import_module(f"personagen.commands.{mod}"), attr)


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
