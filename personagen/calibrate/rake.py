"""Raking (generalised iterative proportional fitting) of persona weights to target margins (baseline).

Each question is a margin; column j of D restricted to question q is agent j's probability vector over
the options (one-hot for census personas, soft for LLM answer distributions). One IPF sweep updates, for
each question in turn, w_j ← w_j · Σ_{i∈q} D_ij · r_i / (Dw)_i, which is classic raking for one-hot
columns and its EM-style generalisation for soft ones. Cells with (Dw)_i = 0 cannot be moved and are left
out of the ratio (they count as unmatched).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass
class RakeResult:
    """Raked weights, sweeps used, whether the margins converged, the largest margin error left."""

    w: Array
    n_iter: int
    converged: bool
    max_error: float
    unmatched_cells: int


def rake(
    D: Array,
    r: Array,
    groups: Array,
    base: Array,
    *,
    max_iter: int = 500,
    tol: float = 1e-9,
) -> RakeResult:
    """IPF from `base` until every margin is within `tol` (max abs) or `max_iter` sweeps."""
    D = np.asarray(D, dtype=float)
    r = np.asarray(r, dtype=float)
    g = np.asarray([str(x) for x in groups])
    qids = list(dict.fromkeys(g.tolist()))
    rows = [np.flatnonzero(g == q) for q in qids]
    w = np.asarray(base, dtype=float).copy()
    w = w / w.sum()
    err = np.inf
    unmatched = 0
    for it in range(1, max_iter + 1):
        for idx in rows:
            Dq = D[idx]
            rq = r[idx]
            p = Dq @ w
            ratio = np.where(p > 0, rq / np.where(p > 0, p, 1.0), 0.0)
            # an agent's mass outside this question's options (missing answer) keeps ratio 1
            mass = Dq.sum(axis=0)
            fac = ratio @ Dq + np.maximum(1.0 - mass, 0.0)
            w = w * fac
            s = w.sum()
            if s <= 0:
                break
            w = w / s
        p = D @ w
        unmatched = int(np.sum((p <= 0) & (r > 0)))
        err = float(np.max(np.abs(np.where((p <= 0) & (r > 0), 0.0, p - r)))) if len(r) else 0.0
        if err <= tol:
            return RakeResult(w, it, True, err, unmatched)
    return RakeResult(w, max_iter, False, err, unmatched)
