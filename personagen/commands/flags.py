"""Python argument names -> CLI flags: the one place where a BadInput's `field` (an options dataclass field, as
Python callers see it) becomes the flag the user typed, read off the click command's own declarations."""

from __future__ import annotations

import click

from personagen.errors import BadInput


def flag(field: str, cmd: click.Command | None = None) -> str:
    """The flag of `cmd` whose value lands in `field` (`group` -> `--target` for calibrate; an argument: its
    name, `REPO`), else `--field-name`."""
    for p in cmd.params if cmd is not None else ():
        if isinstance(p, click.Option) and p.name == field:
            longs = [o for o in p.opts if o.startswith("--")]
            return longs[0] if longs else p.opts[0]
        if isinstance(p, click.Argument) and p.name == field:
            return p.human_readable_name  # `personagen pull REPO`: the argument's name
    return "--" + field.replace("_", "-")


def cli_message(err: BadInput, cmd: click.Command | None) -> str:
    """`err`'s message with its leading Python argument name replaced by `cmd`'s flag for it."""
    msg = str(err)
    if not err.field or not msg.startswith(err.field):
        return msg
    return flag(err.field, cmd) + msg[len(err.field):]
