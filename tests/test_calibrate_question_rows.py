"""The question-row reduction (calibrate/question_rows.py): the identity by hand, what is kept, and the default
fit unchanged by it (issue 23)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personagen.bench.solver import make_latent_problem
from personagen.calibrate import fit as fit_module
from personagen.calibrate import fit_weights
from personagen.calibrate.question_rows import helmert, question_maps, reduce_questions


def data_term(D: np.ndarray, r: np.ndarray, sw: np.ndarray, w: np.ndarray) -> float:
    """½ Σ_i W_i (r_i − (Dw)_i)², the definition (docs/design.md §5)."""
    return 0.5 * float(np.sum(sw * (r - D @ w) ** 2))


def test_helmert_by_hand() -> None:
    s2, s6 = math.sqrt(2), math.sqrt(6)
    assert helmert(2) == pytest.approx(np.array([[1 / s2], [-1 / s2]]), abs=1e-16)
    assert helmert(3) == pytest.approx(np.array([[1 / s2, 1 / s6], [-1 / s2, 1 / s6], [0, -2 / s6]]), abs=1e-16)
    Q = helmert(5)
    assert Q.T @ Q == pytest.approx(np.eye(4), abs=1e-15)
    assert np.abs(Q.sum(axis=0)).max() < 1e-15


def test_two_options_by_hand() -> None:
    # one question, two agents: shares (0.3, 0.7) and (0.8, 0.2); target (0.6, 0.5) sums to 1.1, so δ = 0.1
    D = np.array([[0.3, 0.8], [0.7, 0.2]])
    r = np.array([0.6, 0.5])
    q = reduce_questions(D, r, np.ones(2), ["q", "q"])
    assert q is not None
    s2 = math.sqrt(2)
    assert q.D == pytest.approx(np.array([[-0.4 / s2, 0.6 / s2]]), abs=1e-15)  # (row 1 − row 2)/√2
    assert q.r == pytest.approx([0.1 / s2], abs=1e-15)
    assert q.sw.tolist() == [1.0]
    assert q.const == pytest.approx(0.5 * 0.1**2 / 2, abs=1e-17)  # ½·δ²/K
    # at w = (0.25, 0.75): Dw = (0.675, 0.325), e = (−0.075, 0.175), ½Σe² = 0.018125
    w = np.array([0.25, 0.75])
    assert data_term(D, r, np.ones(2), w) == pytest.approx(0.018125, abs=1e-15)
    assert data_term(q.D, q.r, q.sw, w) + q.const == pytest.approx(0.018125, abs=1e-15)


def test_uniform_weight_is_scaled_helmert() -> None:
    # W = ω on every row: M = ωI, L = √ω·I, a = 0, so T = √ω·Qᵀ, no shift, constant ½·ω·δ²/K
    T, shift, c = question_maps(np.array([[0.25] * 3, [4.0] * 3]), np.array([0.3, -0.6]))
    assert T[0] == pytest.approx(0.5 * helmert(3).T, abs=1e-15) and T[1] == pytest.approx(2 * helmert(3).T, abs=1e-15)
    assert shift == pytest.approx(np.zeros((2, 2)), abs=1e-15)
    assert c == pytest.approx([0.5 * 0.25 * 0.3**2 / 3, 0.5 * 4.0 * 0.6**2 / 3], rel=1e-14)


def test_identity_with_unequal_weights_and_targets() -> None:
    rng = np.random.default_rng(3)
    sizes = [3, 5, 2, 4]
    g = np.repeat([f"q{i}" for i in range(len(sizes))], sizes)
    D = np.vstack([rng.dirichlet(np.ones(k), size=40).T for k in sizes])
    r = rng.uniform(0.05, 0.5, size=len(g))  # targets that do not sum to 1: δ ≠ 0
    sw = rng.uniform(0.2, 3.0, size=len(g))
    q = reduce_questions(D, r, sw, g)
    assert q is not None and q.D.shape == (sum(sizes) - len(sizes), 40)
    assert q.sw.tolist() == [1.0] * q.D.shape[0]
    for _ in range(5):
        w = rng.dirichlet(np.ones(40))
        assert data_term(q.D, q.r, q.sw, w) + q.const == pytest.approx(data_term(D, r, sw, w), rel=1e-13)
        # gradients differ by a multiple of 1 only (Σw = 1 absorbs it)
        full = D.T @ (sw * (D @ w - r))
        red = q.D.T @ (q.D @ w - q.r)
        assert np.ptp(full - red) < 1e-13
    w = rng.dirichlet(np.ones(40)) * 1.5  # off the simplex the identity does not hold, and is not claimed
    assert abs(data_term(q.D, q.r, q.sw, w) + q.const - data_term(D, r, sw, w)) > 1e-3


def test_questions_that_keep_their_rows() -> None:
    rng = np.random.default_rng(4)
    D = np.vstack([rng.dirichlet(np.ones(3), size=6).T, rng.dirichlet(np.ones(3), size=6).T,
                   rng.dirichlet(np.ones(2), size=6).T, rng.uniform(size=(1, 6)), rng.dirichlet(np.ones(2), size=6).T])
    g = np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] + ["e"] * 2)
    D[3:6, 2] = 0.0  # one agent missing question b: its sums differ
    D[10, 4] += 1e-9  # question e: one agent's shares sum to 1 + 1e-9, beyond round-off
    sw = np.ones(len(g))
    sw[7] = 0.0  # question c has a row of weight 0
    r = rng.uniform(size=len(g))
    q = reduce_questions(D, r, sw, g)
    assert q is not None
    # a: 3 → 2 rows; b, c, d, e kept as they were (3 + 2 + 1 + 2)
    assert q.D.shape == (2 + 3 + 2 + 1 + 2, 6)
    assert np.array_equal(q.D[2:], D[3:]) and np.array_equal(q.r[2:], r[3:]) and np.array_equal(q.sw[2:], sw[3:])
    assert q.src.tolist() == [0, 0, 3, 3, 3, 6, 6, 8, 9, 9]
    w = rng.dirichlet(np.ones(6))
    assert data_term(q.D, q.r, q.sw, w) + q.const == pytest.approx(data_term(D, r, sw, w), rel=1e-13)
    only_kept = reduce_questions(D[3:], r[3:], sw[3:], g[3:])
    assert only_kept is None


def test_rows_of_a_question_apart() -> None:
    rng = np.random.default_rng(5)
    D = np.vstack([rng.dirichlet(np.ones(3), size=8).T, rng.dirichlet(np.ones(2), size=8).T])
    g = np.array(["a", "a", "a", "b", "b"])
    r = rng.uniform(size=5)
    perm = np.array([3, 0, 4, 1, 2])  # b, a, b, a, a: questions interleaved
    q = reduce_questions(D[perm], r[perm], np.ones(5), g[perm])
    assert q is not None and q.D.shape == (3, 8)
    assert q.src.tolist() == [0, 1, 1]  # b first (first seen at row 0), then a (row 1)
    masks = q.masks([g[perm] == "a", g[perm] == "b"])
    assert [m.tolist() for m in masks] == [[False, True, True], [True, False, False]]
    w = rng.dirichlet(np.ones(8))
    assert data_term(q.D, q.r, q.sw, w) + q.const == pytest.approx(data_term(D, r, np.ones(5), w), rel=1e-13)


def fit_both(monkeypatch: pytest.MonkeyPatch, D: np.ndarray, r: np.ndarray, **kw: object) -> tuple:
    """The default fit with the reduction, then without it (the solvers on D's own rows)."""
    reduced = fit_weights(D, r, **kw)
    with monkeypatch.context() as m:
        m.setattr(fit_module._rows, "reduce_questions", lambda *a: None)
        plain = fit_weights(D, r, **kw)
    return reduced, plain


@pytest.mark.parametrize("weights", ["none", "random"])
def test_default_fit_unchanged(monkeypatch: pytest.MonkeyPatch, weights: str) -> None:
    D, r, g = make_latent_problem(1500, 400, seed=2)
    kw: dict = {"groups": g}
    if weights == "random":  # unequal weights within a question, and targets off 1 (δ ≠ 0)
        kw["row_weights"] = np.random.default_rng(0).uniform(0.5, 2.0, size=len(r))
        r = r * 1.05
    red, plain = fit_both(monkeypatch, D, r, **kw)
    assert red.lam == plain.lam > 0  # the same grid value, exactly
    assert red.cv["grid"] == plain.cv["grid"]
    assert red.cv["mean"] == pytest.approx(plain.cv["mean"], rel=1e-9)
    assert red.objective == pytest.approx(plain.objective, rel=1e-9)
    assert np.abs(red.weights - plain.weights).max() < 1e-9
    assert red.nonzeros == plain.nonzeros


def test_missing_answers_and_fixed_lam(monkeypatch: pytest.MonkeyPatch) -> None:
    D, r, g = make_latent_problem(800, 120, seed=3)
    D[:, 5] = np.where(g == g[0], 0.0, D[:, 5])  # an agent without an answer to the first question: kept rows
    red, plain = fit_both(monkeypatch, D, r, groups=g)
    assert red.lam == plain.lam > 0
    assert red.objective == pytest.approx(plain.objective, rel=1e-10)
    assert np.abs(red.weights - plain.weights).max() < 1e-10
    calls: list[int] = []
    monkeypatch.setattr(fit_module._rows, "reduce_questions", lambda *a: calls.append(1))
    fit_weights(D, r, groups=g, lam=0.01)  # one fixed-λ fit: the rows are not reduced (not worth building them)
    fit_weights(D, r, groups=g, pull="kl")  # the KL pull: its own solver, left on D
    assert calls == []
    fit_weights(D, r, groups=g)
    assert calls == [1]


def test_sum_tolerance_at_its_bounds() -> None:
    """Agents' sums count as equal within 1e-12 × max(1, |c|) of the first agent's (`SUM_RTOL`), bound included."""
    def reduced(D: np.ndarray) -> bool:
        return reduce_questions(D, np.array([0.5, 0.5]), np.ones(2), ["q", "q"]) is not None

    assert reduced(np.array([[0.0, 1e-12], [0.0, 0.0]]))  # c = 0: |Δ| = 1e-12 exactly, the bound
    assert not reduced(np.array([[0.0, 2e-12], [0.0, 0.0]]))
    pct = np.array([[30.0, 80.0], [70.0, 20.0]])  # shares in percent: c = 100, the bound 1e-10
    assert reduced(pct + np.array([[0.0, 5e-11], [0.0, 0.0]]))
    assert not reduced(pct + np.array([[0.0, 2e-10], [0.0, 0.0]]))
    assert not reduced(np.array([[0.3, 0.8 + 1.5e-12], [0.7, 0.2]]))  # c = 1: beyond 1e-12


def test_rows_two_apart_and_questions_of_one_size() -> None:
    rng = np.random.default_rng(6)
    # questions a (rows 0, 3), b (1, 2), c (4, 5, 6), d (7, 8, 9): two of two rows, two of three, unequal
    # weights and targets off 1, so each batch of `question_maps` holds two questions with shifts and constants
    g = np.array(["a", "b", "b", "a", "c", "c", "c", "d", "d", "d"])
    D = np.empty((10, 12))
    for q in "abcd":
        D[g == q] = rng.dirichlet(np.ones(int(np.sum(g == q))), size=12).T
    r = rng.uniform(0.1, 0.9, size=10)
    sw = rng.uniform(0.3, 2.0, size=10)
    q = reduce_questions(D, r, sw, g)
    assert q is not None and q.D.shape == (6, 12) and q.src.tolist() == [0, 1, 4, 4, 7, 7]
    for _ in range(3):
        w = rng.dirichlet(np.ones(12))
        assert data_term(q.D, q.r, q.sw, w) + q.const == pytest.approx(data_term(D, r, sw, w), rel=1e-13)
    # question a by hand (K = 2): Q = (1, −1)/√2, M = (W₀ + W₃)/2, a = (δ/2)(W₀ − W₃)/√2
    W0, W3, delta = sw[0], sw[3], r[0] + r[3] - 1.0
    L = np.sqrt((W0 + W3) / 2)
    assert q.D[0] == pytest.approx(L * (D[0] - D[3]) / np.sqrt(2), rel=1e-13)
    a = delta / 2 * (W0 - W3) / np.sqrt(2)
    assert q.r[0] == pytest.approx(L * (r[0] - r[3]) / np.sqrt(2) + a / L, rel=1e-13)
