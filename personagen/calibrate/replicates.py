"""Bootstrap replicate weights: the calibration refitted on resamples of personas, so estimates carry the
uncertainty of estimated weights.

Replicate b draws n personas with replacement (multiplicities m_j ~ Multinomial(n, 1/n)), refits the chosen
estimator at the chosen penalty (λ/α fixed, no second cross-validation) on the resampled columns D[:, idx]
(base weights and census-margin rows resampled with them), and gives persona j the summed weight of its copies
(0 when not drawn). An estimate θ̂ computed with `weight` and θ̂_b with `rep_b` (the same formula) has the
bootstrap variance  v(θ̂) = 1/(R−1) · Σ_b (θ̂_b − θ̄)²,  θ̄ = mean of the θ̂_b  (R's `survey::svrepdesign(type =
"bootstrap")`: scale 1/(R−1), rscales 1, mse FALSE). The penalty's own selection is not redone, so the
variance it adds is left out (stated in the report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from personagen.errors import BadInput

# Measured (benchmarks/replicates.py, 5000 personas × 2000 questions): one refit costs ~1.3 CPU s against 79 s for
# the default CV fit, so the ACS's 80 (PWGTP1–80) would add 1.36× the fit; 40 adds 0.68× and leaves the SE's own
# relative error at 1/√(2(R−1)) = 11% (8% at 80). docs/estimate.md has the trade-off.
DEFAULT_REPLICATES = 40
METHOD = "bootstrap"
REPLICATE_PENALTIES = ("fixed", "cv")
PENALTY_TEXT = {"fixed": "fixed at the value chosen for the main fit (its selection is not replicated)",
                "cv": "chosen again by cross-validation in every replicate (its selection variance included)"}
VARIANCE = "v = 1/(R-1) * sum_b (theta_b - mean_b theta_b)^2  (svrepdesign type='bootstrap')"


@dataclass(frozen=True)
class Replicates:
    """R replicate weight vectors (n × R, each column sums to 1) and how they were made."""

    weights: np.ndarray
    seed: int
    seconds: float
    method: str = METHOD
    penalty: str = "fixed"

    @property
    def r(self) -> int:
        return int(self.weights.shape[1])

    def info(self) -> dict[str, Any]:
        """What the report records about the replicates."""
        return {"r": self.r, "method": self.method, "seed": self.seed, "seconds": round(self.seconds, 3),
                "variance": VARIANCE,
                "penalty": PENALTY_TEXT[self.penalty]}


def check_replicates(r: int) -> int:
    """The number of replicates, 0 (none) to 1000; BadInput otherwise."""
    if isinstance(r, bool) or not isinstance(r, int | np.integer) or r < 0 or r > 1000:
        raise BadInput(f"replicates {r!r}: expected an integer from 0 (no replicate weights) to 1000",
                       field="replicates")
    if r == 1:
        raise BadInput("replicates 1: one replicate has no spread; use 0 (none) or at least 2", field="replicates")
    return int(r)


def bootstrap_replicates(n: int, reps: int, seed: int, refit: Callable[[np.ndarray], np.ndarray], *,
                         penalty: str = "fixed") -> Replicates:
    """Refit on `reps` bootstrap resamples of n personas; `refit(idx)` returns the weights of the columns idx.

    Each returned column is the per-persona sum of its copies' weights, renormalised to sum to 1.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng([int(seed), 0x5EED])
    out = np.zeros((n, reps))
    for b in range(reps):
        idx = np.sort(rng.integers(0, n, n))
        wb = np.asarray(refit(idx), dtype=float)
        col = np.bincount(idx, weights=wb, minlength=n)
        s = col.sum()
        out[:, b] = col / s if s != 0 else np.full(n, 1.0 / n)
    return Replicates(out, int(seed), time.perf_counter() - t0, penalty=penalty)


def bootstrap_variance(theta_hat: np.ndarray) -> np.ndarray:
    """v = 1/(R−1) Σ_b (θ_b − θ̄)² over the last axis (NaN replicates ignored; NaN with fewer than 2)."""
    t = np.asarray(theta_hat, dtype=float)
    ok = np.isfinite(t)
    k = ok.sum(axis=-1)
    mean = np.where(k > 0, np.nansum(t, axis=-1) / np.maximum(k, 1), np.nan)
    dev = np.where(ok, t - mean[..., None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k >= 2, (dev ** 2).sum(axis=-1) / (k - 1), np.nan)
