"""A Cholesky factor of an active-set support's Hessian, moved to the next support instead of refactored.

An active-set run (calibrate/active_set.py) solves min ½zᵀH_SS z − f_Sᵀz [s.t. Σz = 1] on a sequence of supports S
at one μ (H = G + μI); consecutive supports share most agents. Refactored from scratch each costs |S|³/3 flops:
on latent-type answers (dense supports of 1,000–4,000 agents) those factorisations were 2/3 of the CPU time of
the default fit at 10k × 2,500 (issue 23). `SupportFactor` keeps the upper factor R of H_UU for an ordered agent
set U ⊇ S and

* extends it when agents A enter, by bordering: R₁₂ = R⁻ᵀH_UA, R₂₂ = chol(H_AA − R₁₂ᵀR₁₂) (|U|²·|A| flops);
* solves on S ⊆ U with the agents E = U \\ S that left pinned at zero: with y = Rz the problem is
  min ½‖y‖² − (R⁻ᵀf)ᵀy s.t. y ⊥ T = R⁻ᵀ[e_j]_{j∈E}, so y = (I − QQᵀ)R⁻ᵀf (Q an orthonormal basis of T) and
  z = R⁻¹y: |U|²·(|E| + 2 per right-hand side) flops and a |U| × |E| QR, no refactorisation.

`Quad.eq_solve` (agent-space supports) takes the update while its flop count stays below
`Tuning.factor_update_ratio` × a fresh factor's and refactors otherwise (which also drops the pinned agents).
The factor lives for one active-set run (`Quad.drop_factor`): a new μ changes every diagonal entry.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from personagen.calibrate._blas import big_threads
from personagen.calibrate.tuning import TUNING

Array = np.ndarray


class SupportFactor:
    """R (upper, RᵀR = H_UU + jitter·I) for the agents `agents` (factor order) at one μ; see the module docstring."""

    def __init__(self, mu: float, agents: Array, R: Array, jitter: float) -> None:
        self.mu, self.R, self.jitter = mu, R, jitter
        self.sound = True  # pivots well away from zero: safe to move (see `_sound`)
        self._spare: Array | None = None  # the flat buffer the next `extend` writes into (see there)
        self._set_agents(np.asarray(agents, dtype=np.int64))

    def _set_agents(self, agents: Array) -> None:
        self.agents = agents
        self._order = np.argsort(agents, kind="stable")  # agents[_order] sorted: slot look-ups by bisection
        self._sorted = agents[self._order]

    @classmethod
    def fresh(cls, H: Array, agents: Array, mu: float) -> SupportFactor | None:
        """Factor H = G_SS + μI (μ already on its diagonal; H is overwritten) with the jitter of `qp.eq_solve`;
        None when H is not numerically positive definite (the caller falls back to least squares)."""
        jitter = 1e-13 * max(float(np.mean(np.diag(H))), 1e-300)
        H[np.diag_indices_from(H)] += jitter
        try:
            with big_threads(len(H)):
                # H is symmetric: a C-order H is its own transpose in Fortran order (no copy)
                F = H.T if H.flags.c_contiguous else np.asfortranarray(H)
                R = sla.cholesky(F, lower=False, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return None
        if not np.all(np.isfinite(np.diag(R))):
            return None
        fac = cls(mu, agents, R, jitter)
        fac.sound = _sound(R, None)
        return fac

    def slots(self, idx: Array) -> Array:
        """Position in the factor of each agent of idx (−1 when not in it)."""
        pos = np.searchsorted(self._sorted, idx)
        pos = np.minimum(pos, len(self._sorted) - 1)
        hit = self._sorted[pos] == idx
        return np.where(hit, self._order[pos], -1)

    def update_flops(self, idx: Array, n_rhs: int) -> tuple[Array, float]:
        """The agents of idx to add and the flops of extending by them and solving on idx (see the module
        docstring)."""
        add = idx[self.slots(idx) < 0]
        u, a = len(self.agents), len(add)
        e = u - (len(idx) - a)
        v = u + a
        return add, u * u * a + u * a * a + a**3 / 3 + v * v * (e + 2 * n_rhs) + 2.0 * v * e * e

    def extend(self, add: Array, cross: Array, H_aa: Array) -> bool:
        """Border the factor with the agents `add`: cross = G[U, add], H_aa = G[add, add] + μI (overwritten).
        False (factor unchanged) when the Schur complement is not numerically positive definite."""
        u, a = len(self.agents), len(add)
        H_aa[np.diag_indices_from(H_aa)] += self.jitter
        R12 = sla.solve_triangular(self.R, cross, trans="T", lower=False, check_finite=False)
        S = H_aa - R12.T @ R12
        try:
            R22 = sla.cholesky(S, lower=False, overwrite_a=True, check_finite=False)
        except np.linalg.LinAlgError:
            return False
        if not _sound(R22, H_aa):
            return False
        v = u + a
        buf = self._spare
        if buf is None or buf.size < v * v:
            buf = np.empty(int(1.5 * v * v))  # slack for the next few agents (pages are touched only as used)
        R = buf[: v * v].reshape((v, v), order="F")
        R[:u, :u] = self.R
        R[u:, :u] = 0.0
        R[:u, u:] = R12
        R[u:, u:] = R22
        # the old factor's buffer takes the next extension: fresh memory is slow to come by where pages are first
        # touched on demand (issue 23: a new (|U| + |A|)² array per extension, 72 MB at 3,000 agents); a fresh
        # factor's own |U|² memory is too small for any bordered factor, so it is let go
        base = self.R.base
        self._spare = base if base is not None and base.ndim == 1 else None
        self.R = R
        self._set_agents(np.concatenate([self.agents, np.asarray(add, dtype=np.int64)]))
        return True

    def solve(self, idx: Array, F: Array) -> Array | None:
        """H_SS⁻¹F for S = idx ⊆ agents (F: len(idx) × c, rows in idx's order), the other agents pinned at zero;
        None when some agent of idx is not in the factor."""
        q = self.slots(idx)
        if np.any(q < 0):
            return None
        u = len(self.agents)
        rhs = np.zeros((u, F.shape[1]))
        rhs[q] = F
        pinned = np.ones(u, dtype=bool)
        pinned[q] = False
        if not pinned.any():
            return sla.cho_solve((self.R, False), rhs, check_finite=False)[q]
        E = np.zeros((u, int(pinned.sum())), order="F")
        E[np.flatnonzero(pinned), np.arange(E.shape[1])] = 1.0
        T = sla.solve_triangular(self.R, E, trans="T", lower=False, check_finite=False, overwrite_b=True)
        W = sla.solve_triangular(self.R, rhs, trans="T", lower=False, check_finite=False)
        Q = sla.qr(T, mode="economic", overwrite_a=True, check_finite=False)[0]
        W -= Q @ (Q.T @ W)
        Z = sla.solve_triangular(self.R, W, lower=False, check_finite=False, overwrite_b=True)
        return Z[q]


def _sound(R: Array, H: Array | None) -> bool:
    """Whether every pivot of the factor R satisfies R_jj² > `Tuning.factor_min_pivot` × the largest diagonal entry
    (of H, or of RᵀR): near-singular supports (μ = 0, the support near the rank of D) are refactored from scratch
    each step, exactly as before issue 23, rather than moved with the round-off such pivots amplify."""
    d = np.diag(R)
    if not np.all(np.isfinite(d)) or not len(d):
        return False
    top = float(np.max(np.diag(H))) if H is not None else float(np.max(np.einsum("ij,ij->j", R, R)))
    return bool(np.min(d) ** 2 > TUNING.factor_min_pivot * top)
