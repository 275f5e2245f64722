"""Fast solvers for the weight-calibration problems of docs/design.md §5.

All quadratic problems are written as

    min_w  ½ wᵀ(G + μI)w − fᵀw + c      s.t. w ≥ 0 [, Σw = 1]

with G = DᵀWD (row weights W), so that the simplex fit with the l2 pull (μ = λN, f = DᵀWr + λN·w0),
the nonnegative lasso (μ = 0, f = DᵀWr − α) and nonnegative least squares share one solver.

Why these solvers: cvxpy/Clarabel needs seconds at 1000 agents and gives no answer in minutes at 5000;
an active-set method that solves the equality-constrained KKT system on the current support reaches
machine-precision KKT points in a handful of Cholesky solves, and warm-starts well along a λ path.

* `Quad`: the quadratic, from a dense Gram (CV: G per fold = G_all − G_fold) or from D itself
  (large single fits and wide problems: gradient by two passes over D, Gram blocks only for the support,
  cached).
* Support solves (`Quad.eq_solve`): with the l2 pull the support Hessian is μI + X_PᵀX_P (X = W^½D, m rows).
  When the support has many more agents than there are rows (census-shaped problems: ~60 rows × 1,000
  one-hot agents, all active once λ > 0) it is solved in row space by Woodbury,
  (μI + X_PᵀX_P)⁻¹v = (v − X_Pᵀ(μI_m + X_PX_Pᵀ)⁻¹X_P v)/μ, through a Cholesky factor of μI + K_P (K_P the
  m×m kernel of the support, kept by a shared `RowKernel`); one pass over D then gives the support's weights and
  every agent's gradient, and an active-set correction at the same μ reuses the factor (`_RowOperator`).
* `active_set`: primal–dual active set (semismooth Newton) iterations with a cycle guard, finished by a
  Lawson–Hanson-style primal active set (monotone, finite) when needed.
* `fista_simplex`: accelerated projected gradient with exact simplex projection and adaptive restart.
* `pg_simplex`: projected gradient for strong pulls (μ ≥ 4.5·‖PGP‖₂), a certified contraction per step.
* `kl_newton`: damped Newton on the simplex for the KL pull λ·KL(w‖w0) (solution is interior).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import blas_threads

Array = np.ndarray
BIG_ROWS = 1000  # row-space products and factorisations at least this large run with every BLAS thread


def _big_threads(m: int) -> contextlib.AbstractContextManager:
    """Every BLAS thread for an O(m³) or O(m²·c) kernel step when m ≥ BIG_ROWS (the solve loop runs with one:
    thread hand-off dominates small factorisations, not a 4000 × 4000 Cholesky or a rank-512 update)."""
    return blas_threads(os.cpu_count() or 1) if m >= BIG_ROWS else contextlib.nullcontext()


BIG_PASS = 4_000_000  # a pass over a design of at least this many entries (32 MB) uses every BLAS thread


def _pass_threads(D: Array) -> contextlib.AbstractContextManager:
    """Every BLAS thread for a matrix–vector pass over a large D (memory-bound: two threads stream it ~25% faster
    on the 2-core machine); small passes stay on the solve loop's one thread."""
    return blas_threads(os.cpu_count() or 1) if D.size >= BIG_PASS else contextlib.nullcontext()


def gram(D: Array, sw: Array | None = None) -> Array:
    """DᵀWD by a symmetric rank-k update (half the flops of a GEMM)."""
    X = D if sw is None else D * np.sqrt(sw)[:, None]
    X = np.asarray(X, dtype=np.float64, order="F")
    C = sla.blas.dsyrk(1.0, X, trans=1, lower=0)
    iu = np.triu_indices_from(C, 1)
    C[(iu[1], iu[0])] = C[iu]
    return C


def prefer_dense(rows: int, n: int) -> bool:
    """Whether a dense N×N Gram beats working from D: N moderate and D not wide (2·rows ≥ N).

    For wide D (rows ≪ agents) a gradient through D costs O(rows·N) instead of O(N²), and the support
    solves go through the rows×rows kernel (see `Quad.eq_solve`), so the N×N Gram is never needed.
    """
    return n <= 3000 and 2 * rows >= n


class RowKernel:
    """The unweighted row-space kernel K_P = D_P D_Pᵀ (rows × rows) of one agent support P, kept up to date.

    Why: for supports wider than the rows the support solves run in row space (see `Quad.eq_solve`) and need
    K_P. Forming it from scratch costs rows²·|P| per support; consecutive supports (active-set steps, the next
    λ of a path, the same λ in the next CV fold) differ in few agents, so K is moved from the previous support by
    adding and subtracting only the changed columns (rows²·|Δ|), or rebuilt from the full kernel D Dᵀ minus the
    absent columns when that is cheaper. Row weights and CV folds enter only as a diagonal scaling and a row
    subset of K (`Quad._row_kernel`), so one RowKernel serves every fold and the final fit. Memory: two
    rows × rows arrays (the current K and the full one), columns gathered in chunks of `chunk`.
    """

    def __init__(self, D: Array, *, chunk: int = 512) -> None:
        self.D = D
        self.m, self.n = D.shape
        self.chunk = chunk
        self.mask = np.zeros(self.n, dtype=bool)
        self.K = np.zeros((self.m, self.m), order="F")  # upper triangle maintained
        self.rowsum = np.zeros(self.m)  # D_P 1
        self._vecs: list[Array] = []  # tracked agent vectors u (see `track`)
        self.sums: list[Array] = []  # D_P u_P for each tracked u
        self._full: Array | None = None
        self._full_rowsum: Array | None = None
        self._full_sums: list[Array] = []
        self.cols_moved = 0  # columns added or removed since the last rebuild (round-off guard)
        self._rowsq: Array | None = None
        self.factor: _RowOperator | None = None  # the last row-space factorisation (see `Quad._row_operator`)

    @property
    def rowsq(self) -> Array:
        """Σ_j D_ij² per row (one pass over D, kept: every fold's diag(G) mean is a weighted sum of it)."""
        if self._rowsq is None:
            self._rowsq = np.einsum("ij,ij->i", self.D, self.D)
        return self._rowsq

    def track(self, u: Array) -> int:
        """Keep D_P u_P up to date for the agent vector u (like `rowsum` for u = 1); returns its index in `sums`.

        Why: the pulled fit's right-hand side is f = b + μ·w0, and X_P f_P = K_P s + μ·X_P w0_P, so with
        D_P w0_P kept here a row-space solve needs no pass over D to form it (one pass is needed to register u)."""
        u = np.asarray(u, dtype=float)
        for i, v in enumerate(self._vecs):
            if v.shape == u.shape and np.array_equal(v, u):
                return i
        self._vecs.append(u.copy())
        self.sums.append(self.D @ np.where(self.mask, u, 0.0))
        if self._full is not None:
            self._full_sums.append(self.D @ u)
        return len(self._vecs) - 1

    def _update(self, cols: Array, sign: float) -> None:
        """K ← K + sign·D_c D_cᵀ over the columns `cols` (upper triangle, symmetric rank-k updates)."""
        with _big_threads(self.m):
            for s in range(0, len(cols), self.chunk):
                c = cols[s : s + self.chunk]
                Dc = self.D[:, c]  # rows × c, C order: Dcᵀ is Fortran-contiguous
                self.K = sla.blas.dsyrk(sign, Dc.T, beta=1.0, c=self.K, trans=1, lower=0, overwrite_c=1)
                self.rowsum += sign * Dc.sum(axis=1)
                for u, acc in zip(self._vecs, self.sums, strict=True):
                    acc += sign * (Dc @ u[c])
        self.cols_moved += len(cols)

    def _zero(self) -> None:
        self.K[:] = 0.0
        self.rowsum[:] = 0.0
        for acc in self.sums:
            acc[:] = 0.0
        self.cols_moved = 0

    def _full_kernel(self) -> Array:
        if self._full is None:
            self._zero()
            self.mask[:] = False
            self._update(np.arange(self.n), 1.0)
            self._full = self.K.copy(order="F")
            self._full_rowsum = self.rowsum.copy()
            self._full_sums = [acc.copy() for acc in self.sums]
            self.mask[:] = True
            self.cols_moved = 0
        return self._full

    def get(self, P: Array) -> Array:
        """K_P (upper triangle valid) for the support mask P; `rowsum` is then D_P 1."""
        add = np.flatnonzero(P & ~self.mask)
        rem = np.flatnonzero(self.mask & ~P)
        n_in = int(P.sum())
        costs = {"delta": len(add) + len(rem), "scratch": n_in,
                 "full": self.n - n_in + (self.n if self._full is None else 0)}
        if self.cols_moved > 4 * self.n:  # many subtractions: rebuild to bound accumulated round-off
            costs["delta"] = math.inf
        how = min(costs, key=costs.__getitem__)
        if how == "full":
            self.K = self._full_kernel().copy(order="F")
            self.rowsum = self._full_rowsum.copy()
            self.sums = [acc.copy() for acc in self._full_sums]
            self.mask[:] = True
            self.cols_moved = 0
            self._update(np.flatnonzero(~P), -1.0)
        elif how == "scratch":
            self._zero()
            self._update(np.flatnonzero(P), 1.0)
        else:
            if len(rem):
                self._update(rem, -1.0)
            if len(add):
                self._update(add, 1.0)
        self.mask[:] = P
        return self.K


class _RowOperator:
    """μI + K_F for one quadratic, support mask F and μ: a Cholesky factor, the weighted kernel K_F (Fortran
    order, upper triangle), X_F 1, X_F·pull and tr K_F on the rows that count. `corrected` gives the operator of
    a nearby support by Woodbury's identity (`wood` then holds U, the signs, M⁻¹U and the capacitance's LU)."""

    def __init__(self, owner: Quad, mu: float, mask: Array, K: Array, cf: tuple, x1: Array,
                 xpull: Array | None, trace: float, wood: tuple | None = None) -> None:
        self.owner, self.mu, self.mask, self.K, self.cf = owner, mu, mask, K, cf
        self.x1, self.xpull, self.trace, self.wood = x1, xpull, trace, wood

    def corrected(self, quad: Quad, add: Array, rem: Array, pull: Array | None) -> _RowOperator:
        """The operator of the support F + add − rem (same quadratic, same μ) without refactoring."""
        cols = np.concatenate([add, rem])
        sign = np.concatenate([np.ones(len(add)), -np.ones(len(rem))])
        U = np.asfortranarray(quad._cols(cols))
        with _big_threads(U.shape[0]):
            Z = sla.cho_solve(self.cf, U, check_finite=False)
            S = U.T @ Z
        S[np.diag_indices_from(S)] += sign  # C⁻¹ + UᵀM⁻¹U with C = diag(±1)
        lu = sla.lu_factor(S, check_finite=False)
        x1 = self.x1 + U @ sign
        xpull = None if pull is None or self.xpull is None else self.xpull + U @ (sign * pull[cols])
        trace = self.trace + float(sign @ np.einsum("ij,ij->j", U, U))
        mask = self.mask.copy()
        mask[add] = True
        mask[rem] = False
        return _RowOperator(self.owner, self.mu, mask, self.K, self.cf, x1, xpull, trace, (U, sign, Z, lu))

    def solve(self, b: Array) -> Array:
        """(μI + K)⁻¹b, up to the round-off the caller refines away."""
        y = sla.cho_solve(self.cf, b, check_finite=False)
        if self.wood is None:
            return y
        U, _, Z, lu = self.wood
        return y - Z @ sla.lu_solve(lu, U.T @ y, check_finite=False)

    def kmul(self, a: Array) -> Array:
        """K a (exact: the factored kernel plus the changed columns)."""
        out = sla.blas.dsymv(1.0, self.K, a, lower=0)
        if self.wood is not None:
            U, sign, _, _ = self.wood
            out += U @ (sign * (U.T @ a))
        return out


class Quad:
    """The quadratic ½ wᵀGw − bᵀw + c of ½‖W^½(r − Dw)‖², held as a dense Gram or via D.

    Matrix-free (D given), nothing of size rows × agents is copied: rows with weight 0 (a CV fold's held-out
    questions) simply drop out of every product, so the folds share the caller's D. Gram blocks of the support
    come from a column cache bounded by `cache_mb` (grown geometrically, compacted to the current support when
    full); supports wider than the rows are solved in row space through a shared `RowKernel`.
    """

    def __init__(
        self,
        *,
        G: Array | None = None,
        b: Array | None = None,
        c: float = 0.0,
        D: Array | None = None,
        r: Array | None = None,
        sw: Array | None = None,
        kernel: RowKernel | None = None,
        cache_mb: float = 256.0,
    ) -> None:
        self.n_grad = 0
        self.n_lowrank = 0
        self.top_centered: float | None = None
        self._eig: tuple[bytes, Array, Array] | None = None  # last support's kernel eigendecomposition (μ = 0)
        if G is not None:
            self.G = np.asarray(G, dtype=float)
            self.b = np.asarray(b, dtype=float)
            self.c = float(c)
            self.n = self.G.shape[0]
            self.D = None
            return
        assert D is not None and r is not None
        self.D = np.asarray(D, dtype=float)
        self.r = np.asarray(r, dtype=float)
        self.sw = np.ones(self.D.shape[0]) if sw is None else np.asarray(sw, dtype=float)
        self.b = self.D.T @ (self.sw * self.r)
        self.c = 0.5 * float(self.r @ (self.sw * self.r))
        self.n = self.D.shape[1]
        self.G = None
        self._T = np.flatnonzero(self.sw > 0)  # the rows that count
        self._sT = np.sqrt(self.sw[self._T])
        self._s = self._sT * self.r[self._T]  # s = W^½r on the rows that count
        self._unit_rows = bool(np.all(self._sT == 1.0))
        self._all_rows = len(self._T) == self.D.shape[0]
        self.kernel = kernel
        m = len(self._T)
        words = cache_mb * 2**20 / 8
        self._cap_max = int(min(self.n, max(16.0, (-m + math.sqrt(m * m + 4 * words)) / 2)))
        self._cap = 0
        self._used = 0
        self._C = np.zeros((0, 0))
        self._X = np.zeros((m, 0))
        self._slot = np.full(self.n, -1, dtype=np.int64)
        self._agent = np.zeros(0, dtype=np.int64)

    @classmethod
    def from_design(cls, D: Array, r: Array, sw: Array | None = None, *, dense: bool | None = None,
                    kernel: RowKernel | None = None) -> Quad:
        """Build from D; dense Gram when cheap and useful (`prefer_dense`), else matrix-free."""
        D = np.asarray(D, dtype=float)
        r = np.asarray(r, dtype=float)
        sw_ = np.ones(D.shape[0]) if sw is None else np.asarray(sw, dtype=float)
        if dense is None:
            dense = prefer_dense(*D.shape)
        if not dense:
            return cls(D=D, r=r, sw=sw_, kernel=kernel)
        return cls(G=gram(D, sw_), b=D.T @ (sw_ * r), c=0.5 * float(r @ (sw_ * r)))

    def densify(self) -> Quad:
        """The same quadratic with its dense Gram formed (needed by the KL Newton solver)."""
        if self.G is not None:
            return self
        return Quad(G=gram(self.D, self.sw), b=self.b, c=self.c)

    # -- access ---------------------------------------------------------------------------------
    def diag_mean(self) -> float:
        """Mean of diag(G) = ‖W^½D‖_F²/N: the scale of the data term per agent."""
        if self.G is not None:
            return float(np.mean(np.diag(self.G)))
        if self.kernel is None:
            self.kernel = RowKernel(self.D)
        return float(self.kernel.rowsq @ self.sw) / self.n

    def matvec(self, w: Array) -> Array:
        """G w."""
        self.n_grad += 1
        if self.G is not None:
            nz = np.flatnonzero(w)
            if len(nz) < self.n // 3:
                return self.G[:, nz] @ w[nz]
            return self.G @ w
        nz = np.flatnonzero(w)
        with _pass_threads(self.D):
            if len(nz) < self.n // 4:
                Dw = self.D[:, nz] @ w[nz]
            else:
                Dw = self.D @ w
            return self.D.T @ (self.sw * Dw)

    def _cols(self, idx: Array) -> Array:
        """Columns idx of X = W^½D on the rows that count (a gathered copy of rows × len(idx))."""
        X = self.D[:, idx] if self._all_rows else self.D[np.ix_(self._T, idx)]
        X *= self._sT[:, None]
        return X

    def _make_room(self, P: Array, k: int) -> None:
        """Free k slots in the column cache: grow geometrically up to the cap, else keep only P's columns."""
        if self._used + k <= self._cap:
            return
        if self._used + k > self._cap_max:  # compact: keep the cached columns of P, in slot order
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
        cap = min(self._cap_max, max(self._used + k, 2 * self._cap, 64))
        u = self._used
        C = np.empty((cap, cap))
        C[:u, :u] = self._C[:u, :u]
        X = np.empty((self._X.shape[0], cap))
        X[:, :u] = self._X[:, :u]
        agent = np.full(cap, -1, dtype=np.int64)
        agent[:u] = self._agent[:u]
        self._C, self._X, self._agent, self._cap = C, X, agent, cap

    def block(self, P: Array) -> Array:
        """G[P, P] (matrix-free: from the bounded column cache; uncached when P exceeds the cache)."""
        if self.G is not None:
            return self.G[np.ix_(P, P)]
        if len(P) > self._cap_max:
            X = self._cols(P)
            with _big_threads(len(P)):
                return X.T @ X
        missing = P[self._slot[P] < 0]
        if len(missing):
            self._make_room(P, len(missing))
            u, k = self._used, len(missing)
            Xm = self._cols(missing)
            big = len(Xm) * k * (u + k) >= 2e8  # a large Gram block: every BLAS thread (see `_big_threads`)
            with blas_threads(os.cpu_count() or 1) if big else contextlib.nullcontext():
                cross = self._X[:, :u].T @ Xm
                self._C[u : u + k, u : u + k] = Xm.T @ Xm
            self._C[:u, u : u + k] = cross
            self._C[u : u + k, :u] = cross.T
            self._X[:, u : u + k] = Xm
            self._slot[missing] = np.arange(u, u + k)
            self._agent[u : u + k] = missing
            self._used += k
        q = self._slot[P]
        return self._C[np.ix_(q, q)]

    @property
    def rows(self) -> int:
        """Number of rows of D that count (weight > 0; 0 when held as a Gram only)."""
        return 0 if self.D is None else len(self._T)

    def use_lowrank(self, k: int, mu: float, simplex: bool = True) -> bool:
        """Solve a k-agent support in row space? Needs D and μ > 0 or the sum constraint.

        Costs with m rows: agent space ~k³/3 for the Cholesky plus k²m for new Gram columns; row space ~m³/3
        plus m²·(changed columns) to move the kernel, and a few passes over D. With μ > 0 both give the same
        (unique) solution, so row space is taken once k > m (or k exceeds the column cache); at μ = 0 row space
        returns the minimum-norm minimiser, taken only when k ≥ 2m as before.
        """
        if self.D is None or not (mu > 0 or simplex):
            return False
        if mu > 0:
            return k > self.rows or k > self._cap_max
        return 2 * self.rows <= k

    def eq_solve(self, idx: Array, fP: Array, mu: float, simplex: bool,
                 pull: Array | None = None) -> tuple[Array, float, Array | None]:
        """min ½zᵀ(G_PP + μI)z − f_Pᵀz [s.t. Σz = 1] on the support idx; returns z, ν (see `_eq_solve`) and
        G·w for w = z on idx, 0 elsewhere, when it comes cheaper than `matvec` (one pass over D), else None.

        `pull`: f = b + μ·pull (the l2-pulled simplex fit), which lets a row-space solve form X_P f_P without a
        pass over D."""
        if self.use_lowrank(len(idx), mu, simplex):
            if mu > 0:
                return self._lowrank_eq_solve(idx, fP, mu, simplex, pull)
            z, nu = self._minnorm_eq_solve(idx, fP)
            return z, nu, None
        H = self.block(idx)  # a fresh copy: μ goes on its diagonal in place
        if mu:
            H[np.diag_indices_from(H)] += mu
        z, nu = _eq_solve(H, fP, simplex)
        return z, nu, None

    def grad_support(self, w: Array, idx: Array) -> Array:
        """G·w for w supported on idx: Xᵀ(X_P w_P) with X_P w_P from the column cache when the support is cached
        (no gather from D, one pass), else `matvec`."""
        if self.G is not None or len(idx) > self._cap_max or not len(idx):
            return self.matvec(w)
        q = self._slot[idx]
        if np.any(q < 0):
            return self.matvec(w)
        z = w[idx]
        if self._used <= 2 * len(idx):
            zs = np.zeros(self._used)
            zs[q] = z
            a = self._X[:, : self._used] @ zs
        else:
            a = self._X[:, q] @ z
        return self._xt_all(a)

    def _xt_all(self, a: Array) -> Array:
        """Xᵀa for every agent (a on the rows that count): one pass over D."""
        self.n_grad += 1
        pad = np.zeros(self.D.shape[0])
        pad[self._T] = a * self._sT
        with _pass_threads(self.D):
            return self.D.T @ pad

    # -- row space ------------------------------------------------------------------------------
    def _row_kernel(self, idx: Array) -> Array:
        """X_P X_Pᵀ on the rows that count (upper triangle valid), X = W^½D, from the shared `RowKernel`."""
        if self.kernel is None:
            self.kernel = RowKernel(self.D)
        P = np.zeros(self.n, dtype=bool)
        P[idx] = True
        K = self.kernel.get(P)
        if self._all_rows:
            A = np.array(K, order="F")
        else:  # the rows that count, Fortran order (K symmetric: index its transpose, a C view, and transpose back)
            A = K.T[np.ix_(self._T, self._T)].T
        if not self._unit_rows:
            A *= self._sT[:, None]
            A *= self._sT[None, :]
        return A

    def _row_operator(self, idx: Array, mu: float, pull: Array | None) -> _RowOperator:
        """μI + K_P (K_P = X_PX_Pᵀ on the rows that count) as a solve and a product, for the support idx.

        The last factorisation is kept (one, shared by every quadratic on the kernel). When this quadratic asks
        again at the same μ for a support that differs from the factored one in few agents (an active-set
        correction: a few hundred agents enter or leave), the solve is the factored one corrected by Woodbury's
        identity over the changed columns U (μI + K_P = μI + K_F + U·diag(±1)·Uᵀ): 2·m²·|U| flops instead of
        moving the kernel (m²·|U|), copying it and refactoring it (m³/3). The caller refines against the
        product, which is exact."""
        if self.kernel is None:
            self.kernel = RowKernel(self.D)
        m = len(self._T)
        P = np.zeros(self.n, dtype=bool)
        P[idx] = True
        fac = self.kernel.factor
        if fac is not None and fac.owner is self and fac.mu == mu:
            add = np.flatnonzero(P & ~fac.mask)
            rem = np.flatnonzero(fac.mask & ~P)
            if 0 < len(add) + len(rem) <= max(16, m // 5) and (pull is None) == (fac.xpull is None):
                return fac.corrected(self, add, rem, pull)
            if not len(add) and not len(rem):
                return fac
        j = None if pull is None else self.kernel.track(pull)
        K = self._row_kernel(idx)
        A = np.array(K, order="F")
        A[np.diag_indices_from(A)] += mu
        with _big_threads(m):
            cf = sla.cho_factor(A, lower=False, overwrite_a=True, check_finite=False)
        x1 = self.kernel.rowsum[self._T] * self._sT
        xpull = None if j is None else self.kernel.sums[j][self._T] * self._sT
        fac = _RowOperator(self, mu, P, K, cf, x1, xpull, float(np.trace(K)))
        self.kernel.factor = fac
        return fac

    def _xp(self, V: Array, idx: Array) -> Array:
        """X_P V (V: len(idx) × c) by one pass over D per column (gemv: BLAS runs thin GEMMs slowly)."""
        full = np.zeros(self.n)
        out = np.empty((len(self._T), V.shape[1]))
        with _pass_threads(self.D):
            for j in range(V.shape[1]):
                full[idx] = V[:, j]
                out[:, j] = (self.D @ full)[self._T]
        out *= self._sT[:, None]
        return out

    def _xpt(self, U: Array, idx: Array) -> Array:
        """X_Pᵀ U (U: rows-that-count × c) by one pass over D per column."""
        pad = np.zeros(self.D.shape[0])
        out = np.empty((len(idx), U.shape[1]))
        with _pass_threads(self.D):
            for j in range(U.shape[1]):
                pad[self._T] = U[:, j] * self._sT
                out[:, j] = (self.D.T @ pad)[idx]
        return out

    def _lowrank_eq_solve(self, idx: Array, fP: Array, mu: float, simplex: bool,
                          pull: Array | None = None) -> tuple[Array, float, Array]:
        """Woodbury: (μI + X_PᵀX_P)⁻¹V = (V − X_Pᵀ(μI + X_PX_Pᵀ)⁻¹X_P V)/μ, exact for any μ > 0, through a
        Cholesky factor of the rows × rows matrix μI + K (K = X_PX_Pᵀ).

        With a = (μI + K)⁻¹X_P(f + ν1) the solution is z = (f + ν1 − X_Pᵀa)/μ and X_P z = a, so the fit's
        answers Xw are a and G·w = Xᵀa: one pass over D gives both z and the gradient of every agent. X_P 1 is
        kept by the kernel, and with f = b + μ·pull so is X_P f = K s + μ·X_P pull (s = W^½r), so a solve is
        one pass over D. ν follows from 1ᵀX_Pᵀa = (X_P 1)ᵀa in row space; the row-space solves get one step of
        refinement against K (O(m²)). When μ ≪ ‖K‖ (μ below 1e-3 of K's mean eigenvalue) z = (f + ν − X_Pᵀa)/μ
        cancels large terms, so the residual is checked on the full system (two passes) and refined.
        """
        self.n_lowrank += 1
        op = self._row_operator(idx, mu, pull)
        x1 = op.x1
        k = len(idx)

        def rsolve(b: Array) -> Array:
            a = op.solve(b)
            for _ in range(3 if op.wood is not None else 1):
                res = b - mu * a - op.kmul(a)
                a = a + op.solve(res)
                if op.wood is None or float(np.abs(res).max()) <= 1e-13 * float(np.abs(b).max()):
                    break
            return a

        def combine(ag: Array, g: Array, target: float) -> tuple[Array, float]:
            """a = ag + ν·a1 and ν with Σz = target (ν = 0 without the sum constraint)."""
            if not simplex:
                return ag, 0.0
            a1 = rsolve(x1)
            s_g = (float(g.sum()) - float(x1 @ ag)) / mu  # Σ (μI + XᵀX)⁻¹g
            s_1 = (k - float(x1 @ a1)) / mu  # Σ (μI + XᵀX)⁻¹1
            nu = (target - s_g) / s_1
            return ag + nu * a1, nu

        xf = None
        if op.xpull is not None:
            pullP = pull[idx]
            if np.all(np.abs(fP - self.b[idx] - mu * pullP) <= 1e-9 * (np.abs(self.b[idx]) + mu * pullP + 1e-300)):
                xf = op.kmul(self._s) + mu * op.xpull
        if xf is None:
            xf = self._xp(fP[:, None], idx)[:, 0]
        a, nu = combine(rsolve(xf), fP, 1.0)
        y = self._xt_all(a)
        z = (fP + nu - y[idx]) / mu
        if mu >= 1e-3 * op.trace / max(len(x1), 1):
            return z, nu, y

        def solve(g: Array, target: float) -> tuple[Array, float]:
            a, nu = combine(rsolve(self._xp(g[:, None], idx)[:, 0]), g, target)
            return (g + nu - self._xpt(a[:, None], idx)[:, 0]) / mu, nu

        scale = float(np.abs(fP).max()) + abs(nu) + mu * float(np.abs(z).max())
        for _ in range(3):
            res = fP + nu - mu * z - self._xpt(self._xp(z[:, None], idx), idx)[:, 0]
            if float(np.abs(res).max()) <= 1e-14 * scale:
                break
            dz, dnu = solve(res, 1.0 - float(z.sum()) if simplex else 0.0)
            z = z + dz
            nu += dnu
        return z, nu, self._xt_all(self._xp(z[:, None], idx)[:, 0])

    def _kernel_eig(self, idx: Array) -> tuple[Array, Array]:
        """(s, U) with X_PX_Pᵀ = U diag(s) Uᵀ, kept for the last support."""
        key = idx.tobytes()
        if self._eig is not None and self._eig[0] == key:
            return self._eig[1], self._eig[2]
        s, U = np.linalg.eigh(self._row_kernel(idx), UPLO="U")
        s = np.maximum(s, 0.0)
        self._eig = (key, s, U)
        return s, U

    def _minnorm_eq_solve(self, idx: Array, fP: Array) -> tuple[Array, float]:
        """μ = 0 on a support wider than the rows: G_PP = X_PᵀX_P is singular and the minimiser of
        ½zᵀG_PPz − f_Pᵀz s.t. Σz = 1 not unique; take the μ → 0 limit of the pulled solution (the
        minimum-norm minimiser, what a jittered Cholesky approximates), computed in row space.

        With X_P = U S^½ Vᵀ (numerical rank r), e = (I − VVᵀ)1 the part of 1 outside the row space:
        e ≈ 0: z = VS⁻¹Vᵀ(f + ν1) with ν from Σz = 1;
        e ≠ 0: ν = −eᵀf/eᵀe, z = VS⁻¹Vᵀ(f + ν1) + βe with β from Σz = 1.
        """
        self.n_lowrank += 1
        k = len(idx)
        s, U = self._kernel_eig(idx)
        keep = s > 1e-10 * float(s.max()) if s.size and s.max() > 0 else np.zeros(len(s), dtype=bool)
        one = np.ones(k)
        if not keep.any():
            return one / k, -float(fP.mean())
        Ur, sr = U[:, keep], s[keep]
        V = np.column_stack([fP, one])
        T = Ur.T @ self._xp(V, idx)  # S^½ Vᵀ[f, 1]
        sol = self._xpt(Ur @ (T / (sr * sr)[:, None]), idx)  # VS⁻¹Vᵀ[f, 1]
        e = one - self._xpt(Ur @ (T[:, 1:2] / sr[:, None]), idx)[:, 0]  # (I − VVᵀ)1
        ee = float(e @ e)
        a, c = sol[:, 0], sol[:, 1]
        if ee > 1e-10 * k:
            nu = -float(e @ fP) / ee
            z = a + nu * c
            z += e * ((1.0 - float(z.sum())) / ee)
            return z, nu
        return _combine(sol, True)

    def value(self, w: Array) -> float:
        """½ wᵀGw − bᵀw + c (the data term ½‖W^½(r − Dw)‖²)."""
        return 0.5 * float(w @ self.matvec(w)) - float(self.b @ w) + self.c

    def power_norm(self, *, centered: bool = False, iters: int = 50, seed: int = 0, rtol: float = 1e-6) -> float:
        """Largest eigenvalue of G (or of PGP, P = I − 11ᵀ/N) by power iteration, stopped when the Rayleigh
        quotient changes by at most `rtol` (relative) between iterations (the centred value is kept as
        `top_centered`: it bounds every CV fold's, whose Gram drops rows)."""
        top = self._power_norm(centered=centered, iters=iters, seed=seed, rtol=rtol)
        if centered:
            self.top_centered = top
        return top

    def _power_norm(self, *, centered: bool, iters: int, seed: int, rtol: float) -> float:
        v = np.random.default_rng(seed).standard_normal(self.n)
        if centered:
            v -= v.mean()
        v /= np.linalg.norm(v)
        lam = 0.0
        for _ in range(iters):
            u = self.matvec(v)
            if centered:
                u = u - u.mean()
            nu = float(np.linalg.norm(u))
            if nu == 0.0:
                return 0.0
            lam_new = float(v @ u)
            v = u / nu
            if abs(lam_new - lam) <= rtol * abs(lam_new):
                lam = lam_new
                break
            lam = lam_new
        return max(lam, 0.0)


@dataclass
class QPResult:
    """A solution of the quadratic: weights, KKT residual, iterations and the path taken."""

    w: Array
    n_iter: int
    kkt: float
    solver: str
    converged: bool = True
    info: dict = field(default_factory=dict)
    gw: Array | None = None  # G·w at the solution when the solver had it (warm-start predictions along a path)


def project_simplex(v: Array, s: float = 1.0) -> Array:
    """Euclidean projection onto {w ≥ 0, Σw = s} (sort-based, exact)."""
    n = len(v)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - s
    ind = np.arange(1, n + 1)
    cond = u - css / ind > 0
    rho = ind[cond][-1]
    theta = css[cond][-1] / rho
    return np.maximum(v - theta, 0.0)


def _eq_solve(H: Array, fP: Array, simplex: bool) -> tuple[Array, float]:
    """Solve min ½zᵀHz − fᵀz [s.t. Σz = 1]; returns z and the multiplier ν (Hz − f = ν1)."""
    k = len(fP)
    jitter = 1e-13 * max(float(np.mean(np.diag(H))), 1e-300)
    try:
        Hj = np.array(H, order="F")
        Hj[np.diag_indices_from(Hj)] += jitter
        with _big_threads(k):
            cf = sla.cho_factor(Hj, lower=False, overwrite_a=True, check_finite=False)
        if simplex:
            sol = sla.cho_solve(cf, np.column_stack([fP, np.ones(k)]), check_finite=False)
        else:
            sol = sla.cho_solve(cf, fP[:, None], check_finite=False)
        if not np.all(np.isfinite(sol)):
            raise np.linalg.LinAlgError("non-finite")
    except (np.linalg.LinAlgError, ValueError):
        rhs = np.column_stack([fP, np.ones(k)]) if simplex else fP[:, None]
        sol = np.linalg.lstsq(H, rhs, rcond=1e-12)[0]
    return _combine(sol, simplex)


def _combine(sol: Array, simplex: bool) -> tuple[Array, float]:
    """From the columns H⁻¹f [, H⁻¹1] to z = H⁻¹(f + ν1) with Σz = 1 and ν."""
    if not simplex:
        return sol[:, 0], 0.0
    a, c = sol[:, 0], sol[:, 1]
    sc = float(c.sum())
    if abs(sc) < 1e-300:
        sc = 1e-300
    nu = (1.0 - float(a.sum())) / sc
    return a + nu * c, nu


def _active_set(
    quad: Quad,
    f: Array,
    mu: float = 0.0,
    *,
    simplex: bool = True,
    w_start: Array | None = None,
    tol: float = 1e-10,
    max_iter: int = 500,
    max_add_floor: int = 20,
    pull: Array | None = None,
) -> QPResult:
    """Solve min ½wᵀ(G+μI)w − fᵀw s.t. w ≥ 0 [, Σw = 1] to a KKT point.

    Primal–dual active set steps (support ← {z > 0} ∪ {reduced gradient < 0}) converge in a few
    Cholesky solves from a warm start; if they cycle, a primal active set (Lawson–Hanson with the sum
    constraint) finishes monotonically. `tol` is relative to the gradient scale.
    """
    n = quad.n
    f = np.asarray(f, dtype=float)
    scale = max(float(np.max(np.abs(f))), quad.diag_mean() / max(n, 1), mu / max(n, 1), 1e-300)
    gtol = tol * scale
    w = _start_point(quad, f, mu, simplex, w_start)
    P = w > 0
    if simplex and not P.any():
        P[int(np.argmax(f))] = True
    seen: set[bytes] = set()
    it = 0
    best = None
    kkt = math.inf
    # --- primal-dual active set -----------------------------------------------------------------
    while it < max_iter:
        it += 1
        w, nu, idx, gw = _support_solve(quad, P, f, mu, simplex, pull)
        g = (quad.grad_support(w, idx) if gw is None else gw) + mu * w - f
        rho = g - nu
        neg = P & (w <= 0)
        viol = (~P) & (rho < -gtol)
        kkt = max(float(-rho[~P].min()) if (~P).any() else 0.0, float(-w[P].min()) if P.any() else 0.0, 0.0)
        if not neg.any() and not viol.any():
            return QPResult(w, it, kkt / scale, "active-set", gw=g - mu * w + f)
        if not neg.any():
            best = w
        if viol.sum() > max_add_floor + P.sum():
            # grow the support at most geometrically: a few hundred columns at a time keeps each
            # Cholesky (and, matrix-free, each new Gram block) small while the support is found
            cand = np.flatnonzero(viol)
            keep = cand[np.argsort(rho[cand], kind="stable")[: max_add_floor + int(P.sum())]]
            viol = np.zeros(n, dtype=bool)
            viol[keep] = True
        Pn = (P & (w > 0)) | viol
        if simplex and not Pn.any():
            Pn[int(np.argmin(rho))] = True
        key = Pn.tobytes()
        if key in seen:
            break
        seen.add(key)
        P = Pn
    if best is None:
        best = project_simplex(w) if simplex else np.maximum(w, 0.0)
    return _primal_active_set(quad, f, mu, simplex, best, it, max_iter * 4, gtol, scale, kkt, pull)


def _support_solve(quad: Quad, P: Array, f: Array, mu: float, simplex: bool,
                   pull: Array | None = None) -> tuple[Array, float, Array, Array]:
    """The equality-constrained minimiser w on the support P (zero elsewhere), the sum multiplier ν, the support
    and G·w when the solve gave it (row space), else None."""
    idx = np.flatnonzero(P)
    w = np.zeros(quad.n)
    nu = 0.0
    gw = None
    if len(idx):
        z, nu, gw = quad.eq_solve(idx, f[idx], mu, simplex, pull)
        w[idx] = z
    return w, nu, idx, gw


def _start_point(quad: Quad, f: Array, mu: float, simplex: bool, w_start: Array | None) -> Array:
    """The warm start, else the best vertex of the simplex (value_j = ½(G_jj + μ) − f_j), else zero."""
    n = quad.n
    if w_start is None:
        if simplex:
            # start from the best vertex: value_j = ½(G_jj + μ) − f_j
            if quad.G is not None:
                dg = np.diag(quad.G)
            else:
                dg = np.einsum("ij,ij,i->j", quad.D, quad.D, quad.sw)
            j = int(np.argmin(0.5 * (dg + mu) - f))
            w = np.zeros(n)
            w[j] = 1.0
        else:
            w = np.zeros(n)
    else:
        w = np.asarray(w_start, dtype=float).copy()
    return w


def _primal_active_set(quad: Quad, f: Array, mu: float, simplex: bool, best: Array, it: int, max_it: int,
                       gtol: float, scale: float, kkt: float, pull: Array | None = None) -> QPResult:
    """Primal active set (Lawson–Hanson with the sum constraint) from `best`: monotone and finite.

    `it` and `kkt` carry on from the primal–dual phase (iteration count and last KKT residual)."""
    w = best.copy()
    P = w > 0
    if simplex and not P.any():
        w[int(np.argmax(f))] = 1.0
        P = w > 0
    while it < max_it:
        it += 1
        z, nu, idx, gz = _support_solve(quad, P, f, mu, simplex, pull)
        if P.any() and z[idx].min() <= 0:
            d = z - w
            blk = P & (z <= 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                steps = np.where(blk & (d < 0), w / -d, np.inf)
            alpha = min(float(steps.min()), 1.0)
            w = w + alpha * d
            drop = P & ((w <= 1e-15 * max(float(w.max()), 1e-300)) | (blk & (steps <= alpha * (1 + 1e-12))))
            w[drop] = 0.0
            P = P & ~drop
            if simplex:
                w = w / w.sum()
            continue
        w = z
        gz = quad.grad_support(w, idx) if gz is None else gz
        g = gz + mu * w - f
        rho = g - nu
        cand = np.where(~P, rho, np.inf)
        j = int(np.argmin(cand))
        kkt = max(float(-cand[j]) if np.isfinite(cand[j]) else 0.0, 0.0)
        if not np.isfinite(cand[j]) or cand[j] >= -gtol:
            return QPResult(w, it, kkt / scale, "active-set+primal", gw=gz)
        P[j] = True
    return QPResult(w, it, kkt / scale, "active-set+primal", converged=False)


def _fista_simplex(
    quad: Quad,
    f: Array,
    mu: float = 0.0,
    *,
    w_start: Array | None = None,
    L: float | None = None,
    tol: float = 1e-10,
    max_iter: int = 20000,
) -> QPResult:
    """Accelerated projected gradient (FISTA) on the simplex with gradient-based adaptive restart.

    Lipschitz constant from power iteration on G (plus μ). Stops when the projected-gradient step is
    below `tol` relative. Linear convergence when μ > 0; sublinear at μ = 0 on degenerate problems.
    """
    n = quad.n
    if L is None:
        L = 1.01 * quad.power_norm() + mu
    L = max(L, 1e-300)
    w = np.full(n, 1.0 / n) if w_start is None else np.asarray(w_start, dtype=float).copy()
    y = w.copy()
    t = 1.0
    for it in range(1, max_iter + 1):
        g = quad.matvec(y) + mu * y - f
        w_new = project_simplex(y - g / L)
        step = w_new - y
        if float(np.abs(w_new - w).max()) <= tol * max(float(np.abs(w_new).max()), 1e-300) and it > 1:
            return QPResult(w_new, it, float(np.abs(step).max()), "fista")
        if float(g @ (w_new - w)) > 0:  # restart: momentum points uphill
            t = 1.0
            y = w_new.copy()
        else:
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            y = w_new + ((t - 1) / t_new) * (w_new - w)
            t = t_new
        w = w_new
    return QPResult(w, max_iter, float("nan"), "fista", converged=False)


def _pg_simplex(quad: Quad, f: Array, mu: float, top: float, w_start: Array, *, tol: float = 1e-13,
                max_iter: int = 60) -> QPResult | None:
    """Projected gradient on the μ-strongly convex simplex fit, step 2/(L + 2μ) with L ≥ ‖PGP‖₂ (P = I − 11ᵀ/N).

    On the simplex's tangent space the Hessian PGP + μI has its eigenvalues in [μ, L + μ] and the projection
    onto the simplex is nonexpansive, so each step contracts the distance to the solution by q = L/(L + 2μ)
    (≤ 0.1 once μ ≥ 4.5·L): ~10 steps of two passes over D reach the solution where the active set would
    factor a rows × rows kernel of a support holding most agents. Stops when the contraction bound
    q/(1 − q)·‖w_k − w_{k−1}‖ on the distance to the solution is below `tol`·‖w‖; None if not within
    `max_iter` (the caller falls back to the active set)."""
    L = 1.05 * top  # the power iteration's estimate is a lower bound: a margin for the contraction factor
    q = L / (L + 2.0 * mu)
    t = 2.0 / (L + 2.0 * mu)
    w = project_simplex(np.asarray(w_start, dtype=float))
    for it in range(1, max_iter + 1):
        gw = quad.matvec(w)
        w_new = project_simplex(w - t * (gw + mu * w - f))
        step = float(np.linalg.norm(w_new - w))
        w = w_new
        bound = q / (1.0 - q) * step
        if bound <= tol * float(np.linalg.norm(w)):
            return QPResult(w, it, bound / max(float(np.linalg.norm(w)), 1e-300), "projected-gradient", gw=gw)
    return None


def pg_simplex(quad: Quad, f: Array, mu: float, top: float, w_start: Array, **kw) -> QPResult | None:
    """Projected gradient on the simplex for large μ (see `_pg_simplex`)."""
    with blas_threads(1):
        return _pg_simplex(quad, f, mu, top, w_start, **kw)


def _kl_newton(
    quad: Quad,
    lam: float,
    w0: Array,
    *,
    w_start: Array | None = None,
    tol: float = 1e-13,
    max_iter: int = 200,
) -> QPResult:
    """min ½wᵀGw − bᵀw + λ·Σ w log(w/w0) on the simplex (λ > 0) by damped, equality-constrained Newton.

    The KL term keeps the solution strictly inside the simplex, so Newton steps with a fraction-to-
    boundary rule and Armijo backtracking converge quadratically near the optimum.
    """
    if quad.G is None:
        raise ValueError("kl_newton needs a dense Gram")
    w0 = np.asarray(w0, dtype=float)
    pos = w0 > 0
    w = (w0.copy() if w_start is None else np.maximum(np.asarray(w_start, dtype=float), 1e-300)) * pos
    w = w / w.sum()
    G = quad.G[np.ix_(pos, pos)]
    b = quad.b[pos]
    x = w[pos]
    x0 = w0[pos] / w0[pos].sum()
    lx0 = np.log(x0)

    def obj(x: Array) -> float:
        return 0.5 * float(x @ G @ x) - float(b @ x) + lam * float(np.sum(x * (np.log(x) - lx0)))

    fx = obj(x)
    dec = math.inf
    for it in range(1, max_iter + 1):
        g = G @ x - b + lam * (np.log(x) - lx0 + 1.0)
        H = G + np.diag(lam / x)
        try:
            cf = sla.cho_factor(H, check_finite=False)
            sol = sla.cho_solve(cf, np.column_stack([g, np.ones(len(x))]), check_finite=False)
        except np.linalg.LinAlgError:
            sol = np.linalg.lstsq(H, np.column_stack([g, np.ones(len(x))]), rcond=None)[0]
        a, c = sol[:, 0], sol[:, 1]
        nu = float(a.sum()) / float(c.sum())
        d = -a + nu * c
        dec = -float(g @ d)
        if dec <= tol * max(abs(fx), 1e-300) or dec <= 1e-300:
            w = np.zeros_like(w0)
            w[pos] = x
            return QPResult(w, it, dec, "kl-newton")
        neg = d < 0
        tmax = float(np.min(-x[neg] / d[neg])) if neg.any() else math.inf
        t = min(1.0, 0.995 * tmax)
        while True:
            xn = x + t * d
            if np.all(xn > 0):
                fn = obj(xn)
                if fn <= fx - 1e-4 * t * dec:
                    break
            t *= 0.5
            if t < 1e-20:
                break
        if t < 1e-20:
            break
        x = np.maximum(xn / xn.sum(), 1e-250)
        fx = obj(x)
    w = np.zeros_like(w0)
    w[pos] = x
    return QPResult(w, max_iter, dec, "kl-newton", converged=dec <= 1e-9 * max(abs(fx), 1e-300))


def active_set(quad: Quad, f: Array, mu: float = 0.0, **kw) -> QPResult:
    """Solve min ½wᵀ(G+μI)w − fᵀw s.t. w ≥ 0 [, Σw = 1] (single-threaded BLAS: many small solves)."""
    with blas_threads(1):
        return _active_set(quad, f, mu, **kw)


def fista_simplex(quad: Quad, f: Array, mu: float = 0.0, **kw) -> QPResult:
    """FISTA on the simplex (see `_fista_simplex`)."""
    with blas_threads(1):
        return _fista_simplex(quad, f, mu, **kw)


def kl_newton(quad: Quad, lam: float, w0: Array, **kw) -> QPResult:
    """KL-pulled simplex fit by damped Newton (see `_kl_newton`)."""
    with blas_threads(1):
        return _kl_newton(quad, lam, w0, **kw)
