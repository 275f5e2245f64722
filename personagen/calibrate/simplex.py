"""The default estimator: simplex-constrained least squares with a pull toward base weights (DESIGN §5).

    min ½‖W^½(r − Dw)‖² + λ·N/2·‖w − w0‖²   (pull "l2")   or   + λ·KL(w‖w0)   (pull "kl")
    s.t. w ≥ 0, Σw = 1

The pull is what makes the fit generalise: at λ = 0 the fit keeps at most rank(D)+1 agents and
over-fits the calibration questions; λ > 0 shrinks toward w0 (uniform or census PWGTP shares).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from personagen.calibrate.solvers import QPResult, Quad, active_set, fista_simplex, kl_newton

Array = np.ndarray


def objective(quad: Quad, w: Array, lam: float, w0: Array, pull: str) -> float:
    """The minimised value: data term plus the pull penalty (as in DESIGN §5)."""
    val = quad.value(w)
    if lam:
        if pull == "kl":
            m = w > 0
            val += lam * float(np.sum(w[m] * np.log(w[m] / w0[m])))
        else:
            val += 0.5 * lam * quad.n * float(np.sum((w - w0) ** 2))
    return val


def solve(
    quad: Quad,
    lam: float,
    w0: Array,
    *,
    pull: str = "l2",
    w_start: Array | None = None,
    solver: str = "active-set",
) -> QPResult:
    """One simplex fit at a fixed λ (warm-startable)."""
    n = quad.n
    if lam > 0 and pull == "kl":
        return kl_newton(quad.densify(), lam, w0, w_start=w_start)
    mu = lam * n
    f = quad.b + mu * w0
    if solver == "fista":
        return fista_simplex(quad, f, mu, w_start=w_start)
    return active_set(quad, f, mu, simplex=True, w_start=w_start)


def path(
    quad: Quad, lams: Sequence[float], w0: Array, *, pull: str = "l2", w_start: Array | None = None,
) -> list[QPResult]:
    """Fits along a λ grid, solved from the largest λ down with warm starts; returned in grid order.

    The largest λ starts from `w_start` when given (CV: the previous fold's fit at that λ, whose support is
    nearly this fold's), else from w0.

    λ = 0 is solved cold, exactly as `fit_weights(lam=0)` solves it: when the support is wider than the
    rows the pure fit is not unique, and a warm start from the (dense) λ > 0 solutions would land on a
    different minimiser (near w0) than the sparse one the final fit returns, so CV would score a fit
    it does not deliver.
    """
    order = np.argsort(-np.asarray(lams, dtype=float), kind="stable")
    out: list[QPResult | None] = [None] * len(lams)
    w = w0.copy() if w_start is None else np.asarray(w_start, dtype=float).copy()
    for k in order:
        lam = float(lams[k])
        res = solve(quad, lam, w0, pull=pull, w_start=w if lam > 0 else None)
        out[k] = res
        w = res.w
    return out  # type: ignore[return-value]


def lam_grid(quad: Quad, n_grid: int = 19, span: float = 1e-6) -> Array:
    """0 plus a log grid scaled to the problem: λ_max·N = 10·‖PGP‖₂ (beyond it w ≈ w0).

    The norm only sets the grid's scale, so power iteration stops at 1e-3 relative change (a matrix-free
    iteration is two passes over D: ~20 s at 100k agents × 1000 rows to 1e-6, a few seconds to 1e-3)."""
    top = quad.power_norm(centered=True, iters=30, rtol=1e-3)
    if top <= 0:
        top = max(quad.diag_mean(), 1e-12)
    lam_hi = 10.0 * top / quad.n
    return np.concatenate([[0.0], lam_hi * np.logspace(0, np.log10(span), n_grid)])
