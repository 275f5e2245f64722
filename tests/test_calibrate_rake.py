"""Raking: exact margins on soft (probabilistic) answers by Newton on the KL dual, a reported infeasible case,
and agreement with IPF on one-hot (census-shaped) columns."""

from __future__ import annotations

import math
import time
import warnings

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


def unreachable_problem():
    """Question a: every agent says option 1 with probability ≤ 0.6 (agent 0 exactly 0.6), the target asks 0.9;
    question b: every agent answers (0.2, 0.3, 0.5), the target. Smallest reachable margin error 0.3 by hand."""
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0.1, 0.6, 50)
    p1[0] = 0.6
    b = np.tile([[0.2], [0.3], [0.5]], 50)
    return np.vstack([p1, 1 - p1, b]), np.array([0.9, 0.1, 0.2, 0.3, 0.5]), np.array(["a", "a", "b", "b", "b"])


def test_infeasible_margins_are_reported():
    # question a: every agent says option 1 with probability ≤ 0.6, the target asks 0.9. With shares p, 1 − p the
    # errors are |p − 0.9| = |(1 − p) − 0.1|, smallest at p = 0.6: 0.3 by hand. Question b (every agent answers
    # (0.2, 0.3, 0.5), the target) is met by any weights
    D, r, g = unreachable_problem()
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


# ---- the fallbacks and edges of DESIGN §5's raking, each with numbers worked out by hand --------------------
from personagen.calibrate.rake import ALGORITHMS, is_one_hot, min_margin_error  # noqa: E402


def test_agents_without_an_option_keep_their_weight_through_ipf():
    """An agent with no answer to a question (an all-zero column there) keeps its weight ratio in that
    question's update, so by hand the fixed point is x = .3, y = .3 and the silent agent holds the other .4."""
    D = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    r = np.array([0.3, 0.3])
    res = rake(D, r, np.array(["a", "a"]), np.ones(3))
    assert res.algorithm == "ipf" and res.converged
    np.testing.assert_allclose(res.w, [0.3, 0.3, 0.4], atol=1e-9)


def test_cells_only_zero_base_agents_reach_are_unmatched():
    """A cell reached only by agents with base weight 0 cannot be matched (their weight stays 0): it counts as
    unmatched and the question's other targets are rescaled to its total (x: 0.6 → 1.0), so raking converges."""
    D = np.array([[1.0, 0.0], [0.0, 1.0]])
    res = rake(D, np.array([0.6, 0.4]), np.array(["q", "q"]), np.array([1.0, 0.0]))
    assert res.unmatched_cells == 1 and res.converged
    np.testing.assert_array_equal(res.w, [1.0, 0.0])
    soft = np.array([[0.9, 0.0], [0.1, 1.0]])
    with pytest.warns(RuntimeWarning, match="no weights reproduce the margins"):
        res = rake(soft, np.array([0.6, 0.4]), np.array(["q", "q"]), np.array([1.0, 0.0]), algorithm="newton")
    assert res.unmatched_cells == 0  # agent 0 reaches both cells: nothing is dropped
    assert res.algorithm == "newton"  # IPF's fallback reaches the same w = (1, 0): a tie keeps Newton's
    assert not res.converged and res.min_error == pytest.approx(0.3, abs=1e-7)  # only (0.9, 0.1) is possible


def test_margins_reachable_only_with_zero_weights_are_told_apart():
    """Target (1, 0) on agents (1, 0) and (.5, .5): reachable, but only with the second agent at exactly 0,
    which the exponential form w0·exp(Aᵀλ) and IPF's sweeps approach only in the limit (the second weight
    halves each sweep): short of a tolerance they cannot reach it is feasible (smallest error 0, by the LP),
    not converged, and the warning says which case it is."""
    D = np.array([[1.0, 0.5], [0.0, 0.5]])
    with pytest.warns(RuntimeWarning, match="reachable only with some weights at zero"):
        res = rake(D, np.array([1.0, 0.0]), np.array(["q", "q"]), np.ones(2), algorithm="newton", max_iter=5,
                   tol=1e-200)
    assert not res.converged and res.feasible is True
    assert res.min_error == pytest.approx(0.0, abs=1e-9)
    assert res.algorithm == "ipf" and res.w[1] < 1e-140  # IPF's 500 sweeps: 2^-500, kept as the closer
    assert min_margin_error(D, np.array([1.0, 0.0]), [np.array([0, 1])], np.full(2, 0.5)) == pytest.approx(0, abs=1e-9)


def test_unreachable_margins_keep_the_better_of_newton_and_ipf():
    """When no weights reproduce the margins, the weights kept are those with the smaller margin error left,
    whichever algorithm found them; the error reported is theirs."""
    D, r, g = unreachable_problem()
    rows = [np.arange(2), np.arange(2, 5)]
    w0 = np.full(50, 1 / 50)
    newton, ipf = ALGORITHMS["newton"](D, r, rows, w0, 100, 1e-9), ALGORITHMS["ipf"](D, r, rows, w0, 500, 1e-9)
    assert not newton.converged and not ipf.converged and newton.max_error != ipf.max_error
    best = min((newton, ipf), key=lambda x: x.max_error)
    with pytest.warns(RuntimeWarning, match="no weights reproduce the margins"):
        res = rake(D, r, g, np.ones(50), algorithm="newton")
    assert res.max_error == best.max_error and res.algorithm == best.algorithm
    np.testing.assert_array_equal(res.w, best.w)
    assert res.feasible is False and res.min_error == pytest.approx(0.3, abs=1e-7)


def test_one_hot_detection_and_base_scaling():
    rows = [np.array([0, 1]), np.array([2, 3])]
    onehot = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
    assert is_one_hot(onehot, rows)
    assert not is_one_hot(np.array([[1, 0], [1, 1], [1, 1], [0, 0]], dtype=float), rows)  # two options in a question
    assert not is_one_hot(np.array([[0.5, 0], [0.5, 1], [1, 1], [0, 0]]), rows)  # soft
    # the base is normalised: base (2, 6) is w0 = (.25, .75); targets equal to it leave it unchanged
    D = np.array([[1.0, 0.0], [0.0, 1.0]])
    res = rake(D, np.array([0.25, 0.75]), np.array(["q", "q"]), np.array([2.0, 6.0]))
    assert res.converged and res.n_iter == 1 and res.max_error == 0.0
    np.testing.assert_allclose(res.w, [0.25, 0.75], atol=1e-15)
    # one question, one-hot: one IPF update gives the targets exactly
    res = rake(D, np.array([0.7, 0.3]), np.array(["q", "q"]), np.ones(2))
    assert res.n_iter == 1 and res.converged
    np.testing.assert_allclose(res.w, [0.7, 0.3], atol=1e-15)


def test_tolerance_and_iteration_cap_are_honoured():
    D, r, g = latent_type_problem(n=80, questions=6, options=3, seed=2)
    loose = rake(D, r, g, np.ones(80), tol=1e-3)
    tight = rake(D, r, g, np.ones(80), tol=1e-12)
    assert loose.converged and tight.converged and loose.max_error <= 1e-3 and tight.max_error <= 1e-12
    assert loose.n_iter < tight.n_iter
    with pytest.warns(RuntimeWarning):
        capped = rake(D, r, g, np.ones(80), algorithm="ipf", max_iter=3, tol=1e-12)
    assert capped.n_iter == 3 and not capped.converged and capped.feasible is True


# ---- edges pinned from the definitions (issue 25: mutation survivors) ----

Q2 = np.array(["q", "q"])


def test_ipf_sweeps_are_counted_exactly():
    """D = [[1, .5], [0, .5]], target (1, 0), w0 = (.5, .5): one sweep maps (a, b) to (a, b/2)/(a + b/2), so after
    k sweeps w = (1, 2^-k)/(1 + 2^-k) and the margin error is w_2/2. Three sweeps: w = (8/9, 1/9), error 1/18;
    the default cap is 500 sweeps; a cap of 0 leaves the normalised base (error inf)."""
    D = np.array([[1.0, 0.5], [0.0, 0.5]])
    r = np.array([1.0, 0.0])
    with pytest.warns(RuntimeWarning, match="reachable only with some weights at zero"):
        res = rake(D, r, Q2, np.ones(2), algorithm="ipf", max_iter=3, tol=1e-200)
    assert res.n_iter == 3 and res.converged is False and res.unmatched_cells == 0 and res.algorithm == "ipf"
    np.testing.assert_allclose(res.w, [8 / 9, 1 / 9], rtol=1e-13)
    assert res.max_error == pytest.approx(1 / 18, rel=1e-12)
    with pytest.warns(RuntimeWarning):
        res = rake(D, r, Q2, np.ones(2), algorithm="ipf", tol=1e-200)
    assert res.n_iter == 500 and res.w[1] == pytest.approx(2.0**-500, rel=1e-9)
    with pytest.warns(RuntimeWarning):  # Newton's fallback: IPF's 500 sweeps
        res = rake(D, r, Q2, np.ones(2), algorithm="newton", max_iter=5, tol=1e-200)
    assert res.w[1] == pytest.approx(2.0**-500, rel=1e-9)
    with pytest.warns(RuntimeWarning, match="max margin error left inf"):
        res = rake(D, r, Q2, np.array([2.0, 6.0]), algorithm="ipf", max_iter=0)
    assert res.n_iter == 0 and res.max_error == math.inf and res.unmatched_cells == 0
    np.testing.assert_array_equal(res.w, [0.25, 0.75])


def test_exact_margins_converge_at_zero_tolerance():
    """tol is an upper bound (≤): margins met exactly (error 0.0) converge even with tol = 0."""
    D = np.eye(2)
    res = rake(D, np.array([0.25, 0.75]), Q2, np.array([2.0, 6.0]), algorithm="ipf", tol=0.0)
    assert res.converged and res.n_iter == 1 and res.max_error == 0.0
    soft = np.array([[0.2, 0.8], [0.8, 0.2]])
    w0 = np.array([0.3, 0.7])
    res = rake(soft, soft @ w0, Q2, w0, algorithm="newton", tol=0.0)
    assert res.converged
    assert ALGORITHMS["newton"](soft, soft @ w0, [np.arange(2)], w0, 100, 0.0).converged  # Newton itself, no IPF
    np.testing.assert_allclose(res.w, w0, atol=1e-15)


def test_unmatched_cells_are_counted_and_left_out_of_the_error():
    """Three cells: one reached, one that no positive-base agent reaches (target .2: unmatched) and one nobody
    reaches with target 0 (nothing to match: not unmatched). The reached cell's target is rescaled to the question's
    total (IPF's fixed point), the error ignores the unmatched cell, and no division by zero is warned about."""
    D = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    r = np.array([0.8, 0.2, 0.0])
    g = np.array(["q", "q", "q"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for algorithm in ("ipf", "newton"):
            res = rake(D, r, g, np.array([1.0, 3.0, 0.0]), algorithm=algorithm)
            assert res.converged and res.unmatched_cells == 1 and res.max_error <= 1e-9, algorithm
            np.testing.assert_allclose(res.w, [0.25, 0.75, 0.0], atol=1e-9)
        # soft columns (Newton); agent 2 (base 0) alone reaches cell 3: unmatched, the others rescaled to (.5, .5)
        soft = np.array([[0.4, 0.8, 0.0], [0.6, 0.2, 0.2], [0.0, 0.0, 0.8]])
        res = rake(soft, np.array([0.45, 0.45, 0.1]), g, np.array([1.0, 1.0, 0.0]))
        assert res.algorithm == "newton" and res.converged and res.unmatched_cells == 1 and res.max_error <= 1e-9
        np.testing.assert_allclose(res.w, [0.75, 0.25, 0.0], atol=1e-9)  # .4·w_1 + .8·(1 − w_1) = .5
    # no cell is reachable: nothing to match, error 0 over the empty set of cells
    res = rake(np.zeros((1, 2)), np.array([1.0]), np.array(["q"]), np.ones(2))
    assert res.converged and res.unmatched_cells == 1 and res.max_error == 0.0


def test_a_sweep_that_zeroes_every_weight_stops_without_dividing_by_zero():
    """Target (1, 0) where every agent answers option 2: option 1 is unmatched, option 2's target is 0 (not
    rescaled: the question's reachable targets sum to 0), so one update zeroes every weight; the sweep stops
    there (no 0/0) and the zero weights meet the one reachable margin exactly."""
    D = np.array([[0.0, 0.0], [1.0, 1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = rake(D, np.array([1.0, 0.0]), Q2, np.ones(2), algorithm="ipf")
    assert res.converged and res.unmatched_cells == 1 and res.max_error == 0.0
    np.testing.assert_array_equal(res.w, [0.0, 0.0])


def test_newton_counts_its_steps():
    """Targets equal to D·w0 are met at the first iterate (n_iter 1); a far target takes several Newton steps,
    so a cap of one step stops after one (n_iter 1, not converged)."""
    soft = np.array([[0.2, 0.8], [0.8, 0.2]])
    w0 = np.array([0.3, 0.7])
    assert rake(soft, soft @ w0, Q2, w0, algorithm="newton").n_iter == 1
    res = rake(soft, np.array([0.79, 0.21]), Q2, np.array([0.99, 0.01]), algorithm="newton")
    # one question, two agents: .2·w_1 + .8·(1 − w_1) = .79 gives w_1 = 1/60
    assert res.converged and res.n_iter > 8
    np.testing.assert_allclose(res.w, [1 / 60, 59 / 60], atol=1e-9)
    res = ALGORITHMS["newton"](soft, np.array([0.79, 0.21]), [np.arange(2)], np.array([0.99, 0.01]), 1, 1e-9)
    assert res.n_iter == 1 and not res.converged


def test_newton_gives_up_after_eight_steps_without_a_tenth_off_the_best_error(monkeypatch):
    """STALL_STEPS: on unreachable margins Newton stops at the first step where, for 8 steps in a row, the margin
    error has not fallen below 0.9 × the best so far. The errors it saw are recorded and the rule replayed."""
    import personagen.calibrate.rake as rake_mod

    seen: list[float] = []
    step = rake_mod._newton_step

    def recording(H, g):
        seen.append(float(np.abs(g).max()))
        return step(H, g)

    monkeypatch.setattr(rake_mod, "_newton_step", recording)
    rng = np.random.default_rng(3)
    D = rng.dirichlet(np.ones(3), size=6).T
    res = ALGORITHMS["newton"](D, np.array([0.9, 0.05, 0.05]), [np.arange(3)], np.full(6, 1 / 6), 100, 1e-9)
    assert not res.converged and len(seen) == res.n_iter - 1 > 8
    best, since = math.inf, 0
    for err in seen:
        best, since = (err, 0) if err < 0.9 * best else (best, since + 1)
        assert since < 8
    assert since == 7  # the next error (not a new best) was the eighth in a row


def test_warning_text():
    D = np.array([[1.0, 0.5], [0.0, 0.5]])
    with pytest.warns(RuntimeWarning, match=r"^raking did not converge: the margins are reachable only with some "
                      r"weights at zero; max margin error left "):
        res = rake(D, np.array([1.0, 0.0]), Q2, np.ones(2), algorithm="newton", max_iter=5, tol=0.0)
    assert res.feasible is True and res.min_error == 0.0  # the LP reaches error 0 exactly: feasible at tol 0
    soft = np.array([[0.9, 0.0], [0.1, 1.0]])
    with pytest.warns(RuntimeWarning, match=r"^raking did not converge: no weights reproduce the margins; max "):
        rake(soft, np.array([0.6, 0.4]), Q2, np.array([1.0, 0.0]), algorithm="newton")


def test_min_margin_error_is_the_largest_deviation_either_way():
    """One agent (.4, .3, .3) against targets (.8, .1, .1): the only weights are w = 1, whose largest deviation
    is the shortfall .4 on the first option (the overshoots are .2)."""
    D = np.array([[0.4], [0.3], [0.3]])
    assert min_margin_error(D, np.array([0.8, 0.1, 0.1]), [np.arange(3)], np.ones(1)) == pytest.approx(0.4, abs=1e-7)
