"""The moved support factor (calibrate/support_factor.py) against fresh factorisations and solves by numpy."""

from __future__ import annotations

import numpy as np

from personagen.bench.solver import make_problem
from personagen.calibrate.qp import eq_solve
from personagen.calibrate.solvers import Quad, active_set
from personagen.calibrate.support_factor import SupportFactor


def _spd(n: int, m: int, mu: float, seed: int) -> np.ndarray:
    X = np.random.default_rng(seed).standard_normal((m, n))
    return X.T @ X + mu * np.eye(n)


def test_bordered_and_pinned_solves_match_fresh_factorisations():
    rng = np.random.default_rng(0)
    H = _spd(60, 80, 0.5, seed=1)
    U = np.array(rng.choice(60, 30, replace=False))
    fac = SupportFactor.fresh(H[np.ix_(U, U)].copy(), U, 0.5)
    assert fac is not None
    A = np.setdiff1d(np.arange(60), U)[:12]
    assert fac.extend(A, H[np.ix_(U, A)].copy(), H[np.ix_(A, A)].copy())
    order = np.concatenate([U, A])
    R_ref = np.linalg.cholesky(H[np.ix_(order, order)]).T  # independent factorisation (numpy, lower → upper)
    assert np.allclose(fac.R, R_ref, rtol=1e-10, atol=1e-10)
    S = np.sort(np.concatenate([U[5:], A[:7]]))  # five agents left, five of the added ones pinned as well
    F = rng.standard_normal((len(S), 2))
    ref = np.linalg.solve(H[np.ix_(S, S)], F)
    assert np.allclose(fac.solve(S, F), ref, rtol=1e-9, atol=1e-12)
    outside = np.setdiff1d(np.arange(60), order)[:1]
    assert fac.solve(np.concatenate([S[:1], outside]), F[:2]) is None  # an agent the factor does not hold


def test_solve_without_pins_and_unknown_agents():
    H = _spd(20, 40, 0.0, seed=2)
    idx = np.arange(20)
    fac = SupportFactor.fresh(H.copy(), idx, 0.0)
    F = np.ones((20, 1))
    assert np.allclose(fac.solve(idx, F), np.linalg.solve(H, F), rtol=1e-9)
    fac2 = SupportFactor.fresh(H[:10, :10].copy(), idx[:10], 0.0)
    assert fac2.solve(idx[5:15], F[:10]) is None  # agents 10–14 are not in the factor


def test_singular_schur_complement_refuses_extension():
    X = np.random.default_rng(3).standard_normal((5, 8))
    H = X.T @ X  # rank 5: bordering past five agents cannot stay positive definite
    fac = SupportFactor.fresh(H[:5, :5].copy(), np.arange(5), 0.0)
    assert fac is not None
    assert not fac.extend(np.arange(5, 8), H[:5, 5:].copy(), H[5:, 5:].copy())
    assert len(fac.agents) == 5


def test_active_set_with_moved_factors_matches_fresh_solves():
    D, r, _, _ = make_problem(300, 150, seed=4)
    n = D.shape[1]
    w0 = np.full(n, 1 / n)
    for dense in (True, False):
        for mu in (0.0, 1e-3 * n):
            quad = Quad.from_design(D, r, dense=dense)
            res = active_set(quad, quad.b + mu * w0, mu)
            assert quad._factor is None  # dropped when the run ends
            idx = np.flatnonzero(res.w > 0)
            H = quad.block(idx)
            H[np.diag_indices_from(H)] += mu
            z, _ = eq_solve(H, (quad.b + mu * w0)[idx], True)  # the final support solved fresh
            assert np.allclose(res.w[idx], z, rtol=1e-8, atol=1e-12)
            assert res.kkt < 1e-9


def test_column_cache_cross_blocks():
    D, r, _, _ = make_problem(120, 40, seed=5)
    quad = Quad.from_design(D, r, dense=False)
    G = D.T @ D
    P, Q = np.array([3, 7, 50, 9]), np.array([100, 2])
    assert np.allclose(quad.cross(P, Q), G[np.ix_(P, Q)])
    assert np.allclose(quad.block(np.concatenate([P, Q])), G[np.ix_(np.r_[P, Q], np.r_[P, Q])])
    small = Quad(D=D, r=r, cache_mb=0.0)  # a 16-agent cache: a cross block beyond it is not at hand
    assert small.cross(np.arange(10), np.arange(10, 20)) is None


def test_repeated_extensions_reuse_memory_and_stay_exact():
    """Each extension writes the bordered factor into the memory of the factor before the last one: after five
    extensions in a row (growing past the buffers' slack) the factor is numpy's Cholesky factor of H_UU, and the
    pinned solve is numpy's solve."""
    rng = np.random.default_rng(8)
    H = _spd(90, 120, 0.3, seed=9)
    U = np.array(rng.choice(90, 20, replace=False))
    fac = SupportFactor.fresh(H[np.ix_(U, U)].copy(), U, 0.3)
    assert fac is not None
    rest = list(np.setdiff1d(np.arange(90), U))
    for a in (3, 8, 1, 25, 12):
        A, rest = np.array(rest[:a]), rest[a:]
        assert fac.extend(A, H[np.ix_(fac.agents, A)].copy(), H[np.ix_(A, A)].copy())
        order = fac.agents
        assert np.allclose(fac.R, np.linalg.cholesky(H[np.ix_(order, order)]).T, rtol=1e-10, atol=1e-10)
        S = np.sort(rng.choice(order, len(order) - 4, replace=False))
        F = rng.standard_normal((len(S), 2))
        assert np.allclose(fac.solve(S, F), np.linalg.solve(H[np.ix_(S, S)], F), rtol=1e-9, atol=1e-12)


def test_fresh_factor_carries_the_jitter_of_eq_solve_exactly():
    """A diagonal H = s·I factors to R = √(s(1 + 1e-13))·I: the jitter is 1e-13 × the mean diagonal entry, as in
    `qp.eq_solve` (a moved factor must answer what a fresh solve answers), checked to the last bits (1e-13 is
    ~450 ulps of s); a Fortran-order H gives the same factor as a C-order one."""
    for s in (0.25, 4.0):
        H = np.diag(np.full(6, s))
        fac = SupportFactor.fresh(H.copy(), np.arange(6), 0.5)
        assert fac is not None and fac.mu == 0.5 and fac.sound
        assert fac.jitter == 1e-13 * s
        assert np.allclose(np.diag(fac.R) ** 2, s * (1 + 1e-13), rtol=1e-15, atol=0)
        G = _spd(8, 12, 0.1, seed=11)
        c_order = SupportFactor.fresh(G.copy(), np.arange(8), 0.1).R
        f_order = SupportFactor.fresh(np.asfortranarray(G), np.arange(8), 0.1).R
        assert np.array_equal(c_order, f_order)


def test_extension_adds_the_jitter_and_refuses_an_indefinite_border():
    s = 0.25
    fac = SupportFactor.fresh(np.diag(np.full(4, s)), np.arange(4), 0.0)
    assert fac.extend(np.array([7, 9]), np.zeros((4, 2)), np.diag(np.full(2, s)))
    assert np.allclose(np.diag(fac.R) ** 2, s * (1 + 1e-13), rtol=1e-15, atol=0)  # R22² = s + jitter exactly
    R, agents = fac.R.copy(), fac.agents.copy()
    # a border whose Schur complement H_aa − R12ᵀR12 is negative: 0.01 − (1/√s)² = 0.01 − 4
    assert not fac.extend(np.array([11]), np.eye(6)[:, :1], np.array([[0.01]]))
    assert np.array_equal(fac.R, R) and np.array_equal(fac.agents, agents)


def test_update_flops_by_hand():
    """The flops of moving a factor of u = 10 agents to a support of 8 of them plus 3 new ones (a = 3, e = 2
    agents pinned, two right-hand sides), counted from the module docstring: bordering u²a + ua² + a³/3, the
    pinned solve v²(e + 2·n_rhs) + 2ve² with v = u + a = 13: 300 + 90 + 9 + 169·6 + 2·13·4 = 1,517. The agents to
    add are exactly the new ones (the agent in slot 0 is not)."""
    H = _spd(20, 30, 0.5, seed=12)
    agents = np.arange(10) * 2  # factor slots 0..9 hold agents 0, 2, ..., 18
    fac = SupportFactor.fresh(H[np.ix_(agents, agents)].copy(), agents, 0.5)
    idx = np.array([0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5])  # slot 0's agent kept, agents 16 and 18 pinned
    add, flops = fac.update_flops(idx, 2)
    assert sorted(add) == [1, 3, 5]
    assert flops == 1517
    assert list(fac.slots(np.array([0, 18, 1]))) == [0, 9, -1]


def test_extensions_reuse_the_memory_of_the_factor_before_last():
    """One agent at a time (within the buffers' slack) each bordered factor lives in the memory of the factor two
    extensions back (what `extend` promises: no fresh m² array per step), and stays numpy's Cholesky factor."""
    H = _spd(40, 60, 0.3, seed=13)
    fac = SupportFactor.fresh(H[:20, :20].copy(), np.arange(20), 0.3)
    history = [fac.R]
    for j in range(20, 26):
        assert fac.extend(np.array([j]), H[:j, j : j + 1].copy(), H[j : j + 1, j : j + 1].copy())
        history.append(fac.R)
        assert np.allclose(fac.R, np.linalg.cholesky(H[: j + 1, : j + 1]).T, rtol=1e-10, atol=1e-10)
    assert all(np.shares_memory(history[k], history[k - 2]) for k in range(3, len(history)))


def test_sound_pivots():
    """`_sound`: every pivot² above `Tuning.factor_min_pivot` (1e-10) × the largest diagonal entry of H (or of RᵀR);
    non-finite or empty factors are not sound."""
    from personagen.calibrate.support_factor import _sound

    H = np.diag([4.0, 1.0])
    assert _sound(np.diag([2.0, 1.0]), H)
    assert _sound(np.diag([2.0, np.sqrt(8e-10)]), H)  # pivot² = 8e-10 > 1e-10 × 4
    assert not _sound(np.diag([2.0, np.sqrt(2e-10)]), H)  # 2e-10 < 4e-10
    assert not _sound(np.diag([2.0, np.sqrt(2e-10)]), None)  # the same scale read from RᵀR
    assert _sound(np.diag([2.0, np.sqrt(8e-10)]), None)
    assert not _sound(np.diag([2.0, np.nan]), H)
    assert not _sound(np.zeros((0, 0)), None)
