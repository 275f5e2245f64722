"""Survey loaders: OpinionQA, SubPOP, Cao et al. WVS/Pew Global, and a hand-written generic YAML/CSV format.

Every loader returns a validated `Survey` and takes `refused="drop"|"keep"`, `seed` (question splits 70/15/15,
see `assign_splits`) and `survey_id` (a default is derived from the file name). Conventions shared by all:

* "Refused" is dropped and the remaining shares renormalised by default (`refused="keep"` keeps it as an option).
  A question's ordinal mapping is all-or-nothing in the schema and "Refused" has no ordinal position, so a
  question that keeps a "Refused" option has no ordinal mapping (no Wasserstein distance for it).
* Question ids are strings and questions are stored sorted by qid, so `survey.qids` has the same order in
  memory and after `save`/`load`.
* Group labels are unique survey-wide: the schema keys a group by its label, so a label that occurs under two
  attributes (OpinionQA's "Other" in RACE and in POLPARTY) becomes "Other (RACE)" / "Other (POLPARTY)".

Formats
-------
``opinionqa`` (`import_opinionqa`): one OpinionQA ``human_resp`` wave folder (``American_Trends_Panel_Wxx``):
  ``info.csv`` (key, question, references = ordered options, option_ordinal) and ``<ATTR>_data.json``
  *unweighted* respondent counts ``{qkey: {group: {option: count}}}``. Counts become shares. The "overall"
  group is the sum over all CREGION groups. One group per label of each single-attribute file (AGE, CREGION,
  EDUCATION, INCOME, POLIDEOLOGY, POLPARTY, RACE, SEX); the two-attribute files (POLPARTY_RACE, ...) and
  NONE_data.json (a copy of POLPARTY) are skipped, and so are the pseudo-groups "nan" and "Refused" (people who
  did not report the attribute) and a group with no counts for a question. Questions listed in info.csv without
  counts are skipped. Ordinals come from ``option_ordinal`` when it gives one distinct-valued position per
  non-Refused option; otherwise (e.g. a trailing "Not sure" without a position, or all positions equal) the
  question has no ordinal mapping. The ``Pew_American_Trends_Panel_disagreement_500`` folder has no counts and
  is refused with BadInput.
``subpop`` (`import_subpop`): SubPOP ``subpop_eval.jsonl``, one JSON object per (question, subgroup) with a
  weighted ``responses`` vector over the non-Refused options and ``refusal_rate``. There is no overall
  distribution in that file and none is invented: the survey has only subgroups, and
  ``distributions("overall")`` raises BadInput. With ``refused="keep"`` the shares are
  ``responses * (1 - refusal_rate)`` plus ``refusal_rate`` for "Refused". SubPOP marks non-ordinal options with
  ordinal -1; a question with any negative position has no ordinal mapping.
``wvs`` (`import_wvs`): Cao et al. (2025) ``sft_wvs_valid.json`` (WVS wave 7, percentages) or
  ``global_pew_test.json`` (Pew Global Attitudes, fractions). Groups are countries (attribute "COUNTRY", parsed
  from "How would someone from <Country> answer ..."), the question id is ``wvs_<id>`` / ``pew_<id>`` (the
  item ``id`` is a question id shared by the countries), options drop their "(A)" prefix (a label repeated within an item, a parsing artifact in a
  few Pew items, keeps its letter: "Other (C)"). Each item is
  divided by its own sum (percent or fraction alike); items whose shares are all zero (8 in the Pew file) are
  skipped. Options whose label contains the word "Refused" (e.g. "DK/Refused") are the refusal option. No
  ordinal mappings (the files give none) and no overall group.
``generic`` (`import_generic`): a hand-written YAML file (``.yaml``/``.yml``)::

      survey_id: my_survey                 # optional (default: file stem)
      normalise: false                     # optional; true divides each distribution by its sum (counts, %)
      attributes: {"18-34": AGE}           # optional {group: attribute}; "overall" is implicit
      questions:
        - qid: coffee                      # required, unique
          question: How many cups ...?     # required
          options: [None, One, Two or more]            # required, >= 2 distinct labels, in order
          ordinal: [0, 1, 2]               # optional: positions per option, or `true` for 1..K
          split: train                     # optional: train|valid|test (default: seeded 70/15/15)
          targets:                         # required: {group: [shares in option order] | {option: share}}
            overall: [0.4, 0.35, 0.25]

  or a long CSV (``.csv``) with one row per (question, group, option) and columns ``qid, question, option,
  share`` plus optional ``group`` (default "overall"), ``attribute``, ``ordinal``, ``split``, ``survey_id``;
  options are ordered as they first appear. Shares must be finite, nonnegative and sum to 1 (±0.005, then
  renormalised exactly) unless ``normalise: true``. See ``datasets/surveys/example_generic.yaml``.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from personagen.errors import BadInput
from personagen.surveys.schema import OVERALL, SPLITS, Survey

REFUSED_MODES = ("drop", "keep")
SUM_TOL = 0.005
_OQA_SKIP_GROUPS = {"nan", "refused", "", "none"}
_WVS_COUNTRY = re.compile(r"How would someone from (.+?) answer the following question", re.S)
_WVS_OPTION = re.compile(r"^\(([A-Za-z])\)\s*(.*)$", re.S)
_WVS_REFUSED = re.compile(r"\brefused\b", re.I)


# ---- shared helpers ------------------------------------------------------------------------------

def _read_csv_rows(path: Path, need: tuple[str, ...]) -> list[dict[str, str]]:
    """All rows of a CSV as dicts; BadInput naming the file when unreadable or lacking a needed column."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInput(f"{path}: unreadable CSV ({type(e).__name__})") from None
    if not rows or any(c not in rows[0] for c in need):
        raise BadInput(f"{path}: expected a header with columns {', '.join(need)} and at least one row")
    return rows

def _check_refused(refused: str) -> None:
    if refused not in REFUSED_MODES:
        raise BadInput(f"refused={refused!r}: expected one of {', '.join(REFUSED_MODES)}")


def _is_refused(label: str) -> bool:
    return label.strip().lower() == "refused"


def _existing(path: str | os.PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise BadInput(f"{p}: {what} does not exist")
    return p


def _finite_nonneg(x: Any, where: str) -> float:
    v = _finite(x, where)
    if v < 0:
        raise BadInput(f"{where}: value {v} is negative")
    return v


def _valid_ordinal(ords: Sequence[float] | None, n: int) -> list[float] | None:
    """Positions usable for Wasserstein distance: one finite value per option, not all equal; else None."""
    if ords is None or len(ords) != n:
        return None
    try:
        vals = [float(o) for o in ords]
    except (TypeError, ValueError):
        return None
    if any(math.isnan(v) or math.isinf(v) for v in vals) or max(vals) <= min(vals):
        return None
    return vals


def _positions(ords: Any, options: Sequence[str]) -> list[float | None] | None:
    """Per-option ordinal positions where the full mapping is not usable: the substantive options' values in
    order (negative = outside the scale, the SubPOP authors' -1; missing trailing values, as OpinionQA leaves
    "Not sure" unmapped, likewise), None for "Refused"; None overall below two distinct positions."""
    if not isinstance(ords, list | tuple):
        return None
    vals = [float(o) if isinstance(o, int | float) and math.isfinite(o) and o >= 0 else None for o in ords]
    subst = [o for o in options if not _is_refused(o)]
    if len(vals) > len(subst):
        return None
    vals += [None] * (len(subst) - len(vals))
    it = iter(vals)
    out = [None if _is_refused(o) else next(it) for o in options]
    return out if len({v for v in out if v is not None}) >= 2 else None


def _build(survey_id: str, questions: list[dict], *, seed: int, source: str) -> Survey:
    """Disambiguate group labels shared by attributes, sort by qid, build the Survey."""
    if not questions:
        raise BadInput(f"{source}: no usable questions found")
    label_attrs: dict[str, set[str]] = {}
    for q in questions:
        for g in q["targets"]:
            label_attrs.setdefault(g, set()).add(q.get("attributes", {}).get(g, OVERALL if g == OVERALL else "group"))
    clash = {g for g, a in label_attrs.items() if len(a) > 1}
    if clash:
        for q in questions:
            attrs = q.get("attributes", {})
            q["targets"] = {(f"{g} ({attrs[g]})" if g in clash else g): d for g, d in q["targets"].items()}
            q["attributes"] = {(f"{g} ({a})" if g in clash else g): a for g, a in attrs.items()}
    seen: set[str] = set()
    for q in questions:
        q["qid"] = str(q["qid"])  # schema.from_records looks splits up by str(qid)
        if q["qid"] in seen:
            raise BadInput(f"{source}: question id {q['qid']!r} appears twice")
        seen.add(q["qid"])
        if len(q["options"]) < 2:
            raise BadInput(f"{source}: question {q['qid']!r} has {len(q['options'])} option(s); at least 2 are needed")
    questions = sorted(questions, key=lambda q: q["qid"])
    return Survey.from_records(survey_id, questions, seed=seed, source=source)


def _drop_refused(options: list[str], shares: Sequence[float]) -> tuple[list[str], list[float]] | None:
    """Remove the "Refused" option and renormalise; None when nothing substantive is left."""
    keep = [i for i, o in enumerate(options) if not _is_refused(o)]
    tot = sum(shares[i] for i in keep)
    if tot <= 0:
        return None
    return [options[i] for i in keep], [shares[i] / tot for i in keep]


# ---- OpinionQA -------------------------------------------------------------------------------------
def _oqa_counts(p: Path) -> dict[str, dict]:
    """The per-attribute count files of an OpinionQA wave folder: {attribute: {question key: {group: counts}}}."""
    counts: dict[str, dict] = {}
    for f in sorted(p.glob("*_data.json")):
        attr = f.name[: -len("_data.json")]
        if "_" in attr or attr == "NONE":  # two-attribute files and the POLPARTY duplicate
            continue
        try:
            counts[attr] = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInput(f"{f}: not valid JSON ({type(e).__name__})") from None
        if not isinstance(counts[attr], dict):
            raise BadInput(f"{f}: expected a JSON object keyed by question")
    return counts


def _oqa_targets(group_counts: dict[tuple[str, str], list[float]], refs: list[str], refused: str
                 ) -> tuple[list[str], dict[tuple[str, str], list[float]]]:
    """Counts -> shares per group (refusals dropped and renormalised with refused="drop"); the options kept."""
    opts = refs
    targets: dict[tuple[str, str], list[float]] = {}
    for g, c in group_counts.items():
        tot = sum(c)
        if tot <= 0:
            continue
        if refused == "drop":
            dr = _drop_refused(refs, [x / tot for x in c])
            if dr is None:
                continue
            opts, targets[g] = dr
        else:
            targets[g] = [x / tot for x in c]
    return opts, targets


def _oqa_group_labels(questions: list[dict]) -> None:
    """Key groups by label; a label under two attributes becomes "label (ATTR)". Sets targets and attributes."""
    label_attrs: dict[str, set[str]] = {}
    for q in questions:
        for a, g in q["_targets"]:
            label_attrs.setdefault(g, set()).add(a)
    for q in questions:
        named = {(a, g if len(label_attrs[g]) == 1 else f"{g} ({a})"): d for (a, g), d in q.pop("_targets").items()}
        q["targets"] = {g: d for (_, g), d in named.items()}
        q["attributes"] = {g: a for (a, g) in named}


class _Unmatched(ValueError):
    """An option in a count file that matches no info.csv reference, even after normalising."""


def _norm_option(s: str) -> str:
    """Case- and whitespace-insensitive form of an option label (count files and info.csv disagree on both)."""
    return " ".join(str(s).split()).casefold()


def _match_counts(raw: dict, refs: list[str], where: str) -> list[float]:
    """Counts in `refs` order; options matched exactly, else after normalising case and whitespace."""
    lookup = {_norm_option(o): o for o in refs}
    out = dict.fromkeys(refs, 0.0)
    for o, v in raw.items():
        ref = o if o in out else lookup.get(_norm_option(o))
        if ref is None:
            raise _Unmatched(f"{where}: option {o!r} is not in info.csv references")
        out[ref] += _finite_nonneg(v, f"{where}/{o}")
    return [out[o] for o in refs]


def _oqa_question(r: dict[str, str], counts: dict[str, dict], dist: Any, info: Path,
                  refused: str) -> dict | None:
    """One OpinionQA question (options, ordinal, per-group targets) from its info.csv row, or None when the
    count files do not cover it."""
    key = (r.get("key") or "").strip()
    if not key or key not in counts["CREGION"]:
        return None  # info.csv lists more questions than the count files cover
    try:
        refs = [str(o) for o in ast.literal_eval(r["references"])]
    except (ValueError, SyntaxError):
        raise BadInput(f"{info}: references of {key!r} is not a Python list") from None
    try:
        ords = ast.literal_eval(r["option_ordinal"]) if r["option_ordinal"].strip() else None
    except (ValueError, SyntaxError):
        ords = None
    group_counts: dict[tuple[str, str], list[float]] = {}
    overall = [0.0] * len(refs)
    for g in counts["CREGION"][key]:
        if g in ("MC_options", "question_text"):
            continue
        overall = [a + b for a, b in zip(overall, dist("CREGION", key, g, refs))]
    group_counts[(OVERALL, OVERALL)] = overall
    for attr, data in counts.items():
        if key not in data:
            continue
        for g in data[key]:
            if g in ("MC_options", "question_text") or g.strip().lower() in _OQA_SKIP_GROUPS:
                continue
            group_counts[(attr, g)] = dist(attr, key, g, refs)
    opts, targets = _oqa_targets(group_counts, refs, refused)
    if (OVERALL, OVERALL) not in targets:
        return None
    substantive = [o for o in refs if not _is_refused(o)]
    ordinal = _valid_ordinal(ords, len(substantive)) if len(opts) == len(substantive) else None
    if ordinal is None:
        ordinal = _positions(ords, opts)
    return {
        "qid": key, "question": r["question"].strip(), "options": opts, "ordinal": ordinal,
        "_targets": {ag: dict(zip(opts, s)) for ag, s in targets.items()},
    }


def import_opinionqa(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
                     survey_id: str | None = None) -> Survey:
    """Load an OpinionQA human_resp wave folder (counts → shares; overall = sum of CREGION groups)."""
    _check_refused(refused)
    p = _existing(path, "OpinionQA folder")
    if p.is_file():
        p = p.parent
    info = p / "info.csv"
    if not info.is_file():
        raise BadInput(f"{p}: not an OpinionQA wave folder (no info.csv)")
    if not (p / "CREGION_data.json").is_file():
        if not list(p.glob("*_data.json")):
            raise BadInput(f"{p}: no <ATTR>_data.json count files (folders such as disagreement_500 list questions "
                           f"only); import a wave folder like American_Trends_Panel_W26")
        raise BadInput(f"{p / 'CREGION_data.json'}: missing; it is needed for the overall distribution")
    rows = _read_csv_rows(info, ("key", "question", "references", "option_ordinal"))

    counts = _oqa_counts(p)

    def dist(attr: str, key: str, group: str, refs: list[str]) -> list[float]:
        raw = counts[attr][key][group]
        where = f"{p / (attr + '_data.json')}: {key}/{group}"
        if not isinstance(raw, dict):
            raise BadInput(f"{where}: expected {{option: count}}")
        return _match_counts(raw, refs, where)

    questions: list[dict] = []
    skipped: list[str] = []
    for r in rows:
        try:
            q = _oqa_question(r, counts, dist, info, refused)
        except _Unmatched as e:  # one messy question does not sink the wave
            warnings.warn(f"{p.name}: question {r.get('key')!r} skipped: {e}", stacklevel=2)
            skipped.append(str(r.get("key")))
            continue
        if q is not None:
            questions.append(q)
    _oqa_group_labels(questions)
    m = re.search(r"(W\d+)$", p.name)
    sid = survey_id or (f"opinionqa_{m.group(1)}" if m else f"opinionqa_{p.name}")
    survey = _build(sid, questions, seed=seed, source=str(p))
    survey.skipped_questions = skipped  # reported by `personagen surveys import`
    return survey


def opinionqa_respondents(path: str | os.PathLike) -> dict[tuple[str, str, str], int]:
    """{(qid, attribute, group label): respondents who gave a non-Refused answer} for an OpinionQA wave
    folder (its count files are unweighted respondent counts). Group labels are the raw ones, without the
    "(ATTR)" tag `import_opinionqa` adds to labels shared by two attributes."""
    p = _existing(path, "OpinionQA folder")
    if p.is_file():
        p = p.parent
    out: dict[tuple[str, str, str], int] = {}
    for f in sorted(p.glob("*_data.json")):
        attr = f.name[: -len("_data.json")]
        if "_" in attr or attr == "NONE":
            continue
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInput(f"{f}: not valid JSON ({type(e).__name__})") from None
        for key, groups in data.items():
            for g, raw in (groups or {}).items():
                if isinstance(raw, dict) and g not in ("MC_options", "question_text"):
                    out[(key, attr, g)] = int(sum(_finite_nonneg(v, f"{f}: {key}/{g}") for o, v in raw.items()
                                                  if not _is_refused(str(o))))
    if not out:
        raise BadInput(f"{p}: no <ATTR>_data.json respondent counts")
    return out

# ---- SubPOP ----------------------------------------------------------------------------------------
def import_subpop(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
                  survey_id: str | None = None) -> Survey:
    """Load SubPOP subpop_eval.jsonl (weighted subgroup distributions; no overall group)."""
    _check_refused(refused)
    p = _existing(path, "SubPOP file")
    if p.is_dir():
        cand = p / "subpop_eval.jsonl"
        if not cand.is_file():
            raise BadInput(f"{p}: directory has no subpop_eval.jsonl")
        p = cand
    qs: dict[str, dict] = {}
    need = ("qkey", "attribute", "group", "question", "options", "ordinal", "responses", "refusal_rate")
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{p}: unreadable ({type(e).__name__})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise BadInput(f"{where}: not a JSON object") from None
        if not isinstance(rec, dict) or any(k not in rec for k in need):
            raise BadInput(f"{where}: expected keys {', '.join(need)}")
        options = [str(o) for o in rec["options"]]
        subst = [o for o in options if not _is_refused(o)]
        resp = [_finite_nonneg(x, f"{where} responses") for x in rec["responses"]]
        if len(resp) != len(subst):
            raise BadInput(f"{where}: responses has {len(resp)} values for {len(subst)} non-Refused options")
        if abs(sum(resp) - 1) > SUM_TOL:
            raise BadInput(f"{where}: responses sum to {sum(resp):.4f}, not 1")
        resp = [x / sum(resp) for x in resp]
        rr = _finite_nonneg(rec["refusal_rate"], f"{where} refusal_rate")
        if rr > 1:
            raise BadInput(f"{where}: refusal_rate {rr} exceeds 1")
        qkey, group = str(rec["qkey"]), str(rec["group"])
        q = qs.get(qkey)
        if q is None:
            has_ref = len(subst) < len(options)
            opts = subst + (["Refused"] if refused == "keep" and has_ref else [])
            ords = rec["ordinal"]
            ordinal = None
            if len(opts) == len(subst) and isinstance(ords, list) and all(
                    isinstance(o, int | float) and o >= 0 for o in ords):
                ordinal = _valid_ordinal(ords, len(subst))
            if ordinal is None:
                ordinal = _positions(ords, opts)
            q = qs[qkey] = {"qid": qkey, "question": str(rec["question"]).strip(), "options": opts,
                            "ordinal": ordinal, "targets": {}, "attributes": {}, "_sig": (options, rec["ordinal"])}
        elif q["_sig"] != (options, rec["ordinal"]):
            raise BadInput(f"{where}: options/ordinal of {qkey!r} differ from its earlier rows")
        if group in q["targets"]:
            raise BadInput(f"{where}: duplicate row for question {qkey!r}, group {group!r}")
        shares = resp if len(q["options"]) == len(subst) else [x * (1 - rr) for x in resp] + [rr]
        q["targets"][group] = dict(zip(q["options"], shares))
        q["attributes"][group] = str(rec["attribute"])
    for q in qs.values():
        q.pop("_sig")
    stem = p.name.split(".")[0]
    sid = survey_id or ("subpop_eval_gss2022" if stem == "subpop_eval" else f"subpop_{stem}")
    return _build(sid, list(qs.values()), seed=seed, source=str(p))


# ---- Cao et al. WVS / Pew Global ----------------------------------------------------------------------
def import_wvs(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
               survey_id: str | None = None) -> Survey:
    """Load a Cao et al. (2025) WVS / Pew Global json list (groups = countries; no overall group)."""
    _check_refused(refused)
    p = _existing(path, "WVS/Pew file")
    try:
        items = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, IsADirectoryError) as e:
        raise BadInput(f"{p}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(items, list):
        raise BadInput(f"{p}: expected a JSON list of items")
    low = p.name.lower()
    prefix = "wvs" if "wvs" in low else ("pew" if "pew" in low else "q")
    qs: dict[str, dict] = {}
    for n, it in enumerate(items):
        where = f"{p}: item {n}"
        if not isinstance(it, dict) or any(k not in it for k in ("id", "instruction", "input", "options", "options_dist")):
            raise BadInput(f"{where}: expected keys id, instruction, input, options, options_dist")
        m = _WVS_COUNTRY.search(str(it["instruction"]))
        if not m:
            raise BadInput(f"{where}: instruction does not name a country")
        country = m.group(1).strip()
        letters, labels = [], []
        for o in it["options"]:
            mo = _WVS_OPTION.match(str(o).strip())
            if not mo:
                raise BadInput(f"{where}: option {o!r} lacks an '(A)' style prefix")
            letters.append(mo.group(1).upper())
            labels.append(mo.group(2).strip())
        dup = {lab for lab in labels if labels.count(lab) > 1}
        labels = [f"{lab} ({letter})" if lab in dup else lab for lab, letter in zip(labels, letters)]
        dist = it["options_dist"]
        if not isinstance(dist, dict):
            raise BadInput(f"{where}: options_dist is not an object")
        unknown = [k for k in dist if str(k).upper() not in letters]
        if unknown:
            raise BadInput(f"{where}: options_dist letter {unknown[0]!r} is not an option")
        d = {str(k).upper(): v for k, v in dist.items()}
        shares = [_finite_nonneg(d.get(letter, 0.0), f"{where} options_dist[{letter}]") for letter in letters]
        tot = sum(shares)
        if tot <= 0:
            continue  # an all-zero item carries no distribution
        shares = [s / tot for s in shares]
        opts = labels
        refusal = [i for i, lab in enumerate(labels) if _WVS_REFUSED.search(lab)]
        if refused == "drop" and refusal:
            keep = [i for i in range(len(labels)) if i not in refusal]
            t2 = sum(shares[i] for i in keep)
            if t2 <= 0:
                continue
            opts, shares = [labels[i] for i in keep], [shares[i] / t2 for i in keep]
        if len(opts) < 2:
            continue
        qid = f"{prefix}_{it['id']}"
        text = re.sub(r"\s*Here are the options:\s*$", "", str(it["input"]).strip()).strip()
        q = qs.get(qid)
        if q is None:
            q = qs[qid] = {"qid": qid, "question": text, "options": opts, "ordinal": None,
                           "targets": {}, "attributes": {}}
        elif q["options"] != opts or q["question"] != text:
            raise BadInput(f"{where}: question {qid!r} has different text/options than its earlier items")
        if country in q["targets"]:
            raise BadInput(f"{where}: duplicate item for question {qid!r}, country {country!r}")
        q["targets"][country] = dict(zip(opts, shares))
        q["attributes"][country] = "COUNTRY"
    sid = survey_id or f"cao2025_{p.name.split('.')[0]}"
    return _build(sid, list(qs.values()), seed=seed, source=str(p))


# ---- generic YAML / CSV --------------------------------------------------------------------------------
def _generic_shares(raw: Any, options: list[str], where: str, normalise: bool) -> list[float]:
    if isinstance(raw, Mapping):
        unknown = [k for k in raw if str(k) not in options]
        if unknown:
            raise BadInput(f"{where}: option {unknown[0]!r} is not among the question's options")
        vals = [_finite_nonneg(raw.get(o, 0.0), f"{where}[{o}]") for o in options]
    elif isinstance(raw, list | tuple):
        if len(raw) != len(options):
            raise BadInput(f"{where}: {len(raw)} shares for {len(options)} options")
        vals = [_finite_nonneg(x, f"{where}[{i}]") for i, x in enumerate(raw)]
    else:
        raise BadInput(f"{where}: expected a list of shares or an {{option: share}} mapping")
    tot = sum(vals)
    if normalise:
        if tot <= 0:
            raise BadInput(f"{where}: all shares are zero")
    elif abs(tot - 1) > SUM_TOL:
        raise BadInput(f"{where}: shares sum to {tot:.4f}, not 1 (set `normalise: true` for counts/percent)")
    return [v / tot for v in vals]


def _generic_questions(doc: dict, p: Path, refused: str) -> tuple[list[dict], str]:
    if not isinstance(doc, dict) or not isinstance(doc.get("questions"), list) or not doc["questions"]:
        raise BadInput(f"{p}: expected a mapping with a non-empty `questions` list")
    normalise = bool(doc.get("normalise", False))
    attr_map = doc.get("attributes") or {}
    if not isinstance(attr_map, dict):
        raise BadInput(f"{p}: `attributes` must map group -> attribute")
    out = []
    for n, q in enumerate(doc["questions"]):
        where = f"{p}: questions[{n}]"
        if not isinstance(q, dict):
            raise BadInput(f"{where}: expected a mapping")
        for k in ("qid", "question", "options", "targets"):
            if q.get(k) in (None, "", [], {}):
                raise BadInput(f"{where}: field `{k}` is missing or empty")
        qid = str(q["qid"])
        where = f"{p}: question {qid!r}"
        if not isinstance(q["options"], list):
            raise BadInput(f"{where}: `options` must be a list")
        options = [str(o) for o in q["options"]]
        if len(options) < 2:
            raise BadInput(f"{where}: `options` has {len(options)} option(s); at least 2 are needed")
        if len(set(options)) != len(options):
            raise BadInput(f"{where}: `options` has duplicates")
        ords = q.get("ordinal")
        if ords is True:
            ords = list(range(1, len(options) + 1))
        elif ords is False:
            ords = None
        if ords is not None:
            if not isinstance(ords, list) or len(ords) != len(options):
                raise BadInput(f"{where}: `ordinal` must be true or a list of {len(options)} numbers")
            ords = [_finite(o, f"{where} ordinal") for o in ords]
            if max(ords) <= min(ords):
                raise BadInput(f"{where}: `ordinal` positions are all equal")
        split = q.get("split")
        if split is not None and split not in SPLITS:
            raise BadInput(f"{where}: `split` {split!r} is not one of {', '.join(SPLITS)}")
        if not isinstance(q["targets"], dict):
            raise BadInput(f"{where}: `targets` must map group -> shares")
        targets = {str(g): _generic_shares(v, options, f"{where} targets[{g}]", normalise)
                   for g, v in q["targets"].items()}
        opts = options
        ref_idx = [i for i, o in enumerate(options) if _is_refused(o)]
        if refused == "drop" and ref_idx:
            new_t = {}
            for g, s in targets.items():
                dr = _drop_refused(options, s)
                if dr is None:
                    raise BadInput(f"{where}: group {g!r} has only Refused answers")
                opts, new_t[g] = dr
            targets = new_t
            if ords is not None:
                ords = [o for i, o in enumerate(ords) if i not in ref_idx]
                ords = ords if max(ords) > min(ords) else None
        if len(opts) < 2:
            raise BadInput(f"{where}: fewer than 2 options remain after dropping Refused")
        out.append({"qid": qid, "question": str(q["question"]).strip(), "options": opts, "ordinal": ords,
                    "split": split, "targets": {g: dict(zip(opts, s)) for g, s in targets.items()},
                    "attributes": {g: (OVERALL if g == OVERALL else str(attr_map.get(g, "group")))
                                   for g in targets}})
    return out, str(doc.get("survey_id") or p.stem)


def _finite(x: Any, where: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise BadInput(f"{where}: {x!r} is not a number") from None
    if math.isnan(v) or math.isinf(v):
        raise BadInput(f"{where}: value is {v} (NaN or infinite)")
    return v


def _csv_to_doc(p: Path) -> dict:
    rows = _read_csv_rows(p, ("qid", "question", "option", "share"))
    qs: dict[str, dict] = {}
    attrs: dict[str, str] = {}
    sid = None
    for n, r in enumerate(rows, 2):
        where = f"{p}:{n}"
        qid, opt = (r["qid"] or "").strip(), (r["option"] or "").strip()
        if not qid or not opt:
            raise BadInput(f"{where}: empty qid or option")
        group = (r.get("group") or "").strip() or OVERALL
        q = qs.setdefault(qid, {"qid": qid, "question": r["question"], "options": [], "ord": {},
                                "targets": {}, "split": (r.get("split") or "").strip() or None})
        if opt not in q["options"]:
            q["options"].append(opt)
        if (r.get("ordinal") or "").strip():
            q["ord"][opt] = _finite(r["ordinal"], f"{where} ordinal")
        tg = q["targets"].setdefault(group, {})
        if opt in tg:
            raise BadInput(f"{where}: duplicate row for {qid!r}/{group!r}/{opt!r}")
        tg[opt] = _finite_nonneg(r["share"], f"{where} share")
        if (r.get("attribute") or "").strip():
            attrs[group] = r["attribute"].strip()
        sid = sid or (r.get("survey_id") or "").strip() or None
    questions = []
    for q in qs.values():
        ordm = q.pop("ord")
        q["ordinal"] = [ordm[o] for o in q["options"]] if ordm and len(ordm) == len(q["options"]) else None
        if ordm and q["ordinal"] is None:
            raise BadInput(f"{p}: question {q['qid']!r} gives ordinals for some options only")
        questions.append(q)
    return {"survey_id": sid or p.stem, "questions": questions, "attributes": attrs}


def import_generic(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
                   survey_id: str | None = None) -> Survey:
    """Load the hand-written generic YAML (or long CSV) format documented in this module."""
    _check_refused(refused)
    p = _existing(path, "survey file")
    if p.is_dir():
        raise BadInput(f"{p}: expected a .yaml/.yml/.csv file, got a directory")
    if p.suffix.lower() == ".csv":
        doc = _csv_to_doc(p)
    elif p.suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise BadInput(f"{p}: not valid YAML ({type(e).__name__})") from None
    else:
        raise BadInput(f"{p}: unknown extension {p.suffix!r}; the generic format is .yaml, .yml or .csv")
    questions, sid = _generic_questions(doc, p, refused)
    return _build(survey_id or sid, questions, seed=seed, source=str(p))


# ---- dispatcher ---------------------------------------------------------------------------------------
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
