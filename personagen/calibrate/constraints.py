"""Census-margin constraints: weighted persona demographics within ±tol of the census margins.

Adds |Aw − m| ≤ tol (A: margin rows × agents, indicator or shares; m: target margins) to the simplex
problem of docs/design.md §5. Solved with cvxpy/Clarabel (correctness first): the constrained problem is a QP
(l2 pull) or an exponential-cone program (KL pull). Also the reference formulation used in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from personagen.calibrate._cvx import solve
from personagen.errors import BadInput

Array = np.ndarray


@dataclass
class MarginConstraints:
    """A (rows × agents), targets m (rows,), tolerance tol (scalar or per row)."""

    A: Array
    m: Array
    tol: float | Array = 0.01

    def check(self, n_agents: int) -> None:
        """Validate shapes; BadInput with the field named."""
        A = np.asarray(self.A, dtype=float)
        if A.ndim != 2 or A.shape[1] != n_agents:
            raise BadInput(f"constraints.A: shape {A.shape} does not match {n_agents} agents")
        if np.asarray(self.m).shape != (A.shape[0],):
            raise BadInput(f"constraints.m: need {A.shape[0]} targets, got shape {np.asarray(self.m).shape}")
        if np.any(np.asarray(self.tol) < 0):
            raise BadInput("constraints.tol: must be >= 0")

    def violation(self, w: Array) -> float:
        """max(|Aw − m| − tol, 0)."""
        return float(np.max(np.maximum(np.abs(np.asarray(self.A) @ w - np.asarray(self.m)) - self.tol, 0.0),
                            initial=0.0))


class ConstrainedSimplex:
    """cvxpy model of the simplex fit with margin constraints; λ is a Parameter (path without recompile)."""

    def __init__(self, D: Array, r: Array, sw: Array, w0: Array, pull: str,
                 cons: MarginConstraints | None) -> None:
        n = D.shape[1]
        sq = np.sqrt(sw)
        self.w = cp.Variable(n, nonneg=True)
        self.lam = cp.Parameter(nonneg=True)
        loss = 0.5 * cp.sum_squares(sq * r - (sq[:, None] * D) @ self.w)
        if pull == "kl":
            pen = cp.sum(cp.rel_entr(self.w, w0))
        else:
            pen = 0.5 * n * cp.sum_squares(self.w - w0)
        cs = [cp.sum(self.w) == 1]
        if cons is not None:
            A = np.asarray(cons.A, dtype=float)
            m = np.asarray(cons.m, dtype=float)
            cs += [A @ self.w <= m + cons.tol, A @ self.w >= m - cons.tol]
        self.problem = cp.Problem(cp.Minimize(loss + self.lam * pen), cs)

    def solve(self, lam: float) -> Array:
        """Solve at λ; BadInput when the margins cannot be met within tol."""
        self.lam.value = float(lam)
        solve(self.problem, scs_max_iters=50_000)
        if self.problem.status in ("infeasible", "infeasible_inaccurate"):
            raise BadInput("constraints: census margins cannot be met within tol by these personas")
        if self.w.value is None:
            raise RuntimeError(f"constrained fit failed: {self.problem.status}")
        w = np.maximum(np.asarray(self.w.value, dtype=float), 0.0)
        return w / w.sum()

    @property
    def value(self) -> float:
        """The minimised objective at the last solve."""
        return float(self.problem.value)
