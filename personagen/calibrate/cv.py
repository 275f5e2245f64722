"""K-fold cross-validation over whole questions (docs/design.md §5: CV folds group whole questions).

Held-out error is the row-weighted MSE Σ W_i (r_i − (Dw)_i)² / Σ W_i over the held-out questions' rows.
For the Gram-based estimators the training Gram of each fold is G_all − G_fold, so D is read once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from personagen.calibrate._blas import times_cols
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


def fold_quad_list(
    D: Array, r: Array, sw: Array, masks: Sequence[Array], *, kernel: RowKernel, cache_mb: float = 256.0,
) -> list[Quad]:
    """Every fold's training quadratic at once (for a λ-major sweep): matrix-free on the caller's D with the
    held-out rows weighted 0, one shared row-space kernel; dense Grams by subtraction when `prefer_dense`. Each
    fold keeps its own column cache of `cache_mb` (a fold's supports of up to a few thousand agents then stay in
    agent space, which at 20k × 5,000 is ~2× faster than moving the row-space kernel; peak 2.4 GB there)."""
    if prefer_dense(D.shape[0], D.shape[1]):
        return list(fold_quads(D, r, sw, masks, dense=True))
    return [Quad(D=D, r=r, sw=np.where(m, 0.0, sw), kernel=kernel, cache_mb=cache_mb) for m in masks]


def refine_order(grid: Sequence[float], step: int = 3) -> tuple[list[int], Callable[[int], list[int]]]:
    """The coarse-to-fine search over a grid: the coarse grid positions (every `step`-th value from the largest,
    and the smallest), and a function from the best coarse position to the positions to add (every grid value
    strictly between that position's coarse neighbours).

    Why: a CV curve that is unimodal over the grid has its minimum strictly between the best coarse value's
    neighbours, so the search picks exactly what the full grid picks while fitting ~12 of 20 values."""
    order = [int(k) for k in np.argsort(-np.asarray(grid, dtype=float), kind="stable")]
    pos = list(range(0, len(order), step))
    if pos[-1] != len(order) - 1:
        pos.append(len(order) - 1)
    coarse = [order[i] for i in pos]

    def finer(best: int) -> list[int]:
        i = pos.index(order.index(best))
        lo = pos[i - 1] if i > 0 else pos[i]
        hi = pos[i + 1] if i + 1 < len(pos) else pos[i]
        return [order[j] for j in range(lo + 1, hi) if j != pos[i]]

    return coarse, finer


def sweep(
    D: Array,
    r: Array,
    sw: Array,
    masks: Sequence[Array],
    grid: Sequence[float],
    fit: Callable[[int, int], Array],
    *,
    search: str = "full",
    param: str = "lam",
    patience: int = 2,
) -> CVCurve:
    """λ-major K-fold CV: for each grid value, largest first, `fit(fold, k)` returns the fold's weights at grid[k]
    (the caller warm-starts each fold from its own fit at the nearest larger value, and the folds at one value
    share their supports, hence the row-space kernel). search "refine": the coarse grid first, largest λ down,
    stopped once `patience` coarse values in a row score worse than the best so far, then the values around its
    best (`refine_order`), nearest first, the side whose coarse neighbour scores better first, and onward only
    where the curve falls (`_refine`); "full": every value.
    The curve lists the values fitted, in grid order.

    Why the stop: a CV curve that is unimodal over the grid (what the coarse-to-fine search already assumes) never
    comes back down once it has risen, so the smaller coarse values cannot be chosen; they are also the costly
    ones on wide problems (λ = 0 on latent-type answers at 100k × 1,000: 473 of 715 CPU s, issue 23). One rise
    would do under the assumption; `patience` = 2 asks for two, a margin against a noisy fold mean."""
    grid = np.asarray(grid, dtype=float)
    errs: dict[tuple[int, int], float] = {}
    nf = len(masks)

    def run(ks: Sequence[int]) -> None:
        keys = [(f, k) for k in sorted(ks, key=lambda k: -grid[k]) for f in range(nf)]
        W = np.empty((D.shape[1], len(keys)))
        for j, (f, k) in enumerate(keys):
            W[:, j] = fit(f, k)
        P = times_cols(D, W)
        for j, (f, k) in enumerate(keys):
            m = masks[f]
            e = r[m] - P[m, j]
            errs[(f, k)] = float(np.sum(sw[m] * e * e) / max(float(np.sum(sw[m])), 1e-300))

    def mean(k: int) -> float:
        return float(np.mean([errs[(f, k)] for f in range(nf)]))

    def lower(k: int, j: int) -> bool:
        """Whether grid[k] scores better than grid[j] (mean held-out error; a tie goes to the lower position)."""
        return (mean(k), k) < (mean(j), j)

    stopped = False
    if search == "full" or len(grid) < 4:
        run(range(len(grid)))
    else:
        coarse, finer = refine_order(grid)
        best, worse = None, 0
        for i, k in enumerate(coarse):  # largest λ first (refine_order's order)
            run([k])
            if best is None or lower(k, best):
                best, worse = k, 0
            else:
                worse += 1
                if worse >= patience and i + 1 < len(coarse):
                    stopped = True
                    break
        i = coarse.index(best)
        up_c = coarse[i - 1] if i > 0 else None
        down_c = coarse[i + 1] if i + 1 < len(coarse) and (0, coarse[i + 1]) in errs else None
        first_down = down_c is not None and (up_c is None or lower(down_c, up_c))
        _refine(finer(best), best, run, lower, grid, first_down=first_down)
    ks = sorted({k for _, k in errs})
    E = np.array([[errs[(f, k)] for k in ks] for f in range(nf)])
    means = E.mean(axis=0)
    se = E.std(axis=0, ddof=1) / np.sqrt(nf) if nf > 1 else np.zeros(len(ks))
    pick = int(np.argmin(means))
    curve = CVCurve(param, [float(grid[k]) for k in ks], means.tolist(), se.tolist(), float(grid[ks[pick]]), nf)
    if len(ks) < len(grid):
        curve.extra = {"search": search, "grid_full": len(grid)}
        if stopped:
            curve.extra["stopped_after_rises"] = patience
    return curve


def _refine(between: Sequence[int], best: int, run: Callable[[Sequence[int]], None],
            lower: Callable[[int, int], bool], grid: Array, *, first_down: bool = False) -> None:
    """Fit the grid values `between` the best coarse value's coarse neighbours, one side at a time, nearest to
    `best` first: the side whose coarse neighbour scores better first (`first_down`: the smaller λ's), onward while
    the curve keeps falling; the other side only when the first side's nearest value is no better than `best`.

    Why: on a curve unimodal over the grid (what the coarse-to-fine search assumes) a side whose nearest value
    beats `best` holds the minimum (the curve falls from `best` toward it, so it rises toward the other side), a
    side whose nearest value does not holds nothing better, and past the first rise nothing is better either: the
    pick is the one fitting every value in `between` gives. Each value is five folds' fits (issue 23, latent types
    20k × 5,000: the other side's nearest value cost 4.1 s of ~60, its CV error 2.4% above the pick's). Until issue
    23's eighth round both nearest values were fitted, which also caught a curve falling on both sides of `best`
    (not unimodal there); the coarse scan's stop already rests on the same assumption unchecked."""
    up = sorted((k for k in between if grid[k] > grid[best]), key=lambda k: grid[k])
    down = sorted((k for k in between if grid[k] < grid[best]), key=lambda k: -grid[k])
    for side in ((down, up) if first_down else (up, down)):
        if not side:
            continue
        run([side[0]])
        if not lower(side[0], best):
            continue
        cur = side[0]
        for k in side[1:]:
            run([k])
            if not lower(k, cur):
                break
            cur = k
        return


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
