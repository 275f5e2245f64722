"""The quadratic of the data term, ½‖W^½(r − Dw)‖² = ½ wᵀGw − bᵀw + c (G = DᵀWD, b = DᵀWr), in two storages.

* `DenseQuad`: the N × N Gram G itself. Used when N is moderate and D is not wide (`prefer_dense`:
  N ≤ `Tuning.dense_max_agents` = 3,000 and rows ≥ N/2, measured at 1,000–5,000 agents, issue 7), for the KL
  pull (Newton needs G) and for CV folds by subtraction (G_all − G_fold: D is read once).
* `MatrixFreeQuad`: D and the row weights, never copied: rows with weight 0 (a CV fold's held-out questions) drop
  out of every product, so the folds share the caller's D. G·w costs two passes over D; Gram blocks of a support
  come from a bounded `ColumnCache`; supports wider than the rows are solved in row space (`RowSpaceSolves`,
  through a `RowKernel` shared by the folds and the final fit). Used for large and wide problems.

`Quad(G=..., b=..., c=...)` makes a DenseQuad and `Quad(D=..., r=..., sw=..., kernel=..., cache_mb=...)` a
MatrixFreeQuad (the one constructor the callers use); both answer the same questions (`matvec`, `block`,
`eq_solve`, `grad_support`, `value`, `power_norm`, `diag`, `rows`), which is all the solvers ask.
"""

from __future__ import annotations

import abc

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import pass_threads
from personagen.calibrate.column_cache import ColumnCache
from personagen.calibrate.qp import combine, eq_solve
from personagen.calibrate.row_space import RowKernel, RowSpaceSolves
from personagen.calibrate.support_factor import SupportFactor
from personagen.calibrate.tuning import TUNING

Array = np.ndarray


def gram(D: Array, sw: Array | None = None) -> Array:
    """DᵀWD by a symmetric rank-k update (half the flops of a GEMM)."""
    X = D if sw is None else D * np.sqrt(sw)[:, None]
    X = np.asarray(X, dtype=np.float64, order="F")
    C = sla.blas.dsyrk(1.0, X, trans=1, lower=0)
    iu = np.triu_indices_from(C, 1)
    C[(iu[1], iu[0])] = C[iu]
    return C


def prefer_dense(rows: int, n: int) -> bool:
    """Whether a dense N×N Gram beats working from D: N moderate and D not wide (rows ≥ N/2, `Tuning`).

    For wide D (rows ≪ agents) a gradient through D costs O(rows·N) instead of O(N²), and the support
    solves go through the rows×rows kernel (see `MatrixFreeQuad.eq_solve`), so the N×N Gram is never needed.
    """
    return n <= TUNING.dense_max_agents and rows >= TUNING.dense_min_rows_per_agent * n


class Quad(abc.ABC):
    """The quadratic ½ wᵀGw − bᵀw + c, held as a dense Gram (`DenseQuad`) or via D (`MatrixFreeQuad`).

    Constructing `Quad` itself picks the storage from the arguments: G given, dense; else D and r."""

    G: Array | None = None
    D: Array | None = None
    b: Array
    c: float
    n: int

    def __new__(cls, *args: object, **kw: object) -> Quad:
        if cls is Quad:
            cls = DenseQuad if kw.get("G") is not None else MatrixFreeQuad
        return super().__new__(cls)

    def __init__(self) -> None:
        self.n_grad = 0
        self.n_lowrank = 0
        self.top_centered: float | None = None
        self._factor: SupportFactor | None = None  # the active-set run's support factor (agent space)
        self.n_updates = 0  # agent-space solves answered by moving the last factor (see `_agent_eq_solve`)

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
            return MatrixFreeQuad(D=D, r=r, sw=sw_, kernel=kernel)
        return DenseQuad(G=gram(D, sw_), b=D.T @ (sw_ * r), c=0.5 * float(r @ (sw_ * r)))

    @property
    def rows(self) -> int:
        """Number of rows of D that count (weight > 0; 0 when held as a Gram only)."""
        return 0

    @abc.abstractmethod
    def matvec(self, w: Array) -> Array:
        """G w (each storage computes it its own way)."""

    def grad_support(self, w: Array, idx: Array) -> Array:
        """G·w for w supported on idx."""
        return self.matvec(w)

    def value(self, w: Array) -> float:
        """½ wᵀGw − bᵀw + c (the data term ½‖W^½(r − Dw)‖²)."""
        return 0.5 * float(w @ self.matvec(w)) - float(self.b @ w) + self.c

    def cross(self, P: Array, Q: Array) -> Array | None:
        """G[P, Q] (a fresh copy), or None when it is not at hand cheaply."""
        return None

    def drop_factor(self) -> None:
        """Forget the support factor (the active set calls this when its run ends: the next run has another μ)."""
        self._factor = None

    def _agent_eq_solve(self, idx: Array, fP: Array, mu: float, simplex: bool) -> tuple[Array, float]:
        """min ½zᵀ(G_PP + μI)z − f_Pᵀz [s.t. Σz = 1] on the support idx by a Cholesky factor of G_PP + μI: the last
        solve's factor moved to idx (`SupportFactor`: bordered for the agents that entered, the agents that left
        pinned at zero) while that costs fewer flops than `Tuning.factor_update_ratio` × a fresh factor and μ > 0
        (at μ = 0 a census-shaped fold moved its factor to a worse point by 1e-7: duplicate agents), else a
        fresh one (least squares when G_PP + μI is numerically singular, as `qp.eq_solve`)."""
        F = np.column_stack([fP, np.ones(len(idx))]) if simplex else fP[:, None]
        fac = self._factor
        if fac is not None and fac.mu == mu and mu > 0:  # at μ = 0 G_PP may be singular (duplicate agents)
            add, flops = fac.update_flops(idx, F.shape[1])
            if flops < TUNING.factor_update_ratio * len(idx) ** 3 / 3:
                cross = self.cross(fac.agents, add) if len(add) else None
                ok = not len(add) or (cross is not None and fac.extend(add, cross, self._shifted_block(add, mu)))
                sol = fac.solve(idx, F) if ok else None
                if sol is not None and np.all(np.isfinite(sol)):
                    self.n_updates += 1
                    return combine(sol, simplex)
        H = self._shifted_block(idx, mu)
        self._factor = SupportFactor.fresh(H, idx, mu)
        if self._factor is None:
            return eq_solve(self._shifted_block(idx, mu), fP, simplex)
        sol = self._factor.solve(idx, F)
        if not self._factor.sound or not np.all(np.isfinite(sol)):
            self._factor = None  # near-singular: the next step factors afresh (`support_factor._sound`)
        if not np.all(np.isfinite(sol)):
            return eq_solve(self._shifted_block(idx, mu), fP, simplex)
        return combine(sol, simplex)

    def _shifted_block(self, P: Array, mu: float) -> Array:
        """G[P, P] + μI (a fresh copy)."""
        H = self.block(P)
        if mu:
            H[np.diag_indices_from(H)] += mu
        return H

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




class DenseQuad(Quad):
    """The quadratic from its dense N × N Gram (see the module docstring for when)."""

    def __init__(self, *, G: Array, b: Array, c: float = 0.0) -> None:
        super().__init__()
        self.G = np.asarray(G, dtype=float)
        self.b = np.asarray(b, dtype=float)
        self.c = float(c)
        self.n = self.G.shape[0]

    def densify(self) -> DenseQuad:
        """Itself (the KL Newton solver needs a dense Gram)."""
        return self

    def diag(self) -> Array:
        """diag(G)."""
        return np.diag(self.G)

    def diag_mean(self) -> float:
        """Mean of diag(G) = ‖W^½D‖_F²/N: the scale of the data term per agent."""
        return float(np.mean(np.diag(self.G)))

    def matvec(self, w: Array) -> Array:
        """G w (from G's rows of the agents with weight when few, G symmetric: `Tuning.dense_matvec_divisor`)."""
        self.n_grad += 1
        nz = np.flatnonzero(w)
        if len(nz) < self.n // TUNING.dense_matvec_divisor:
            return w[nz] @ self.G[nz]
        return self.G @ w

    def block(self, P: Array) -> Array:
        """G[P, P] (a copy)."""
        return self.G[np.ix_(P, P)]

    def cross(self, P: Array, Q: Array) -> Array | None:
        """G[P, Q] (a copy)."""
        return self.G[np.ix_(P, Q)]

    def use_lowrank(self, k: int, mu: float, simplex: bool = True) -> bool:
        """Never: row space needs D."""
        return False

    def eq_solve(self, idx: Array, fP: Array, mu: float, simplex: bool,
                 pull: Array | None = None) -> tuple[Array, float, Array | None]:
        """min ½zᵀ(G_PP + μI)z − f_Pᵀz [s.t. Σz = 1] on the support idx; z, ν (`_agent_eq_solve`) and None."""
        z, nu = self._agent_eq_solve(idx, fP, mu, simplex)
        return z, nu, None


class MatrixFreeQuad(RowSpaceSolves, Quad):
    """The quadratic from D and the row weights, nothing of size rows × agents copied (see the module docstring).

    Gram blocks of the support come from a `ColumnCache` bounded by `cache_mb`; supports wider than the rows
    are solved in row space through a shared `RowKernel` (`RowSpaceSolves`)."""

    def __init__(self, *, D: Array, r: Array, sw: Array | None = None, kernel: RowKernel | None = None,
                 cache_mb: float = TUNING.cache_mb) -> None:
        super().__init__()
        self._eig: tuple[bytes, Array, Array] | None = None  # last support's kernel eigendecomposition (μ = 0)
        self.D = np.asarray(D, dtype=float)
        self.r = np.asarray(r, dtype=float)
        self.sw = np.ones(self.D.shape[0]) if sw is None else np.asarray(sw, dtype=float)
        self.b = self.D.T @ (self.sw * self.r)
        self.c = 0.5 * float(self.r @ (self.sw * self.r))
        self.n = self.D.shape[1]
        self._T = np.flatnonzero(self.sw > 0)  # the rows that count
        # where each run of consecutive rows in _T starts, and len(_T) (CV folds drop whole questions: ~200 runs)
        self._runs = np.concatenate([[0], np.flatnonzero(np.diff(self._T) > 1) + 1, [len(self._T)]])
        self._sT = np.sqrt(self.sw[self._T])
        self._s = self._sT * self.r[self._T]  # s = W^½r on the rows that count
        self._unit_rows = bool(np.all(self._sT == 1.0))
        self._all_rows = len(self._T) == self.D.shape[0]
        self.kernel = kernel
        self.cache = ColumnCache(self.n, len(self._T), cache_mb, self._cols)

    @property
    def _cap_max(self) -> int:
        return self.cache.cap_max

    def densify(self) -> DenseQuad:
        """The same quadratic with its dense Gram formed (needed by the KL Newton solver)."""
        return DenseQuad(G=gram(self.D, self.sw), b=self.b, c=self.c)

    def diag(self) -> Array:
        """diag(G) by one pass over D."""
        return np.einsum("ij,ij,i->j", self.D, self.D, self.sw)

    def diag_mean(self) -> float:
        """Mean of diag(G) = ‖W^½D‖_F²/N: the scale of the data term per agent."""
        if self.kernel is None:
            self.kernel = RowKernel(self.D)
        return float(self.kernel.rowsq @ self.sw) / self.n

    def matvec(self, w: Array) -> Array:
        """G w by two passes over D (over the nonzero columns when few: `Tuning.free_matvec_divisor`)."""
        self.n_grad += 1
        nz = np.flatnonzero(w)
        with pass_threads(self.D.size):
            if len(nz) < self.n // TUNING.free_matvec_divisor:
                Dw = self.D[:, nz] @ w[nz]
            else:
                Dw = self.D @ w
            return self.D.T @ (self.sw * Dw)

    def _cols(self, idx: Array) -> Array:
        """Columns idx of X = W^½D on the rows that count (a gathered copy of rows × len(idx))."""
        X = self.D[:, idx] if self._all_rows else self.D[np.ix_(self._T, idx)]
        X *= self._sT[:, None]
        return X

    def block(self, P: Array) -> Array:
        """G[P, P] from the bounded column cache (a fresh copy)."""
        return self.cache.block(P)

    def cross(self, P: Array, Q: Array) -> Array | None:
        """G[P, Q] from the column cache; None when P and Q together exceed it."""
        return self.cache.cross(P, Q)

    @property
    def rows(self) -> int:
        """Number of rows of D that count (weight > 0)."""
        return len(self._T)

    def use_lowrank(self, k: int, mu: float, simplex: bool = True) -> bool:
        """Solve a k-agent support in row space? Needs μ > 0 or the sum constraint.

        Costs with m rows: agent space ~k³/3 for the Cholesky plus k²m for new Gram columns; row space ~m³/3
        plus m²·(changed columns) to move the kernel, and a few passes over D. With μ > 0 both give the same
        (unique) solution, so row space is taken once k > m (or k exceeds the column cache); at μ = 0 row space
        returns the minimum-norm minimiser, taken only when k ≥ 2m as before.
        """
        if not (mu > 0 or simplex):
            return False
        if mu > 0:
            return k > self.rows or k > self._cap_max
        return 2 * self.rows <= k

    def eq_solve(self, idx: Array, fP: Array, mu: float, simplex: bool,
                 pull: Array | None = None) -> tuple[Array, float, Array | None]:
        """min ½zᵀ(G_PP + μI)z − f_Pᵀz [s.t. Σz = 1] on the support idx; returns z, ν (see `qp.eq_solve`) and
        G·w for w = z on idx, 0 elsewhere, when it comes cheaper than `matvec` (one pass over D), else None.

        `pull`: f = b + μ·pull (the l2-pulled simplex fit), which lets a row-space solve form X_P f_P without a
        pass over D."""
        if self.use_lowrank(len(idx), mu, simplex):
            if mu > 0:
                return self._lowrank_eq_solve(idx, fP, mu, simplex, pull)
            z, nu = self._minnorm_eq_solve(idx, fP)
            return z, nu, None
        z, nu = self._agent_eq_solve(idx, fP, mu, simplex)
        return z, nu, None

    def grad_support(self, w: Array, idx: Array) -> Array:
        """G·w for w supported on idx: Xᵀ(X_P w_P) with X_P w_P from the column cache when the support is cached
        (no gather from D, one pass), else `matvec`."""
        a = self.cache.answers(w, idx)
        return self.matvec(w) if a is None else self._xt_all(a)

    def _xt_all(self, a: Array) -> Array:
        """Xᵀa for every agent (a on the rows that count): one pass over D."""
        self.n_grad += 1
        pad = np.zeros(self.D.shape[0])
        pad[self._T] = a * self._sT
        with pass_threads(self.D.size):
            return self.D.T @ pad
