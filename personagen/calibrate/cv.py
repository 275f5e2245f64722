"""K-fold cross-validation over whole questions (DESIGN §5: CV folds group whole questions).

Held-out error is the row-weighted MSE Σ W_i (r_i − (Dw)_i)² / Σ W_i over the held-out questions' rows.
For the Gram-based estimators the training Gram of each fold is G_all − G_fold, so D is read once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from personagen.calibrate.solvers import Quad, RowKernel, gram, prefer_dense
from personagen.surveys import kfold_groups

Array = np.ndarray


@dataclass
class CVCurve:
    """Per-grid-value CV error: grid values, mean and standard error of held-out MSE over folds."""

    param: str
    grid: list[float]
    mean: list[float]
    se: list[float]
    best: float
    folds: int
    extra: dict | None = None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        d = {"param": self.param, "grid": self.grid, "mean": self.mean, "se": self.se,
             "best": self.best, "folds": self.folds}
        if self.extra:
            d.update(self.extra)
        return d


def fold_masks(groups: Sequence, k: int = 5, seed: int = 0) -> list[Array]:
    """Boolean held-out row masks, one per fold, each holding whole questions (via `kfold_groups`)."""
    g = np.asarray([str(x) for x in groups])
    qids = list(dict.fromkeys(g.tolist()))
    if len(qids) < 2:
        raise ValueError("cross-validation needs at least 2 questions")
    return [np.isin(g, np.asarray(f)) for f in kfold_groups(qids, k, seed=seed) if f]


def fold_quads(
    D: Array, r: Array, sw: Array, masks: Sequence[Array], *, dense: bool | None = None,
    kernel: RowKernel | None = None,
) -> Iterator[Quad]:
    """Training quadratics per fold, made one at a time (a fold's caches are freed before the next is made).

    Dense Grams by subtraction G_all − G_fold when N is moderate and D is not wide; otherwise matrix-free on the
    caller's D with the held-out rows weighted 0 (no copy of D), sharing one row-space kernel across folds
    (`kernel`, made here when not given) so each fold's wide supports reuse the previous fold's kernel.
    """
    N = D.shape[1]
    if dense is None:
        dense = prefer_dense(D.shape[0], N)
    if not dense:
        shared = RowKernel(D) if kernel is None else kernel
        for m in masks:
            yield Quad(D=D, r=r, sw=np.where(m, 0.0, sw), kernel=shared)
        return
    G = gram(D, sw)
    b = D.T @ (sw * r)
    c = 0.5 * float(r @ (sw * r))
    for m in masks:
        Df, rf = D[m], r[m]
        yield Quad(G=G - gram(Df, sw[m]), b=b - Df.T @ (sw[m] * rf), c=c - 0.5 * float(rf @ (sw[m] * rf)))


def heldout_mse(D: Array, r: Array, sw: Array, w: Array) -> float:
    """Row-weighted mean squared error of Dw against r."""
    e = r - D @ w
    return float(np.sum(sw * e * e) / max(float(np.sum(sw)), 1e-300))


def cross_validate(
    D: Array,
    r: Array,
    sw: Array,
    masks: Sequence[Array],
    grid: Sequence[float],
    fit_path: Callable[[int, Array], list[Array]],
    *,
    param: str = "lam",
    predict: Callable[[Array], Array] | None = None,
) -> CVCurve:
    """Run `fit_path(fold_index, train_mask) -> weights per grid value` per fold; pick the min-mean value.

    `predict` maps fitted weights to the weights used for prediction (e.g. w/Σw for the sparse fit).
    """
    errs = np.zeros((len(masks), len(grid)))
    for f, m in enumerate(masks):
        ws = fit_path(f, ~m)
        rm, swm = r[m], sw[m]
        W = np.column_stack([predict(w) if predict else w for w in ws])
        E = rm[:, None] - (D @ W)[m]  # one pass over D for the whole path, no copy of the held-out rows
        errs[f] = (swm[:, None] * E * E).sum(axis=0) / max(float(np.sum(swm)), 1e-300)
    mean = errs.mean(axis=0)
    se = errs.std(axis=0, ddof=1) / np.sqrt(len(masks)) if len(masks) > 1 else np.zeros(len(grid))
    best = int(np.argmin(mean))
    return CVCurve(param, [float(x) for x in grid], mean.tolist(), se.tolist(), float(grid[best]), len(masks))
