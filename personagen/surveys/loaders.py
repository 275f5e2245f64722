"""Survey loaders by format: one module each (`opinionqa`, `subpop`, `wvs`, `generic`), sharing the conventions of
`common` (refusals by the rule of `refusals`, typed `QuestionRecord`s, skip report, provenance and licence)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from personagen.errors import BadInput
from personagen.surveys.generic import import_generic
from personagen.surveys.opinionqa import import_opinionqa, opinionqa_respondents
from personagen.surveys.schema import Survey
from personagen.surveys.subpop import import_subpop
from personagen.surveys.wvs import import_wvs

FORMATS: dict[str, Callable[..., Survey]] = {
    "opinionqa": import_opinionqa,
    "subpop": import_subpop,
    "wvs": import_wvs,
    "generic": import_generic,
}


def import_survey(format: str, path: str | os.PathLike, **kw: Any) -> Survey:
    """Import a survey file/folder of `format` (opinionqa | subpop | wvs | generic)."""
    fn = FORMATS.get(str(format).lower())
    if fn is None:
        raise BadInput(f"unknown survey format {format!r}; expected one of {', '.join(FORMATS)}")
    return fn(path, **kw)


__all__ = ["FORMATS", "import_generic", "import_opinionqa", "import_subpop", "import_survey", "import_wvs",
           "opinionqa_respondents"]
