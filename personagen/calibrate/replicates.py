"""Replicate weights: the calibration refitted on random half-samples of personas, so estimates carry the
uncertainty of estimated weights.

Replicate b draws m = ⌊n/2⌋ of the n personas without replacement, refits the chosen estimator on their columns
D[:, idx] (base weights and census-margin rows taken with them) at the chosen penalty (λ/α fixed) or with the
penalty chosen again by cross-validation (`penalty="cv"`), and gives the other personas weight 0. This is the
delete-d jackknife with d = n − m (Shao & Wu 1989; Shao & Tu 1995, §2.3) drawn at random, whose variance
estimator is m/(n − m) · 1/(R−1) Σ_b (θ̂_b − θ̄)²; at even n the factor is 1, at odd n each replicate is shrunk
toward the full-sample weights, rep_b = ŵ + √(m/(n−m))·(w_b − ŵ), so that one formula holds for every n:
    v(θ̂) = 1/(R−1) · Σ_b (θ̂_b − θ̄)²,  θ̄ = mean of the θ̂_b
(R's `survey::svrepdesign(type = "other", scale = 1/(R−1), rscales = 1, mse = FALSE)`).

Why half-samples and not the with-replacement bootstrap (what this module did before): a calibration at a small
penalty puts all its weight on a few dozen personas (most weights exactly 0), like a matching estimator, and the
bootstrap is known to misjudge the variance of such estimators (Abadie & Imbens 2008): its resamples hold
duplicates, so a persona the fit needs comes back as two copies instead of being replaced by a different persona.
A half-sample is a smaller pool of distinct personas, which is what another draw of personas is. Measured in
benchmarks/estimate_coverage.py (docs/estimate.md): at a fixed λ the bootstrap SE was 0.84 of the spread of the
estimates across pools (90% intervals covered 0.82), the half-sample SE 1.00 (0.89). Neither replicates the
variation of the CV's choice of λ between pools: the interval is conditional on the chosen penalty.
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
# relative error at 1/√(2(R−1)) = 11% (8% at 80); those were bootstrap refits, a half-sample refit (n/2 columns)
# took 0.56–0.60× one at 1000 × 200. docs/estimate.md has the trade-off.
DEFAULT_REPLICATES = 40
METHOD = "half-sample"
REPLICATE_PENALTIES = ("fixed", "cv")
PENALTY_TEXT = {"fixed": "fixed at the value chosen for the main fit (its selection is not replicated)",
                "cv": "chosen again by cross-validation in every replicate (recovers little of the variation of λ's "
                      "choice between pools, docs/estimate.md)"}
VARIANCE = ("v = 1/(R-1) * sum_b (theta_b - mean_b theta_b)^2  (svrepdesign type='other', scale=1/(R-1), "
            "rscales=1, mse=FALSE)")


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


def half_sample_replicates(n: int, reps: int, seed: int, refit: Callable[[np.ndarray], np.ndarray], *,
                           full: np.ndarray, penalty: str = "fixed") -> Replicates:
    """Refit on `reps` random half-samples of n personas; `refit(idx)` returns the weights of the columns idx.

    `full` is the full-sample fit's weights (n,): at odd n each replicate is shrunk toward it by √(m/(n−m)) so that
    v = 1/(R−1) Σ(θ_b − θ̄)² needs no factor. Each returned column sums to 1 (0 for personas not drawn).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng([int(seed), 0x5EED])
    full = np.asarray(full, dtype=float)
    m = n // 2 if n >= 2 else n
    shrink = float(np.sqrt(m / (n - m))) if n - m > 0 else 0.0
    out = np.zeros((n, reps))
    for b in range(reps):
        idx = np.sort(rng.choice(n, m, replace=False))
        wb = np.asarray(refit(idx), dtype=float)
        col = np.zeros(n)
        col[idx] = wb
        s = col.sum()
        col = col / s if s != 0 else np.full(n, 1.0 / n)
        out[:, b] = full + shrink * (col - full) if shrink != 1.0 else col
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
