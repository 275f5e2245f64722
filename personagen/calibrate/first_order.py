"""First-order solvers of the simplex fit: projected gradient for strong pulls, FISTA on request.

* `pg_simplex`: projected gradient where μ = λN ≥ `Tuning.pg_min_pull`·‖PGP‖₂ (= 0.9: the top of the λ grid down to
  λ_max/10, supports holding most agents): each step contracts the distance to the solution by a certified
  q ≤ 0.37, so ~25 pairs of passes over D replace a rows × rows factorisation per active-set step (issue 15 at
  μ ≥ 4.5·‖PGP‖₂; issue 23 moved the cut-off, measured at 5,000 × 1,250).
* `pg_simplex_folds`: the same steps for every CV fold at once, one pass over D pricing all of them (the folds
  share D and differ in their row weights), each fold stopped by its own bound (issue 23).
* `fista_simplex`: accelerated projected gradient with exact simplex projection and adaptive restart
  (`solver="fista"`; a reference, slower than the active set to machine precision).
"""

from __future__ import annotations

import math

import numpy as np

from personagen.calibrate._blas import blas_threads, pass_threads, times_cols, tr_times_cols
from personagen.calibrate.qp import QPResult, project_simplex
from personagen.calibrate.quad import Quad

Array = np.ndarray


def _fista_simplex(
    quad: Quad,
    f: Array,
    mu: float = 0.0,
    *,
    w_start: Array | None = None,
    L: float | None = None,
    tol: float = 1e-10,
    max_iter: int = 20000,
) -> QPResult:
    """Accelerated projected gradient (FISTA) on the simplex with gradient-based adaptive restart.

    Lipschitz constant from power iteration on G (plus μ). Stops when the projected-gradient step is
    below `tol` relative. Linear convergence when μ > 0; sublinear at μ = 0 on degenerate problems.
    """
    n = quad.n
    if L is None:
        L = 1.01 * quad.power_norm() + mu
    L = max(L, 1e-300)
    w = np.full(n, 1.0 / n) if w_start is None else np.asarray(w_start, dtype=float).copy()
    y = w.copy()
    t = 1.0
    for it in range(1, max_iter + 1):
        g = quad.matvec(y) + mu * y - f
        w_new = project_simplex(y - g / L)
        step = w_new - y
        if float(np.abs(w_new - w).max()) <= tol * max(float(np.abs(w_new).max()), 1e-300) and it > 1:
            return QPResult(w_new, it, float(np.abs(step).max()), "fista")
        if float(g @ (w_new - w)) > 0:  # restart: momentum points uphill
            t = 1.0
            y = w_new.copy()
        else:
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            y = w_new + ((t - 1) / t_new) * (w_new - w)
            t = t_new
        w = w_new
    return QPResult(w, max_iter, float("nan"), "fista", converged=False)


def _pg_simplex(quad: Quad, f: Array, mu: float, top: float, w_start: Array, *, tol: float = 1e-13,
                max_iter: int = 60) -> QPResult | None:
    """Projected gradient on the μ-strongly convex simplex fit, step 2/(L + 2μ) with L ≥ ‖PGP‖₂ (P = I − 11ᵀ/N).

    On the simplex's tangent space the Hessian PGP + μI has its eigenvalues in [μ, L + μ] and the projection
    onto the simplex is nonexpansive, so each step contracts the distance to the solution by q = L/(L + 2μ)
    (≤ 0.1 once μ ≥ 4.5·L, ≤ 0.37 from μ ≥ 0.9·L): 10–25 steps of two passes over D reach the solution where
    the active set would factor a rows × rows kernel of a support holding most agents. Stops when the contraction bound
    q/(1 − q)·‖w_k − w_{k−1}‖ on the distance to the solution is below `tol`·‖w‖; None if not within
    `max_iter` (the caller falls back to the active set)."""
    w = project_simplex(np.asarray(w_start, dtype=float))
    for it in range(1, max_iter + 1):
        gw = quad.matvec(w)
        w, done = _pg_step(w, gw, f, mu, top, tol, it)
        if done is not None:
            return done
    return None


def _pg_step(w: Array, gw: Array, f: Array, mu: float, top: float, tol: float,
             it: int) -> tuple[Array, QPResult | None]:
    """One projected-gradient step from w (gw = G·w) and, when the contraction bound q/(1 − q)·‖step‖ is below
    `tol`·‖w‖, the finished result (see `_pg_simplex`)."""
    L = 1.05 * top  # the power iteration's estimate is a lower bound: a margin for the contraction factor
    q = L / (L + 2.0 * mu)
    w_new = project_simplex(w - 2.0 / (L + 2.0 * mu) * (gw + mu * w - f))
    bound = q / (1.0 - q) * float(np.linalg.norm(w_new - w))
    norm = float(np.linalg.norm(w_new))
    if bound > tol * norm:
        return w_new, None
    return w_new, QPResult(w_new, it, bound / max(norm, 1e-300), "projected-gradient", gw=gw)


def pg_simplex(quad: Quad, f: Array, mu: float, top: float, w_start: Array, **kw) -> QPResult | None:
    """Projected gradient on the simplex for large μ (see `_pg_simplex`)."""
    with blas_threads(1):
        return _pg_simplex(quad, f, mu, top, w_start, **kw)



def pg_simplex_folds(quads: list[Quad], fs: list[Array], mu: float, top: float, starts: list[Array], *,
                     tol: float = 1e-13, max_iter: int = 60) -> list[QPResult | None]:
    """`pg_simplex` on every fold's quadratic at one μ in lockstep: the folds' quadratics share D and differ only in
    their row weights, so G_f·w_f for all folds is D @ W (one pass), the row weights, then Dᵀ (one pass) — two
    passes a step for all folds instead of two per fold. Each fold takes exactly `_pg_simplex`'s steps and stops
    by its own contraction bound; None for a fold not done within `max_iter` (its caller uses the active set).

    Why: at the top of the λ grid (projected gradient, ~10–25 steps) the five folds' passes over D were 7–10% of
    the default fit at 20k × 5,000 and 100k × 1,000 latent types (issue 23); the passes are memory-bound, so a
    five-column product costs about what one column does."""
    D = quads[0].D
    W = np.column_stack([project_simplex(np.asarray(w, dtype=float)) for w in starts])
    SW = np.column_stack([qd.sw for qd in quads])
    F = np.column_stack(fs)
    out: list[QPResult | None] = [None] * len(quads)
    live = list(range(len(quads)))
    with blas_threads(1):
        for it in range(1, max_iter + 1):
            with pass_threads(D.size):
                GW = tr_times_cols(D, SW[:, live] * times_cols(D, W[:, live]))
            for j, f in enumerate(live):
                quads[f].n_grad += 1
                W[:, f], out[f] = _pg_step(W[:, f], GW[:, j].copy(), F[:, f], mu, top, tol, it)
            live = [f for f in live if out[f] is None]
            if not live:
                break
    return out


def fista_simplex(quad: Quad, f: Array, mu: float = 0.0, **kw) -> QPResult:
    """FISTA on the simplex (see `_fista_simplex`)."""
    with blas_threads(1):
        return _fista_simplex(quad, f, mu, **kw)

