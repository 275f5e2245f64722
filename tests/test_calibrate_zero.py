"""The λ = 0 fit's stall rule (`Tuning.zero_stall`, calibrate/active_set.py): the primal–dual steps at μ = 0 give
up after 30 iterates with negative weights and the primal active set finishes from the last iterate without one,
as it did after 500 steps (issue 23)."""

from __future__ import annotations

import dataclasses

import cvxpy as cp
import numpy as np
import pytest

import personagen.calibrate.active_set as AS
from personagen.bench.solver import make_latent_problem
from personagen.calibrate.solvers import Quad, active_set


def _fit(D, r, stall, monkeypatch):
    monkeypatch.setattr(AS, "TUNING", dataclasses.replace(AS.TUNING, zero_stall=stall))
    q = Quad.from_design(D, r, dense=False)  # a fresh quadratic each time: its column cache starts empty
    return q, active_set(q, q.b, 0.0)


def _clarabel(D, r):
    w = cp.Variable(D.shape[1])
    p = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(r - D @ w)), [w >= 0, cp.sum(w) == 1])
    p.solve(solver=cp.CLARABEL)
    return p.value


@pytest.mark.parametrize("agents,rows,seed", [(400, 80, 3), (600, 60, 0)])
def test_stall_rule_keeps_the_weights_in_fewer_steps(agents, rows, seed, monkeypatch):
    """Latent-type answers where the μ = 0 steps never settle: with the rule the finish starts from the same point
    and returns the same weights (to round-off) in a fraction of the steps; the objective is Clarabel's."""
    D, r, _ = make_latent_problem(agents, rows, seed=seed)
    q, new = _fit(D, r, 30, monkeypatch)
    _, old = _fit(D, r, 10**6, monkeypatch)
    assert new.converged and old.converged and new.solver == old.solver == "active-set+primal"
    assert np.abs(new.w - old.w).max() <= 1e-11
    assert new.n_iter < old.n_iter - 300
    ref = _clarabel(D, r)
    assert abs(q.value(new.w) - ref) <= 1e-7 * max(abs(ref), q.c) + 1e-12
    g = q.matvec(new.w) - q.b  # KKT: equal reduced gradient on the support, not smaller outside
    sup = new.w > 0
    scale = np.abs(q.b).max()
    assert np.ptp(g[sup]) <= 1e-8 * scale and (g[~sup] - g[sup].mean()).min() >= -1e-8 * scale
