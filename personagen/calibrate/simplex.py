"""The default estimator: simplex-constrained least squares with a pull toward base weights
(docs/design.md §5).

    min ½‖W^½(r − Dw)‖² + λ·N/2·‖w − w0‖²   (pull "l2")   or   + λ·KL(w‖w0)   (pull "kl")
    s.t. w ≥ 0, Σw = 1

The pull is what makes the fit generalise: at λ = 0 the fit keeps at most rank(D)+1 agents and
over-fits the calibration questions; λ > 0 shrinks toward w0 (uniform or census PWGTP shares).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import scipy.linalg as sla

from personagen.calibrate.solvers import (
    QPResult,
    Quad,
    active_set,
    fista_simplex,
    kl_newton,
    pg_simplex,
    pg_simplex_folds,
    project_simplex,
)
from personagen.calibrate.tuning import TUNING

Array = np.ndarray


def objective(quad: Quad, w: Array, lam: float, w0: Array, pull: str) -> float:
    """The minimised value: data term plus the pull penalty (as in docs/design.md §5)."""
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
    top: float | None = None,
) -> QPResult:
    """One simplex fit at a fixed λ (warm-startable).

    `top` (≥ ‖PGP‖₂, known in CV from the λ grid) lets a matrix-free fit with a strong pull (μ = λN ≥
    `Tuning.pg_min_pull`·top, the top of the grid) take projected-gradient steps (`pg_simplex`, 10–25 pairs of
    passes over D) instead of the
    active set, whose support there holds most agents and costs a rows × rows factorisation per step."""
    n = quad.n
    if lam > 0 and pull == "kl":
        return kl_newton(quad.densify(), lam, w0, w_start=w_start)
    mu = lam * n
    f = quad.b + mu * w0
    if solver == "fista":
        return fista_simplex(quad, f, mu, w_start=w_start)
    if takes_pg(quad, mu, top):
        res = pg_simplex(quad, f, mu, top, w0 if w_start is None else w_start)
        if res is not None:
            return res
    return active_set(quad, f, mu, simplex=True, w_start=w_start, pull=w0)


def takes_pg(quad: Quad, mu: float, top: float | None) -> bool:
    """Whether `solve` takes projected-gradient steps: a matrix-free quadratic with μ ≥ `Tuning.pg_min_pull`·‖PGP‖₂
    (each step then contracts by ≤ 0.37)."""
    return bool(top) and quad.G is None and mu >= TUNING.pg_min_pull * top


class FoldPath:
    """Fits of one quadratic along a λ grid in any order. Where a rows × rows factorisation costs many passes over D
    (`Tuning.predict_min_factor_passes`: 20k × 5,000, not 100k × 1,000) and another CV fold (`peer`) has fitted λ
    and a larger λ' this fold has, a fit at λ > 0 starts from the support `predict`ed by this fold's fit at λ' moved
    as the peer's moved from λ' to λ (x = w(λ') + w_peer(λ) − w_peer(λ'), G·x priced on this fold: two passes) —
    where the larger fit is narrower than the rows, only when that support holds at least ⅔ as many agents as the
    peer's fit at λ (`Tuning.moved_min_share`). Otherwise it starts from the nearest larger λ's fit (else `peer`,
    else `w_start`, else w0) when that fit's support is narrower than the rows (agent space: its support shrinks to
    the new one in a few cheap steps). Wider supports (row space: every step a rows × rows factorisation) start
    from, in this order: the support `predict`ed between the two nearest fits that bracket λ (coarse-to-fine search:
    the refined values lie between two coarse fits); `peer` (another CV fold's fit at the same λ: the folds share
    most of their rows, hence most of the support, and the shared row-space kernel already holds that fold's
    support); the nearest larger λ's fit itself when the active set made it (or, where factorisations are costly,
    the support its G·w held fixed predicts, when that is narrower than the rows: agent-space steps grow it
    cheaply), or, when projected gradient made it (the top of the grid, supports of most agents), the support
    predicted by extrapolating G·w from the two nearest larger fits.

    Why the moved start and the held G·w (issue 23, fourth round, five folds over the coarse grid): at 20k × 5,000
    latent types the moved start's support differed from the fold's answer in 66–480 agents where the peer's did
    in 324–1,172 (λ_max/100, λ_max/1000), CPU s 127 → 104; at 100k × 1,000 (rows³/3 about two passes) it cost
    71 → 85 (`Tuning.predict_min_factor_passes` has every family). Fold 0, which has no peer, went 8.3 → 4.1 s at
    λ_max/10⁴ (20k × 5,000) from the held G·w; at 100k × 1,000 that start grew for 14 steps instead of 6.
    In agent space the moved start, priced at a small μ, is mostly too narrow and grows 10% a step, except where the
    larger fit is far wider still; the peer's support size stands in for the answer's (the folds' differ by a few
    per cent), measured in `Tuning.moved_min_share`.

    Why this order (issue 23, latent types 10k × 2,500 and 20k × 5,000, one fold's path and five folds λ-major):
    a peer start cut the five folds' CPU time by a third (56.5 → 37.8 s, the same objectives to 1e-14); between
    two fits the bracketed prediction beat it (20k × 5,000: 4 steps and 5.8 CPU s a fold against 5 steps and
    7–7.9 s from the peer), and in agent space the larger fit did (1.2–1.7 s against 1.8–3.5 s); and
    extrapolating G·w a decade down from an active-set fit predicted supports of a third of the true size (2,829
    agents where the fit keeps 8,638: nine steps growing it back, 24 CPU s, against five steps and 10 CPU s from
    the larger fit's own support), while from projected-gradient fits (supports of ~all agents) it saved 2–3
    steps.

    λ = 0 is solved cold, exactly as `fit_weights(lam=0)` solves it, unless `_warm_zero` proves its fit unique:
    when the support is wider than the rows the pure fit is not unique, and a warm start from the (dense) λ > 0
    solutions would land on a different minimiser (near w0) than the sparse one the final fit returns, so CV
    would score a fit it does not deliver."""

    def __init__(self, quad: Quad, w0: Array, *, pull: str = "l2", top: float | None = None) -> None:
        self.quad, self.w0, self.pull, self.top = quad, w0, pull, top
        self.fits: dict[float, tuple[Array, Array | None]] = {}  # λ -> (w, G·w)
        self.first_order: set[float] = set()  # the λ whose fit took projected-gradient steps

    def fit(self, lam: float, w_start: Array | None = None, *, peer: FoldPath | None = None) -> QPResult:
        """The fit at λ (kept for the warm starts of other λ); `peer`: another CV fold's path, already fitted at λ."""
        lam = float(lam)
        start = self._start(lam, w_start, peer) if lam > 0 else None
        res = self._warm_zero() if lam == 0 else None
        if res is None:
            res = solve(self.quad, lam, self.w0, pull=self.pull, w_start=start, top=self.top)
        self.fits[lam] = (res.w, res.gw if lam > 0 else None)
        if res.solver == "projected-gradient":
            self.first_order.add(lam)
        res.gw = None
        return res

    def _start(self, lam: float, w_start: Array | None, peer: FoldPath | None) -> Array:
        """The warm start of a fit at λ > 0 (see the class docstring for the order and why)."""
        larger = sorted(x for x in self.fits if x > lam)
        smaller = sorted(x for x in self.fits if 0 < x < lam)
        peer_w = peer.fits[lam][0] if peer is not None and lam in peer.fits else None
        first = peer_w if peer_w is not None else (self.w0 if w_start is None else w_start)
        start = self.fits[larger[0]][0] if larger else first
        mu = lam * self.quad.n
        if self.pull != "l2" or takes_pg(self.quad, mu, self.top):
            return start
        costly = self.quad.rows ** 2 >= 3 * TUNING.predict_min_factor_passes * self.quad.n  # factorisations dominate
        wide = int(np.sum(start > 0)) > self.quad.rows > 0
        both = [x for x in larger if peer_w is not None and x in peer.fits]
        if both and costly:  # this fold's larger fit moved as the peer's fit moved from there to λ, priced on this fold
            x = self.fits[both[0]][0] + peer_w - peer.fits[both[0]][0]
            moved = predict(self.quad, self.w0, mu, [(math.nan, self.quad.matvec(x))])
            if wide or np.count_nonzero(moved) >= TUNING.moved_min_share * np.count_nonzero(peer_w):
                return moved  # (in agent space only when nearly as wide as the peer's answer: `Tuning.moved_min_share`)
        if not wide:
            return start  # agent space: the nearest larger fit's support shrinks in a few cheap steps
        gw = {x: self.fits[x][1] for x in self.fits if self.fits[x][1] is not None}
        if larger and smaller and larger[0] in gw and smaller[-1] in gw:
            return predict(self.quad, self.w0, mu, [(np.log(x * self.quad.n), gw[x]) for x in (smaller[-1], larger[0])])
        if peer_w is not None:
            return peer_w
        if larger and larger[0] not in self.first_order:
            held = predict(self.quad, self.w0, mu, [(math.nan, gw[larger[0]])]) if costly else start
            return held if int(np.sum(held > 0)) <= self.quad.rows else start  # G·w held at the larger fit's
        seen = [(np.log(x * self.quad.n), gw[x]) for x in larger[1::-1] if x in gw]
        return predict(self.quad, self.w0, mu, seen or [(math.nan, self.quad.matvec(start))])

    def _warm_zero(self) -> QPResult | None:
        """λ = 0 started from the support of the smallest λ > 0 fit made, kept only where the pure fit is unique
        (`unique_minimiser`), hence the very fit a cold start reaches; None otherwise (the caller solves cold).

        Why: cold, the primal–dual active set at μ = 0 cycles on dense answer matrices and the primal active set
        that finishes it adds one agent per step (~770 steps, each a Cholesky and a pass over D, at 3,000 × 600
        latent-type answers); from the small-λ support it takes 2–3 steps to the same weights."""
        pos = [x for x in self.fits if x > 0]
        if self.pull != "l2" or not pos:
            return None
        start = self.fits[min(pos)][0]
        # bounded (`Tuning.warm_zero_iter`): a start that needs more steps is not at the unique minimiser's support
        res = active_set(self.quad, self.quad.b, 0.0, simplex=True, w_start=start, pull=self.w0,
                         max_iter=TUNING.warm_zero_iter)
        return res if res.converged and unique_minimiser(self.quad, res) else None


def fit_folds_first_order(paths: Sequence[FoldPath], lam: float) -> None:
    """Every CV fold's fit at λ by projected gradient in lockstep (`pg_simplex_folds`: one pass over D prices all
    folds), where each fold's `FoldPath.fit` would take projected-gradient steps (matrix-free folds on one D, the
    l2 pull, μ ≥ `Tuning.pg_min_pull`·‖PGP‖₂); each fold starts where its own `fit` would. The fits are kept in
    each path; a fold whose steps did not finish is left to its own `fit` (the active set)."""
    lam = float(lam)
    quads = [p.quad for p in paths]
    if (lam <= 0 or len(paths) < 2 or any(p.pull != "l2" or lam in p.fits for p in paths)
            or any(q.G is not None or q.D is not quads[0].D for q in quads)
            or not all(takes_pg(p.quad, lam * p.quad.n, p.top) for p in paths)):
        return
    mu = lam * quads[0].n
    starts = [p._start(lam, None, None) for p in paths]
    res = pg_simplex_folds(quads, [q.b + mu * p.w0 for q, p in zip(quads, paths)], mu, paths[0].top, starts)
    for p, r in zip(paths, res):
        if r is not None:
            p.fits[lam] = (r.w, r.gw)
            p.first_order.add(lam)


def majority(fits: Sequence[Array]) -> Array:
    """The start of the final fit after CV: the folds' mean fit on the agents that more than half of the folds keep
    (all of the mean if none).

    Why: the union of the folds' supports is far wider than the full fit's (latent types 20k × 5,000 at the chosen
    λ: 7,184 agents, final 4,797) and the majority near it (5,101): the final fit took 5.8 s from the mean, 1.9 s from
    the majority (issue 23; 2.3 s from two folds of five, 3.5 s from four)."""
    W = np.asarray(fits)
    mean = W.mean(axis=0)
    keep = 2 * np.sum(W > 0, axis=0) > len(W)
    return np.where(keep, mean, 0.0) if keep.any() else mean


def unique_minimiser(quad: Quad, res: QPResult) -> bool:
    """Whether the λ = 0 fit `res` is the problem's only minimiser: G_PP on its support P nonsingular (no exact
    dependence among the support's columns: pivots of its Cholesky factor above `Tuning.unique_pivot`) and strict
    complementarity (every agent outside P has a reduced gradient above `Tuning.unique_gap`). Both fail on degenerate
    designs (duplicate agents, supports wider than the rows), where different starts reach different minimisers."""
    idx = np.flatnonzero(res.w > 0)
    if not len(idx) or res.gw is None or (quad.rows and len(idx) >= quad.rows):
        return False
    g = res.gw - quad.b
    nu = float(np.mean(g[idx]))
    out = np.ones(quad.n, dtype=bool)
    out[idx] = False
    scale = max(float(np.max(np.abs(quad.b))), quad.diag_mean() / quad.n, 1e-300)
    if out.any() and float(np.min(g[out] - nu)) <= TUNING.unique_gap * scale:
        return False
    H = quad.block(idx)
    top = float(np.max(np.diag(H)))
    try:
        R = sla.cholesky(H, lower=False, overwrite_a=True, check_finite=False)
    except np.linalg.LinAlgError:
        return False
    return bool(np.min(np.diag(R)) ** 2 > TUNING.unique_pivot * top)


def path(
    quad: Quad, lams: Sequence[float], w0: Array, *, pull: str = "l2", w_start: Array | None = None,
) -> list[QPResult]:
    """Fits along a λ grid, solved from the largest λ down with warm starts (`FoldPath`); returned in grid order.

    The largest λ starts from `w_start` when given (CV: the previous fold's fit at that λ, whose support is
    nearly this fold's), else from w0."""
    fp = FoldPath(quad, w0, pull=pull)
    out: list[QPResult | None] = [None] * len(lams)
    for k in np.argsort(-np.asarray(lams, dtype=float), kind="stable"):
        out[k] = fp.fit(float(lams[k]), w_start)
    return out  # type: ignore[return-value]


def predict(quad: Quad, w0: Array, mu: float, seen: Sequence[tuple[float, Array]]) -> Array:
    """A warm start for μ = λN from fits already made: the fit's KKT conditions give w = Π_Δ(w0 + (b − G·w)/μ)
    exactly (Π_Δ the projection onto the simplex), so with G·w interpolated linearly in log μ between two fits
    (`seen`: (log μ, G·w) pairs; one pair, or a NaN first coordinate, uses G·w as it is) the projection predicts
    the new support, and the active set starts close to its answer instead of from another support (wide
    supports: each step is a rows × rows Cholesky)."""
    y = seen[-1][1]
    if len(seen) > 1 and np.isfinite(seen[-2][0]):
        (l0, y0), (l1, y1) = seen[-2], seen[-1]
        if l1 != l0:
            y = y1 + (y1 - y0) * ((np.log(mu) - l1) / (l1 - l0))
    return project_simplex(w0 + (quad.b - y) / mu)


def lam_grid(quad: Quad, n_grid: int = 19, span: float = 1e-6) -> Array:
    """0 plus a log grid scaled to the problem: λ_max·N = 10·‖PGP‖₂ (beyond it w ≈ w0).

    The norm only sets the grid's scale, so power iteration stops at 1e-3 relative change (a matrix-free
    iteration is two passes over D: ~20 s at 100k agents × 1000 rows to 1e-6, a few seconds to 1e-3)."""
    top = quad.power_norm(centered=True, iters=30, rtol=1e-3)
    scale = quad.diag_mean()
    if top <= 1e-12 * scale:  # agents that cannot be told apart: ‖PGP‖₂ is 0 up to round-off
        top = max(scale, 1e-12)
    lam_hi = 10.0 * top / quad.n
    return np.concatenate([[0.0], lam_hi * np.logspace(0, np.log10(span), n_grid)])
