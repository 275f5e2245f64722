"""Cao et al. (2025) ``sft_wvs_valid.json`` (WVS wave 7, percentages) or ``global_pew_test.json`` (Pew Global
Attitudes, fractions).

Groups are countries (attribute "COUNTRY", parsed from "How would someone from <Country> answer ..."), the
question id is ``wvs_<id>`` / ``pew_<id>`` (the item ``id`` is a question id shared by the countries), options
drop their "(A)" prefix (a label repeated within an item, a parsing artifact in a few Pew items, keeps its
letter: "Other (C)"). Each item is divided by its own sum (percent or fraction alike); items whose shares are
all zero (8 in the Pew file) are skipped and counted. Refusals follow `refusals.is_refusal` ("DK/Refused"). No
ordinal mappings (the files give none) and no overall group.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from personagen.errors import BadInput
from personagen.infile import load_json
from personagen.surveys import common
from personagen.surveys.schema import QuestionRecord, Survey

TERMS = common.Licence("WVS data: free for non-commercial research with citation, no redistribution; Pew Global "
                       "Attitudes: Pew's terms of use; the Cao et al. repository states no licence",
                       "Cao et al. (2025), Specializing Large Language Models to Simulate Survey Response "
                       "Distributions for Global Populations, NAACL")
_COUNTRY = re.compile(r"How would someone from (.+?) answer the following question", re.S)
_OPTION = re.compile(r"^\(([A-Za-z])\)\s*(.*)$", re.S)
_KEYS = ("id", "instruction", "input", "options", "options_dist")


def _options(it: dict, where: str) -> tuple[list[str], list[str]]:
    """Letters and labels of an item's options (a label repeated in the item keeps its letter)."""
    letters, labels = [], []
    for o in it["options"] if isinstance(it["options"], list) else []:
        mo = _OPTION.match(str(o).strip())
        if not mo:
            raise BadInput(f"{where}: option {o!r} lacks an '(A)' style prefix")
        letters.append(mo.group(1).upper())
        labels.append(mo.group(2).strip())
    dup = {lab for lab in labels if labels.count(lab) > 1}
    labels = [f"{lab} ({letter})" if lab in dup else lab for lab, letter in zip(labels, letters)]
    return letters, common.clean_options(labels, f"{where} options")


def _item_shares(it: dict, letters: list[str], where: str) -> list[float] | None:
    """The item's shares in option order, divided by their sum; None for an all-zero item."""
    dist = it["options_dist"]
    if not isinstance(dist, dict):
        raise BadInput(f"{where}: options_dist is not an object")
    unknown = [k for k in dist if str(k).upper() not in letters]
    if unknown:
        raise BadInput(f"{where}: options_dist letter {unknown[0]!r} is not an option")
    d = {str(k).upper(): v for k, v in dist.items()}
    shares = [common.finite_nonneg(d.get(letter, 0.0), f"{where} options_dist[{letter}]") for letter in letters]
    tot = sum(shares)
    return [s / tot for s in shares] if tot > 0 else None


def _item(it: Any, where: str, refused: str, skips: common.Skips, key: str
          ) -> tuple[str, str, list[str], list[float]] | None:
    """(country, question text, options, shares) of one item, or None (counted in `skips`)."""
    if not isinstance(it, dict) or any(k not in it for k in _KEYS):
        raise BadInput(f"{where}: expected keys {', '.join(_KEYS)}")
    m = _COUNTRY.search(str(it["instruction"]))
    if not m:
        raise BadInput(f"{where}: instruction does not name a country")
    letters, opts = _options(it, where)
    shares = _item_shares(it, letters, where)
    if shares is None:
        skips.add("have all shares zero", key)
        return None
    if refused == "drop":
        dr = common.drop_refused(opts, shares)
        if dr is None:
            skips.add("have only refusals", key)
            return None
        opts, shares = dr
    if len(opts) < 2:
        skips.add("have fewer than 2 options besides refusals", key)
        return None
    text = re.sub(r"\s*Here are the options:\s*$", "", str(it["input"]).strip()).strip()
    return m.group(1).strip(), text, opts, shares


def import_wvs(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
               survey_id: str | None = None) -> Survey:
    """Load a Cao et al. (2025) WVS / Pew Global json list (groups = countries; no overall group)."""
    common.check_refused(refused)
    p = common.existing(path, "WVS/Pew file")
    try:
        items = load_json(p, "WVS/Pew file")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, IsADirectoryError) as e:
        raise BadInput(f"{p}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(items, list):
        raise BadInput(f"{p}: expected a JSON list of items")
    low = p.name.lower()
    prefix = "wvs" if "wvs" in low else ("pew" if "pew" in low else "q")
    qs: dict[str, QuestionRecord] = {}
    skips = common.Skips("items (question × country)", total=len(items))
    for n, it in enumerate(items):
        where = f"{p}: item {n}"
        got = _item(it, where, refused, skips, f"{prefix}_{it.get('id') if isinstance(it, dict) else n}")
        if got is None:
            continue
        country, text, opts, shares = got
        qid = f"{prefix}_{it['id']}"
        q = qs.setdefault(qid, QuestionRecord(qid, text, tuple(opts), {}, {}))
        if q.options != tuple(opts) or q.question != text:
            raise BadInput(f"{where}: question {qid!r} has different text/options than its earlier items")
        if country in q.targets:
            raise BadInput(f"{where}: duplicate item for question {qid!r}, country {country!r}")
        q.targets[country] = dict(zip(opts, shares))  # type: ignore[index]
        q.attributes[country] = "COUNTRY"  # type: ignore[index]
    sid = survey_id or f"cao2025_{p.name.split('.')[0]}"
    return common.build(sid, list(qs.values()), seed=seed, source=str(p),
                        prov=common.provenance("wvs", p, [p], TERMS, refused), skips=skips)
