"""The active-set solver of the quadratic (calibrate/qp.py): the default for every simplex fit, the lasso and NNLS.

Primal–dual active set (semismooth Newton) steps: support ← {z > 0} ∪ {reduced gradient < 0}, each the
equality-constrained minimiser on the support (`Quad.eq_solve`: a Cholesky of G_PP + μI in agent space, moved
from the last step's factor while that is cheaper (calibrate/support_factor.py, dropped when the run ends), or a
row-space solve for supports wider than the rows); from a warm start they reach a machine-precision KKT point
in a handful of solves. The support grows at most geometrically: by the `Tuning.max_add_floor` + `max_add_ratio`
× its size most violating agents a step (a half since issue 23: doubling overshot into row space). If the steps
cycle (or, at μ = 0, stall: `Tuning.zero_stall`), a Lawson–Hanson-style primal active set (monotone, finite)
finishes.

Why: cvxpy/Clarabel needs seconds at 1,000 agents and gives no answer in minutes at 5,000 (issue 7).
"""

from __future__ import annotations

import math

import numpy as np

from personagen.calibrate._blas import blas_threads
from personagen.calibrate.qp import QPResult, project_simplex
from personagen.calibrate.quad import Quad
from personagen.calibrate.tuning import TUNING

Array = np.ndarray


def active_set(quad: Quad, f: Array, mu: float = 0.0, **kw) -> QPResult:
    """Solve min ½wᵀ(G+μI)w − fᵀw s.t. w ≥ 0 [, Σw = 1] (single-threaded BLAS: many small solves)."""
    with blas_threads(1):
        try:
            return _active_set(quad, f, mu, **kw)
        finally:
            quad.drop_factor()  # a factor of G_PP + μI: the next run has another μ or another start



def _active_set(
    quad: Quad,
    f: Array,
    mu: float = 0.0,
    *,
    simplex: bool = True,
    w_start: Array | None = None,
    tol: float = 1e-10,
    max_iter: int = 500,
    max_add_floor: int = TUNING.max_add_floor,
    pull: Array | None = None,
) -> QPResult:
    """Solve min ½wᵀ(G+μI)w − fᵀw s.t. w ≥ 0 [, Σw = 1] to a KKT point.

    Primal–dual active set steps (support ← {z > 0} ∪ {reduced gradient < 0}) converge in a few
    Cholesky solves from a warm start; if they cycle, a primal active set (Lawson–Hanson with the sum
    constraint) finishes monotonically. `tol` is relative to the gradient scale.
    """
    n = quad.n
    f = np.asarray(f, dtype=float)
    scale = max(float(np.max(np.abs(f))), quad.diag_mean() / max(n, 1), mu / max(n, 1), 1e-300)
    gtol = tol * scale
    w = _start_point(quad, f, mu, simplex, w_start)
    P = w > 0
    if simplex and not P.any():
        P[int(np.argmax(f))] = True
    seen: set[bytes] = set()
    it = 0
    best = None
    best_it = 0  # the iteration that set `best` (μ = 0 stall rule, `Tuning.zero_stall`)
    kkt = math.inf
    # --- primal-dual active set -----------------------------------------------------------------
    while it < max_iter:
        it += 1
        w, nu, idx, gw = _support_solve(quad, P, f, mu, simplex, pull)
        g = (quad.grad_support(w, idx) if gw is None else gw) + mu * w - f
        rho = g - nu
        neg = P & (w <= 0)
        viol = (~P) & (rho < -gtol)
        kkt = max(float(-rho[~P].min()) if (~P).any() else 0.0, float(-w[P].min()) if P.any() else 0.0, 0.0)
        if not neg.any() and not viol.any():
            return QPResult(w, it, kkt / scale, "active-set", gw=g - mu * w + f)
        if not neg.any():
            best, best_it = w, it
        elif mu == 0 and best is not None and it - best_it >= TUNING.zero_stall:
            break  # μ = 0, stalled: the primal active set finishes from `best` (see Tuning.zero_stall)
        grow = max_add_floor + int((TUNING.max_add_ratio if w_start is None else TUNING.warm_add_ratio) * P.sum())
        if viol.sum() > grow:
            # grow the support at most geometrically: a few hundred columns at a time keeps each
            # Cholesky (and, matrix-free, each new Gram block) small while the support is found
            cand = np.flatnonzero(viol)
            keep = cand[np.argsort(rho[cand], kind="stable")[:grow]]
            viol = np.zeros(n, dtype=bool)
            viol[keep] = True
        Pn = (P & (w > 0)) | viol
        if simplex and not Pn.any():
            Pn[int(np.argmin(rho))] = True
        key = Pn.tobytes()
        if key in seen:
            break
        seen.add(key)
        P = Pn
    if best is None:
        best = project_simplex(w) if simplex else np.maximum(w, 0.0)
    return _primal_active_set(quad, f, mu, simplex, best, it, max_iter * 4, gtol, scale, kkt, pull)


def _support_solve(quad: Quad, P: Array, f: Array, mu: float, simplex: bool,
                   pull: Array | None = None) -> tuple[Array, float, Array, Array]:
    """The equality-constrained minimiser w on the support P (zero elsewhere), the sum multiplier ν, the support
    and G·w when the solve gave it (row space), else None."""
    idx = np.flatnonzero(P)
    w = np.zeros(quad.n)
    nu = 0.0
    gw = None
    if len(idx):
        z, nu, gw = quad.eq_solve(idx, f[idx], mu, simplex, pull)
        w[idx] = z
    return w, nu, idx, gw


def _start_point(quad: Quad, f: Array, mu: float, simplex: bool, w_start: Array | None) -> Array:
    """The warm start, else the best vertex of the simplex (value_j = ½(G_jj + μ) − f_j), else zero."""
    n = quad.n
    if w_start is None:
        if simplex:
            # start from the best vertex: value_j = ½(G_jj + μ) − f_j
            j = int(np.argmin(0.5 * (quad.diag() + mu) - f))
            w = np.zeros(n)
            w[j] = 1.0
        else:
            w = np.zeros(n)
    else:
        w = np.asarray(w_start, dtype=float).copy()
    return w


def _primal_active_set(quad: Quad, f: Array, mu: float, simplex: bool, best: Array, it: int, max_it: int,
                       gtol: float, scale: float, kkt: float, pull: Array | None = None) -> QPResult:
    """Primal active set (Lawson–Hanson with the sum constraint) from `best`: monotone and finite.

    `it` and `kkt` carry on from the primal–dual phase (iteration count and last KKT residual)."""
    w = best.copy()
    P = w > 0
    if simplex and not P.any():
        w[int(np.argmax(f))] = 1.0
        P = w > 0
    while it < max_it:
        it += 1
        z, nu, idx, gz = _support_solve(quad, P, f, mu, simplex, pull)
        if P.any() and z[idx].min() <= 0:
            d = z - w
            blk = P & (z <= 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                steps = np.where(blk & (d < 0), w / -d, np.inf)
            alpha = min(float(steps.min()), 1.0)
            w = w + alpha * d
            drop = P & ((w <= 1e-15 * max(float(w.max()), 1e-300)) | (blk & (steps <= alpha * (1 + 1e-12))))
            w[drop] = 0.0
            P = P & ~drop
            if simplex:
                w = w / w.sum()
            continue
        w = z
        gz = quad.grad_support(w, idx) if gz is None else gz
        g = gz + mu * w - f
        rho = g - nu
        cand = np.where(~P, rho, np.inf)
        j = int(np.argmin(cand))
        kkt = max(float(-cand[j]) if np.isfinite(cand[j]) else 0.0, 0.0)
        if not np.isfinite(cand[j]) or cand[j] >= -gtol:
            return QPResult(w, it, kkt / scale, "active-set+primal", gw=gz)
        P[j] = True
    return QPResult(w, it, kkt / scale, "active-set+primal", converged=False)

