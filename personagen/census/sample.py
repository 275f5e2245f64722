"""Draw persons with probability proportional to their PWGTP weight (with or without replacement).

With replacement: n independent draws, P(record i) = w_i / Σw (inverse-CDF on one PCG64 stream).
Without replacement: Pareto πps sampling (Rosén 1997): target inclusion probabilities λ_i = n·w_i/Σw (records
with λ_i ≥ 1 are taken with certainty, iteratively), each other record gets the key
Q_i = [U_i/(1−U_i)] / [λ_i/(1−λ_i)] with U_i ~ U(0,1), and the n smallest keys are taken. Its inclusion
probabilities are very close to λ_i (closer than successive/Efraimidis–Spirakis sampling), so the sample is
approximately self-weighting, like the with-replacement draw. Both are bit-identical for a given seed.
"""

from __future__ import annotations

import numpy as np

from personagen.errors import BadInput


def rng_for(seed: int) -> np.random.Generator:
    """The project's seeded generator: numpy Generator(PCG64(seed))."""
    return np.random.Generator(np.random.PCG64(seed))


def inclusion_probabilities(weights: np.ndarray, n: int) -> np.ndarray:
    """πps target inclusion probabilities n·w/Σw, capped at 1 with the excess redistributed (iteratively)."""
    w = np.asarray(weights, dtype=np.float64)
    lam = np.zeros_like(w)
    certain = np.zeros(w.shape, dtype=bool)
    while True:
        rest = ~certain
        k = n - int(certain.sum())
        lam[rest] = k * w[rest] / w[rest].sum()
        lam[certain] = 1.0
        over = rest & (lam >= 1.0)
        if not over.any():
            return lam
        certain |= over


def distinct_draws_ok(weights: np.ndarray, n: int, tol: float = 0.01) -> bool:
    """True when n distinct records can be drawn (Pareto πps) and the sample stays self-weighting.

    Records whose target inclusion probability n·w_i/Σw exceeds 1 can only be taken once, so the excess mass
    Σ max(n·w_i/Σw − 1, 0) is lost and heavy-weight people are under-represented; distinct draws are the default
    only while that excess is at most `tol`·n (1 %), e.g. up to about n = 900 from a 5,400-record state file."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or w.sum() <= 0 or n > int(np.count_nonzero(w > 0)):
        return False
    lam = n * w / w.sum()
    return float(np.maximum(lam - 1.0, 0.0).sum()) <= tol * n


def sample_indices(weights: np.ndarray, n: int, seed: int, *, replace: bool = True) -> np.ndarray:
    """Indices of `n` records drawn proportional to `weights` (draw order; repeats only with replacement)."""
    w = np.asarray(weights, dtype=np.float64)
    if n <= 0:
        raise BadInput(f"-n {n}: the number of personas must be positive")
    if w.size == 0:
        raise BadInput("no census records left to sample (check --min-age/--state and the rules report)")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise BadInput("PWGTP: weights must be finite, non-negative and not all zero")
    rng = rng_for(seed)
    if replace:
        cdf = np.cumsum(w)
        u = rng.random(n) * cdf[-1]
        return np.minimum(np.searchsorted(cdf, u, side="right"), w.size - 1)
    positive = int(np.count_nonzero(w))
    if n > positive:
        raise BadInput(f"-n {n}: sampling without replacement needs n ≤ the {positive} eligible census records")
    lam = inclusion_probabilities(w, n)
    u = rng.random(w.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        key = (u / (1.0 - u)) / (lam / (1.0 - lam))
    key[lam >= 1.0] = -np.inf
    key[lam <= 0.0] = np.inf
    order = np.argsort(key, kind="stable")
    return order[:n]
