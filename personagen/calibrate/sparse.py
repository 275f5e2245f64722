"""Sparse estimator: nonnegative lasso without the sum constraint, then w / Σw (docs/design.md §5).

    min ½‖W^½(r − Dw)‖² + α‖w‖₁   s.t. w ≥ 0        (on w ≥ 0, ‖w‖₁ = Σw, so the L1 term is linear)

Unlike on the simplex, the L1 penalty does select here because Σw is free. `max_agents` refits
nonnegative least squares on the K largest weights for a compact panel.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from personagen.calibrate.solvers import QPResult, Quad, active_set

Array = np.ndarray


def solve(quad: Quad, alpha: float, *, w_start: Array | None = None) -> QPResult:
    """One nonnegative-lasso fit at a fixed α (unnormalised weights)."""
    return active_set(quad, quad.b - alpha, 0.0, simplex=False, w_start=w_start)


def objective(quad: Quad, w: Array, alpha: float) -> float:
    """½‖W^½(r − Dw)‖² + α Σw for unnormalised w ≥ 0."""
    return quad.value(w) + alpha * float(np.sum(w))


def path(quad: Quad, alphas: Sequence[float]) -> list[QPResult]:
    """Fits along an α grid from the largest α down (warm starts); returned in grid order."""
    order = np.argsort(-np.asarray(alphas, dtype=float), kind="stable")
    out: list[QPResult | None] = [None] * len(alphas)
    w = np.zeros(quad.n)
    for k in order:
        res = solve(quad, float(alphas[k]), w_start=w)
        out[k] = res
        w = res.w
    return out  # type: ignore[return-value]


def alpha_grid(quad: Quad, n_grid: int = 19, span: float = 1e-4) -> Array:
    """α_max = max(DᵀWr) (above it w = 0) times a log grid, plus α = 0 (nonnegative least squares)."""
    amax = max(float(np.max(quad.b)), 1e-300)
    return np.concatenate([amax * np.logspace(-0.05, np.log10(span), n_grid), [0.0]])


def normalise(w: Array, fallback: Array) -> Array:
    """w / Σw, or the fallback (base weights) when every weight is zero."""
    s = float(np.sum(w))
    return w / s if s > 0 else fallback.copy()


def refit_top(D: Array, r: Array, sw: Array, w: Array, k: int) -> tuple[Array, QPResult]:
    """Nonnegative least squares on the k largest weights, others zero (unnormalised)."""
    nz = int(np.sum(w > 0))
    top = np.argsort(-w, kind="stable")[: max(1, min(k, nz if nz else k))]
    sub = Quad.from_design(D[:, top], r, sw)
    res = active_set(sub, sub.b, 0.0, simplex=False)
    out = np.zeros(D.shape[1])
    out[top] = res.w
    return out, res
