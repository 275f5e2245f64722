"""The order options are shown in (`elicit --option-order`), mapping answers back, and a position-bias figure.

`given` shows the survey's order (what the paper protocols do). `shuffle` draws a permutation per persona and
question from the run's seed, so LLMs' preference for the first letters spreads over the options instead of
landing on the survey's first one; `reverse` turns an ordinal scale around. Either way, options that must
stay last ("Refused", "Don't know", ...) stay last in their own order: the survey's per-option `keep_last` flag
(`Survey.keep_last`) where given, else `stays_last` reads the label.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

ORDERS = ("given", "shuffle", "reverse")
_LAST = re.compile(r"\b(refused|don'?t know|do not know|not sure|no answer|prefer not|dk)\b", re.IGNORECASE)


def stays_last(label: str) -> bool:
    """Whether an option is non-substantive and keeps its place at the end ("Refused", "Don't know", "DK/Ref",
    "Not sure"); a label such as "I am not sure if there were guns in my household" counts too."""
    return bool(_LAST.search(label.replace("\u2019", "'")))


def display_order(options: Sequence[str], how: str, seed: int, persona_id: str, qid: str,
                  keep_last: Sequence[bool] | None = None) -> list[int]:
    """Survey option indices in the order shown: position j shows option order[j]. `keep_last`: the survey's
    per-option flag (`Survey.keep_last`, the surveys stage's one refusal rule); without it, `stays_last`."""
    n = len(options)
    if how == "given":
        return list(range(n))
    flags = list(keep_last) if keep_last is not None and len(keep_last) == n else [stays_last(o) for o in options]
    last = [i for i in range(n) if flags[i]]
    if len(last) == n:
        last = []
    body = [i for i in range(n) if i not in last]
    if how == "reverse":
        body.reverse()
    elif how == "shuffle":
        digest = hashlib.sha256(f"{seed}\x1f{persona_id}\x1f{qid}".encode()).digest()
        random.Random(int.from_bytes(digest[:8], "big")).shuffle(body)
    else:
        raise ValueError(f"unknown option order {how!r}")
    return body + last


def to_survey(shown: Sequence[float], order: Sequence[int]) -> list[float]:
    """Probabilities over the shown letters -> probabilities over the survey's options."""
    out = [0.0] * len(order)
    for j, i in enumerate(order):
        out[i] = shown[j]
    return out


def order_text(order: Sequence[int]) -> str:
    """The `option_order` column: the survey option indices in the order shown, e.g. "2,0,1"."""
    return ",".join(str(i) for i in order)


@dataclass
class PositionBias:
    """Share of answers on the first letter shown vs the share expected from the options that were shown first.

    Expected: for each answer, the share of all this run's answers to its question that went to the option
    shown first to it (so content preferences are kept and only the position is taken away). Under the given
    order both are equal by construction: the figure needs `shuffle` (or `reverse`) to say anything."""

    answers: list[tuple[str, int, list[float]]] = field(default_factory=list)

    def add(self, qid: str, first: int, survey_probs: Sequence[float]) -> None:
        self.answers.append((qid, first, list(survey_probs)))

    def summary(self) -> dict[str, float] | None:
        if not self.answers:
            return None
        totals: dict[str, list[float]] = {}
        for q, _first, p in self.answers:
            t = totals.setdefault(q, [0.0] * len(p))
            for i, x in enumerate(p):
                t[i] += x
        shares = {q: [x / (sum(t) or 1.0) for x in t] for q, t in totals.items()}
        n = len(self.answers)
        return {"first_share": round(sum(p[f] for _q, f, p in self.answers) / n, 4),
                "expected_first_share": round(sum(shares[q][f] for q, f, _p in self.answers) / n, 4),
                "uniform_first_share": round(sum(1 / len(p) for _q, _f, p in self.answers) / n, 4),
                "answers": n}


__all__ = ["ORDERS", "PositionBias", "display_order", "order_text", "stays_last", "to_survey"]
