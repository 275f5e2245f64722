"""CV folds hold whole questions; the λ grid includes 0; CV picks λ = 0 with many informative questions."""

from __future__ import annotations

import numpy as np

from personagen.bench.solver import make_problem
from personagen.calibrate import fit_weights
from personagen.calibrate.cv import fold_masks


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
    res = fit_weights(D, r, groups=g)
    cv = res.cv
    assert cv["grid"][0] == 0.0 and len(cv["grid"]) == 20 and cv["folds"] == 5
    assert len(cv["mean"]) == len(cv["se"]) == 20
    assert res.lam == cv["best"] == cv["grid"][int(np.argmin(cv["mean"]))]
    # noise-free sparse truth, many questions: the pure fit wins
    assert res.lam == 0.0
    assert fit_weights(D, r).lam == 0.0  # no groups → λ = 0
