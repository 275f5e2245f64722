"""One validator for every name that becomes a path (calibration names, pulled-panel fields, options).

A name from a file, the Hub or the command line is untrusted: it may hold '/', '..', an absolute path or
control characters and so escape the library folder. A safe name is one path component of letters, digits,
'.', '_' or '-' starting with a letter or digit (so never '.', '..' or hidden), at most 128 characters.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from personagen.errors import BadInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def safe_name(value: object, field: str) -> str:
    """`value` as a validated single path component; BadInput naming `field` otherwise."""
    s = value if isinstance(value, str) else ""
    if not _NAME.fullmatch(s):
        shown = repr(value)[:80]
        raise BadInput(f"{field} {shown}: not a valid name (1-128 letters, digits, '.', '_' or '-', "
                       "starting with a letter or digit)")
    return s


def child(parent: str | os.PathLike, name: object, field: str) -> Path:
    """`parent / name` for a validated `name`: the result is always directly inside `parent`."""
    return Path(parent) / safe_name(name, field)


__all__ = ["safe_name", "child"]
