"""SubPOP training data: (question, subgroup, human distribution) triples from imported surveys.

Paper 003, sec. 3.1 / Fig. 2: each example is a survey question q, a subpopulation g and the group's observed
answer distribution p_H(A_q | q, g); the model is trained on the QA-steered prompt (Fig. 14). Splits are by
*question*, as in the paper: the training surveys' questions are split 90/10 into train/valid (appendix B,
Fig. 9: "fine-tuned on 90% ..., with the remaining 10% used for validation"); evaluation surveys (other waves,
or another survey family) are held out whole.

JSONL export, one object per line (also the `finetune` config of a Hub dataset):
  {"survey_id": str, "qid": str, "question": str, "options": [str], "ordinal": [float] | null,
   "attribute": str, "group": str, "distribution": [float] (sums to 1, in option order),
   "split": "train" | "validation" | "test", "prompt": str (QA steering completion prompt ending "Answer:")}
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from personagen.errors import BadInput
from personagen.finetune.steering import Steering, group_label, question_prompt
from personagen.infile import read_text
from personagen.store import atomic_write_text
from personagen.surveys import OVERALL, Survey, assign_splits, import_opinionqa, import_subpop, load

VALID_FRACTION = 0.1
# Paper 003, Table 3 (and the authors' demographics_22.csv): the 22 subpopulations SubPOP fine-tunes on.
PAPER_GROUPS_22 = ("Northeast", "South", "College graduate/some postgrad", "Less than high school", "Male", "Female",
                   "Black", "White", "Asian", "Hispanic", "$100,000 or more", "Less than $30,000", "Democrat",
                   "Republican", "Liberal", "Conservative", "Moderate", "Protestant", "Jewish", "Hindu", "Atheist",
                   "Muslim")
HUB_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


@dataclass(frozen=True)
class Example:
    """One (question, subgroup, human distribution) triple."""

    survey_id: str
    qid: str
    question: str
    options: tuple[str, ...]
    ordinal: tuple[float, ...] | None  # NaN for an option outside the scale ("Refused", "Not sure")
    attribute: str
    group: str
    target: tuple[float, ...]
    split: str

    def prompt(self, fmt: str = "qa") -> str:
        return question_prompt(Steering(self.attribute, self.group, fmt), self.question, self.options)

    def to_json(self) -> dict:
        return {"survey_id": self.survey_id, "qid": self.qid, "question": self.question,
                "options": list(self.options),
                "ordinal": [None if o != o else o for o in self.ordinal] if self.ordinal else None,
                "attribute": self.attribute, "group": self.group, "distribution": list(self.target),
                "split": HUB_SPLITS[self.split], "prompt": self.prompt("qa")}


def open_survey(path: str | os.PathLike, refused: str = "keep") -> Survey:
    """A survey from a saved parquet, an OpinionQA wave folder, or a SubPOP .jsonl (imported on the fly).

    "Refused" is kept as an option by default: the paper's prompts list it and its KL runs over every letter
    including it (Fig. 2, Fig. 14; the authors' targets are responses + [refusal_rate]); the WD leaves it out
    (its ordinal position is NaN, as the authors' -1). refused="drop" is the former behaviour."""
    p = Path(path)
    if p.is_dir():
        return import_opinionqa(p, refused=refused)
    if p.suffix == ".jsonl":
        return import_subpop(p, refused=refused)
    return load(p)


def survey_examples(survey: Survey, *, split: str = "test", qids: Iterable[str] | None = None,
                    groups: Sequence[str] | None = None, include_overall: bool = False) -> list[Example]:
    """Every (question, group) of a survey as examples with the given split label.

    `groups` restricts to those group labels; the overall population is left out unless asked for
    (SubPOP trains and evaluates on subgroups)."""
    attrs = {g: a for a, gs in survey.attributes().items() for g in gs}
    want = list(groups) if groups is not None else [g for g in survey.groups() if include_overall or g != OVERALL]
    missing = [g for g in want if g not in attrs]
    if missing:
        raise BadInput(f"{survey.source}: group {missing[0]!r} not in survey")
    keep = set(qids) if qids is not None else None
    out: list[Example] = []
    for g in want:
        for qid, dist in survey.distributions(g).items():
            if keep is not None and qid not in keep:
                continue
            q = survey.question(qid)
            out.append(Example(survey.survey_id, qid, q.text, q.options, survey.positions(qid), attrs[g], g,
                               tuple(dist[o] for o in q.options), split))
    return out


def training_examples(surveys: Sequence[Survey], *, valid_fraction: float = VALID_FRACTION, seed: int = 0,
                      groups: Sequence[str] | None = None) -> tuple[list[Example], list[Example]]:
    """(train, valid) examples from the training surveys, split by question (a question's groups never
    straddle the split); the split is a seeded hash of "survey_id/qid", independent of input order."""
    if not 0 <= valid_fraction < 1:
        raise BadInput(f"--valid-fraction {valid_fraction}: must be in [0, 1)")
    keys = [f"{s.survey_id}/{q}" for s in surveys for q in s.qids]
    split = assign_splits(keys, seed=seed, fractions=(1 - valid_fraction, valid_fraction, 0.0))
    train: list[Example] = []
    valid: list[Example] = []
    for s in surveys:
        present = [g for g in s.groups() if g != OVERALL and group_label(g) in set(groups)] \
            if groups is not None else None
        for ex in survey_examples(s, split="train", groups=present):
            if split[f"{s.survey_id}/{ex.qid}"] == "valid":
                valid.append(Example(**{**ex.__dict__, "split": "valid"}))
            else:
                train.append(ex)
    if not train:
        raise BadInput("--train: the training surveys yield no (question, group) examples")
    return train, valid


def export_jsonl(examples: Iterable[Example], path: str | os.PathLike) -> Path:
    """Write examples as JSONL (format in the module docstring), atomically."""
    p = Path(path)
    if not p.parent.is_dir():
        raise BadInput(f"{p}: directory {p.parent} does not exist")
    atomic_write_text(p, "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in examples))
    return p


def read_jsonl(path: str | os.PathLike) -> list[Example]:
    """Read examples written by `export_jsonl` (BadInput naming the line on a malformed record)."""
    back = {v: k for k, v in HUB_SPLITS.items()}
    out = []
    for i, line in enumerate(read_text(path, "examples file").splitlines(), 1):
        try:
            r = json.loads(line)
            out.append(Example(r["survey_id"], r["qid"], r["question"], tuple(r["options"]),
                               tuple(float("nan") if o is None else float(o) for o in r["ordinal"])
                               if r["ordinal"] else None, r["attribute"], r["group"],
                               tuple(float(x) for x in r["distribution"]), back[r["split"]]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise BadInput(f"{path}:{i}: not a training-example record") from None
    return out


def export_hub_config(train: Sequence[Survey], out_dir: str | os.PathLike, *, evaluate: Sequence[Survey] = (),
                      name: str = "finetune", seed: int = 0) -> dict:
    """Write `<out_dir>/<name>/{train,validation,test}.jsonl` and return the dataset-card config entry
    (`{"config_name": name, "data_files": [{"split": ..., "path": ...}]}`) for publish to list in the card's
    YAML header. Pew-derived surveys (OpinionQA, SubPOP-Train) may not be redistributed: publish must not
    push them; GSS-derived ones (SubPOP-Eval) may be."""
    from personagen.names import child

    base = child(out_dir, name, "config name")
    base.mkdir(parents=True, exist_ok=True)
    tr, va = training_examples(train, seed=seed)
    te = [e for s in evaluate for e in survey_examples(s, split="test")]
    files = []
    for split, exs in (("train", tr), ("validation", va), ("test", te)):
        if exs:
            export_jsonl(exs, base / f"{split}.jsonl")
            files.append({"split": split, "path": f"{name}/{split}.jsonl"})
    return {"config_name": name, "data_files": files}
