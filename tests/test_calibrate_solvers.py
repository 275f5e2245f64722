"""Fast solvers vs cvxpy/Clarabel: same objective to 1e-6 relative, KKT conditions, projection."""

from __future__ import annotations

import os

import cvxpy as cp
import numpy as np
import pytest

from personagen.bench.solver import make_problem
from personagen.calibrate.solvers import Quad, active_set, fista_simplex, gram, project_simplex


@pytest.fixture(scope="module")
def prob():
    D, r, g, _ = make_problem(200, 100, seed=1)
    return D, r


def _cvx_simplex(D, r, mu, w0):
    w = cp.Variable(D.shape[1])
    obj = 0.5 * cp.sum_squares(r - D @ w) + 0.5 * mu * cp.sum_squares(w - w0)
    p = cp.Problem(cp.Minimize(obj), [w >= 0, cp.sum(w) == 1])
    p.solve(solver=cp.CLARABEL)
    return p.value


def _obj(quad, w, mu, w0):
    return quad.value(w) + 0.5 * mu * float(np.sum((w - w0) ** 2))


@pytest.mark.parametrize("lam", [0.0, 1e-4, 1e-2])
@pytest.mark.parametrize("dense", [True, False])
def test_active_set_matches_clarabel(prob, lam, dense):
    D, r = prob
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    mu = lam * n
    quad = Quad.from_design(D, r, dense=dense)
    res = active_set(quad, quad.b + mu * w0, mu)
    ref = _cvx_simplex(D, r, mu, w0)
    val = _obj(quad, res.w, mu, w0)
    assert res.converged
    assert (val - ref) / abs(ref) <= 1e-6
    assert res.w.min() >= 0 and abs(res.w.sum() - 1) < 1e-12
    # KKT: reduced gradient equal on the support, not smaller off it
    g = quad.matvec(res.w) + mu * (res.w - w0) - quad.b
    sup = res.w > 0
    nu = g[sup].mean()
    scale = np.abs(g).max()
    assert np.ptp(g[sup]) <= 1e-8 * scale
    assert (g[~sup] - nu).min() >= -1e-8 * scale


def test_fista_agrees(prob):
    D, r = prob
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    mu = 1e-2 * n
    quad = Quad.from_design(D, r)
    a = active_set(quad, quad.b + mu * w0, mu)
    f = fista_simplex(quad, quad.b + mu * w0, mu, tol=1e-12)
    va, vf = _obj(quad, a.w, mu, w0), _obj(quad, f.w, mu, w0)
    assert abs(va - vf) / abs(va) < 1e-6


def test_nonnegative_qp_matches_clarabel(prob):
    D, r = prob
    alpha = 0.05
    quad = Quad.from_design(D, r)
    res = active_set(quad, quad.b - alpha, 0.0, simplex=False)
    w = cp.Variable(D.shape[1], nonneg=True)
    p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(r - D @ w) + alpha * cp.sum(w)))
    p.solve(solver=cp.CLARABEL)
    val = quad.value(res.w) + alpha * res.w.sum()
    assert (val - p.value) / abs(p.value) <= 1e-6


def test_project_simplex():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.standard_normal(7) * 3
        p = project_simplex(v)
        assert p.min() >= 0 and abs(p.sum() - 1) < 1e-12
        # optimality: p = max(v - θ, 0) with one θ
        th = (v - p)[p > 0]
        assert np.ptp(th) < 1e-12
        assert np.all(v[p == 0] <= th[0] + 1e-12)


def test_gram_and_power_norm():
    rng = np.random.default_rng(0)
    D = rng.random((30, 12))
    sw = rng.random(30)
    G = gram(D, sw)
    assert np.allclose(G, (D * sw[:, None]).T @ D)
    q = Quad.from_design(D, rng.random(30), sw, dense=False)
    assert q.power_norm(iters=500) == pytest.approx(np.linalg.eigvalsh(G).max(), rel=1e-5)
    assert np.allclose(q.block(np.array([3, 1, 5])), G[np.ix_([3, 1, 5], [3, 1, 5])])
    assert np.allclose(q.block(np.array([5, 0])), G[np.ix_([5, 0], [5, 0])])


# --- wide (census-shaped) problems: rows ≪ agents, the row-space (low-rank) support solves -----------------


@pytest.fixture(scope="module")
def wide():
    from personagen.bench.solver import make_onehot_problem

    D, r, g = make_onehot_problem(30, 800, seed=3, renormalise=False)  # λ = 0 leaves a residual
    return D, r, g


def _grad_kkt(D, r, w, mu, w0):
    g = D.T @ (D @ w - r) + mu * (w - w0)
    sup = w > 0
    nu = g[sup].mean()
    scale = np.abs(g).max() + np.abs(D.T @ r).max()
    return np.ptp(g[sup]) / scale, (g[~sup] - nu).min() / scale if (~sup).any() else 0.0


@pytest.mark.parametrize("which", ["zero", "small", "mid", "large"])
def test_lowrank_matches_dense_and_clarabel(wide, which):
    from personagen.calibrate import simplex as sx

    D, r, _ = wide
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    free = Quad.from_design(D, r)
    assert free.G is None  # wide: matrix-free by default
    lam = {"zero": 0.0, "small": 1e-7, "mid": float(sx.lam_grid(free)[10]), "large": float(sx.lam_grid(free)[2])}[which]
    mu = lam * n
    dense = Quad.from_design(D, r, dense=True)
    ref = _cvx_simplex(D, r, mu, w0)
    for start in (None, w0):  # cold (best vertex) and warm from the full support (all agents active)
        free = Quad.from_design(D, r)
        a = active_set(dense, dense.b + mu * w0, mu, w_start=start)
        b = active_set(free, free.b + mu * w0, mu, w_start=start)
        assert a.converged and b.converged
        if lam > 0 or start is not None:
            assert free.n_lowrank > 0  # the row-space path was taken
        va, vb = _obj(dense, a.w, mu, w0), _obj(dense, b.w, mu, w0)
        assert abs(vb - va) <= 1e-9 * abs(va) + 1e-13 * dense.c
        assert (vb - ref) / abs(ref) <= 1e-6
        assert b.w.min() >= 0 and abs(b.w.sum() - 1) < 1e-12
        spread, off = _grad_kkt(D, r, b.w, mu, w0)
        assert spread <= 1e-10 and off >= -1e-9


def test_lowrank_cv_path_matches_dense_folds():
    """CV on a census-shaped problem: every fold's λ path through D and the row-space solves equals the
    dense-Gram path (objective to 1e-9), no dense solve is larger than 2·rows, and fit_weights' CV runs on it."""
    from personagen.bench.solver import make_onehot_problem
    from personagen.calibrate import fit_weights
    from personagen.calibrate import quad as quad_module
    from personagen.calibrate import simplex as sx
    from personagen.calibrate.cv import fold_masks, fold_quads

    D, r, g = make_onehot_problem(60, 1000, seed=0)
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    sw = np.ones(len(r))
    masks = fold_masks(g, 5, 0)
    grid = sx.lam_grid(Quad.from_design(D, r))
    for qf, qd in zip(fold_quads(D, r, sw, masks), fold_quads(D, r, sw, masks, dense=True)):
        assert qf.G is None and qd.G is not None
        pf, pd = sx.path(qf, grid, w0), sx.path(qd, grid, w0)
        for lam, a, b in zip(grid, pf, pd):
            va, vb = sx.objective(qd, a.w, lam, w0, "l2"), sx.objective(qd, b.w, lam, w0, "l2")
            # the data term is evaluated as ½wᵀGw − bᵀw + c: round-off ~ ε·c on top of the relative gap
            assert abs(va - vb) <= 1e-9 * abs(vb) + 1e-13 * qd.c, lam
        assert qf.n_lowrank > 0

    sizes = []
    orig = quad_module.eq_solve

    def spy(H, fP, simplex):
        sizes.append(len(fP))
        return orig(H, fP, simplex)

    quad_module.eq_solve = spy
    try:
        res = fit_weights(D, r, groups=g)
    finally:
        quad_module.eq_solve = orig
    assert res.cv["folds"] == 5 and res.cv["grid_full"] == 20 and 8 <= len(res.cv["grid"]) <= 12
    assert max(sizes, default=0) < 2 * D.shape[0]
    assert abs(res.weights.sum() - 1) < 1e-12 and res.weights.min() >= 0


def test_projected_gradient_for_strong_pulls(prob):
    """Large μ (the top of the CV grid): projected gradient with step 2/(L + 2μ) contracts by q = L/(L + 2μ) a step
    (L = ‖PGP‖₂), reaches the active set's minimiser (objective to 1e-12, Clarabel's to 1e-6) in about
    log(tol)/log(q) steps, and `simplex.solve` takes it only from μ ≥ 0.9·L (`Tuning.pg_min_pull`)."""
    from personagen.calibrate import simplex as sx
    from personagen.calibrate.solvers import pg_simplex

    D, r, _, _ = make_problem(600, 50, seed=4)  # 200 rows × 600 agents: matrix-free
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    quad = Quad.from_design(D, r)
    assert quad.G is None
    top = quad.power_norm(centered=True, iters=30, rtol=1e-3)
    P = np.eye(n) - 1.0 / n
    exact = np.linalg.eigvalsh(P @ gram(D) @ P).max()
    assert top <= exact * (1 + 1e-12) and top >= 0.95 * exact  # the estimate the 5% margin covers
    for ratio in (0.9, 10.0):
        mu = ratio * top
        f = quad.b + mu * w0
        pg = pg_simplex(quad, f, mu, top, w0)
        a = active_set(Quad.from_design(D, r), f, mu)
        assert pg is not None and pg.solver == "projected-gradient"
        q = 1.05 * top / (1.05 * top + 2 * mu)
        assert pg.n_iter <= np.log(1e-13) / np.log(q) + 3
        va, vp = _obj(quad, a.w, mu, w0), _obj(quad, pg.w, mu, w0)
        assert abs(vp - va) <= 1e-12 * abs(va)
        assert np.abs(pg.w - a.w).max() <= 1e-10 * a.w.max()
        assert (vp - _cvx_simplex(D, r, mu, w0)) / abs(va) <= 1e-6
        # λ·N a hair above μ: (μ/N)·N can round below 0.9·top, and which way it rounds depends on the CPU's BLAS
        assert sx.solve(quad, mu * (1 + 1e-12) / n, w0, top=top).solver == "projected-gradient"
    assert sx.solve(quad, 0.8 * top / n, w0, top=top).solver.startswith("active-set")


def test_row_space_corrections_by_woodbury(wide):
    """An active-set correction (a few agents in or out, same μ) reuses the last row-space factorisation through
    Woodbury's identity; the support solve equals the direct dense one (G_PP + μI, Σz = 1) to 1e-10."""
    from personagen.calibrate import solvers

    D, r, _ = wide
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    G = gram(D)
    mu = 1e-3 * float(np.trace(G)) / n
    rng = np.random.default_rng(0)
    base = np.sort(rng.choice(n, 500, replace=False))
    outside = np.setdiff1d(np.arange(n), base)
    calls = []
    orig = solvers._RowOperator.corrected

    def spy(self, quad, add, rem, pull):
        calls.append((len(add), len(rem)))
        return orig(self, quad, add, rem, pull)

    solvers._RowOperator.corrected = spy
    try:
        quad = Quad.from_design(D, r)
        f = quad.b + mu * w0
        for idx in (base, np.sort(np.concatenate([base[5:], outside[:4]])), np.sort(base[:-3])):
            z, nu, gw = quad.eq_solve(idx, f[idx], mu, True, pull=w0)
            zd, nud = solvers._eq_solve(G[np.ix_(idx, idx)] + mu * np.eye(len(idx)), f[idx], True)
            assert np.abs(z - zd).max() <= 1e-10 * np.abs(zd).max()
            assert abs(nu - nud) <= 1e-10 * max(abs(nud), 1.0)
            w = np.zeros(n)
            w[idx] = z
            assert np.abs(gw - G @ w).max() <= 1e-10 * np.abs(G @ w).max()  # G·w from the one pass
    finally:
        solvers._RowOperator.corrected = orig
    assert calls == [(4, 5), (0, 3)]


def test_fold_kernels_from_reused_buffers_match_numpy():
    """A CV fold's row-space kernel X_PX_Pᵀ (held-out rows scattered, row weights not 1), gathered run by run of
    consecutive rows into the shared kernel's reused buffers, equals numpy's product; the factorisation made in
    those buffers solves μI + K_P exactly as numpy does, also after another fold has refilled them."""
    from personagen.calibrate.row_space import RowKernel

    rng = np.random.default_rng(5)
    m, n, mu = 40, 120, 0.7
    D = rng.random((m, n))
    r = rng.random(m)
    sw = rng.uniform(0.5, 2.0, m)
    kernel = RowKernel(D, chunk=16)  # several rank-k chunks per move
    held = [np.array([0, 1, 7, 8, 9, 20, 39]), np.array([3, 4, 15, 16, 30, 31])]  # runs at both ends, in the middle
    quads = [Quad(D=D, r=r, sw=np.where(np.isin(np.arange(m), h), 0.0, sw), kernel=kernel) for h in held]
    supports = [np.sort(rng.choice(n, k, replace=False)) for k in (70, 90, 60)]
    for P in supports:
        for q, h in zip(quads + quads[:1], held + held[:1]):  # fold 0, fold 1, fold 0 again: the buffers change hands
            T = np.setdiff1d(np.arange(m), h)
            X = np.sqrt(sw[T])[:, None] * D[np.ix_(T, P)]
            ref = X @ X.T
            K = q._row_kernel(P)
            assert np.allclose(np.triu(K), np.triu(ref), rtol=1e-12, atol=1e-12)
            op = q._row_operator(P, mu, None)
            b = rng.standard_normal(len(T))
            assert np.allclose(op.solve(b), np.linalg.solve(mu * np.eye(len(T)) + ref, b), rtol=1e-9, atol=1e-12)
            assert np.allclose(op.kmul(b), ref @ b, rtol=1e-12, atol=1e-12)


def test_thin_products_equal_the_plain_ones():
    """`times_cols` and `tr_times_cols` (computed as (WᵀDᵀ)ᵀ and (SᵀD)ᵀ for speed) are D @ W and Dᵀ @ S."""
    from personagen.calibrate._blas import times_cols, tr_times_cols

    rng = np.random.default_rng(6)
    for D in (rng.random((50, 300)), np.asfortranarray(rng.random((50, 300)))):
        W, S = rng.random((300, 5)), rng.random((50, 3))
        assert np.allclose(times_cols(D, W), D @ W, rtol=1e-13)
        assert np.allclose(tr_times_cols(D, S), D.T @ S, rtol=1e-13)
        assert times_cols(D, W).shape == (50, 5) and tr_times_cols(D, S).shape == (300, 3)


def test_gradient_from_few_agents_equals_the_full_product():
    """G·w from the rows of G (dense) or the columns of D (matrix-free) of the agents with weight, when few, is
    G @ w; so is the full product when many have weight."""
    rng = np.random.default_rng(7)
    D = rng.random((80, 400))
    G = gram(D)
    dense, free = Quad(G=G, b=np.zeros(400)), Quad(D=D, r=rng.random(80))
    for k in (3, 50, 400):  # below both cut-offs, between them, every agent
        w = np.zeros(400)
        w[rng.choice(400, k, replace=False)] = rng.random(k)
        assert np.allclose(dense.matvec(w), G @ w, rtol=1e-12)
        assert np.allclose(free.matvec(w), G @ w, rtol=1e-12)


def test_blas_thread_limits_follow_the_tuned_cut_offs():
    """Inside the solve loop's one-thread limit, `big_threads`, `pass_threads` and `all_threads` give every BLAS
    thread exactly from their `Tuning` cut-offs on (m ≥ big_rows, size ≥ big_pass) and leave one thread below, and
    the limits are undone on exit (the number of threads read back from the BLAS library itself)."""
    from personagen.calibrate._blas import _controller, all_threads, big_threads, blas_threads, pass_threads
    from personagen.calibrate.tuning import TUNING

    def threads() -> int:
        return max(lib["num_threads"] for lib in _controller().select(user_api="blas").info())

    every = os.cpu_count() or 1
    before = threads()
    with blas_threads(1):
        assert threads() == 1
        for ctx, on, off in ((big_threads, TUNING.big_rows, TUNING.big_rows - 1),
                             (pass_threads, TUNING.big_pass, TUNING.big_pass - 1),
                             (all_threads, True, False)):
            with ctx(on):
                assert threads() == every
            with ctx(off):
                assert threads() == 1
            assert threads() == 1
    assert threads() == before


def test_kernel_block_fills_the_tuned_megabytes():
    """RowKernel's default block: as many columns as fill `Tuning.kernel_chunk_mb` (80 MB = 10,485,760 doubles) at
    its row count, never fewer than `kernel_chunk_min` (512): 2,097 columns at 5,000 rows, 10,485 at 1,000, 512 at
    20,481 (511 would fill it); an explicit chunk wins. (D is a broadcast view; the kernel's zeros are never touched.)"""
    from personagen.calibrate.row_space import RowKernel

    for rows, want in ((5000, 2097), (1000, 10485), (20481, 512)):
        D = np.broadcast_to(np.zeros(1), (rows, 3))
        assert RowKernel(D).chunk == want
    assert RowKernel(np.zeros((40, 3)), chunk=16).chunk == 16
