"""Fast solvers vs cvxpy/Clarabel: same objective to 1e-6 relative, KKT conditions, projection."""

from __future__ import annotations

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
