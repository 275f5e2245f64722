"""Raking: exact margins on soft (probabilistic) answers by Newton on the KL dual, a reported infeasible case,
and agreement with IPF on one-hot (census-shaped) columns."""

from __future__ import annotations

import time

import numpy as np
import pytest

from personagen.bench.solver import make_onehot_problem
from personagen.calibrate import fit_weights
from personagen.calibrate.rake import rake


def latent_type_problem(n: int = 400, questions: int = 30, options: int = 4, types: int = 4, seed: int = 0):
    """Soft answers: each agent mixes the latent types' answer distributions (Dirichlet(0.3) mixing weights);
    targets are the population's answers, a Dirichlet mix of the pure types (reachable: agents span the types)."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(options), size=(types, questions))  # type × question × option
    mix = rng.dirichlet(np.full(types, 0.3), size=n)  # agent × type
    D = np.einsum("at,tqo->qoa", mix, P).reshape(questions * options, n)
    r = np.einsum("t,tqo->qo", rng.dirichlet(np.ones(types)), P).ravel()
    g = np.repeat([f"q{i}" for i in range(questions)], options)
    return D, r, g


def test_soft_answers_reach_the_margins_and_the_kl_projection():
    D, r, g = latent_type_problem()
    res = fit_weights(D, r, groups=g, method="rake")
    assert res.solver == "newton" and res.converged and res.n_iter <= 30
    assert np.abs(D @ res.weights - r).max() <= 1e-6
    assert res.weights.min() > 0 and abs(res.weights.sum() - 1) < 1e-12
    # minimum KL(w‖w0) s.t. Dw = r, Σw = 1  ⇔  log(w/w0) = Aᵀλ for A = [D; 1ᵀ] (Lagrange): the log-ratio lies in
    # the row space of A; w0 uniform, so log(w·n) is fitted by least squares on Aᵀ with no residual left
    A = np.vstack([D, np.ones(D.shape[1])])

    def off_row_space(w: np.ndarray) -> float:
        y = np.log(w * D.shape[1])
        return float(np.abs(A.T @ np.linalg.lstsq(A.T, y, rcond=None)[0] - y).max() / np.abs(y).max())

    assert off_row_space(res.weights) <= 1e-6
    # IPF's soft update is an EM step: where its sweeps do match the margins they land on a different, not
    # minimum-KL, weighting (so it is not raking's solution on soft answers), after far more iterations
    w0 = np.full(D.shape[1], 1 / D.shape[1])
    long = rake(D, r, g, w0, algorithm="ipf", max_iter=2000, tol=1e-9)
    assert long.converged and long.n_iter > 3 * res.n_iter and off_row_space(long.w) > 1e-4


def test_infeasible_margins_are_reported():
    # question a: every agent says option 1 with probability ≤ 0.6, the target asks 0.9. With shares p, 1 − p the
    # errors are |p − 0.9| = |(1 − p) − 0.1|, smallest at p = 0.6: 0.3 by hand. Question b (every agent answers
    # (0.2, 0.3, 0.5), the target) is met by any weights
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0.1, 0.6, 50)
    p1[0] = 0.6
    b = np.tile([[0.2], [0.3], [0.5]], 50)
    D = np.vstack([p1, 1 - p1, b])
    r = np.array([0.9, 0.1, 0.2, 0.3, 0.5])
    g = np.array(["a", "a", "b", "b", "b"])
    with pytest.warns(RuntimeWarning, match="no weights reproduce the margins"):
        res = fit_weights(D, r, groups=g, method="rake")
    assert not res.converged
    assert res.info["margins_feasible"] is False
    assert res.info["min_margin_error"] == pytest.approx(0.3, abs=1e-7)
    assert 0.3 - 1e-7 <= res.info["max_margin_error"] <= 0.31  # the weights kept come close to the best reachable


def test_one_hot_ipf_and_newton_agree_and_ipf_stays_fast():
    D, r, g = make_onehot_problem(60, 1000, seed=0)
    w0 = np.full(D.shape[1], 1 / D.shape[1])
    a = rake(D, r, g, w0, algorithm="ipf", tol=1e-12)
    b = rake(D, r, g, w0, algorithm="newton", tol=1e-12)
    assert a.converged and b.converged
    assert np.abs(a.w - b.w).max() <= 1e-8 * a.w.max()
    t0 = time.perf_counter()
    res = fit_weights(D, r, groups=g, method="rake")
    assert res.solver == "ipf" and res.converged
    assert time.perf_counter() - t0 < 1.0  # ~10 ms unloaded; generous for a shared machine
