"""Cohen's kappa, the agreement statistic PERSONA uses throughout §4 (Fig. 5–9).

κ = (p_o − p_e) / (1 − p_e), where p_o is the share of items both annotators label alike and
p_e = Σ_k p_1(k) · p_2(k) is the agreement expected by chance from each annotator's own label shares.
κ is undefined (NaN) when p_e = 1, i.e. both annotators give one and the same label to every item.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two equally long label sequences (NaN when undefined, see module doc)."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} labels vs {len(b)}")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e >= 1.0:
        return math.nan
    return (p_o - p_e) / (1.0 - p_e)


def paired(a: Sequence[Any], b: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """Keep the items both annotators labelled (None = no usable label)."""
    keep = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return [x for x, _ in keep], [y for _, y in keep]


def summary(values: Sequence[float]) -> dict[str, Any]:
    """n, how many are defined, mean / median / quartiles of the defined values (None when there are none)."""
    v = sorted(x for x in values if not math.isnan(x))

    def q(p: float) -> float | None:
        if not v:
            return None
        i = p * (len(v) - 1)
        lo, hi = math.floor(i), math.ceil(i)
        return round(v[lo] + (v[hi] - v[lo]) * (i - lo), 4)

    return {"n": len(values), "defined": len(v), "mean": round(sum(v) / len(v), 4) if v else None,
            "median": q(0.5), "q1": q(0.25), "q3": q(0.75)}
