"""The KL-pulled simplex fit, min ½wᵀGw − bᵀw + λ·Σ w log(w/w0) on the simplex (pull "kl"), by damped Newton.

Used whenever pull = "kl" and λ > 0; needs the dense Gram (`Quad.densify`). The KL term keeps the solution
strictly inside the simplex (on w0's support), so there is no active set: Newton steps with a
fraction-to-boundary rule and Armijo backtracking converge quadratically near the optimum.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import blas_threads
from personagen.calibrate.qp import QPResult
from personagen.calibrate.quad import Quad

Array = np.ndarray


def _kl_newton(
    quad: Quad,
    lam: float,
    w0: Array,
    *,
    w_start: Array | None = None,
    tol: float = 1e-13,
    max_iter: int = 200,
) -> QPResult:
    """min ½wᵀGw − bᵀw + λ·Σ w log(w/w0) on the simplex (λ > 0) by damped, equality-constrained Newton.

    The KL term keeps the solution strictly inside the simplex, so Newton steps with a fraction-to-
    boundary rule and Armijo backtracking converge quadratically near the optimum.
    """
    if quad.G is None:
        raise ValueError("kl_newton needs a dense Gram")
    w0 = np.asarray(w0, dtype=float)
    pos = w0 > 0
    w = (w0.copy() if w_start is None else np.maximum(np.asarray(w_start, dtype=float), 1e-300)) * pos
    w = w / w.sum()
    G = quad.G[np.ix_(pos, pos)]
    b = quad.b[pos]
    x = w[pos]
    x0 = w0[pos] / w0[pos].sum()
    lx0 = np.log(x0)

    def obj(x: Array) -> float:
        return 0.5 * float(x @ G @ x) - float(b @ x) + lam * float(np.sum(x * (np.log(x) - lx0)))

    fx = obj(x)
    dec = math.inf
    for it in range(1, max_iter + 1):
        g = G @ x - b + lam * (np.log(x) - lx0 + 1.0)
        H = G + np.diag(lam / x)
        try:
            cf = sla.cho_factor(H, check_finite=False)
            sol = sla.cho_solve(cf, np.column_stack([g, np.ones(len(x))]), check_finite=False)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(H, np.column_stack([g, np.ones(len(x))]), rcond=None)[0]
        a, c = sol[:, 0], sol[:, 1]
        nu = float(a.sum()) / float(c.sum())
        d = -a + nu * c
        dec = -float(g @ d)
        if dec <= tol * max(abs(fx), 1e-300) or dec <= 1e-300:
            w = np.zeros_like(w0)
            w[pos] = x
            return QPResult(w, it, dec, "kl-newton")
        neg = d < 0
        tmax = float(np.min(-x[neg] / d[neg])) if neg.any() else math.inf
        t = min(1.0, 0.995 * tmax)
        while True:
            xn = x + t * d
            if np.all(xn > 0):
                fn = obj(xn)
                if fn <= fx - 1e-4 * t * dec:
                    break
            t *= 0.5
            if t < 1e-20:
                break
        if t < 1e-20:
            break
        x = np.maximum(xn / xn.sum(), 1e-250)
        fx = obj(x)
    w = np.zeros_like(w0)
    w[pos] = x
    return QPResult(w, max_iter, dec, "kl-newton", converged=dec <= 1e-9 * max(abs(fx), 1e-300))



def kl_newton(quad: Quad, lam: float, w0: Array, **kw) -> QPResult:
    """KL-pulled simplex fit by damped Newton (see `_kl_newton`)."""
    with blas_threads(1):
        return _kl_newton(quad, lam, w0, **kw)
