"""What every survey loader shares: input checks, the skip report, provenance, and building the `Survey`.

Every loader returns a validated `Survey` and takes `refused="drop"|"keep"`, `seed` (question splits 70/15/15,
see `assign_splits`) and `survey_id` (a default is derived from the file name). Conventions shared by all:

* Refusals (`refusals.is_refusal`: "Refused", "DK/Refused") are dropped and the remaining shares renormalised by
  default (`refused="keep"` keeps them as options). A question's ordinal mapping is all-or-nothing in the schema
  and a refusal has no ordinal position, so a question that keeps one has no ordinal mapping.
* Question ids are strings and questions are stored sorted by qid, so `survey.qids` has the same order in
  memory and after `save`/`load`.
* Group labels are unique survey-wide: the schema keys a group by its label, so a label that occurs under two
  attributes (OpinionQA's "Other" in RACE and in POLPARTY) becomes "Other (RACE)" / "Other (POLPARTY)".
* Option labels are stripped of surrounding spaces; an empty label, or two labels of one question that differ
  only in spaces or case ("Yes" and "Yes "), are bad input.
* What was left out is counted by reason (`Skips`) and shown by `surveys import`; where the survey came from,
  its files' SHA-256 and its licence are recorded in `survey.provenance` (saved in the parquet metadata).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from personagen._version import __version__
from personagen.errors import BadInput
from personagen.store import now_iso
from personagen.surveys.refusals import is_refusal
from personagen.surveys.schema import OVERALL, QuestionRecord, Survey

REFUSED_MODES = ("drop", "keep")
SUM_TOL = 0.005


@dataclass
class Skips:
    """Questions (or items) left out of an import, by reason: "56 of 78 info.csv questions have no human answers"."""

    what: str
    total: int = 0
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, key: str) -> None:
        self.reasons.setdefault(reason, []).append(key)

    def lines(self) -> list[str]:
        return [f"{len(keys)} of {self.total} {self.what} {reason}" for reason, keys in self.reasons.items()]

    def keys(self) -> list[str]:
        return list(dict.fromkeys(k for keys in self.reasons.values() for k in keys))


@dataclass(frozen=True)
class Licence:
    """The terms a source carries, recorded with every survey imported from it."""

    licence: str
    citation: str


def check_refused(refused: str) -> None:
    if refused not in REFUSED_MODES:
        raise BadInput(f"refused={refused!r}: expected one of {', '.join(REFUSED_MODES)}")


def existing(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{p}: {what} does not exist")
    return p


def finite(x: Any, where: str) -> float:
    if isinstance(x, bool):
        raise BadInput(f"{where}: {x!r} is not a number")
    if isinstance(x, str):  # YAML text: its `.nan` / `.inf` spellings too
        x = x.strip().lower().replace(".nan", "nan").replace(".inf", "inf")
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: {x!r} is not a number") from None
    if math.isnan(v) or math.isinf(v):
        raise BadInput(f"{where}: value is {v} (NaN or infinite)")
    return v


def finite_nonneg(x: Any, where: str) -> float:
    v = finite(x, where)
    if v < 0:
        raise BadInput(f"{where}: value {v} is negative")
    return v


def valid_ordinal(ords: Sequence[float] | None, n: int) -> tuple[float, ...] | None:
    """Positions usable for Wasserstein distance: one finite value per option, not all equal; else None."""
    if ords is None or len(ords) != n:
        return None
    try:
        vals = [float(o) for o in ords]
    except (TypeError, ValueError):
        return None
    if any(math.isnan(v) or math.isinf(v) for v in vals) or max(vals) <= min(vals):
        return None
    return tuple(vals)


def positions(ords: Any, options: Sequence[str]) -> tuple[float | None, ...] | None:
    """Per-option ordinal positions where the full mapping is not usable: the substantive options' values in
    order (negative = outside the scale, the SubPOP authors' -1; missing trailing values, as OpinionQA leaves
    "Not sure" unmapped, likewise), None for a refusal; None overall below two distinct positions."""
    if not isinstance(ords, list | tuple):
        return None
    vals: list[float | None] = [float(o) if isinstance(o, int | float) and not isinstance(o, bool)
                                and math.isfinite(o) and o >= 0 else None for o in ords]
    subst = [o for o in options if not is_refusal(o)]
    if len(vals) > len(subst):
        return None
    vals += [None] * (len(subst) - len(vals))
    it = iter(vals)
    out = tuple(None if is_refusal(o) else next(it) for o in options)
    return out if len({v for v in out if v is not None}) >= 2 else None


def read_csv_rows(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    """All rows of a CSV as dicts; BadInput naming the file (and line) when unreadable, lacking a needed column,
    or holding a row with more or fewer fields than the header (a ragged row)."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            rows = []
            for r in reader:
                extra = r.get(None) or []  # type: ignore[call-overload]
                missing = sum(v is None for k, v in r.items() if k is not None)
                if extra or missing:
                    n = len(reader.fieldnames or []) + len(extra) - missing
                    raise BadInput(f"{path}:{reader.line_num}: row has {n} fields, the header has "
                                   f"{len(reader.fieldnames or [])}")
                rows.append(r)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInput(f"{path}: unreadable CSV ({type(e).__name__})") from None
    if not rows or any(c not in rows[0] for c in need):
        raise BadInput(f"{path}: expected a header with columns {', '.join(need)} and at least one row")
    return rows


def clean_options(options: Iterable[Any], where: str) -> list[str]:
    """Option labels stripped of surrounding spaces; BadInput for an empty label or for two labels that differ
    only in spaces or case ("Yes" and "Yes " would be two options the model and the shares confuse)."""
    out: list[str] = []
    seen: dict[str, str] = {}
    for i, o in enumerate(options):
        label = "" if o is None else str(o).strip()
        if not label:
            raise BadInput(f"{where}: option {i + 1} has an empty label")
        key = " ".join(label.split()).casefold()
        if key in seen and seen[key] != str(o):
            raise BadInput(f"{where}: options {seen[key]!r} and {str(o)!r} differ only in spaces or case")
        if key in seen:
            raise BadInput(f"{where}: option {label!r} appears twice")
        seen[key] = str(o)
        out.append(label)
    return out


def drop_refused(options: Sequence[str], shares: Sequence[float]) -> tuple[list[str], list[float]] | None:
    """Remove the refusal options and renormalise; None when nothing substantive is left."""
    keep = [i for i, o in enumerate(options) if not is_refusal(o)]
    tot = sum(shares[i] for i in keep)
    if tot <= 0:
        return None
    return [options[i] for i in keep], [shares[i] / tot for i in keep]


def provenance(fmt: str, path: Path, files: Iterable[Path], terms: Licence, refused: str) -> dict[str, Any]:
    """Where a survey came from: format, path, SHA-256 per file read, licence, citation, import time, version."""
    sums = {}
    for f in sorted(files):
        h = hashlib.sha256()
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        sums[f.name] = h.hexdigest()
    return {"format": fmt, "source": str(path), "sha256": sums, "licence": terms.licence,
            "citation": terms.citation, "refused": refused, "imported_at": now_iso(),
            "personagen_version": __version__}


def _unique_group_labels(questions: list[QuestionRecord]) -> list[QuestionRecord]:
    """A group label used under two attributes becomes "label (ATTR)" everywhere."""
    def attr(q: QuestionRecord, g: str) -> str:
        return q.attributes.get(g, OVERALL if g == OVERALL else "group")

    label_attrs: dict[str, set[str]] = {}
    for q in questions:
        for g in q.targets:
            label_attrs.setdefault(g, set()).add(attr(q, g))
    clash = {g for g, a in label_attrs.items() if len(a) > 1}
    if not clash:
        return questions
    name = {True: lambda q, g: f"{g} ({attr(q, g)})", False: lambda q, g: g}
    return [replace(q, targets={name[g in clash](q, g): d for g, d in q.targets.items()},
                    attributes={name[g in clash](q, g): attr(q, g) for g in q.targets}) for q in questions]


def build(survey_id: str, questions: list[QuestionRecord], *, seed: int, source: str,
          prov: dict[str, Any] | None = None, skips: Skips | None = None) -> Survey:
    """Check option labels and question ids, make group labels unique, sort by qid, build the Survey; the
    skip report travels as `survey.skipped_questions` / `survey.import_notes`."""
    if not questions:
        why = "; ".join(skips.lines()) if skips and skips.reasons else "no usable questions found"
        raise BadInput(f"{source}: {why}")
    seen: set[str] = set()
    for q in questions:
        if q.qid in seen:
            raise BadInput(f"{source}: question id {q.qid!r} appears twice")
        seen.add(q.qid)
        if len(q.options) < 2:
            raise BadInput(f"{source}: question {q.qid!r} has {len(q.options)} option(s); at least 2 are needed")
    questions = sorted(_unique_group_labels(questions), key=lambda q: q.qid)
    survey = Survey.from_records(survey_id, questions, seed=seed, source=source, provenance=prov)
    if skips is not None:
        survey.skipped_questions = skips.keys()
        survey.import_notes = skips.lines()
    return survey
