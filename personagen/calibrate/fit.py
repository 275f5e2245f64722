"""`fit_weights`, the one entry point of the weight fit (docs/design.md §4–§5).

The options are one frozen `FitOptions`, validated once when built; the estimator is looked up by name in
`ESTIMATORS` (name -> fit function), and each method's mathematics lives in its own module (simplex, sparse,
p2p, rake), with shared solvers (solvers.py), CV (cv.py) and census-margin constraints (constraints.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from personagen.calibrate import cv as _cv
from personagen.calibrate import p2p as _p2p
from personagen.calibrate import question_rows as _rows
from personagen.calibrate import rake as _rake
from personagen.calibrate import simplex as _simplex
from personagen.calibrate import sparse as _sparse
from personagen.calibrate.constraints import ConstrainedSimplex, MarginConstraints
from personagen.calibrate.names import METHODS, PULLS, SEARCHES
from personagen.calibrate.solvers import Quad, RowKernel
from personagen.errors import BadInput
from personagen.metrics import kish_ess

Array = np.ndarray

@dataclass
class FitResult:
    """Fitted weights and how they were obtained.

    weights (agents,) sum to 1; objective is the minimised value of docs/design.md §5 (penalty included; for
    sparse the unnormalised lasso objective, for rake the data term); cv is the per-grid CV curve
    (dict: param, grid, mean, se, best, folds) or None when nothing was tuned.
    """

    weights: Array
    objective: float
    lam: float | None
    alpha: float | None
    n_iter: int
    solver: str
    seconds: float
    cv: dict | None = None
    negative_weights: int = 0
    method: str = "simplex"
    l1_ratio: float | None = None
    converged: bool = True
    info: dict = field(default_factory=dict)

    @property
    def nonzeros(self) -> int:
        """Number of weights with |w| > 1e-12."""
        return int(np.sum(np.abs(self.weights) > 1e-12))

    @property
    def ess(self) -> float:
        """Kish effective sample size of the weights (personagen.metrics.kish_ess)."""
        return kish_ess(self.weights)


def _check(D: Array, r: Array, groups, row_weights, base) -> tuple[Array, Array, Array | None, Array, Array]:
    D = np.asarray(D, dtype=float)
    r = np.asarray(r, dtype=float).ravel()
    if D.ndim != 2:
        raise BadInput(f"D: need a 2-D (rows × agents) array, got shape {D.shape}")
    n_rows, n = D.shape
    if n < 1 or n_rows < 1:
        raise BadInput(f"D: empty design {D.shape}")
    if r.shape != (n_rows,):
        raise BadInput(f"r: need {n_rows} targets (one per row of D), got {r.shape[0]}")
    if not (np.all(np.isfinite(D)) and np.all(np.isfinite(r))):
        raise BadInput("D/r: contain NaN or inf")
    g = None
    if groups is not None:
        g = np.asarray([str(x) for x in groups])
        if g.shape != (n_rows,):
            raise BadInput(f"groups: need {n_rows} question ids, got {g.shape[0]}")
    sw = np.ones(n_rows) if row_weights is None else np.asarray(row_weights, dtype=float).ravel()
    if sw.shape != (n_rows,) or np.any(sw < 0) or not np.all(np.isfinite(sw)):
        raise BadInput(f"row_weights: need {n_rows} finite nonnegative values")
    if base is None:
        w0 = np.full(n, 1.0 / n)
    else:
        w0 = np.asarray(base, dtype=float).ravel()
        if w0.shape != (n,) or np.any(w0 < 0) or not np.all(np.isfinite(w0)) or w0.sum() <= 0:
            raise BadInput(f"base: need {n} nonnegative weights with a positive sum")
        w0 = w0 / w0.sum()
    return D, r, g, sw, w0


@dataclass(frozen=True)
class FitOptions:
    """How to fit (docs/design.md §5), validated once when built: the CLI and the Python API build the same
    object."""

    method: str = "simplex"
    pull: str = "l2"
    lam: float | None = None
    alpha: float | None = None
    l1_ratio: float | None = None
    max_agents: int | None = None
    constraints: MarginConstraints | None = None
    folds: int = 5
    seed: int = 0
    lam_grid: Sequence[float] | None = None
    lam_search: str | None = None  # "refine" (default grid) or "full" (a given lam_grid): see cv.refine_order

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise BadInput(f"method: unknown {self.method!r} (choose from {', '.join(METHODS)})")
        if self.pull not in PULLS:
            raise BadInput(f"pull: unknown {self.pull!r} (l2 or kl)")
        if self.lam is not None and self.lam < 0:
            raise BadInput("lam: must be >= 0")
        if self.alpha is not None and self.alpha < 0:
            raise BadInput("alpha: must be >= 0")
        if self.l1_ratio is not None and not 0 <= self.l1_ratio <= 1:
            raise BadInput("l1_ratio: must be in [0, 1]")
        if self.max_agents is not None and self.max_agents < 1:
            raise BadInput("max_agents: must be >= 1")
        if self.lam_search is not None and self.lam_search not in SEARCHES:
            raise BadInput(f"lam_search: unknown {self.lam_search!r} (choose from {', '.join(SEARCHES)})")


@dataclass(frozen=True)
class _Problem:
    """The checked arrays of one fit: design, targets, question ids, row weights, base weights, CV folds."""

    D: Array
    r: Array
    g: Array | None
    sw: Array
    w0: Array
    masks: list[Array] | None


def fit_weights(D: Array, r: Array, *, groups: Sequence | None = None, row_weights: Array | None = None,
                base: Array | None = None, **options: object) -> FitResult:
    """Fit persona weights w so that Dw ≈ r (docs/design.md §5 says exactly what each method minimises).

    D: (rows = question-option pairs, cols = agents); r: (rows,) target shares; groups: question id per row
    (needed for CV: folds hold whole questions). The keyword options are those of `FitOptions` (method="simplex",
    pull="l2", lam, alpha, l1_ratio, max_agents, constraints, folds=5, seed=0, lam_grid, lam_search): lam/alpha
    None + groups → chosen by K-fold CV; lam None without groups → λ = 0 (sparse: α = 0). `lam_grid` overrides the
    CV grid (λ or α). The simplex fit searches its default λ grid coarse-to-fine (`lam_search="refine"`: the
    same choice as the full grid whenever the CV curve is unimodal, at ~60% of the fits) and a given grid in full.
    """
    t0 = time.perf_counter()
    opts = FitOptions(**options)  # type: ignore[arg-type]
    D, r, g, sw, w0 = _check(D, r, groups, row_weights, base)
    if opts.constraints is not None:
        opts.constraints.check(D.shape[1])
    if opts.method == "rake" and g is None:
        raise BadInput("groups: raking needs the question id of each row")
    if opts.method.startswith("p2p") and g is None:
        raise BadInput("groups: the p2p per-question sum-to-one constraint needs question ids")
    masks = _cv.fold_masks(g, opts.folds, opts.seed) if g is not None and len(set(g.tolist())) >= 2 else None
    res = ESTIMATORS[opts.method](_Problem(D, r, g, sw, w0, masks), opts)
    res.method = opts.method
    res.seconds = time.perf_counter() - t0
    res.negative_weights = int(np.sum(res.weights < -1e-12))
    return res


def _grid(opts: FitOptions, default: Callable[[], Array]) -> Array:
    return np.asarray(opts.lam_grid, dtype=float) if opts.lam_grid is not None else default()


def _fit_simplex(p: _Problem, opts: FitOptions) -> FitResult:
    D, r, sw, w0, masks, pull, lam = p.D, p.r, p.sw, p.w0, p.masks, opts.pull, opts.lam
    constraints = opts.constraints
    curve = None
    n = D.shape[1]
    if constraints is not None:
        model = ConstrainedSimplex(D, r, sw, w0, pull, constraints)
        if lam is None and masks is not None:
            grid = _grid(opts, lambda: _simplex.lam_grid(Quad.from_design(D, r, sw), n_grid=9, span=1e-4))

            def fp(f: int, train: Array) -> list[Array]:
                sub = ConstrainedSimplex(D[train], r[train], sw[train], w0, pull, constraints)
                return [sub.solve(x) for x in grid]

            curve = _cv.cross_validate(D, r, sw, masks, grid, fp).to_dict()
            lam = curve["best"]
        lam = float(lam or 0.0)
        w = model.solve(lam)
        quad = Quad.from_design(D, r, sw)
        obj = _simplex.objective(quad, w, lam, w0, pull)
        return FitResult(w, obj, lam, None, 0, "cvxpy-clarabel", 0.0, cv=curve,
                         info={"margin_violation": constraints.violation(w)})
    # λ by CV with the l2 pull: the solvers work on one row fewer per question (question_rows.py: the same minimiser
    # on the simplex, rows² kernels and rows³ factors smaller); the grid and objective read D itself. Not for one
    # fixed-λ fit, where building the rows (a pass over D, fresh memory) cost more than it saved (5,000 × 1,250
    # latent types, mid-grid λ: 0.27 s against 0.14)
    cv = lam is None and masks is not None
    rows = _rows.reduce_questions(D, r, sw, p.g) if pull == "l2" and cv and p.g is not None else None
    Ds, rs, sws = (D, r, sw) if rows is None else (rows.D, rows.r, rows.sw)
    kernel = RowKernel(Ds)  # row-space kernel shared by the folds and the final fit (built only if needed)
    quad = Quad.from_design(Ds, rs, sws, dense=pull == "kl", kernel=kernel)
    full = quad if rows is None else Quad.from_design(D, r, sw, dense=False)
    start = None
    if cv:
        grid = _grid(opts, lambda: _simplex.lam_grid(full))
        paths = [_simplex.FoldPath(q, w0, pull=pull, top=full.top_centered)
                 for q in _cv.fold_quad_list(Ds, rs, sws, masks if rows is None else rows.masks(masks), kernel=kernel)]

        def fit(f: int, k: int) -> Array:
            at = float(grid[k])
            if f == 0:  # the top of the grid: every fold's projected-gradient steps in lockstep
                _simplex.fit_folds_first_order(paths, at)
            if at in paths[f].fits:
                return paths[f].fits[at][0]
            return paths[f].fit(at, peer=paths[f - 1] if f else None).w  # the previous fold is fitted at λ

        search = opts.lam_search or ("full" if opts.lam_grid is not None else "refine")
        curve = _cv.sweep(D, r, sw, masks, grid, fit, search=search).to_dict()
        lam = curve["best"]
        if lam > 0:  # the folds' fits at the chosen λ: the agents most folds keep are nearly the final support
            start = _simplex.majority([p.fits[lam][0] for p in paths])
        del paths, fit
    lam = float(lam or 0.0)
    qr = _simplex.solve(quad, lam, w0, pull=pull, w_start=start)
    w = np.maximum(qr.w, 0.0)
    w = w / w.sum()
    obj = _simplex.objective(full, w, lam, w0, pull)
    return FitResult(w, obj, lam, None, qr.n_iter, qr.solver, 0.0, cv=curve, converged=qr.converged,
                     info={"kkt": qr.kkt, "n": n})


def _fit_sparse(p: _Problem, opts: FitOptions) -> FitResult:
    D, r, sw, w0, masks, alpha, max_agents = p.D, p.r, p.sw, p.w0, p.masks, opts.alpha, opts.max_agents
    quad = Quad.from_design(D, r, sw, dense=False)
    curve = None
    if alpha is None and masks is not None:
        grid = _grid(opts, lambda: _sparse.alpha_grid(quad))
        folds = _cv.fold_quads(D, r, sw, masks)

        def fp(f: int, train: Array) -> list[Array]:
            return [x.w for x in _sparse.path(next(folds), grid)]

        curve = _cv.cross_validate(D, r, sw, masks, grid, fp, param="alpha",
                                   predict=lambda w: _sparse.normalise(w, w0)).to_dict()
        alpha = curve["best"]
    alpha = float(alpha or 0.0)
    qr = _sparse.solve(quad, alpha)
    obj = _sparse.objective(quad, qr.w, alpha)
    w_raw = qr.w
    info = {"kkt": qr.kkt, "sum_before_normalising": float(w_raw.sum())}
    solver = qr.solver
    if max_agents is not None:
        w_raw, rr = _sparse.refit_top(D, r, sw, w_raw, max_agents)
        info["refit_agents"] = int(np.sum(w_raw > 0))
        solver += "+nnls-refit"
    w = _sparse.normalise(w_raw, w0)
    return FitResult(w, obj, None, alpha, qr.n_iter, solver, 0.0, cv=curve, converged=qr.converged, info=info)


# Paper 000, Fig. 16: the constrained elastic net's l1 ratio is chosen by CV together with alpha, and the paper's
# CV picked 0.10. The text does not print the grid; ours spans 0.1 (the paper's pick) to 0.8.
P2P_L1_RATIOS = (0.1, 0.2, 0.5, 0.8)


def _fit_p2p(p: _Problem, opts: FitOptions) -> FitResult:
    D, r, sw, g, masks, method = p.D, p.r, p.sw, p.g, p.masks, opts.method
    alpha, l1_ratio = opts.alpha, opts.l1_ratio
    if method == "p2p-lasso":
        ratios = [1.0]
    elif l1_ratio is not None:
        ratios = [float(l1_ratio)]
    else:
        ratios = list(P2P_L1_RATIOS)
    curve = None
    if alpha is None and masks is not None:
        grid = _grid(opts, lambda: _p2p.alpha_grid(D, r, sw))
        best = None
        curves = {}
        for rho in ratios:
            def fp(f: int, train: Array, rho: float = rho) -> list[Array]:
                return _p2p.P2PProblem(D[train], r[train], sw[train], g[train], rho).path(grid)

            c = _cv.cross_validate(D, r, sw, masks, grid, fp, param="alpha")
            curves[rho] = c
            m = min(c.mean)
            if best is None or m < best[0]:
                best = (m, rho, c)
        assert best is not None
        _, l1_ratio, c = best
        curve = c.to_dict()
        if len(ratios) > 1:
            curve["l1_ratio_grid"] = ratios
            curve["l1_ratio_mean"] = {str(k): v.mean for k, v in curves.items()}
        curve["l1_ratio"] = l1_ratio
        alpha = c.best
    else:
        l1_ratio = ratios[len(ratios) // 2] if l1_ratio is None else l1_ratio
    alpha = float(alpha or 0.0)
    prob = _p2p.P2PProblem(D, r, sw, g, float(l1_ratio))
    w = prob.solve(alpha)
    return FitResult(w, prob.value, None, alpha, 0, "cvxpy-clarabel", 0.0, cv=curve, l1_ratio=float(l1_ratio),
                     info={"sum_constraints": int(prob.S.shape[0]), "weight_sum": float(w.sum())})


def _fit_rake(p: _Problem, opts: FitOptions) -> FitResult:
    rk = _rake.rake(p.D, p.r, p.g, p.w0)
    obj = 0.5 * float(np.sum(p.sw * (p.r - p.D @ rk.w) ** 2))
    return FitResult(rk.w, obj, None, None, rk.n_iter, rk.algorithm, 0.0, converged=rk.converged,
                     info={"max_margin_error": rk.max_error, "unmatched_cells": rk.unmatched_cells,
                           "min_margin_error": rk.min_error, "margins_feasible": rk.feasible})


# method name -> estimator (the names are owned by personagen.calibrate.names.METHODS)
ESTIMATORS: dict[str, Callable[[_Problem, FitOptions], FitResult]] = {
    "simplex": _fit_simplex,
    "sparse": _fit_sparse,
    "p2p-lasso": _fit_p2p,
    "p2p-enet": _fit_p2p,
    "rake": _fit_rake,
}
assert tuple(ESTIMATORS) == METHODS
