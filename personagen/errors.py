"""Error types: BadInput maps to exit 2 with a one-line message; everything else is a runtime failure (exit 1)."""

from __future__ import annotations


class PersonagenError(Exception):
    """Runtime failure (exit 1)."""

    exit_code = 1


class BadInput(PersonagenError):
    """Bad user input: a missing/invalid file, field or option (exit 2). Message names the file/field.

    `field`: the Python argument (an options dataclass field, e.g. "min_mass") the message starts with, or None.
    Python callers see that name; only the CLI maps it to its flag (personagen.commands.flags: "--min-mass").
    """

    exit_code = 2

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
