"""SubPOP (Suh et al. 2025) ``subpop_eval.jsonl``: one JSON object per (question, subgroup).

Each line holds a weighted ``responses`` vector over the non-refusal options and ``refusal_rate``. There is no
overall distribution in that file and none is invented: the survey has only subgroups, and
``distributions("overall")`` raises BadInput. With ``refused="keep"`` the shares are
``responses * (1 - refusal_rate)`` plus ``refusal_rate`` for "Refused". SubPOP marks non-ordinal options with
ordinal -1; a question with any negative position has no ordinal mapping.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personagen.errors import BadInput
from personagen.infile import read_text
from personagen.surveys.common import (
    SUM_TOL,
    Licence,
    build,
    check_refused,
    clean_options,
    existing,
    finite_nonneg,
    positions,
    provenance,
    valid_ordinal,
)
from personagen.surveys.refusals import is_refusal
from personagen.surveys.schema import QuestionRecord, Survey

TERMS = Licence("SubPOP repository: BSD-3-Clause (Canny Lab, UC Berkeley); GSS public with citation; "
                "Pew-derived parts carry Pew's terms of use (no redistribution)",
                "Suh et al. (2025), Language Model Fine-Tuning on Scaled Survey Data for Predicting Distributions "
                "of Public Opinions (SubPOP)")
_NEED = ("qkey", "attribute", "group", "question", "options", "ordinal", "responses", "refusal_rate")


@dataclass
class _Acc:
    """One question while its subgroup lines are read."""

    qid: str
    question: str
    options: list[str]
    ordinal: tuple[float, ...] | None
    signature: tuple[list[str], Any]
    targets: dict[str, dict[str, float]] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)


def _file(path: str | os.PathLike) -> Path:
    p = existing(path, "SubPOP file")
    if p.is_dir():
        cand = p / "subpop_eval.jsonl"
        if not cand.is_file():
            raise BadInput(f"{p}: directory has no subpop_eval.jsonl")
        p = cand
    return p


def _responses(rec: dict, subst: list[str], where: str) -> tuple[list[float], float]:
    """The substantive shares (renormalised) and the refusal rate of one line, checked."""
    resp = [finite_nonneg(x, f"{where} responses") for x in rec["responses"]]
    if len(resp) != len(subst):
        raise BadInput(f"{where}: responses has {len(resp)} values for {len(subst)} non-Refused options")
    if abs(sum(resp) - 1) > SUM_TOL:
        raise BadInput(f"{where}: responses sum to {sum(resp):.4f}, not 1")
    rr = finite_nonneg(rec["refusal_rate"], f"{where} refusal_rate")
    if rr > 1:
        raise BadInput(f"{where}: refusal_rate {rr} exceeds 1")
    return [x / sum(resp) for x in resp], rr


def _new_question(rec: dict, options: list[str], subst: list[str], refused: str) -> _Acc:
    has_ref = len(subst) < len(options)
    opts = subst + (["Refused"] if refused == "keep" and has_ref else [])
    ords = rec["ordinal"]
    ordinal = None
    if len(opts) == len(subst) and isinstance(ords, list) and all(
            isinstance(o, int | float) and not isinstance(o, bool) and o >= 0 for o in ords):
        ordinal = valid_ordinal(ords, len(subst))
    if ordinal is None:  # off-scale options kept, left out of the distance (the authors' ordinal_emd)
        ordinal = positions(ords, opts)
    return _Acc(str(rec["qkey"]), str(rec["question"]).strip(), opts, ordinal, (options, ords))


def _add_line(qs: dict[str, _Acc], rec: Any, where: str, refused: str) -> None:
    if not isinstance(rec, dict) or any(k not in rec for k in _NEED):
        raise BadInput(f"{where}: expected keys {', '.join(_NEED)}")
    if not isinstance(rec["options"], list):
        raise BadInput(f"{where}: options is not a list")
    options = clean_options(rec["options"], f"{where} options")
    subst = [o for o in options if not is_refusal(o)]
    resp, rr = _responses(rec, subst, where)
    qkey, group = str(rec["qkey"]), str(rec["group"])
    q = qs.get(qkey)
    if q is None:
        q = qs[qkey] = _new_question(rec, options, subst, refused)
    elif q.signature != (options, rec["ordinal"]):
        raise BadInput(f"{where}: options/ordinal of {qkey!r} differ from its earlier rows")
    if group in q.targets:
        raise BadInput(f"{where}: duplicate row for question {qkey!r}, group {group!r}")
    shares = resp if len(q.options) == len(subst) else [x * (1 - rr) for x in resp] + [rr]
    q.targets[group] = dict(zip(q.options, shares))
    q.attributes[group] = str(rec["attribute"])


def import_subpop(path: str | os.PathLike, *, refused: str = "drop", seed: int = 0,
                  survey_id: str | None = None) -> Survey:
    """Load SubPOP subpop_eval.jsonl (weighted subgroup distributions; no overall group)."""
    check_refused(refused)
    p = _file(path)
    qs: dict[str, _Acc] = {}
    try:
        lines = read_text(p, "SubPOP file").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{p}: unreadable ({type(e).__name__})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise BadInput(f"{p}:{n}: not a JSON object") from None
        _add_line(qs, rec, f"{p}:{n}", refused)
    records = [QuestionRecord(q.qid, q.question, tuple(q.options), q.targets, q.attributes, q.ordinal)
               for q in qs.values()]
    stem = p.name.split(".")[0]
    sid = survey_id or ("subpop_eval_gss2022" if stem == "subpop_eval" else f"subpop_{stem}")
    return build(sid, records, seed=seed, source=str(p), prov=provenance("subpop", p, [p], TERMS, refused))
