"""P2P replication estimators (seed paper eq. (6)–(7)): signed weights, per-question sum-to-one equality.

    min ½‖W^½(r − Dw)‖² + α·(ρ‖w‖₁ + (1−ρ)/2·‖w‖²)      (ρ = l1_ratio; ρ = 1 is p2p-lasso)
    s.t. Σ_{i∈q} (Dw)_i = 1 for every question q        (w signed)

Σ_{i∈q}(Dw)_i = Σ_j w_j·s_qj with s_qj = Σ_{i∈q} D_ij; when every agent's options sum to 1 (the usual
case) all these rows equal 1ᵀ and the constraint is Σw = 1. Distinct rows are kept, duplicates dropped.
Solved with cvxpy (Clarabel): replication only, not the scalable default. Negative weights are counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import cvxpy as cp
import numpy as np

from personagen.calibrate._cvx import solve

Array = np.ndarray


def question_sums(D: Array, groups: Array) -> Array:
    """Distinct rows of S (questions × agents), S[q, j] = Σ_{i∈q} D_ij."""
    g = np.asarray([str(x) for x in groups])
    qids = list(dict.fromkeys(g.tolist()))
    S = np.vstack([D[g == q].sum(axis=0) for q in qids])
    S = np.unique(np.round(S, 12), axis=0)
    return S


class P2PProblem:
    """A parameterised cvxpy problem (α is a Parameter, so a path re-solves without recompiling)."""

    def __init__(self, D: Array, r: Array, sw: Array, groups: Array, l1_ratio: float = 1.0) -> None:
        n = D.shape[1]
        self.S = question_sums(D, groups)
        sq = np.sqrt(sw)
        self.w = cp.Variable(n)
        self.alpha = cp.Parameter(nonneg=True)
        loss = 0.5 * cp.sum_squares(sq * r - (sq[:, None] * D) @ self.w)
        pen = l1_ratio * cp.norm1(self.w)
        if l1_ratio < 1.0:
            pen = pen + 0.5 * (1.0 - l1_ratio) * cp.sum_squares(self.w)
        self.problem = cp.Problem(cp.Minimize(loss + self.alpha * pen), [self.S @ self.w == 1])

    def solve(self, alpha: float) -> Array:
        """Solve at α; raises RuntimeError if the solver fails."""
        self.alpha.value = float(alpha)
        solve(self.problem, scs_max_iters=20_000)
        if self.w.value is None:
            raise RuntimeError(f"p2p solve failed: {self.problem.status}")
        return np.asarray(self.w.value, dtype=float).copy()

    @property
    def value(self) -> float:
        """The minimised objective at the last solve."""
        return float(self.problem.value)

    def path(self, alphas: Sequence[float]) -> list[Array]:
        """Weights at each α of the grid."""
        return [self.solve(a) for a in alphas]


def alpha_grid(D: Array, r: Array, sw: Array, n_grid: int = 30, span: float = 1e-4) -> Array:
    """A log grid of `n_grid` values (paper 000, Appendix C.3: 30 candidate α) from max|DᵀWr| down by `span`
    (the L1 weight scaled to the data term's gradient)."""
    amax = max(float(np.max(np.abs(D.T @ (sw * r)))), 1e-300)
    return amax * np.logspace(0, np.log10(span), n_grid)
