"""Input files checked before they are read: a regular file (not a folder, device, FIFO or socket) of bounded
size, so a symlink to /dev/zero or a named pipe is refused instead of read without end, and JSON that nests too
deep or is not the expected shape is bad input naming the file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from personagen.errors import BadInput

MiB = 1024 * 1024
# Size caps of the small text inputs read whole into memory (a manifest, a JSON count file, a YAML table).
JSON_MAX_BYTES = 512 * MiB
MANIFEST_MAX_BYTES = 64 * MiB


def regular_file(path: str | os.PathLike, what: str = "file", max_bytes: int | None = None) -> Path:
    """`path` (symlinks followed) when it is a regular file of at most `max_bytes`; BadInput naming it otherwise."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise BadInput(f"{p}: {what} does not exist") from None
    except OSError as e:
        raise BadInput(f"{p}: cannot read {what} ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise BadInput(f"{p}: {what} is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise BadInput(f"{p}: {what} is not a regular file (a device, pipe or socket); give a file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise BadInput(f"{p}: {what} is {st.st_size / MiB:.0f} MiB, over the {max_bytes / MiB:.0f} MiB limit")
    return p


def read_text(path: str | os.PathLike, what: str = "file", max_bytes: int = JSON_MAX_BYTES) -> str:
    """The UTF-8 text of a checked regular file (at most `max_bytes` read even if it grows meanwhile)."""
    p = regular_file(path, what, max_bytes)
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise BadInput(f"{p}: cannot read {what} ({e.strerror})") from None
    if len(data) > max_bytes:
        raise BadInput(f"{p}: {what} is over the {max_bytes / MiB:.0f} MiB limit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{p}: {what} is not UTF-8 text") from None


def load_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = JSON_MAX_BYTES) -> Any:
    """Parsed JSON of a checked file; BadInput for invalid JSON or JSON nested too deep to parse."""
    text = read_text(path, what, max_bytes)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: invalid JSON in {what} ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise BadInput(f"{path}: {what} nests too deep to be valid") from None
