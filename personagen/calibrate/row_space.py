"""Row-space solves for supports wider than the rows (matrix-free quadratics only, calibrate/quad.py).

With the l2 pull the support Hessian is μI + X_PᵀX_P (X = W^½D, m rows that count). When the support holds more
agents than there are rows (census-shaped problems: ~60 rows × 1,000 one-hot agents, all active once λ > 0; the
top of the λ grid on any problem), it is solved in row space by Woodbury,
(μI + X_PᵀX_P)⁻¹v = (v − X_Pᵀ(μI_m + X_PX_Pᵀ)⁻¹X_P v)/μ, through a Cholesky factor of μI + K_P (K_P the m × m
kernel of the support, kept by a shared `RowKernel`); one pass over D then gives the support's weights and every
agent's gradient, and an active-set correction at the same μ reuses the factor (`RowOperator`). At μ = 0 a support
at least twice the rows takes the minimum-norm minimiser through K_P's eigendecomposition.

When: `MatrixFreeQuad.use_lowrank` (μ > 0: support wider than the rows or than the column cache). Cut-offs: the
Woodbury correction's size (`Tuning.woodbury_min`, `woodbury_divisor`, measured at 10k × 2,500, issue 15), the
kernel's chunk and rebuild guard (`kernel_chunk_mb`, `kernel_rebuild_moves`), the refinement threshold
(`lowrank_refine_mu`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import big_threads, pass_threads
from personagen.calibrate.qp import combine
from personagen.calibrate.tuning import TUNING

Array = np.ndarray
Quad = Any  # a MatrixFreeQuad (calibrate/quad.py, which imports this module)


class RowKernel:
    """The unweighted row-space kernel K_P = D_P D_Pᵀ (rows × rows) of one agent support P, kept up to date.

    Why: for supports wider than the rows the support solves run in row space (see `Quad.eq_solve`) and need
    K_P. Forming it from scratch costs rows²·|P| per support; consecutive supports (active-set steps, the next
    λ of a path, the same λ in the next CV fold) differ in few agents, so K is moved from the previous support by
    adding and subtracting only the changed columns (rows²·|Δ|), or rebuilt from the full kernel D Dᵀ minus the
    absent columns when that is cheaper. Row weights and CV folds enter only as a diagonal scaling and a row
    subset of K (`Quad._row_kernel`), so one RowKernel serves every fold and the final fit. Memory: two
    rows × rows arrays (the current K and the full one), columns gathered in chunks of `chunk` (by default as many
    as fill `Tuning.kernel_chunk_mb`, at least `kernel_chunk_min`).
    """

    def __init__(self, D: Array, *, chunk: int | None = None) -> None:
        self.D = D
        self.m, self.n = D.shape
        words = int(TUNING.kernel_chunk_mb * 2**20 / 8)
        self.chunk = chunk or max(TUNING.kernel_chunk_min, words // max(self.m, 1))
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
        self.factor: RowOperator | None = None  # the last row-space factorisation (see `Quad._row_operator`)
        self._scratch: dict[str, Array] = {}  # reused buffers (see `scratch`)

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
        with big_threads(self.m):
            for s in range(0, len(cols), self.chunk):
                c = cols[s : s + self.chunk]
                Dc = np.take(self.D, c, axis=1, out=self.scratch("chunk", self.m, len(c)), mode="clip")
                self.K = sla.blas.dsyrk(sign, Dc.T, beta=1.0, c=self.K, trans=1, lower=0, overwrite_c=1)
                self.rowsum += sign * Dc.sum(axis=1)
                for u, acc in zip(self._vecs, self.sums, strict=True):
                    acc += sign * (Dc @ u[c])
        self.cols_moved += len(cols)

    def scratch(self, name: str, rows: int, cols: int, order: str = "C") -> Array:
        """A reused rows × cols buffer `name` (rows × `chunk` columns gathered from D, or m × m: "kernel", "factor");
        its contents are overwritten by the next caller of the same name.

        Why: fresh memory is slow to come by where pages are first touched on demand (a 128 MB array: 0.36 s on the
        project's 2-core VM, 0.02 s to copy into one already touched); a CV fit made ~100 such arrays (issue 23)."""
        buf = self._scratch.get(name)
        if buf is None or buf.size < rows * cols:
            buf = self._scratch[name] = np.empty(rows * cols)
        return buf[: rows * cols].reshape((rows, cols), order=order)

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
        if self.cols_moved > TUNING.kernel_rebuild_moves * self.n:  # many subtractions: rebuild to bound accumulated round-off
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


class RowOperator:
    """μI + K_F for one quadratic, support mask F and μ: a Cholesky factor, the weighted kernel K_F (Fortran
    order, upper triangle), X_F 1, X_F·pull and tr K_F on the rows that count. `corrected` gives the operator of
    a nearby support by Woodbury's identity (`wood` then holds U, the signs, M⁻¹U and the capacitance's LU)."""

    def __init__(self, owner: Quad, mu: float, mask: Array, K: Array, cf: tuple, x1: Array,
                 xpull: Array | None, trace: float, wood: tuple | None = None) -> None:
        self.owner, self.mu, self.mask, self.K, self.cf = owner, mu, mask, K, cf
        self.x1, self.xpull, self.trace, self.wood = x1, xpull, trace, wood
        self.a1: Array | None = None  # (μI + K)⁻¹X_F 1, kept once solved (every simplex solve here needs it)
        self._last: tuple[Array, Array, Array] | None = None  # the last correction's agents, U and M⁻¹U

    def corrected(self, quad: Quad, add: Array, rem: Array, pull: Array | None) -> RowOperator:
        """The operator of the support F + add − rem (same quadratic, same μ) without refactoring.

        The columns of U and M⁻¹U of agents that the last correction also changed are reused (consecutive active-set
        steps change mostly the same agents: issue 23, 20k × 5,000 latent types, 46 corrections of 100–630 agents
        took 14.8 s, most of it solving again for the same columns)."""
        cols = np.concatenate([add, rem])
        sign = np.concatenate([np.ones(len(add)), -np.ones(len(rem))])
        U, Z = self._columns(quad, cols)
        with big_threads(U.shape[0]):
            S = U.T @ Z
        S[np.diag_indices_from(S)] += sign  # C⁻¹ + UᵀM⁻¹U with C = diag(±1)
        lu = sla.lu_factor(S, check_finite=False)
        x1 = self.x1 + U @ sign
        xpull = None if pull is None or self.xpull is None else self.xpull + U @ (sign * pull[cols])
        trace = self.trace + float(sign @ np.einsum("ij,ij->j", U, U))
        mask = self.mask.copy()
        mask[add] = True
        mask[rem] = False
        return RowOperator(self.owner, self.mu, mask, self.K, self.cf, x1, xpull, trace, (U, sign, Z, lu))

    def _columns(self, quad: Quad, cols: Array) -> tuple[Array, Array]:
        """U = X's columns `cols` and M⁻¹U (M = μI + K_F factored), those of the last correction reused."""
        U = np.empty((len(self.x1), len(cols)), order="F")
        Z = np.empty_like(U)
        fresh = np.ones(len(cols), dtype=bool)
        if self._last is not None:
            where = np.full(quad.n, -1, dtype=np.int64)
            where[self._last[0]] = np.arange(len(self._last[0]))
            at = where[cols]
            fresh = at < 0
            U[:, ~fresh] = self._last[1][:, at[~fresh]]
            Z[:, ~fresh] = self._last[2][:, at[~fresh]]
        if fresh.all():  # U itself is the right-hand side (Fortran order: no copy)
            U[:] = quad._cols(cols)
            with big_threads(U.shape[0]):
                Z = sla.cho_solve(self.cf, U, check_finite=False)
        elif fresh.any():
            Uf = np.asfortranarray(quad._cols(cols[fresh]))
            U[:, fresh] = Uf
            with big_threads(U.shape[0]):
                Z[:, fresh] = sla.cho_solve(self.cf, Uf, check_finite=False)
        self._last = (cols, U, Z)
        return U, Z

    def solve(self, b: Array) -> Array:
        """(μI + K)⁻¹b (b: a vector or columns), up to the round-off the caller refines away."""
        y = sla.cho_solve(self.cf, b, check_finite=False)
        if self.wood is None:
            return y
        U, _, Z, lu = self.wood
        return y - Z @ sla.lu_solve(lu, U.T @ y, check_finite=False)

    def kmul(self, a: Array) -> Array:
        """K a (a: a vector or columns; exact: the factored kernel plus the changed columns)."""
        if a.ndim == 1:
            out = sla.blas.dsymv(1.0, self.K, a, lower=0)
        else:
            out = sla.blas.dsymm(1.0, self.K, np.asfortranarray(a), side=0, lower=0)
        if self.wood is not None:
            U, sign, _, _ = self.wood
            t = U.T @ a
            t *= sign if a.ndim == 1 else sign[:, None]
            out += U @ t
        return out



class RowSpaceSolves:
    """The row-space solves of a matrix-free quadratic (mixed into `MatrixFreeQuad`, whose D, row weights and
    kernel they use): `_lowrank_eq_solve` for μ > 0, `_minnorm_eq_solve` for μ = 0."""

    def _row_kernel(self, idx: Array, out: Array | None = None) -> Array:
        """X_P X_Pᵀ on the rows that count (upper triangle valid), X = W^½D, from the shared `RowKernel`; into `out`
        (m × m, Fortran order) when given, else a fresh array."""
        if self.kernel is None:
            self.kernel = RowKernel(self.D)
        P = np.zeros(self.n, dtype=bool)
        P[idx] = True
        K = self.kernel.get(P)
        m = len(self._T)
        A = np.empty((m, m), order="F") if out is None else out
        if self._all_rows:
            np.copyto(A, K)
        else:  # the rows that count: A[:, j] = K[T, T_j], one slice of Kᵀ (C order) per run of consecutive rows
            KT, AT, T = K.T, A.T, self._T
            for s, e in zip(self._runs[:-1], self._runs[1:], strict=True):
                np.take(KT[T[s] : T[s] + e - s], T, axis=1, out=AT[s:e], mode="clip")
        if not self._unit_rows:
            A *= self._sT[:, None]
            A *= self._sT[None, :]
        return A

    def _row_operator(self, idx: Array, mu: float, pull: Array | None) -> RowOperator:
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
            few = 0 < len(add) + len(rem) <= max(TUNING.woodbury_min, m // TUNING.woodbury_divisor)
            if few and (pull is None) == (fac.xpull is None):
                return fac.corrected(self, add, rem, pull)
            if not len(add) and not len(rem):
                return fac
        j = None if pull is None else self.kernel.track(pull)
        self.kernel.factor = None  # its arrays are the scratch buffers filled below
        K = self._row_kernel(idx, out=self.kernel.scratch("kernel", m, m, order="F"))
        A = self.kernel.scratch("factor", m, m, order="F")
        np.copyto(A, K)
        A[np.diag_indices_from(A)] += mu
        with big_threads(m):
            cf = sla.cho_factor(A, lower=False, overwrite_a=True, check_finite=False)
        x1 = self.kernel.rowsum[self._T] * self._sT
        xpull = None if j is None else self.kernel.sums[j][self._T] * self._sT
        fac = RowOperator(self, mu, P, K, cf, x1, xpull, float(np.trace(K)))
        self.kernel.factor = fac
        return fac

    def _xp(self, V: Array, idx: Array) -> Array:
        """X_P V (V: len(idx) × c) by one pass over D per column (gemv: BLAS runs thin GEMMs slowly)."""
        full = np.zeros(self.n)
        out = np.empty((len(self._T), V.shape[1]))
        with pass_threads(self.D.size):
            for j in range(V.shape[1]):
                full[idx] = V[:, j]
                out[:, j] = (self.D @ full)[self._T]
        out *= self._sT[:, None]
        return out

    def _xpt(self, U: Array, idx: Array) -> Array:
        """X_Pᵀ U (U: rows-that-count × c) by one pass over D per column."""
        pad = np.zeros(self.D.shape[0])
        out = np.empty((len(idx), U.shape[1]))
        with pass_threads(self.D.size):
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
                if op.wood is None or np.all(np.abs(res).max(axis=0) <= 1e-13 * np.abs(b).max(axis=0)):
                    break
            return a

        def combine(v: Array, g: Array, target: float) -> tuple[Array, float]:
            """a = (μI + K)⁻¹v + ν·a1 and ν with Σz = target (ν = 0 without the sum constraint); a1 = (μI + K)⁻¹X_P 1
            is solved once per operator, beside v the first time (two right-hand sides: one read of the factor)."""
            if not simplex:
                return rsolve(v), 0.0
            if op.a1 is None:
                both = rsolve(np.column_stack([v, x1]))
                ag, op.a1 = both[:, 0].copy(), both[:, 1].copy()
            else:
                ag = rsolve(v)
            a1 = op.a1
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
        a, nu = combine(xf, fP, 1.0)
        y = self._xt_all(a)
        z = (fP + nu - y[idx]) / mu
        if mu >= TUNING.lowrank_refine_mu * op.trace / max(len(x1), 1):
            return z, nu, y

        def solve(g: Array, target: float) -> tuple[Array, float]:
            a, nu = combine(self._xp(g[:, None], idx)[:, 0], g, target)
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
        return combine(sol, True)
