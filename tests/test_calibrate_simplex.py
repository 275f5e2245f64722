"""The simplex estimator: hand-solvable cases, the KL pull against cvxpy, the λ limits."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest

from personagen.bench.solver import make_problem
from personagen.calibrate import fit_weights
from personagen.calibrate import simplex as sx
from personagen.calibrate.solvers import Quad
from personagen.calibrate.tuning import TUNING


def test_agent_equal_to_target_gets_all_weight():
    D, r, g, _ = make_problem(50, 20, seed=3)
    r = D[:, 17].copy()
    res = fit_weights(D, r, lam=0.0)
    assert res.weights[17] == pytest.approx(1.0, abs=1e-9)
    assert res.objective == pytest.approx(0.0, abs=1e-15)


def test_two_agents_closed_form():
    # r = 0.3·a + 0.7·b exactly; D has only a and b → weights (0.3, 0.7)
    a = np.array([1.0, 0.0, 0.5, 0.5])
    b = np.array([0.0, 1.0, 0.2, 0.8])
    D = np.column_stack([a, b])
    res = fit_weights(D, 0.3 * a + 0.7 * b)
    assert np.allclose(res.weights, [0.3, 0.7], atol=1e-10)


def test_large_lambda_returns_base():
    D, r, g, _ = make_problem(60, 30, seed=2)
    base = np.random.default_rng(0).random(60)
    res = fit_weights(D, r, lam=1e9, base=base)
    assert np.allclose(res.weights, base / base.sum(), atol=1e-6)


@pytest.mark.parametrize("lam", [1e-2, 1e-1])
def test_kl_pull_matches_clarabel(lam):
    D, r, g, _ = make_problem(120, 40, seed=4)
    n = D.shape[1]
    base = np.random.default_rng(1).random(n) + 0.1
    w0 = base / base.sum()
    res = fit_weights(D, r, lam=lam, pull="kl", base=base)
    w = cp.Variable(n)
    p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(r - D @ w) + lam * cp.sum(cp.rel_entr(w, w0))),
                   [w >= 0, cp.sum(w) == 1])
    p.solve(solver=cp.CLARABEL)
    assert res.solver == "kl-newton"
    assert (res.objective - p.value) / abs(p.value) <= 1e-6
    assert res.weights.min() > 0


def test_path_warm_start_equals_cold():
    D, r, g, _ = make_problem(100, 50, seed=5)
    quad = Quad.from_design(D, r)
    w0 = np.full(100, 0.01)
    grid = sx.lam_grid(quad)
    assert grid[0] == 0.0 and len(grid) == 20
    path = sx.path(quad, grid, w0)
    for lam, res in zip(grid[::4], path[::4]):
        cold = sx.solve(quad, lam, w0)
        a = sx.objective(quad, res.w, lam, w0, "l2")
        b = sx.objective(quad, cold.w, lam, w0, "l2")
        assert abs(a - b) <= 1e-9 * max(abs(b), 1e-12)


def test_row_weights_used():
    D, r, g, _ = make_problem(80, 30, seed=6)
    sw = np.random.default_rng(2).random(len(r)) + 0.5
    res = fit_weights(D, r, lam=1e-3, row_weights=sw)
    w = cp.Variable(80)
    obj = 0.5 * cp.sum_squares(cp.multiply(np.sqrt(sw), r - D @ w)) + 0.5 * 1e-3 * 80 * cp.sum_squares(w - 1 / 80)
    p = cp.Problem(cp.Minimize(obj), [w >= 0, cp.sum(w) == 1])
    p.solve(solver=cp.CLARABEL)
    assert (res.objective - p.value) / abs(p.value) <= 1e-6


# ---- the objective and the grid by hand; weights (not only objectives) against an independent solver ------
A2 = np.array([1.0, 0.0, 0.5, 0.5])
B2 = np.array([0.0, 1.0, 0.2, 0.8])
R2 = np.array([0.4, 0.5, 0.3, 0.6])


def test_objective_by_hand():
    """½‖r − Dw‖² + λN/2‖w − w0‖² (l2) or + λ Σ w log(w/w0) (kl), DESIGN §5, on numbers worked out by hand."""
    quad = Quad.from_design(np.column_stack([A2, B2]), R2)
    w, w0 = np.array([0.25, 0.75]), np.array([0.5, 0.5])
    # Dw = (.25, .75, .275, .725); r − Dw = (.15, −.25, .025, −.125); squares .0225 + .0625 + .000625 + .015625
    data = 0.5 * (0.0225 + 0.0625 + 0.000625 + 0.015625)
    assert sx.objective(quad, w, 0.0, w0, "l2") == pytest.approx(data, abs=1e-15)
    # l2 pull: λ·N/2·‖w − w0‖² = 0.1 · 2/2 · (.0625 + .0625)
    assert sx.objective(quad, w, 0.1, w0, "l2") == pytest.approx(data + 0.1 * 0.125, abs=1e-15)
    # KL(w‖w0) = .25 ln(.5) + .75 ln(1.5)
    kl = 0.25 * np.log(0.5) + 0.75 * np.log(1.5)
    assert sx.objective(quad, w, 0.1, w0, "kl") == pytest.approx(data + 0.1 * kl, abs=1e-15)
    # an agent at zero weight adds 0·log 0 = 0 to the KL
    assert sx.objective(quad, np.array([0.0, 1.0]), 0.2, w0, "kl") == pytest.approx(
        sx.objective(quad, np.array([0.0, 1.0]), 0.0, w0, "kl") + 0.2 * np.log(2.0), abs=1e-15)
    # row weights enter the data term: ½ Σ W_i (r − Dw)_i²
    sw = np.array([2.0, 1.0, 0.0, 4.0])
    qw = Quad.from_design(np.column_stack([A2, B2]), R2, sw)
    assert sx.objective(qw, w, 0.0, w0, "l2") == pytest.approx(0.5 * (2 * 0.0225 + 0.0625 + 4 * 0.015625), abs=1e-15)


def _cvx_l2(D, r, lam, w0, sw=None):
    n = D.shape[1]
    sw = np.ones(len(r)) if sw is None else sw
    w = cp.Variable(n)
    obj = 0.5 * cp.sum_squares(cp.multiply(np.sqrt(sw), r - D @ w)) + 0.5 * lam * n * cp.sum_squares(w - w0)
    cp.Problem(cp.Minimize(obj), [w >= 0, cp.sum(w) == 1]).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12,
                                                                 tol_gap_rel=1e-12, tol_feas=1e-12)
    return np.asarray(w.value)


@pytest.mark.parametrize("lam", [1e-3, 3e-2])
def test_weights_match_an_independent_solver(lam):
    """λ > 0 makes the minimiser unique, so the weights themselves must agree, dense and matrix-free alike."""
    D, r, g, _ = make_problem(60, 24, seed=11)
    base = np.random.default_rng(4).random(60) + 0.2
    w0 = base / base.sum()
    ref = _cvx_l2(D, r, lam, w0)
    for dense in (True, False):
        res = sx.solve(Quad.from_design(D, r, dense=dense), lam, w0)
        np.testing.assert_allclose(res.w, ref, atol=2e-6)
    res = fit_weights(D, r, lam=lam, base=base)
    np.testing.assert_allclose(res.weights, ref, atol=2e-6)


def test_two_agents_with_a_pull_closed_form():
    """Two agents, w = (t, 1 − t): ½‖r − b − t(a − b)‖² + λN/2·2(t − ½)² is minimised at
    t = ((a − b)·(r − b) + λN) / (‖a − b‖² + 2λN)  (N = 2, w0 = (½, ½)), clipped to [0, 1]."""
    D = np.column_stack([A2, B2])
    d = A2 - B2
    for lam in (0.0, 0.05, 0.5, 50.0):
        t = (d @ (R2 - B2) + lam * 2) / (d @ d + 2 * lam * 2)
        t = min(max(t, 0.0), 1.0)
        res = fit_weights(D, R2, lam=lam)
        np.testing.assert_allclose(res.weights, [t, 1 - t], atol=1e-10)
        assert res.objective == pytest.approx(sx.objective(Quad.from_design(D, R2), np.array([t, 1 - t]),
                                                           lam, np.array([0.5, 0.5]), "l2"), abs=1e-12)


def test_lam_grid_scale_by_hand():
    """λ_max = 10·‖PGP‖₂ / N (P the centring projector), then 19 log-spaced values down to λ_max·1e-6, and 0."""
    D, r, g, _ = make_problem(40, 30, seed=8)
    n = D.shape[1]
    P = np.eye(n) - np.full((n, n), 1 / n)
    top = np.linalg.eigvalsh(P @ (D.T @ D) @ P).max()
    grid = sx.lam_grid(Quad.from_design(D, r))
    assert len(grid) == 20 and grid[0] == 0.0
    # power iteration stops at 1e-3 relative change (the norm only sets the scale): a Rayleigh quotient, so from below
    assert 0.95 * 10 * top / n <= grid[1] <= 10 * top / n * (1 + 1e-9)
    assert grid[-1] == pytest.approx(grid[1] * 1e-6, rel=1e-9)
    np.testing.assert_allclose(np.diff(np.log10(grid[1:])), -6 / 18, rtol=1e-9)
    assert len(sx.lam_grid(Quad.from_design(D, r), n_grid=5, span=1e-2)) == 6


def test_predict_is_the_kkt_projection():
    """w = Π_Δ(w0 + (b − G·w)/μ) at the solution: predicting from the exact G·w reproduces the fit exactly."""
    D, r, g, _ = make_problem(30, 12, seed=9)
    quad = Quad.from_design(D, r)
    w0 = np.full(30, 1 / 30)
    lam = 0.5
    res = sx.solve(quad, lam, w0)
    gw = D.T @ (D @ res.w)
    np.testing.assert_allclose(sx.predict(quad, w0, lam * 30, [(np.nan, gw)]), res.w, atol=1e-9)
    # linear extrapolation in log μ from two fits, by hand: from (0.5, y0) and (1.0, y1) to log μ = 2 the slope
    # (y1 − y0)/0.5 runs for 1.0, so G·w ≈ y1 + 2(y1 − y0) = 3·y1 − 2·y0
    y0, y1 = 0.5 * gw, gw
    expect = sx.project_simplex(w0 + (quad.b - (3 * y1 - 2 * y0)) / np.exp(2.0))
    got = sx.predict(quad, w0, np.exp(2.0), [(9.0, 5 * gw), (0.5, y0), (1.0, y1)])  # the last two fits count
    np.testing.assert_allclose(got, expect, atol=1e-12)
    # a first fit with no log μ (the KKT map's one step) is not extrapolated from
    np.testing.assert_allclose(sx.predict(quad, w0, np.exp(2.0), [(np.nan, y0), (1.0, y1)]),
                               sx.project_simplex(w0 + (quad.b - y1) / np.exp(2.0)), atol=1e-12)


def test_projected_gradient_rule():
    """Projected gradient only for a matrix-free quadratic with μ ≥ Tuning.pg_min_pull·‖PGP‖₂ (0.9, measured in
    issue 23: each step then contracts by ≤ L/(L + 2μ) = 1/(1 + 1.8) < 0.37)."""
    from personagen.calibrate.tuning import TUNING

    assert TUNING.pg_min_pull == 0.9
    D, r, g, _ = make_problem(30, 12, seed=9)
    free, dense = Quad.from_design(D, r, dense=False), Quad.from_design(D, r, dense=True)
    assert sx.takes_pg(free, 0.9, 1.0) and sx.takes_pg(free, 10.0, 1.0)
    assert not sx.takes_pg(free, 0.89, 1.0) and not sx.takes_pg(free, 1.79, 2.0) and sx.takes_pg(free, 1.8, 2.0)
    assert not sx.takes_pg(dense, 10.0, 1.0)
    assert not sx.takes_pg(free, 10.0, None) and not sx.takes_pg(free, 10.0, 0.0)


def test_foldpath_lambda_zero_is_the_cold_fit():
    """λ = 0 along a path is solved cold, so CV scores the sparse fit that `fit_weights(lam=0)` delivers."""
    D, r, g, _ = make_problem(80, 20, seed=12)
    quad = Quad.from_design(D, r)
    w0 = np.full(80, 1 / 80)
    fp = sx.FoldPath(quad, w0)
    for lam in (1.0, 0.1, 0.01):
        fp.fit(lam)
    np.testing.assert_allclose(fp.fit(0.0).w, fit_weights(D, r, lam=0.0).weights, atol=1e-9)
    # and each λ > 0 equals its cold solve (the warm start changes the path, not the answer)
    for lam in (1.0, 0.1, 0.01):
        np.testing.assert_allclose(fp.fits[lam][0], sx.solve(quad, lam, w0).w, atol=1e-7)
    # a refit at λ = 1 once λ = 0 is made is still the λ = 1 fit
    np.testing.assert_allclose(fp.fit(1.0).w, sx.solve(quad, 1.0, w0).w, atol=1e-7)


def _ref_l2(quad, lam, w0):
    """The unique minimiser at λ > 0 by the dense active set (a reference for the other routes)."""
    dense = Quad(G=quad.G if quad.G is not None else quad.densify().G, b=quad.b, c=quad.c)
    return sx.solve(dense, lam, w0).w


def test_every_solver_route_gives_the_same_weights():
    """FISTA, projected gradient (strong pull, matrix-free) and the active set solve one problem: same weights."""
    D, r, g, _ = make_problem(150, 10, seed=13)
    free = Quad.from_design(D, r, dense=False)
    w0 = np.random.default_rng(5).dirichlet(np.ones(150))
    P = np.eye(150) - 1 / 150
    top = float(np.linalg.eigvalsh(P @ (D.T @ D) @ P).max())
    for lam in (1e-3, 1e-1):
        ref = _ref_l2(free, lam, w0)
        np.testing.assert_allclose(sx.solve(free, lam, w0, solver="fista").w, ref, atol=1e-7)
        assert sx.solve(free, lam, w0, solver="fista").solver == "fista"
    lam = 6.0 * top / 150  # μ = λN = 6·‖PGP‖₂ ≥ 4.5·‖PGP‖₂: projected gradient
    res = sx.solve(free, lam, w0, top=top)
    assert res.solver == "projected-gradient"
    np.testing.assert_allclose(res.w, _ref_l2(free, lam, w0), atol=1e-9)
    start = np.full(150, 1 / 150)
    np.testing.assert_allclose(sx.solve(free, lam, w0, top=top, w_start=start).w, res.w, atol=1e-9)
    # λ = 0 with the KL pull is the pure fit (no KL term), solved by the active set, not KL-Newton
    zero = sx.solve(free, 0.0, w0, pull="kl")
    assert zero.solver != "kl-newton"
    assert sx.objective(free, zero.w, 0.0, w0, "kl") == pytest.approx(
        sx.objective(free, sx.solve(free, 0.0, w0).w, 0.0, w0, "l2"), abs=1e-12)


def test_path_and_foldpath_honour_the_kl_pull_and_wide_supports():
    """Along a grid: the KL pull is used when asked (not the l2 one), and a support wider than the rows (the
    predicted warm starts) or a strong pull (projected gradient) still gives each λ's own minimiser."""
    D, r, g, _ = make_problem(200, 3, seed=14)  # 12 rows, 200 agents: supports wider than the rows
    quad = Quad.from_design(D, r, dense=False)
    w0 = np.random.default_rng(6).dirichlet(np.ones(200))
    lams = [0.3, 0.03, 0.003]
    for res, lam in zip(sx.path(Quad.from_design(D, r), lams, w0, pull="kl"), lams):
        np.testing.assert_allclose(res.w, sx.solve(Quad.from_design(D, r), lam, w0, pull="kl").w, atol=1e-7)
    P = np.eye(200) - 1 / 200
    top = float(np.linalg.eigvalsh(P @ (D.T @ D) @ P).max())
    fp = sx.FoldPath(quad, w0, top=top)
    grid = [10 * top / 200, 1.0 * top / 200, 0.1 * top / 200, 0.01 * top / 200, 0.001 * top / 200]
    for lam in grid:
        res = fp.fit(lam)
        np.testing.assert_allclose(res.w, _ref_l2(quad, lam, w0), atol=1e-8)
    assert int(np.sum(fp.fits[grid[2]][0] > 0)) > quad.rows  # the wide-support branch was taken
    assert fp.fits[grid[0]][1] is not None  # G·w kept for the next predictions
    assert np.allclose(fp.fits[grid[1]][1], D.T @ (D @ fp.fits[grid[1]][0]), atol=1e-9)
    # fits are kept per λ and reused: a second fit at a λ already made starts from the nearest larger one
    again = fp.fit(grid[3])
    np.testing.assert_allclose(again.w, fp.fits[grid[3]][0], atol=1e-12)


def test_lam_grid_when_the_agents_cannot_be_told_apart():
    """Identical agents: ‖PGP‖₂ = 0, so the grid's scale falls back to the Gram's mean diagonal."""
    col = np.array([0.2, 0.8, 0.5, 0.5])
    D = np.column_stack([col] * 5)
    quad = Quad.from_design(D, np.array([0.3, 0.7, 0.4, 0.6]))
    grid = sx.lam_grid(quad)
    assert grid[1] == pytest.approx(10 * float(col @ col) / 5, rel=1e-12)


def test_unique_minimiser_by_hand():
    """The λ = 0 fit is unique when G_PP on its support is nonsingular and every agent outside has a strictly larger
    reduced gradient; a support as wide as the rows, a duplicate agent (in the support or just outside it) and a
    fit without G·w are not called unique."""
    from types import SimpleNamespace

    D = np.column_stack([A2, B2])
    quad = Quad.from_design(D, R2)
    w = np.array([0.99 / 2.18, 1 - 0.99 / 2.18])  # t = (a − b)·(r − b)/‖a − b‖² (interior: the pure fit)
    assert sx.unique_minimiser(quad, SimpleNamespace(w=w, gw=D.T @ (D @ w)))
    assert not sx.unique_minimiser(quad, SimpleNamespace(w=w, gw=None))
    assert not sx.unique_minimiser(quad, SimpleNamespace(w=np.zeros(2), gw=np.zeros(2)))
    # a third agent equal to b, outside the support: its reduced gradient ties b's (another minimiser shifts weight)
    D3 = np.column_stack([A2, B2, B2])
    q3 = Quad.from_design(D3, R2)
    w3 = np.append(w, 0.0)
    assert not sx.unique_minimiser(q3, SimpleNamespace(w=w3, gw=D3.T @ (D3 @ w3)))
    # ... and inside it: G_PP singular
    w3 = np.array([w[0], w[1] / 2, w[1] / 2])
    assert not sx.unique_minimiser(q3, SimpleNamespace(w=w3, gw=D3.T @ (D3 @ w3)))
    # a fourth agent far from the target stays outside with a clear gap: unique again
    D4 = np.column_stack([A2, B2, np.ones(4)])
    q4 = Quad.from_design(D4, R2)
    w4 = np.append(w, 0.0)
    assert sx.unique_minimiser(q4, SimpleNamespace(w=w4, gw=D4.T @ (D4 @ w4)))
    # two rows and two agents in the support: as wide as the rows (known only to a matrix-free quadratic), which
    # the rule does not call unique (it cannot tell a wide support's dependence cheaply)
    D2 = np.eye(2)
    q2 = Quad.from_design(D2, np.array([0.3, 0.7]), dense=False)
    w2 = np.array([0.3, 0.7])
    assert not sx.unique_minimiser(q2, SimpleNamespace(w=w2, gw=D2.T @ (D2 @ w2)))


def test_foldpath_first_wide_fit_and_lambda_zero_edges():
    """A first λ > 0 fit with a support wider than the rows (no pg: no `top`) starts from one KKT step and still
    gives that λ's own minimiser; λ = 0 before any λ > 0 is the cold fit; λ = 1 after a smaller λ is the λ = 1 fit
    (not the λ = 0 one); with a duplicate agent the pure fit is not unique and λ = 0 is still the cold fit."""
    D, r, g, _ = make_problem(60, 2, seed=15)  # 8 rows, 60 agents
    quad = Quad.from_design(D, r, dense=False)
    w0 = np.random.default_rng(7).dirichlet(np.ones(60))
    fp = sx.FoldPath(quad, w0)
    np.testing.assert_array_equal(fp.fit(0.0).w, sx.solve(quad, 0.0, w0).w)
    lam = 1e-3
    np.testing.assert_allclose(fp.fit(lam).w, _ref_l2(quad, lam, w0), atol=1e-8)
    np.testing.assert_allclose(fp.fit(1.0).w, _ref_l2(quad, 1.0, w0), atol=1e-8)
    j = int(np.argmax(sx.solve(quad, 0.0, w0).w))
    D2 = np.column_stack([D, D[:, j]])
    q2 = Quad.from_design(D2, r, dense=False)
    w02 = np.full(61, 1 / 61)
    fp = sx.FoldPath(q2, w02)
    fp.fit(1e-2)
    np.testing.assert_array_equal(fp.fit(0.0).w, sx.solve(q2, 0.0, w02).w)


def test_predict_extrapolates_from_exactly_two_fits_and_small_grid_scales():
    D, r, g, _ = make_problem(30, 12, seed=9)
    quad = Quad.from_design(D, r)
    w0 = np.full(30, 1 / 30)
    gw = D.T @ (D @ sx.solve(quad, 0.5, w0).w)
    y0, y1 = 0.5 * gw, gw
    expect = sx.project_simplex(w0 + (quad.b - (3 * y1 - 2 * y0)) / np.exp(2.0))
    np.testing.assert_allclose(sx.predict(quad, w0, np.exp(2.0), [(0.5, y0), (1.0, y1)]), expect, atol=1e-12)
    # ‖PGP‖₂ below 1 still sets the scale (λ_max = 10·‖PGP‖₂/N); identical agents with a Gram diagonal below 1
    # fall back to it
    Ds = 0.1 * D
    P = np.eye(30) - 1 / 30
    top = np.linalg.eigvalsh(P @ (Ds.T @ Ds) @ P).max()
    assert 0 < top < 1
    assert 0.95 * 10 * top / 30 <= sx.lam_grid(Quad.from_design(Ds, r))[1] <= 10 * top / 30 * (1 + 1e-9)
    col = 0.5 * np.array([0.2, 0.8, 0.5, 0.5])
    grid = sx.lam_grid(Quad.from_design(np.column_stack([col] * 5), np.array([0.3, 0.7, 0.4, 0.6])))
    assert grid[1] == pytest.approx(10 * float(col @ col) / 5, rel=1e-12)


@pytest.mark.parametrize("passes", [TUNING.predict_min_factor_passes, 0.0])
def test_foldpath_peer_and_bracketed_starts_give_each_lambdas_own_minimiser(monkeypatch, passes):
    """Wide supports (12 rows × 200 agents): a fit started from another fold's fit at the same λ (`peer`; the
    default at so few rows), or (`predict_min_factor_passes` 0) from its own larger fit moved as the peer's moved
    between the two λ, and a refined λ started from the support predicted between its two bracketing fits all
    reach the minimiser that a direct reference solve gives (`_ref_l2`, Clarabel)."""
    monkeypatch.setattr(sx, "TUNING", dataclasses.replace(TUNING, predict_min_factor_passes=passes))
    D, r, g, _ = make_problem(200, 3, seed=15)
    w0 = np.full(200, 1 / 200)
    sw_a, sw_b = np.ones(12), np.r_[np.zeros(3), np.ones(9)]  # two "folds": all rows, and the last 9
    qa, qb = Quad(D=D, r=r, sw=sw_a), Quad(D=D, r=r, sw=sw_b)
    P = np.eye(200) - 1 / 200
    top = float(np.linalg.eigvalsh(P @ (D.T @ D) @ P).max())
    a, b = sx.FoldPath(qa, w0, top=top), sx.FoldPath(qb, w0, top=top)
    coarse = [0.1 * top / 200, 0.001 * top / 200]
    for lam in coarse:
        a.fit(lam)
        if lam == coarse[1]:  # the moved start by hand: x = w_b(λ') + w_a(λ) − w_a(λ'), start Π_Δ(w0 + (b − G_b x)/μ)
            x = b.fits[coarse[0]][0] + a.fits[lam][0] - a.fits[coarse[0]][0]
            mu = lam * 200
            moved = sx.project_simplex(w0 + (qb.b - D.T @ (sw_b * (D @ x))) / mu)
            expect = moved if passes == 0 else a.fits[lam][0]
            np.testing.assert_allclose(b._start(lam, None, a), expect, atol=1e-12)
        res = b.fit(lam, peer=a)
        np.testing.assert_allclose(res.w, _ref_l2(qb, lam, w0), atol=1e-8)
    assert int(np.sum(a.fits[coarse[0]][0] > 0)) > qa.rows  # the wide-support branch is taken
    mid = 0.01 * top / 200  # bracketed by the two coarse fits
    for fp, q in ((a, qa), (b, qb)):
        np.testing.assert_allclose(fp.fit(mid).w, _ref_l2(q, mid, w0), atol=1e-8)


def test_majority_start_keeps_the_agents_most_folds_keep_at_their_mean_weight():
    """By hand, three folds over four agents: agent 0 kept by all three (mean 0.4), agent 1 by two (mean 0.2),
    agent 2 by one (dropped), agent 3 by none; with no agent kept by a majority the plain mean is returned."""
    fits = [np.array([0.6, 0.3, 0.1, 0.0]), np.array([0.3, 0.3, 0.0, 0.0]), np.array([0.3, 0.0, 0.0, 0.0])]
    np.testing.assert_allclose(sx.majority(fits), [0.4, 0.2, 0.0, 0.0], atol=1e-15)
    split = [np.array([1.0, 0.0]), np.array([0.0, 1.0])]
    np.testing.assert_allclose(sx.majority(split), [0.5, 0.5], atol=1e-15)


def test_agent_space_folds_take_the_moved_start_only_when_nearly_as_wide_as_the_peer(monkeypatch):
    """Tall problems (rows > agents: agent space), the moved start forced on (`predict_min_factor_passes` 0): at each
    λ the start is the moved one (by hand, as above) when it keeps ≥ ⅔ as many agents as the peer's fit at λ, else
    the fold's own larger fit; both cases occur along the grid, and every fit is the reference minimiser."""
    monkeypatch.setattr(sx, "TUNING", dataclasses.replace(TUNING, predict_min_factor_passes=0.0))
    D, r, g, _ = make_problem(80, 40, seed=21)
    rows, n = D.shape
    w0 = np.full(n, 1 / n)
    sw_b = np.where(np.arange(rows) < rows // 20, 0.0, 1.0)  # a fold close to the full problem
    qa, qb = Quad(D=D, r=r, sw=np.ones(rows)), Quad(D=D, r=r, sw=sw_b)
    assert qa.G is None and qb.G is None
    P = np.eye(n) - 1 / n
    top = float(np.linalg.eigvalsh(P @ (D.T @ D) @ P).max())
    a, b = sx.FoldPath(qa, w0, top=top), sx.FoldPath(qb, w0, top=top)
    taken = set()
    grid = [top / n * 10.0 ** -k for k in np.arange(1.0, 3.01, 0.25)]  # quarter decades: near moves, then far
    for i, lam in enumerate(grid):
        a.fit(lam)
        if i:
            prev, mu = grid[i - 1], lam * n
            x = b.fits[prev][0] + a.fits[lam][0] - a.fits[prev][0]
            moved = sx.project_simplex(w0 + (qb.b - D.T @ (sw_b * (D @ x))) / mu)
            near = np.count_nonzero(moved) >= 2 / 3 * np.count_nonzero(a.fits[lam][0])  # Tuning.moved_min_share
            taken.add(near)
            np.testing.assert_allclose(b._start(lam, None, a), moved if near else b.fits[prev][0], atol=1e-12)
        np.testing.assert_allclose(b.fit(lam, peer=a).w, _ref_l2(qb, lam, w0), atol=1e-8)
    assert taken == {True, False}
