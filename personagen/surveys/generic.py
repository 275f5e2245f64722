"""The hand-written generic format: a YAML file (``.yaml``/``.yml``, or JSON) or a long CSV.

YAML::

      survey_id: my_survey                 # optional (default: file stem)
      licence: CC BY 4.0                   # optional: recorded in the survey's provenance
      citation: Who collected it, when      # optional: likewise
      normalise: false                     # optional; true divides each distribution by its sum (counts, %)
      attributes: {"18-34": AGE}           # optional {group: attribute}; "overall" is implicit
      questions:
        - qid: coffee                      # required, unique
          question: How many cups ...?     # required
          options: [None, One, Two or more]            # required, >= 2 distinct labels, in order
          ordinal: [0, 1, 2]               # optional: positions per option, or `true` for 1..K
          split: train                     # optional: train|valid|test (default: seeded 70/15/15)
          keep_last: [Not sure]            # optional: options that stay last when options are reordered
                                           # (default: the trailing non-answers, see refusals.py)
          targets:                         # required: {group: [shares in option order] | {option: share}}
            overall: [0.4, 0.35, 0.25]

Every plain scalar is read as the text written: ``[Yes, No]`` stays two labels "Yes" and "No" (YAML 1.1 would
make them booleans), likewise ``on``/``off``, ``007`` and ``1.10``. Numbers (shares, ordinals) and the
``true``/``false`` of ``normalise`` and ``ordinal`` are read from that text where the field is a number or a flag.

CSV (``.csv``): one row per (question, group, option) with columns ``qid, question, option, share`` plus optional
``group`` (default "overall"), ``attribute``, ``ordinal``, ``split``, ``survey_id``; options are ordered as they
first appear. Shares must be finite, nonnegative and sum to 1 (±0.005, then renormalised exactly) unless
``normalise: true``. See ``datasets/surveys/example_generic.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from personagen.errors import BadInput
from personagen.infile import read_text
from personagen.surveys.common import (
    SUM_TOL,
    Licence,
    build,
    check_refused,
    clean_options,
    drop_refused,
    existing,
    finite,
    finite_nonneg,
    provenance,
    read_csv_rows,
)
from personagen.surveys.refusals import is_refusal
from personagen.surveys.schema import OVERALL, SPLITS, QuestionRecord, Survey

_NULL = "tag:yaml.org,2002:null"


class _TextLoader(yaml.SafeLoader):
    """A safe YAML loader whose plain scalars stay text (only `~`, `null` and empty values are null)."""


_TextLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag == _NULL] for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _flag(x: Any, where: str) -> bool:
    """A YAML flag written as true/false (any case); anything else is bad input."""
    if isinstance(x, bool):
        return x
    s = str(x).strip().lower()
    if s in ("true", "false"):
        return s == "true"
    raise BadInput(f"{where}: {x!r} is not true or false")


def _shares(raw: Any, options: list[str], where: str, normalise: bool) -> list[float]:
    if isinstance(raw, Mapping):
        unknown = [k for k in raw if str(k).strip() not in options]
        if unknown:
            raise BadInput(f"{where}: option {unknown[0]!r} is not among the question's options")
        given = {str(k).strip(): v for k, v in raw.items()}
        vals = [finite_nonneg(given.get(o, 0.0), f"{where}[{o}]") for o in options]
    elif isinstance(raw, list | tuple):
        if len(raw) != len(options):
            raise BadInput(f"{where}: {len(raw)} shares for {len(options)} options")
        vals = [finite_nonneg(x, f"{where}[{i}]") for i, x in enumerate(raw)]
    else:
        raise BadInput(f"{where}: expected a list of shares or an {{option: share}} mapping")
    tot = sum(vals)
    if normalise:
        if tot <= 0:
            raise BadInput(f"{where}: all shares are zero")
    elif abs(tot - 1) > SUM_TOL:
        raise BadInput(f"{where}: shares sum to {tot:.4f}, not 1 (set `normalise: true` for counts/percent)")
    return [v / tot for v in vals]


def _ordinal(ords: Any, n: int, where: str) -> list[float] | None:
    if ords is None or isinstance(ords, bool | str):
        on = ords is not None and _flag(ords, f"{where} ordinal")
        return [float(i) for i in range(1, n + 1)] if on else None
    if not isinstance(ords, list) or len(ords) != n:
        raise BadInput(f"{where}: `ordinal` must be true or a list of {n} numbers")
    vals = [finite(o, f"{where} ordinal") for o in ords]
    if max(vals) <= min(vals):
        raise BadInput(f"{where}: `ordinal` positions are all equal")
    return vals


def _keep_last(raw: Any, options: list[str], where: str) -> list[bool] | None:
    if raw is None:
        return None
    names = [str(x).strip() for x in (raw if isinstance(raw, list) else [raw])]
    unknown = [x for x in names if x not in options]
    if unknown:
        raise BadInput(f"{where}: keep_last option {unknown[0]!r} is not among the question's options")
    return [o in names for o in options]


def _drop(options: list[str], targets: dict[str, list[float]], ords: list[float] | None,
          last: list[bool] | None, where: str) -> tuple[list[str], dict[str, list[float]], Any, Any]:
    """Remove the refusal options (refused="drop") from options, shares, ordinals and keep_last flags."""
    keep = [i for i, o in enumerate(options) if not is_refusal(o)]
    if len(keep) == len(options):
        return options, targets, ords, last
    new_t = {}
    for g, s in targets.items():
        dr = drop_refused(options, s)
        if dr is None:
            raise BadInput(f"{where}: group {g!r} has only Refused answers")
        new_t[g] = dr[1]
    if ords is not None:
        ords = [ords[i] for i in keep]
        ords = ords if max(ords) > min(ords) else None
    return [options[i] for i in keep], new_t, ords, None if last is None else [last[i] for i in keep]


def _question(n: int, q: Any, p: Path, refused: str, normalise: bool, attr_map: dict) -> QuestionRecord:
    where = f"{p}: questions[{n}]"
    if not isinstance(q, dict):
        raise BadInput(f"{where}: expected a mapping")
    for k in ("qid", "question", "options", "targets"):
        if q.get(k) in (None, "", [], {}):
            raise BadInput(f"{where}: field `{k}` is missing or empty")
    qid = str(q["qid"]).strip()
    where = f"{p}: question {qid!r}"
    if not isinstance(q["options"], list):
        raise BadInput(f"{where}: `options` must be a list")
    options = clean_options(q["options"], f"{where} options")
    if len(options) < 2:
        raise BadInput(f"{where}: `options` has {len(options)} option(s); at least 2 are needed")
    ords = _ordinal(q.get("ordinal"), len(options), where)
    split = q.get("split")
    if split is not None and split not in SPLITS:
        raise BadInput(f"{where}: `split` {split!r} is not one of {', '.join(SPLITS)}")
    if not isinstance(q["targets"], dict):
        raise BadInput(f"{where}: `targets` must map group -> shares")
    targets = {str(g): _shares(v, options, f"{where} targets[{g}]", normalise) for g, v in q["targets"].items()}
    last = _keep_last(q.get("keep_last"), options, where)
    if refused == "drop":
        options, targets, ords, last = _drop(options, targets, ords, last, where)
    if len(options) < 2:
        raise BadInput(f"{where}: fewer than 2 options remain after dropping Refused")
    return QuestionRecord(qid, str(q["question"]).strip(), tuple(options),
                          {g: dict(zip(options, s)) for g, s in targets.items()},
                          {g: (OVERALL if g == OVERALL else str(attr_map.get(g, "group"))) for g in targets},
                          None if ords is None else tuple(ords), split, None if last is None else tuple(last))


def _questions(doc: Any, p: Path, refused: str) -> list[QuestionRecord]:
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list) or not doc["questions"]:
        raise BadInput(f"{p}: expected a mapping with a non-empty `questions` list")
    normalise = _flag(doc.get("normalise") or False, f"{p}: normalise")
    attr_map = doc.get("attributes") or {}
    if not isinstance(attr_map, dict):
        raise BadInput(f"{p}: `attributes` must map group -> attribute")
    return [_question(n, q, p, refused, normalise, attr_map) for n, q in enumerate(doc["questions"])]


def _csv_question(qs: dict[str, dict], r: dict[str, str], where: str) -> tuple[dict, str]:
    qid = (r["qid"] or "").strip()
    if not qid:
        raise BadInput(f"{where}: empty qid")
    if not (r["option"] or "").strip():
        raise BadInput(f"{where}: empty option label")
    q = qs.setdefault(qid, {"qid": qid, "question": r["question"], "options": [], "raw": [], "ord": {},
                            "targets": {}, "split": (r.get("split") or "").strip() or None})
    if r["option"] not in q["raw"]:
        q["raw"].append(r["option"])
        q["options"] = clean_options(q["raw"], f"{where}: question {qid!r} options")
    return q, r["option"].strip()


def _csv_to_doc(p: Path) -> dict:
    rows = read_csv_rows(p, ("qid", "question", "option", "share"))
    qs: dict[str, dict] = {}
    attrs: dict[str, str] = {}
    sid = None
    for n, r in enumerate(rows, 2):
        where = f"{p}:{n}"
        q, opt = _csv_question(qs, r, where)
        group = (r.get("group") or "").strip() or OVERALL
        if (r.get("ordinal") or "").strip():
            q["ord"][opt] = finite(r["ordinal"], f"{where} ordinal")
        tg = q["targets"].setdefault(group, {})
        if opt in tg:
            raise BadInput(f"{where}: duplicate row for {q['qid']!r}/{group!r}/{opt!r}")
        tg[opt] = finite_nonneg(r["share"], f"{where} share")
        if (r.get("attribute") or "").strip():
            attrs[group] = r["attribute"].strip()
        sid = sid or (r.get("survey_id") or "").strip() or None
    questions = []
    for q in qs.values():
        ordm = q.pop("ord")
        del q["raw"]
        q["ordinal"] = [ordm[o] for o in q["options"]] if ordm and len(ordm) == len(q["options"]) else None
        if ordm and q["ordinal"] is None:
            raise BadInput(f"{p}: question {q['qid']!r} gives ordinals for some options only")
        questions.append(q)
    return {"survey_id": sid or p.stem, "questions": questions, "attributes": attrs}


def _read_doc(p: Path) -> Any:
    if p.suffix.lower() == ".csv":
        return _csv_to_doc(p)
    if p.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise BadInput(f"{p}: unknown extension {p.suffix!r}; the generic format is .yaml, .yml or .csv")
    try:
        return yaml.load(read_text(p, "survey file"), Loader=_TextLoader)  # noqa: S506 (a SafeLoader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise BadInput(f"{p}: not valid YAML ({type(e).__name__})") from None


def import_generic(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
                   survey_id: str | None = None) -> Survey:
    """Load the hand-written generic YAML (or long CSV) format documented in this module."""
    check_refused(refused)
    p = existing(path, "survey file")
    if p.is_dir():
        raise BadInput(f"{p}: expected a .yaml/.yml/.csv file, got a directory")
    doc = _read_doc(p)
    questions = _questions(doc, p, refused)
    meta = doc if isinstance(doc, dict) else {}
    terms = Licence(str(meta.get("licence") or meta.get("license") or "not stated (add `licence:` to the file)"),
                    str(meta.get("citation") or ""))
    return build(survey_id or str(doc.get("survey_id") or p.stem), questions, seed=seed, source=str(p),
                 prov=provenance("generic", p, [p], terms, refused))
