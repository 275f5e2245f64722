"""Which questions a run asks: one rule for every command (`--questions`, `--per-split`, `--max-questions`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from personagen.errors import BadInput
from personagen.surveys.schema import SPLITS, Survey


def parse_qids(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`--questions QID,...` as a tuple of ids (None when not given); an empty list is bad input."""
    if text is None:
        return None
    parts = text.split(",") if isinstance(text, str) else list(text)
    qids = tuple(dict.fromkeys(str(q).strip() for q in parts if str(q).strip()))
    if not qids:
        raise BadInput("--questions: give at least one question id (QID,QID,...)")
    return qids


def select_questions(survey: Survey, *, split: str | Iterable[str] = "all", questions: Sequence[str] | None = None,
                     per_split: int | None = None, max_questions: int | None = None, seed: int = 0) -> list[str]:
    """Question ids to ask, in survey order: those of `split`; then only `questions` (ids, each must be in the
    survey and the split); then `per_split` drawn (seeded) from each of train / valid / test, so a small run
    still has every split; then the first `max_questions`. BadInput when nothing is left."""
    pool = survey.split_qids(split)
    if questions is not None:
        unknown = [q for q in questions if q not in survey.qids]
        if unknown:
            raise BadInput(f"--questions: no question {unknown[0]!r} in survey {survey.survey_id!r} "
                           f"(ids look like {', '.join(survey.qids[:3])})")
        outside = [q for q in questions if q not in pool]
        if outside:
            raise BadInput(f"--questions: question {outside[0]!r} is in split {survey.split_of(outside[0])!r}, "
                           f"not in {split!r}")
        want = set(questions)
        pool = [q for q in pool if q in want]
    if per_split is not None:
        if per_split < 1:
            raise BadInput(f"--per-split {per_split}: must be at least 1")
        rng = np.random.default_rng(seed)
        chosen: set[str] = set()
        for s in SPLITS:
            ids = [q for q in pool if survey.split_of(q) == s]
            chosen.update(ids[i] for i in rng.permutation(len(ids))[:per_split])
        pool = [q for q in pool if q in chosen]
    if max_questions is not None:
        if max_questions < 1:
            raise BadInput(f"--max-questions {max_questions}: must be at least 1")
        pool = pool[:max_questions]
    if not pool:
        raise BadInput(f"{survey.source}: no questions in split {split!r} (after --questions / --per-split)")
    return pool
