"""What every quadratic solver shares: its result type, the projection onto the simplex, and the
equality-constrained solve on a support (the step of the active set, calibrate/active_set.py).

All quadratic problems here are written as

    min_w  ½ wᵀ(G + μI)w − fᵀw + c      s.t. w ≥ 0 [, Σw = 1]

with G = DᵀWD (row weights W): the simplex fit with the l2 pull (μ = λN, f = DᵀWr + λN·w0), the nonnegative
lasso (μ = 0, f = DᵀWr − α) and nonnegative least squares.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import big_threads

Array = np.ndarray


@dataclass
class QPResult:
    """A solution of the quadratic: weights, KKT residual, iterations and the path taken."""

    w: Array
    n_iter: int
    kkt: float
    solver: str
    converged: bool = True
    info: dict = field(default_factory=dict)
    gw: Array | None = None  # G·w at the solution when the solver had it (warm-start predictions along a path)


def project_simplex(v: Array, s: float = 1.0) -> Array:
    """Euclidean projection onto {w ≥ 0, Σw = s} (sort-based, exact)."""
    n = len(v)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - s
    ind = np.arange(1, n + 1)
    cond = u - css / ind > 0
    rho = ind[cond][-1]
    theta = css[cond][-1] / rho
    return np.maximum(v - theta, 0.0)


def eq_solve(H: Array, fP: Array, simplex: bool) -> tuple[Array, float]:
    """Solve min ½zᵀHz − fᵀz [s.t. Σz = 1]; returns z and the multiplier ν (Hz − f = ν1)."""
    k = len(fP)
    jitter = 1e-13 * max(float(np.mean(np.diag(H))), 1e-300)
    try:
        Hj = np.array(H, order="F")
        Hj[np.diag_indices_from(Hj)] += jitter
        with big_threads(k):
            cf = sla.cho_factor(Hj, lower=False, overwrite_a=True, check_finite=False)
        if simplex:
            sol = sla.cho_solve(cf, np.column_stack([fP, np.ones(k)]), check_finite=False)
        else:
            sol = sla.cho_solve(cf, fP[:, None], check_finite=False)
        if not np.all(np.isfinite(sol)):
            raise np.linalg.LinAlgError("non-finite")
    except (np.linalg.LinAlgError, ValueError):
        rhs = np.column_stack([fP, np.ones(k)]) if simplex else fP[:, None]
        sol = np.linalg.lstsq(H, rhs, rcond=1e-12)[0]
    return combine(sol, simplex)


def combine(sol: Array, simplex: bool) -> tuple[Array, float]:
    """From the columns H⁻¹f [, H⁻¹1] to z = H⁻¹(f + ν1) with Σz = 1 and ν."""
    if not simplex:
        return sol[:, 0], 0.0
    a, c = sol[:, 0], sol[:, 1]
    sc = float(c.sum())
    if abs(sc) < 1e-300:
        sc = 1e-300
    nu = (1.0 - float(a.sum())) / sc
    return a + nu * c, nu
