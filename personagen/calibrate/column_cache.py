"""Gram columns of a matrix-free quadratic, cached for the agents of recent supports (calibrate/quad.py).

An active-set step on a support P needs G_PP = X_PᵀX_P (X = W^½D on the rows that count); consecutive supports
share most agents, so the cache keeps, for every agent it has seen, its column of X and its Gram entries with
every other cached agent: a new support costs only the Gram block of the agents not yet cached. Bounded by
`cache_mb` (`Tuning.cache_mb`: 256 MB per quadratic, 2.4 GB peak for five CV folds at 20k × 5,000, issue 15):
grown geometrically up to the cap, compacted to the current support when full; a support larger than the cap
is formed uncached.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from personagen.calibrate._blas import all_threads, big_threads
from personagen.calibrate.tuning import TUNING

Array = np.ndarray


class ColumnCache:
    """X's columns and their Gram entries for up to `cap_max` agents (n agents, m rows that count); `cols(idx)`
    gathers fresh columns of X (a copy)."""

    def __init__(self, n: int, m: int, cache_mb: float, cols: Callable[[Array], Array]) -> None:
        words = cache_mb * 2**20 / 8
        self.cap_max = int(min(n, max(16.0, (-m + math.sqrt(m * m + 4 * words)) / 2)))
        self._cols = cols
        self._cap = 0
        self._used = 0
        self._C = np.zeros((0, 0))
        self._X = np.zeros((m, 0))
        self._slot = np.full(n, -1, dtype=np.int64)
        self._agent = np.zeros(0, dtype=np.int64)

    def _make_room(self, P: Array, k: int) -> None:
        """Free k slots in the column cache: grow geometrically up to the cap, else keep only P's columns."""
        if self._used + k <= self._cap:
            return
        if self._used + k > self.cap_max:  # compact: keep the cached columns of P, in slot order
            keep = np.sort(self._slot[P][self._slot[P] >= 0])
            kk = len(keep)
            self._C[:kk, :kk] = self._C[np.ix_(keep, keep)]
            self._X[:, :kk] = self._X[:, keep]
            self._slot[self._agent[: self._used]] = -1
            self._agent[:kk] = self._agent[keep]
            self._slot[self._agent[:kk]] = np.arange(kk)
            self._used = kk
            if kk + k <= self._cap:
                return
        cap = min(self.cap_max, max(self._used + k, 2 * self._cap, 64))
        u = self._used
        C = np.empty((cap, cap))
        C[:u, :u] = self._C[:u, :u]
        X = np.empty((self._X.shape[0], cap))
        X[:, :u] = self._X[:, :u]
        agent = np.full(cap, -1, dtype=np.int64)
        agent[:u] = self._agent[:u]
        self._C, self._X, self._agent, self._cap = C, X, agent, cap

    def block(self, P: Array) -> Array:
        """G[P, P], a fresh copy (uncached when P exceeds the cache)."""
        if len(P) > self.cap_max:
            X = self._cols(P)
            with big_threads(len(P)):
                return X.T @ X
        self._fill(P)
        q = self._slot[P]
        return self._C[np.ix_(q, q)]

    def cross(self, P: Array, Q: Array) -> Array | None:
        """G[P, Q] (a fresh copy), None when P and Q together exceed the cache (bordering a support's Cholesky
        factor, calibrate/support_factor.py)."""
        both = np.concatenate([P, Q])
        if len(both) > self.cap_max:
            return None
        self._fill(both)
        return self._C[np.ix_(self._slot[P], self._slot[Q])]

    def _fill(self, P: Array) -> None:
        """Cache the columns of P not cached yet (and their Gram entries with every cached agent)."""
        missing = P[self._slot[P] < 0]
        if len(missing):
            self._make_room(P, len(missing))
            u, k = self._used, len(missing)
            Xm = self._cols(missing)
            big = len(Xm) * k * (u + k) >= TUNING.big_block_flops  # a large Gram block: every BLAS thread
            with all_threads(big):
                cross = self._X[:, :u].T @ Xm
                self._C[u : u + k, u : u + k] = Xm.T @ Xm
            self._C[:u, u : u + k] = cross
            self._C[u : u + k, :u] = cross.T
            self._X[:, u : u + k] = Xm
            self._slot[missing] = np.arange(u, u + k)
            self._agent[u : u + k] = missing
            self._used += k

    def answers(self, w: Array, idx: Array) -> Array | None:
        """X_P w_P (the fit's answers on the rows that count) for w supported on idx, from the cached columns;
        None when some agent of idx is not cached (or idx is empty or beyond the cache)."""
        if len(idx) > self.cap_max or not len(idx):
            return None
        q = self._slot[idx]
        if np.any(q < 0):
            return None
        zs = np.zeros(self._used)  # every cached column (gathering those of idx cost more: issue 23)
        zs[q] = w[idx]
        return self._X[:, : self._used] @ zs
