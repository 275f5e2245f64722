"""Solve a cvxpy problem with Clarabel, falling back to SCS (tight tolerance) when Clarabel fails."""

from __future__ import annotations

import cvxpy as cp


def solve(problem: cp.Problem, *, scs_max_iters: int = 50_000) -> None:
    """Clarabel first (interior point, accurate); SCS only when Clarabel raises a SolverError."""
    try:
        problem.solve(solver=cp.CLARABEL)
    except cp.SolverError:
        problem.solve(solver=cp.SCS, eps=1e-9, max_iters=scs_max_iters)
