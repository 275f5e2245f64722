"""The one convention of stage entry points: `fn(lib, survey, options: XOptions | None = None, *, client=None)`.

`stage_options` turns what a caller gave into the frozen, validated options object (keyword arguments are the
deprecated form of one release); `options_record` is the object as the manifest records it, whole.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from personagen.errors import BadInput

T = TypeVar("T")
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")  # user:password@ in a URL


def stage_options(cls: type[T], options: T | None, legacy: Mapping[str, Any], where: str) -> T:
    """The options object a stage runs with: `options` as given (the defaults when None, BadInput when it is not
    a `cls`), or built from `legacy` keyword arguments (the deprecated `fn(lib, survey, **kw)` form: it still
    works, with a DeprecationWarning pointing at the caller's line, until the next release)."""
    if legacy:
        if options is not None:
            raise BadInput(f"options: give {cls.__name__}(...) or keyword arguments to {where}, not both",
                           field="options")
        given = ", ".join(f"{k}=..." for k in legacy)
        warnings.warn(f"{where}: keyword options ({given}) are deprecated and go in the next release; pass "
                      f"{cls.__name__}({given}) as the options argument", DeprecationWarning,
                      stacklevel=caller_stacklevel())
        return cls(**legacy)
    if options is None:
        try:
            return cls()
        except TypeError:  # a field without a default (EndowOptions.budget): the caller must give the object
            raise BadInput(f"options: {where} needs {cls.__name__}(...) (it has required fields)",
                           field="options") from None
    if not isinstance(options, cls):
        raise BadInput(f"options {type(options).__name__}: expected {cls.__name__} (or None for the defaults)",
                       field="options")
    return options


def caller_stacklevel() -> int:
    """For `warnings.warn` in the calling function: the stacklevel of the first frame outside personagen (the
    user's line, whichever verb they called: `lib.calibrate` or `calibrate_library`)."""
    level, f = 2, sys._getframe(2)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_PACKAGE):
        level, f = level + 1, f.f_back
    return level


def _plain(v: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(v, str):
        return scrub(_USERINFO.sub(r"\1", v))
    if isinstance(v, os.PathLike):
        return scrub(os.fspath(v))
    if isinstance(v, Mapping):
        return {str(k): _plain(x, scrub) for k, x in v.items()}
    if isinstance(v, list | tuple | set | frozenset):
        return [_plain(x, scrub) for x in v]
    if v is None or isinstance(v, bool | int | float):
        return v
    return scrub(str(v))


def options_record(options: Any, scrub: Callable[[str], str] = str, leave_out: tuple[str, ...] = ()) -> dict:
    """Every field of an options dataclass as JSON values (paths as strings, tuples as lists), each string without
    a URL's user:password@ and passed through `scrub` (a stage hands `llm.redact`, so no secret reaches the
    manifest); `leave_out` names fields that are not the run's to record (e.g. whether a progress bar shows)."""
    return {f.name: _plain(getattr(options, f.name), scrub) for f in dataclasses.fields(options)
            if f.name not in leave_out}
