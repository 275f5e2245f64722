"""The simplex estimator: hand-solvable cases, the KL pull against cvxpy, the λ limits."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from personagen.bench.solver import make_problem
from personagen.calibrate import fit_weights
from personagen.calibrate import simplex as sx
from personagen.calibrate.solvers import Quad


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
