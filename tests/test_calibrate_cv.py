"""CV folds hold whole questions; the λ grid includes 0; CV picks λ = 0 with many informative questions."""

from __future__ import annotations

import numpy as np

from personagen.bench.solver import make_problem
from personagen.calibrate import fit_weights
from personagen.calibrate.cv import _refine, fold_masks, refine_order


def test_fold_masks_whole_questions():
    g = np.repeat([f"q{i}" for i in range(23)], 3)
    masks = fold_masks(g, 5, 0)
    assert len(masks) == 5
    assert np.all(sum(m.astype(int) for m in masks) == 1)
    for m in masks:
        for q in np.unique(g[m]):
            assert m[g == q].all()


def test_cv_curve_and_choice():
    D, r, g, _ = make_problem(150, 80, seed=8, noise=0.0)
    res = fit_weights(D, r, groups=g, lam_search="full")
    cv = res.cv
    assert cv["grid"][0] == 0.0 and len(cv["grid"]) == 20 and cv["folds"] == 5
    assert len(cv["mean"]) == len(cv["se"]) == 20
    assert res.lam == cv["best"] == cv["grid"][int(np.argmin(cv["mean"]))]
    # the default coarse-to-fine search fits a subset of the same grid, with the same fold errors, same choice
    ref = fit_weights(D, r, groups=g).cv
    assert ref["search"] == "refine" and ref["grid_full"] == 20 and 8 <= len(ref["grid"]) <= 12
    full = dict(zip(cv["grid"], cv["mean"]))
    floor = 1e-15 * float(np.mean(r**2))  # noise-free: the exact fits' held-out errors are round-off (~1e-28)
    for lam, m in zip(ref["grid"], ref["mean"]):
        assert abs(full[lam] - m) <= 1e-9 * full[lam] + floor
    assert ref["best"] == res.lam
    # noise-free sparse truth, many questions: the pure fit wins
    assert res.lam == 0.0
    assert fit_weights(D, r).lam == 0.0  # no groups → λ = 0


def test_refine_order_finds_every_unimodal_minimum():
    """The coarse-to-fine claim by hand: grid = [0, λ1 > ... > λ19]; coarse = every 3rd value from the largest plus
    the smallest (0); for a curve with one minimum anywhere, the coarse best's neighbours bracket it."""
    grid = [0.0, *np.logspace(0, -6, 19)]
    coarse, finer = refine_order(grid)
    assert coarse == [1, 4, 7, 10, 13, 16, 19, 0]
    assert finer(1) == [2, 3] and finer(0) == [] and finer(19) == [17, 18] and finer(10) == [8, 9, 11, 12]
    desc = [1 + i for i in range(19)] + [0]  # grid positions from the largest λ down
    for star in range(20):
        curve = {k: abs(i - star) for i, k in enumerate(desc)}  # unimodal in λ, minimum at desc[star]
        best = min(coarse, key=lambda k: (curve[k], k))
        assert desc[star] in {*coarse, *finer(best)}


def test_matrix_free_cv_equals_fold_by_fold_dense_fits():
    """The λ-major sweep on a wide design (matrix-free folds sharing one row-space kernel, projected gradient at
    the strongest pulls, predicted supports, Woodbury corrections) gives every fold's held-out error of the plain
    reference: each fold's dense Gram G_all − G_fold solved cold by the active set at each λ."""
    from personagen.calibrate import simplex as sx
    from personagen.calibrate.cv import fold_quads, heldout_mse
    from personagen.calibrate.solvers import Quad, active_set

    D, r, g, _ = make_problem(800, 40, seed=5)  # 160 rows × 800 agents
    n = D.shape[1]
    assert Quad.from_design(D, r).G is None
    res = fit_weights(D, r, groups=g, lam_search="full")
    grid = np.asarray(res.cv["grid"])
    assert len(grid) == 20 and res.info["n"] == n
    masks = fold_masks(g, 5, 0)
    sw = np.ones(len(r))
    w0 = np.full(n, 1 / n)
    ref = np.zeros((len(masks), len(grid)))
    for f, (m, q) in enumerate(zip(masks, fold_quads(D, r, sw, masks, dense=True))):
        for k, lam in enumerate(grid):
            w = active_set(q, q.b + lam * n * w0, lam * n).w if lam > 0 else sx.solve(q, 0.0, w0).w
            ref[f, k] = heldout_mse(D[m], r[m], sw[m], w)
    assert np.allclose(res.cv["mean"], ref.mean(axis=0), rtol=1e-8, atol=0)
    assert res.lam == grid[int(np.argmin(ref.mean(axis=0)))]


def _latent_fold(agents: int = 600, rows: int = 200):
    from personagen.bench.solver import make_latent_problem
    from personagen.calibrate import simplex as sx
    from personagen.calibrate.solvers import Quad

    D, r, g = make_latent_problem(agents, rows, seed=3)
    m = fold_masks(g, 5, 0)[0]
    quad = Quad(D=D, r=r, sw=np.where(m, 0.0, 1.0))
    return D, r, g, quad, sx.lam_grid(Quad.from_design(D, r)), np.full(agents, 1 / agents)


def test_cv_lambda_zero_from_small_lambda_support_is_the_cold_fit():
    """CV's λ = 0 fit starts from the smallest λ's support (latent-type answers: the cold start cycles and then
    adds one agent per step) and returns the cold fit's weights: the pure fit is unique there."""
    from personagen.calibrate import simplex as sx

    _, _, _, quad, grid, w0 = _latent_fold()
    fp = sx.FoldPath(quad, w0)
    fp.fit(float(grid[-1]))
    warm = fp.fit(0.0)
    cold = sx.solve(quad, 0.0, w0)
    assert warm.n_iter <= 5 < cold.n_iter
    assert np.abs(warm.w - cold.w).max() <= 1e-12
    assert abs(sx.objective(quad, warm.w, 0, w0, "l2") - sx.objective(quad, cold.w, 0, w0, "l2")) <= 1e-12


def test_cv_lambda_zero_solved_cold_where_the_pure_fit_is_not_unique():
    """With a duplicate of a support agent the λ = 0 minimiser is not unique (any split of the weight between the
    copies): `unique_minimiser` says so and CV's λ = 0 fit is the cold one, as before."""
    from personagen.calibrate import simplex as sx
    from personagen.calibrate.solvers import Quad

    D, r, g, quad, grid, w0 = _latent_fold()
    j = int(np.argmax(sx.solve(quad, 0.0, w0).w))
    D2 = np.column_stack([D, D[:, j]])
    q2 = Quad(D=D2, r=r, sw=quad.sw)
    w02 = np.full(D2.shape[1], 1 / D2.shape[1])
    fp = sx.FoldPath(q2, w02)
    fp.fit(float(grid[-1]))
    warm = sx.solve(q2, 0.0, w02, w_start=fp.fits[float(grid[-1])][0])
    assert not sx.unique_minimiser(q2, warm)
    assert np.array_equal(fp.fit(0.0).w, sx.solve(q2, 0.0, w02).w)


def test_default_fit_on_latent_types_matches_full_grid_choice():
    """The default fit (coarse-to-fine λ search) on a dense-support latent-type problem picks the full grid's λ."""
    from personagen.bench.solver import make_latent_problem

    D, r, g = make_latent_problem(400, 160, seed=1)
    full = fit_weights(D, r, groups=g, lam_search="full")
    fast = fit_weights(D, r, groups=g)
    assert fast.lam == full.lam and fast.lam > 0
    assert abs(fast.objective - full.objective) <= 1e-9 * abs(full.objective)
    # the coarse scan stopped after two rises: λ = 0 was never fitted, and every value fitted has the full grid's
    # CV error (peer and bracketed warm starts change where a fit starts, not where it ends)
    assert fast.cv["stopped_after_rises"] == 2 and 0.0 not in fast.cv["grid"]
    ref = dict(zip(full.cv["grid"], full.cv["mean"]))
    for lam, m in zip(fast.cv["grid"], fast.cv["mean"]):
        assert abs(ref[lam] - m) <= 1e-9 * ref[lam]


def test_refine_walks_one_side_at_a_time():
    """`_refine` by hand on sides longer than the default search makes (grid values 10 − k, best at position 5,
    `between` 1–4 and 6–9; "up" = larger λ = positions 4, 3, 2, 1 nearest first, "down" = 6, 7, 8, 9).
    Falling above the best (v: 4 → 3, 3 → 1, 2 → 2): up first, 4 beats the best, so 3 (better still), then 2 (a
    rise: the walk stops); the down side is never fitted. Down first: 6 (v = 5) does not beat the best, so the
    up side is walked as before. A side whose nearest value does not beat the best is left after that value."""
    grid = 10.0 - np.arange(10)
    between = [1, 2, 3, 4, 6, 7, 8, 9]
    v = {5: 4.0, 4: 3.0, 3: 1.0, 2: 2.0, 1: 0.5, 6: 5.0, 7: 0.1, 8: 0.1, 9: 0.1}
    for first_down, expect in ((False, [4, 3, 2]), (True, [6, 4, 3, 2])):
        fitted: list[int] = []
        _refine(between, 5, fitted.extend, lambda k, j: (v[k], k) < (v[j], j), grid, first_down=first_down)
        assert fitted == expect
    w = {5: 4.0, 4: 4.5, 3: 0.1, 2: 0.1, 1: 0.1, 6: 3.0, 7: 3.5, 8: 0.1, 9: 0.1}  # falls below the best only
    for first_down, expect in ((False, [4, 6, 7]), (True, [6, 7])):
        fitted = []
        _refine(between, 5, fitted.extend, lambda k, j: (w[k], k) < (w[j], j), grid, first_down=first_down)
        assert fitted == expect
    fitted = []  # neither side better: each side's nearest value only
    _refine(between, 5, fitted.extend, lambda k, j: k == 5 and j != 5, grid)
    assert fitted == [4, 6]


def test_refine_search_stops_after_patience_rises_on_a_hand_made_curve():
    """The stop by hand: one agent, five one-row folds, r = 0 and fit(fold, k) = v_k, so every fold's held-out
    error at grid[k] is v_k² and the CV mean is v_k². Coarse positions from the largest λ: 1, 4, 7, 10, 13, 16, 19,
    0 (`refine_order`). With the minimum at position 7, two rises (10, 13) stop the coarse scan: 16, 19 and 0 are
    never fitted; of the values between 7's coarse neighbours (5, 6, 8, 9) its grid neighbours 6 and 8 are, and
    as neither is better, nothing further (`_refine`: nearest first, onward only where the curve falls)."""
    from personagen.calibrate.cv import sweep

    grid = np.array([0.0, *np.logspace(0, -6, 19)])
    g = np.array([f"q{i}" for i in range(5)])
    D, r, sw = np.ones((5, 1)), np.zeros(5), np.ones(5)
    masks = fold_masks(g, 5, 0)
    desc = [1 + i for i in range(19)] + [0]
    v = {k: 1.0 + abs(i - 6) for i, k in enumerate(desc)}  # unimodal in λ, minimum at desc[6] = position 7
    asked: list[int] = []

    def fit(f: int, k: int) -> np.ndarray:
        asked.append(k)
        return np.array([v[k]])

    curve = sweep(D, r, sw, masks, grid, fit, search="refine")
    assert sorted(set(asked)) == [1, 4, 6, 7, 8, 10, 13]
    assert curve.best == grid[7] and curve.extra["stopped_after_rises"] == 2
    assert np.allclose(curve.mean, [v[k] ** 2 for k in sorted(set(asked))])
    asked.clear()
    sweep(D, r, sw, masks, grid, fit, search="refine", patience=1)
    assert sorted(set(asked)) == [1, 4, 6, 7, 8, 10]
    # minimum at position 5, between coarse values: v = 5, 2, 3, 6 at coarse 1, 4, 7, 10 (the scan stops there,
    # best 4); of 4's coarse neighbours 7 (v = 3) scores better than 1 (v = 5), so the smaller-λ side first: 5
    # (v = 1) beats 4, onward 6 (v = 2) rises; 3 and 2 are never fitted and the pick is 5
    v = {k: 1.0 + abs(i - 4) for i, k in enumerate(desc)}
    asked.clear()
    curve = sweep(D, r, sw, masks, grid, fit, search="refine")
    assert sorted(set(asked)) == [1, 4, 5, 6, 7, 10] and curve.best == grid[5]
    # the same with the larger-λ coarse neighbour better (v = 2.5 at 1): 3 first (v = 3, worse), then 5
    v[1] = 2.5
    asked.clear()
    curve = sweep(D, r, sw, masks, grid, fit, search="refine")
    assert sorted(set(asked)) == [1, 3, 4, 5, 6, 7, 10] and curve.best == grid[5]
    # not unimodal there (both of 4's neighbours better: v = 0.5 at 3, 0.7 at 5): what the search assumes fails,
    # and it is not detected: the down side is walked (5, then 6 rises), 3 is never fitted and the pick is 5
    # where the full grid's would be 3 (the coarse scan's stop rests on the same assumption)
    v[1], v[3], v[5] = 5.0, 0.5, 0.7
    asked.clear()
    curve = sweep(D, r, sw, masks, grid, fit, search="refine")
    assert sorted(set(asked)) == [1, 4, 5, 6, 7, 10] and curve.best == grid[5]
    assert sweep(D, r, sw, masks, grid, fit, search="full").best == grid[3]
    # a curve still falling at the bottom of the grid fits every coarse value, λ = 0 included
    v = {k: 20.0 - i for i, k in enumerate(desc)}
    asked.clear()
    curve = sweep(D, r, sw, masks, grid, fit, search="refine")
    assert 0 in asked and curve.best == 0.0 and "stopped_after_rises" not in curve.extra
