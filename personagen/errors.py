"""Error types: BadInput maps to exit 2 with a one-line message; everything else is a runtime failure (exit 1)."""

from __future__ import annotations


class PersonagenError(Exception):
    """Runtime failure (exit 1)."""

    exit_code = 1


class BadInput(PersonagenError):
    """Bad user input: a missing/invalid file, field or option (exit 2). Message names the file/field."""

    exit_code = 2
