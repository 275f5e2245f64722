"""The `personagen` command line: a click group; each command is a thin function in personagen/commands/."""

from __future__ import annotations

import importlib
import sys

import click

from personagen import __version__
from personagen.errors import PersonagenError

# (module in personagen.commands, click command objects in it)
_COMMANDS: list[tuple[str, tuple[str, ...]]] = [
    ("build", ("build", "describe")),
    ("surveys", ("surveys",)),
    ("elicit", ("elicit", "serve_local")),
    ("calibrate", ("calibrate",)),
    ("bench", ("bench",)),
    ("enrich", ("enrich", "endow", "mixture")),
    ("publish", ("publish", "pull", "sample_panel")),
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="personagen")
def cli() -> None:
    """Census-grounded synthetic persona panels: build, elicit, calibrate, publish."""


for _mod, _names in _COMMANDS:
    try:
        _m = importlib.import_module(f"personagen.commands.{_mod}")
    except ModuleNotFoundError as _e:  # a command module still being written (development only)
        if _e.name != f"personagen.commands.{_mod}":
            raise
        continue
    for _n in _names:
        cli.add_command(getattr(_m, _n))


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
