"""OpinionQA (Santurkar et al. 2023) human_resp wave folders (``American_Trends_Panel_Wxx``).

``info.csv`` (key, question, references = ordered options, option_ordinal) and ``<ATTR>_data.json``
*unweighted* respondent counts ``{qkey: {group: {option: count}}}``. Counts become shares. The "overall" group is
the sum over all CREGION groups. One group per label of each single-attribute file (AGE, CREGION, EDUCATION,
INCOME, POLIDEOLOGY, POLPARTY, RACE, SEX); the two-attribute files (POLPARTY_RACE, ...) and NONE_data.json (a
copy of POLPARTY) are skipped, and so are the pseudo-groups "nan" and "Refused" (people who did not report the
attribute) and a group with no counts for a question. Questions of info.csv the count files do not cover are
skipped and counted ("56 of 78 info.csv questions have no human answers"). Ordinals come from
``option_ordinal`` when it gives one distinct-valued position per non-refusal option; otherwise (a trailing "Not
sure" without a position, or all positions equal) the question has no ordinal mapping. The
``Pew_American_Trends_Panel_disagreement_500`` folder has no counts and is refused with BadInput.
"""

from __future__ import annotations

import ast
import json
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from personagen.errors import BadInput
from personagen.infile import load_json
from personagen.surveys.common import (
    Licence,
    Skips,
    build,
    check_refused,
    clean_options,
    drop_refused,
    existing,
    finite_nonneg,
    positions,
    provenance,
    read_csv_rows,
    valid_ordinal,
)
from personagen.surveys.refusals import is_refusal
from personagen.surveys.schema import OVERALL, QuestionRecord, Survey

TERMS = Licence("Pew Research Center American Trends Panel data: Pew's terms of use (attribution required, no "
                "redistribution); processed by OpinionQA, whose repository states no licence",
                "Santurkar et al. (2023), Whose Opinions Do Language Models Reflect?, ICML; Pew Research Center ATP")
_SKIP_GROUPS = {"nan", "refused", "", "none"}
_META_KEYS = ("MC_options", "question_text")
Counts = dict[str, dict]  # {attribute: {question key: {group: {option: count}}}}
Dist = Callable[[str, str, str, list[str]], list[float]]


class _Unmatched(ValueError):
    """An option in a count file that matches no info.csv reference, even after normalising."""


@dataclass(frozen=True)
class _Wave:
    """One question before group labels are made unique: targets keyed by (attribute, group label)."""

    qid: str
    question: str
    options: tuple[str, ...]
    ordinal: tuple[float, ...] | None
    targets: dict[tuple[str, str], list[float]]


def _count_files(p: Path) -> list[Path]:
    """The single-attribute count files (two-attribute files and the POLPARTY duplicate NONE are left out)."""
    return [f for f in sorted(p.glob("*_data.json"))
            if "_" not in f.name[: -len("_data.json")] and f.name != "NONE_data.json"]


def _counts(p: Path) -> Counts:
    counts: Counts = {}
    for f in _count_files(p):
        attr = f.name[: -len("_data.json")]
        try:
            counts[attr] = load_json(f, "count file")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise BadInput(f"{f}: not valid JSON ({type(e).__name__})") from None
        data = counts[attr]
        if not isinstance(data, dict) or not all(isinstance(g, dict | None) for g in data.values()):
            raise BadInput(f"{f}: expected a JSON object of questions, each an object of groups")
    return counts


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
        out[ref] += finite_nonneg(v, f"{where}/{o}")
    return [out[o] for o in refs]


def _shares(group_counts: dict[tuple[str, str], list[float]], refs: list[str], refused: str
            ) -> tuple[list[str], dict[tuple[str, str], list[float]]]:
    """Counts -> shares per group (refusals dropped and renormalised with refused="drop"); the options kept."""
    opts = refs
    targets: dict[tuple[str, str], list[float]] = {}
    for g, c in group_counts.items():
        tot = sum(c)
        if tot <= 0:
            continue
        if refused == "drop":
            dr = drop_refused(refs, [x / tot for x in c])
            if dr is None:
                continue
            opts, targets[g] = dr
        else:
            targets[g] = [x / tot for x in c]
    return opts, targets


def _group_counts(key: str, counts: Counts, dist: Dist, refs: list[str]) -> dict[tuple[str, str], list[float]]:
    """{(attribute, group): counts in refs order}, with the overall group the sum of the CREGION groups."""
    out: dict[tuple[str, str], list[float]] = {}
    overall = [0.0] * len(refs)
    for g in counts["CREGION"][key]:
        if g not in _META_KEYS:
            overall = [a + b for a, b in zip(overall, dist("CREGION", key, g, refs))]
    out[(OVERALL, OVERALL)] = overall
    for attr, data in counts.items():
        for g in data.get(key, {}):
            if g not in _META_KEYS and g.strip().lower() not in _SKIP_GROUPS:
                out[(attr, g)] = dist(attr, key, g, refs)
    return out


def _question(r: dict[str, str], counts: Counts, dist: Dist, info: Path, refused: str,
              skips: Skips) -> _Wave | None:
    """One question from its info.csv row, or None (counted in `skips`) when it cannot be used."""
    key = (r.get("key") or "").strip()
    if not key or key not in counts["CREGION"]:
        skips.add("have no human answers", key)
        return None
    try:
        refs = clean_options(ast.literal_eval(r["references"]), f"{info}: references of {key!r}")
    except (ValueError, SyntaxError, TypeError):
        raise BadInput(f"{info}: references of {key!r} is not a Python list") from None
    try:
        ords = ast.literal_eval(r["option_ordinal"]) if r["option_ordinal"].strip() else None
    except (ValueError, SyntaxError):
        ords = None
    try:
        opts, targets = _shares(_group_counts(key, counts, dist, refs), refs, refused)
    except _Unmatched as e:  # one messy question does not sink the wave
        warnings.warn(f"{info.parent.name}: question {key!r} skipped: {e}", stacklevel=3)
        skips.add("name an option that is not in info.csv", key)
        return None
    if (OVERALL, OVERALL) not in targets:
        skips.add("have only refusals", key)
        return None
    substantive = [o for o in refs if not is_refusal(o)]
    ordinal = valid_ordinal(ords, len(substantive)) if len(opts) == len(substantive) else None
    if ordinal is None:  # off-scale options kept, left out of the distance (SubPOP authors' ordinal_emd)
        ordinal = positions(ords, opts)
    return _Wave(key, r["question"].strip(), tuple(opts), ordinal, targets)


def _records(waves: list[_Wave]) -> list[QuestionRecord]:
    """Key groups by label; a label under two attributes becomes "label (ATTR)"."""
    label_attrs: dict[str, set[str]] = {}
    for w in waves:
        for a, g in w.targets:
            label_attrs.setdefault(g, set()).add(a)
    out = []
    for w in waves:
        named = {(a, g if len(label_attrs[g]) == 1 else f"{g} ({a})"): s for (a, g), s in w.targets.items()}
        out.append(QuestionRecord(w.qid, w.question, w.options,
                                  {g: dict(zip(w.options, s)) for (_, g), s in named.items()},
                                  {g: a for (a, g) in named}, w.ordinal))
    return out


def _wave_folder(path: str | os.PathLike) -> Path:
    p = existing(path, "OpinionQA folder")
    if p.is_file():
        p = p.parent
    if not (p / "info.csv").is_file():
        raise BadInput(f"{p}: not an OpinionQA wave folder (no info.csv)")
    if not (p / "CREGION_data.json").is_file():
        if not list(p.glob("*_data.json")):
            raise BadInput(f"{p}: no <ATTR>_data.json count files (folders such as disagreement_500 list questions "
                           f"only); import a wave folder like American_Trends_Panel_W26")
        raise BadInput(f"{p / 'CREGION_data.json'}: missing; it is needed for the overall distribution")
    return p


def import_opinionqa(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
                     survey_id: str | None = None) -> Survey:
    """Load an OpinionQA human_resp wave folder (counts → shares; overall = sum of CREGION groups)."""
    check_refused(refused)
    p = _wave_folder(path)
    info = p / "info.csv"
    rows = read_csv_rows(info, ("key", "question", "references", "option_ordinal"))
    counts = _counts(p)

    def dist(attr: str, key: str, group: str, refs: list[str]) -> list[float]:
        raw = counts[attr][key][group]
        where = f"{p / (attr + '_data.json')}: {key}/{group}"
        if not isinstance(raw, dict):
            raise BadInput(f"{where}: expected {{option: count}}")
        return _match_counts(raw, refs, where)

    skips = Skips("info.csv questions", total=len(rows))
    waves = [w for r in rows if (w := _question(r, counts, dist, info, refused, skips)) is not None]
    m = re.search(r"(W\d+)$", p.name)
    sid = survey_id or (f"opinionqa_{m.group(1)}" if m else f"opinionqa_{p.name}")
    prov = provenance("opinionqa", p, [info, *_count_files(p)], TERMS, refused)
    return build(sid, _records(waves), seed=seed, source=str(p), prov=prov, skips=skips)


def opinionqa_respondents(path: str | os.PathLike) -> dict[tuple[str, str, str], int]:
    """{(qid, attribute, group label): respondents who gave a non-refusal answer} for an OpinionQA wave
    folder (its count files are unweighted respondent counts). Group labels are the raw ones, without the
    "(ATTR)" tag `import_opinionqa` adds to labels shared by two attributes."""
    p = existing(path, "OpinionQA folder")
    if p.is_file():
        p = p.parent
    out: dict[tuple[str, str, str], int] = {}
    for attr, data in _counts(p).items():
        f = p / f"{attr}_data.json"
        for key, groups in data.items():
            for g, raw in (groups or {}).items():
                if isinstance(raw, dict) and g not in _META_KEYS:
                    out[(key, attr, g)] = int(sum(finite_nonneg(v, f"{f}: {key}/{g}") for o, v in raw.items()
                                                  if not is_refusal(str(o))))
    if not out:
        raise BadInput(f"{p}: no <ATTR>_data.json respondent counts")
    return out
