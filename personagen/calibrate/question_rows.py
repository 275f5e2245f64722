"""One row fewer per question where every agent's shares sum to the same total (issue 23).

On the simplex (Σw = 1), when every agent's K shares of question q sum to the same c_q (answer distributions:
c_q = 1), the residuals e = r_q − D_q·w sum to δ_q = Σr_q − c_q whatever w is, so the question's K rows carry
K − 1 free values. With Q a K × (K−1) orthonormal basis of 1⊥ (Helmert's), e = (δ/K)·1 + Qz with z = Qᵀe; with W
the question's row weights, M = QᵀWQ = LLᵀ and a = (δ/K)·QᵀW1,

    ½eᵀWe = ½‖Lᵀz + L⁻¹a‖² + ½((δ/K)²·1ᵀW1 − aᵀM⁻¹a),

the unit-weight least squares of the rows X_q = LᵀQᵀD_q against t_q = LᵀQᵀr_q + L⁻¹a, plus a constant. So on the
simplex the fit's objective differs by that constant only: the minimiser is the same, every CV fold's too (folds
hold whole questions), the Gram G changes only along 1 (PGP, hence the λ grid, is unchanged) and gradients move
by a multiple of 1, which the sum constraint absorbs. What it buys: the row-space kernel (rows² per agent moved),
its factors (rows³) and every pass over D shrink with the rows, by a quarter at four options and half at two
(latent types 20k agents × 5,000 rows, default CV fit: 89.8 → 55.9 s on 3,757 rows, docs/national-scale.md).

When: the l2-pull simplex fit with λ chosen by CV (calibrate/fit.py: some fifty fits share the rows; for one
fixed-λ fit building them cost more than they saved on the problems measured). A question keeps its rows when it
has one row, when a row weight is 0 (M may be singular), or when its agents' sums differ from the first agent's by
more than `SUM_RTOL` × max(1, |c_q|) (missing answers, shares that were not renormalised): the identity needs
them equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Array = np.ndarray

SUM_RTOL = 1e-12  # agents' sums within this × max(1, |c_q|) are equal (a renormalised share's round-off: ~1e-16·K)


@dataclass(frozen=True)
class QuestionRows:
    """The reduced least squares: rows D and targets r (unit weight where reduced, the old weight where kept),
    for each row `src` an original row of its question (fold masks map through it), and `const`, the original
    data term minus the reduced one (the same for every w on the simplex)."""

    D: Array
    r: Array
    sw: Array
    src: Array
    const: float

    def masks(self, masks: Sequence[Array]) -> list[Array]:
        """Original row masks that hold whole questions, as masks of these rows."""
        return [np.asarray(m, dtype=bool)[self.src] for m in masks]


def helmert(k: int) -> Array:
    """The k × (k−1) Helmert basis of 1⊥: column j (1-based) is (1, …, 1, −j, 0, …, 0)/√(j(j+1)) with j ones."""
    Q = np.zeros((k, k - 1))
    for j in range(1, k):
        Q[:j, j - 1] = 1.0
        Q[j, j - 1] = -float(j)
        Q[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return Q


def question_maps(W: Array, delta: Array) -> tuple[Array, Array, Array]:
    """For q questions of K rows each, their row weights W (q × K, all > 0) and residual sums δ (q): T = LᵀQᵀ
    (q × (K−1) × K), the target shifts L⁻¹a (q × (K−1)) and the constants ½((δ/K)²·1ᵀW1 − aᵀM⁻¹a) (q) of the module
    docstring's identity, batched (one question at a time cost ~0.1 ms each in scipy's overhead)."""
    k = W.shape[1]
    Q = helmert(k)
    L = np.linalg.cholesky(np.einsum("ka,qk,kb->qab", Q, W, Q))
    a = (delta / k)[:, None] * (W @ Q)
    la = np.linalg.solve(L, a[:, :, None])[:, :, 0]
    return np.swapaxes(L, 1, 2) @ Q.T, la, 0.5 * ((delta / k) ** 2 * W.sum(axis=1) - np.sum(la * la, axis=1))


def _block(D: Array, idx: Array) -> Array:
    """D's rows idx: a view when they are consecutive (the usual layout), else a gathered copy."""
    lo = int(idx[0])
    return D[lo:lo + len(idx)] if int(idx[-1]) - lo + 1 == len(idx) else D[idx]


def _equal_sums(Dq: Array) -> float | None:
    """The agents' common column sum of one question's rows, or None when they differ beyond `SUM_RTOL`."""
    cs = Dq.sum(axis=0)
    c = float(cs[0])
    return c if float(np.max(np.abs(cs - c))) <= SUM_RTOL * max(1.0, abs(c)) else None


def rows_by_question(groups: Sequence) -> list[Array]:
    """Each question's row indices (ascending), questions in order of first appearance (one sort, not a scan of
    the rows per question)."""
    g = np.asarray([str(x) for x in groups])
    _, first, inv = np.unique(g, return_index=True, return_inverse=True)
    rank = np.argsort(np.argsort(first, kind="stable"), kind="stable")[inv]  # question order by first appearance
    rows = np.argsort(rank, kind="stable")
    starts = np.concatenate([[0], np.flatnonzero(np.diff(rank[rows])) + 1, [len(rows)]])
    return [rows[s:e] for s, e in zip(starts[:-1], starts[1:])]


def reduce_questions(D: Array, r: Array, sw: Array, groups: Sequence) -> QuestionRows | None:
    """The rows of (D, r, sw) with one row fewer for each question that allows it (module docstring), questions
    in order of first appearance; None when no question does. Cost: two passes over D."""
    qs = rows_by_question(groups)
    sums = [_equal_sums(_block(D, idx)) if len(idx) > 1 and np.all(sw[idx] > 0) else None for idx in qs]
    maps: dict[int, tuple[Array, Array, Array]] = {}  # question -> (T, shift, constant)
    for k in {len(idx) for idx, c in zip(qs, sums) if c is not None}:
        which = [i for i, (idx, c) in enumerate(zip(qs, sums)) if c is not None and len(idx) == k]
        delta = np.array([float(r[qs[i]].sum()) - float(sums[i]) for i in which])  # type: ignore[arg-type]
        T, shift, const = question_maps(np.array([sw[qs[i]] for i in which]), delta)
        maps.update({i: (T[j], shift[j], const[j]) for j, i in enumerate(which)})
    if not maps:
        return None
    m_out = len(r) - len(maps)
    X = np.empty((m_out, D.shape[1]))
    t, w, src = np.empty(m_out), np.empty(m_out), np.empty(m_out, dtype=np.int64)
    at = 0
    for i, idx in enumerate(qs):
        k = len(idx) - (i in maps)
        if i not in maps:
            X[at:at + k], t[at:at + k], w[at:at + k] = _block(D, idx), r[idx], sw[idx]
        else:
            T, shift, _ = maps[i]
            np.matmul(T, _block(D, idx), out=X[at:at + k])
            t[at:at + k], w[at:at + k] = T @ r[idx] + shift, 1.0
        src[at:at + k] = idx[0]
        at += k
    return QuestionRows(X, t, w, src, float(sum(m[2] for m in maps.values())))
