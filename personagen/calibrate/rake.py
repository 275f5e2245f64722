"""Raking of persona weights to target margins (the baseline estimator of docs/design.md §5).

Raking is the minimum-divergence calibration of Deming–Stephan / Deville–Särndal: among weights w ≥ 0 with
Σw = 1 that reproduce every margin (Dw = r), the one closest to the base weights w0 in KL(w‖w0). Its
solution has the exponential form w_j = w0_j·exp((Aᵀλ)_j) with A = [D; 1ᵀ], λ the multipliers of the
margins, so it is found either by

* `ipf` (iterative proportional fitting): for each question in turn, w_j ← w_j·Σ_{i∈q} D_ij r_i/(Dw)_i.
  On one-hot columns (census personas: each agent in exactly one option per question) each update solves
  that question's margins exactly and the sweeps converge to the KL solution; it is the fast path there.
  On soft columns (LLM answer distributions) the same update is an EM step for a mixture and does not
  reach Dw = r (it stalls at margin errors of 1e-2), so soft answers use
* `newton`: Newton's method on the concave dual φ(λ) = λᵀt − Σ_j w0_j exp((Aᵀλ)_j) (t = [r; 1]), whose
  gradient t − Aw is the margin error and Hessian −A diag(w) Aᵀ; steps are damped by backtracking on φ and
  stop at a tolerance on the margin error. When no w ≥ 0 reproduces the margins the dual is unbounded and
  Newton stalls; a linear programme then gives the smallest reachable max margin error, which is reported
  (with a warning) instead of a silent sweep cap, and the weights kept are IPF's compromise when its margin
  error is the smaller.

Cells with (Dw)_i = 0 for every positive-base agent cannot be matched: IPF leaves them out of the ratio,
Newton drops those rows and rescales the question's other targets to its total (the same fixed point).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import blas_threads
from personagen.calibrate.question_rows import rows_by_question

Array = np.ndarray


@dataclass
class RakeResult:
    """Raked weights, iterations used, whether the margins converged, the largest margin error left.

    algorithm: "ipf" or "newton"; min_error: for a run that did not converge, the smallest max margin error any
    weights on the simplex reach (a linear programme), None otherwise; feasible: min_error ≤ tol.
    """

    w: Array
    n_iter: int
    converged: bool
    max_error: float
    unmatched_cells: int
    algorithm: str = "ipf"
    min_error: float | None = None
    feasible: bool = True


def _reachable(D: Array, r: Array, rows: list[Array], w0: Array) -> tuple[Array, Array]:
    """Targets without the unmatched cells (no positive-base agent has mass there): those rows are dropped
    (mask `keep`) and their question's other targets rescaled to the question's total (IPF's fixed point)."""
    on = w0 > 0
    reach = D[:, on].max(axis=1, initial=0.0) > 0 if on.any() else np.zeros(len(r), dtype=bool)
    t = r.astype(float).copy()
    for idx in rows:
        ok = reach[idx]
        tot, got = float(r[idx].sum()), float(r[idx][ok].sum())
        if not ok.all() and got > 0:
            t[idx[ok]] *= tot / got
    return t, reach | (r <= 0)


def _margin_error(D: Array, t: Array, keep: Array, w: Array) -> float:
    """Max |Dw − t| over the reachable cells."""
    return float(np.max(np.abs((D @ w - t)[keep]), initial=0.0))


def is_one_hot(D: Array, rows: list[Array]) -> bool:
    """Every entry 0 or 1 and every agent in at most one option per question (census-shaped)."""
    if not np.all((D == 0) | (D == 1)):
        return False
    return all(float(D[idx].sum(axis=0).max(initial=0.0)) <= 1.0 for idx in rows)


def _ipf(D: Array, r: Array, rows: list[Array], w0: Array, max_iter: int, tol: float) -> RakeResult:
    """IPF sweeps from w0 until every reachable margin is within `tol` (max abs) or `max_iter` sweeps."""
    t, keep = _reachable(D, r, rows, w0)
    unmatched = int(np.sum(~keep))
    blocks = [(D[idx], r[idx]) for idx in rows]  # sliced once, not per sweep
    rest = [np.maximum(1.0 - Dq.sum(axis=0), 0.0) for Dq, _ in blocks]  # mass outside the options keeps ratio 1
    w = w0.copy()
    err = math.inf
    for it in range(1, max_iter + 1):
        for (Dq, rq), out in zip(blocks, rest):
            p = Dq @ w
            ratio = np.where(p > 0, rq / np.where(p > 0, p, 1.0), 0.0)
            w = w * (ratio @ Dq + out)
            s = w.sum()
            if s <= 0:
                break
            w = w / s
        err = _margin_error(D, t, keep, w)
        if err <= tol:
            return RakeResult(w, it, True, err, unmatched, "ipf")
    return RakeResult(w, max_iter, False, err, unmatched, "ipf")


STALL_STEPS = 8  # Newton steps without a 10% cut in the best margin error before calling the margins unreachable


def _newton(D: Array, r: Array, rows: list[Array], w0: Array, max_iter: int, tol: float) -> RakeResult:
    """Damped Newton on the dual φ(λ) = λᵀt − Σ w0 exp(Aᵀλ); stops when max |Aw − t| ≤ tol."""
    t_all, keep = _reachable(D, r, rows, w0)
    pos = w0 > 0
    A = np.vstack([D[keep][:, pos], np.ones((1, int(pos.sum())))])
    t = np.concatenate([t_all[keep], [1.0]])
    lam = np.zeros(A.shape[0])
    eta = np.log(w0[pos])

    def dual(eta_: Array, lam_: Array) -> float:
        with np.errstate(over="ignore"):
            return float(lam_ @ t) - float(np.exp(eta_).sum())

    phi = dual(eta, lam)
    it, ok = 0, False
    best, since = math.inf, 0
    while it < max_iter:
        it += 1
        w = np.exp(eta)
        g = t - A @ w
        err = float(np.abs(g).max())
        if err <= tol:
            ok = True
            break
        best, since = (err, 0) if err < 0.9 * best else (best, since + 1)
        if since >= STALL_STEPS:  # no exact solution: the dual is unbounded and the iterates run off
            break
        step = _newton_step((A * w) @ A.T, g)
        d_eta = A.T @ step
        slope, s = float(g @ step), 1.0
        while s > 1e-12:
            eta_n, lam_n = eta + s * d_eta, lam + s * step
            phi_n = dual(eta_n, lam_n)
            if np.isfinite(phi_n) and phi_n >= phi + 1e-4 * s * slope:
                break
            s *= 0.5
        if s <= 1e-12:
            break
        eta, lam, phi = eta_n, lam_n, phi_n
    w = np.zeros(len(w0))
    w[pos] = np.exp(eta) / np.exp(eta).sum()
    return RakeResult(w, it, ok, _margin_error(D, t_all, keep, w), int(np.sum(~keep)), "newton")


def _newton_step(H: Array, g: Array) -> Array:
    """A solution of H·step = g for the dual Hessian H = A diag(w) Aᵀ, by Cholesky with a growing diagonal shift.

    H is singular whenever the margins are linearly dependent (each question's options sum to the total; more
    margins than agents): its null space is that of Aᵀ, which the primal step Aᵀ·step does not see, and g = t − Aw
    lies in its range when the margins are reachable. A shift δ ≪ H's smallest nonzero eigenvalue keeps the step
    (a Levenberg–Marquardt step, still an ascent direction) while letting the factorisation through; it grows
    1e-13 → 1e-10 → 1e-7 of the mean diagonal only when the factorisation fails (a singular value decomposition,
    ~30× a Cholesky at 2,000 margins, is the last resort)."""
    scale = max(float(np.trace(H)) / len(H), 1e-300)
    done = 0.0
    for rel in (1e-13, 1e-10, 1e-7):
        H[np.diag_indices_from(H)] += (rel - done) * scale
        done = rel
        try:
            step = sla.cho_solve(sla.cho_factor(H, check_finite=False), g, check_finite=False)
        except np.linalg.LinAlgError:
            continue
        if np.all(np.isfinite(step)):
            return step
    return np.linalg.lstsq(H, g, rcond=1e-12)[0]


def min_margin_error(D: Array, r: Array, rows: list[Array], w0: Array) -> float:
    """The smallest max |Dw − t| over the reachable cells reachable by w ≥ 0, Σw = 1 on w0's support (an LP):
    min e s.t. −e ≤ A w − t ≤ e, Σw = 1, w ≥ 0 (HiGHS, interior point)."""
    from scipy.optimize import linprog
    from scipy.sparse import csr_matrix, hstack, vstack

    t, keep = _reachable(D, r, rows, w0)
    A = csr_matrix(D[keep][:, w0 > 0])
    t = t[keep]
    n, one = A.shape[1], np.ones((A.shape[0], 1))
    a_ub = vstack([hstack([A, -one]), hstack([-A, -one])])
    a_eq = csr_matrix(np.concatenate([np.ones(n), [0.0]])[None, :])
    c = np.zeros(n + 1)
    c[-1] = 1.0
    args = dict(A_ub=a_ub, b_ub=np.concatenate([t, -t]), A_eq=a_eq, b_eq=[1.0])
    # interior point first: on these dense constraint matrices it is ~20× faster than HiGHS's default dual
    # simplex (2,000 margins × 1,000 agents: 10 s against 196 s)
    res = linprog(c, **args, method="highs-ipm")
    if res.status != 0:
        res = linprog(c, **args, method="highs")
    return float(res.x[-1]) if res.status == 0 else math.inf


ALGORITHMS: dict[str, Callable[..., RakeResult]] = {"ipf": _ipf, "newton": _newton}


def rake(
    D: Array,
    r: Array,
    groups: Array,
    base: Array,
    *,
    algorithm: str = "auto",
    max_iter: int | None = None,
    tol: float = 1e-9,
) -> RakeResult:
    """Rake `base` to the margins r (max abs margin error ≤ tol). algorithm: "auto" (IPF on one-hot columns,
    Newton otherwise), "ipf" or "newton". A run that does not converge reports the smallest reachable margin
    error (`min_error`, `feasible`) and warns."""
    D = np.asarray(D, dtype=float)
    r = np.asarray(r, dtype=float)
    rows = rows_by_question(groups)
    w0 = np.asarray(base, dtype=float)
    w0 = w0 / w0.sum()
    if algorithm == "auto":
        algorithm = "ipf" if is_one_hot(D, rows) else "newton"
    iters = max_iter if max_iter is not None else (500 if algorithm == "ipf" else 100)
    with blas_threads(1):  # small products and factorisations: thread hand-off costs more than it saves
        res = ALGORITHMS[algorithm](D, r, rows, w0, iters, tol)
        if not res.converged and algorithm == "newton":
            # no exact solution: Newton's iterates run off (the dual is unbounded); IPF's sweeps settle on a
            # compromise, so the weights with the smaller remaining margin error are kept
            alt = _ipf(D, r, rows, w0, 500, tol)
            res = alt if alt.max_error < res.max_error else res
    if not res.converged:
        res.min_error = min_margin_error(D, r, rows, w0)
        res.feasible = res.min_error <= tol
        why = ("no weights reproduce the margins" if not res.feasible
               else "the margins are reachable only with some weights at zero")
        warnings.warn(f"raking did not converge: {why}; max margin error left {res.max_error:.3g} "
                      f"(smallest reachable {res.min_error:.3g})", RuntimeWarning, stacklevel=2)
    return res
