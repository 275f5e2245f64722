"""sparse / p2p / rake estimators and census-margin constraints."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

from personagen.bench.solver import make_problem
from personagen.calibrate import MarginConstraints, block_row_weights, fit_weights
from personagen.errors import BadInput


@pytest.fixture(scope="module")
def small():
    return make_problem(60, 25, seed=7)


def test_sparse_matches_clarabel(small):
    D, r, g, _ = small
    alpha = 0.02
    res = fit_weights(D, r, method="sparse", alpha=alpha)
    w = cp.Variable(D.shape[1], nonneg=True)
    p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(r - D @ w) + alpha * cp.sum(w)))
    p.solve(solver=cp.CLARABEL)
    assert (res.objective - p.value) / abs(p.value) <= 1e-6
    assert res.weights.sum() == pytest.approx(1.0)


def test_sparse_cv_and_max_agents(small):
    D, r, g, _ = small
    res = fit_weights(D, r, groups=g, method="sparse", max_agents=5)
    assert res.cv["param"] == "alpha" and 0.0 in res.cv["grid"]
    assert 1 <= res.nonzeros <= 5
    assert res.weights.min() >= 0 and res.weights.sum() == pytest.approx(1.0)


def test_p2p_lasso_constraint_and_negatives(small):
    D, r, g, _ = small
    res = fit_weights(D, r, groups=g, method="p2p-lasso", alpha=1e-3)
    # per-question sum-to-one: Σ_options (Dw) = 1 for every question
    sums = np.array([(D[g == q] @ res.weights).sum() for q in np.unique(g)])
    assert np.allclose(sums, 1.0, atol=1e-6)
    assert res.negative_weights == int(np.sum(res.weights < -1e-12))
    res2 = fit_weights(D, r, groups=g, method="p2p-enet", alpha=1e-3, l1_ratio=0.5)
    assert res2.l1_ratio == 0.5


def test_p2p_cv_small(small):
    D, r, g, _ = small
    res = fit_weights(D[:, :20], r, groups=g, method="p2p-lasso", folds=3, lam_grid=[1e-1, 1e-3])
    assert res.alpha in (1e-1, 1e-3) and len(res.cv["mean"]) == 2


def test_p2p_lasso_matches_an_independent_scipy_solve():
    """Paper 000 eq. 6-7 (constrained lasso, signed weights, Σ_k Σ_j w_j d_j,ik = 1 per question) solved by
    scipy's SLSQP on the split w = u − v (u, v ≥ 0), with no cvxpy: the same minimiser and objective."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(11)
    n_agents, n_q, k = 6, 8, 3
    answers = rng.integers(0, k, size=(n_agents, n_q))
    D = np.zeros((n_q * k, n_agents))  # d_{j,ik}: one-hot answer of agent j to question i
    for j in range(n_agents):
        D[np.arange(n_q) * k + answers[j], j] = 1.0
    r = np.concatenate([rng.dirichlet(np.ones(k)) for _ in range(n_q)])
    g = np.repeat(np.arange(n_q), k)
    alpha = 0.05
    res = fit_weights(D, r, groups=g, method="p2p-lasso", alpha=alpha)

    def f(x):  # ours: ½‖r − Dw‖² + α‖w‖₁ (eq. 6 at α/2 times ½; the same minimiser, α is CV-tuned)
        w = x[:n_agents] - x[n_agents:]
        return 0.5 * np.sum((r - D @ w) ** 2) + alpha * x.sum()

    def grad(x):
        gw = -D.T @ (r - D @ (x[:n_agents] - x[n_agents:]))
        return np.concatenate([gw + alpha, -gw + alpha])

    # eq. 7, one row per question: Σ_k Σ_j w_j d_j,ik = S_q · w; one-hot answers make every row all-ones, so
    # the distinct rows (here one) are the constraints (SLSQP needs them independent)
    S = np.unique(np.vstack([D[g == q].sum(axis=0) for q in range(n_q)]), axis=0)
    cons = [{"type": "eq", "fun": lambda x, s=s: s @ (x[:n_agents] - x[n_agents:]) - 1.0} for s in S]
    x0 = np.full(2 * n_agents, 0.5 / n_agents)
    ref = minimize(f, np.concatenate([x0[:n_agents] * 2, np.zeros(n_agents)]), jac=grad, method="SLSQP",
                   bounds=[(0, None)] * (2 * n_agents), constraints=cons, options={"ftol": 1e-12, "maxiter": 1000})
    assert ref.success
    w_ref = ref.x[:n_agents] - ref.x[n_agents:]
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-6)  # eq. 7 with one-hot answers: Σ_j w_j = 1
    assert res.objective == pytest.approx(ref.fun, rel=1e-5, abs=1e-8)
    assert np.allclose(res.weights, w_ref, atol=1e-4)


def test_p2p_enet_cv_searches_the_papers_l1_ratio(small):
    # paper 000, Fig. 16: CV over alpha and the l1 ratio picked 0.10, so the grid must offer it
    D, r, g, _ = small
    res = fit_weights(D[:, :20], r, groups=g, method="p2p-enet", folds=3, lam_grid=[1e-1, 1e-3])
    assert res.cv["l1_ratio_grid"][0] == 0.1 and res.l1_ratio in res.cv["l1_ratio_grid"]
    best = min(res.cv["l1_ratio_mean"], key=lambda k: min(res.cv["l1_ratio_mean"][k]))
    assert res.l1_ratio == float(best)


def test_rake_matches_consistent_margins():
    rng = np.random.default_rng(0)
    # one-hot agents on two questions (3 and 2 options); targets from a known weighting
    a = rng.integers(0, 3, 40)
    b = rng.integers(0, 2, 40)
    D = np.vstack([np.eye(3)[a].T, np.eye(2)[b].T])
    g = np.array(["a"] * 3 + ["b"] * 2)
    wt = rng.random(40)
    wt /= wt.sum()
    r = D @ wt
    res = fit_weights(D, r, groups=g, method="rake")
    assert res.converged
    assert np.allclose(D @ res.weights, r, atol=1e-8)


def test_rake_zero_cell():
    D = np.array([[1.0, 1.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    g = np.array(["a", "a", "b", "b"])
    r = np.array([0.8, 0.2, 0.3, 0.7])  # option 2 of "a" has no persona
    res = fit_weights(D, r, groups=g, method="rake", base=np.array([0.5, 0.5]))
    assert res.info["unmatched_cells"] == 1
    assert np.allclose(res.weights, [0.3, 0.7], atol=1e-8)


def test_constraints_hold_and_loose_constraints_change_nothing(small):
    D, r, g, _ = small
    n = D.shape[1]
    A = (np.random.default_rng(3).random((2, n)) < 0.5).astype(float)
    free = fit_weights(D, r, lam=1e-3)
    m = A @ np.full(n, 1 / n)
    res = fit_weights(D, r, lam=1e-3, constraints=MarginConstraints(A, m, 0.01))
    assert np.all(np.abs(A @ res.weights - m) <= 0.01 + 1e-6)
    loose = fit_weights(D, r, lam=1e-3, constraints=MarginConstraints(A, m, 10.0))
    assert loose.objective == pytest.approx(free.objective, rel=1e-6)
    with pytest.raises(BadInput):
        fit_weights(D, r, constraints=MarginConstraints(A[:, :3], m, 0.01))


def test_block_row_weights_and_bad_input(small):
    D, r, g, _ = small
    sw = block_row_weights(g)
    assert np.allclose(sw, 0.25)
    with pytest.raises(BadInput):
        fit_weights(D, r[:-1])
    with pytest.raises(BadInput):
        fit_weights(D, r, method="nope")
    with pytest.raises(BadInput):
        fit_weights(D, r, method="rake")
