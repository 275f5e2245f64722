"""Per-question distribution metrics (pure numpy, vectorised over questions).

Distributions of different lengths are packed into a zero-padded (questions × max options) array with a
mask, so every metric is one array expression over all questions. Per-question functions return one value
per question; the survey-level number is their mean (MSE and R² pool the (question, option) rows instead,
see `mse` / `r2`).

Definitions (docs/design.md §6):
* normalised entropy H_i = −Σ p log2 p / log2 K_i (0 log 0 = 0), K_i = number of options, in [0, 1].
* group entropy = mean H_i over a group's questions.
* entropy coverage ratio (ECR) = fraction of questions whose predicted normalised entropy is at least the
  target's (H_pred ≥ H_target − 1e-9): how often the synthetic panel is at least as diverse as the people.
* MSE over all (question, option) rows: Σ (p − t)² / Σ K_i.
* 1 − JSD: 1 minus the Jensen–Shannon *distance* (square root of the divergence), base 2, in [0, 1].
* WD: Wasserstein-1 between p and t placed on the question's ordinal positions, divided by
  (max position − min position), in [0, 1]. Needs an explicit ordinal mapping (BadInput otherwise).
* majority accuracy: argmax(p) == argmax(t); ties go to the lowest option index among values within 1e-12
  of the maximum, in both p and t (deterministic).
* R² over all rows: 1 − Σ(t − p)² / Σ(t − mean t)².
* Kish effective sample size of weights: (Σw)² / Σw².
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from personagen.errors import BadInput

TIE_TOL = 1e-12
ArrayList = Sequence[np.ndarray] | Sequence[Sequence[float]]


def pack(dists: ArrayList, *, name: str = "distribution") -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded (n, Kmax) float array and boolean mask of real options."""
    arrs = [np.asarray(d, dtype=float).ravel() for d in dists]
    if not arrs:
        raise BadInput(f"{name}: no questions")
    k = np.array([a.size for a in arrs])
    if (k < 1).any():
        raise BadInput(f"{name}: a question has no options")
    out = np.zeros((len(arrs), int(k.max())))
    mask = np.arange(out.shape[1])[None, :] < k[:, None]
    out[mask] = np.concatenate(arrs)
    if not np.isfinite(out).all():
        raise BadInput(f"{name}: contains NaN or infinite values")
    return out, mask


def _pair(pred: ArrayList, target: ArrayList) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p, mp = pack(pred, name="pred")
    t, mt = pack(target, name="target")
    if p.shape != t.shape or not (mp == mt).all():
        raise BadInput("pred and target differ in number of questions or options per question")
    return p, t, mt


def normalised_entropy(dists: ArrayList) -> np.ndarray:
    """H_i = −Σ p log2 p / log2 K_i per question (questions need ≥ 2 options)."""
    p, m = pack(dists)
    k = m.sum(1)
    if (k < 2).any():
        raise BadInput("normalised entropy needs at least 2 options per question")
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(1) / np.log2(k)


def group_entropy(dists: ArrayList) -> float:
    """Mean normalised entropy over a group's questions."""
    return float(normalised_entropy(dists).mean())


def entropy_coverage(pred: ArrayList, target: ArrayList, tol: float = 1e-9) -> np.ndarray:
    """Per question 1.0 when H(pred) ≥ H(target) − tol else 0.0; its mean is the entropy coverage ratio."""
    return (normalised_entropy(pred) >= normalised_entropy(target) - tol).astype(float)


def entropy_coverage_ratio(pred: ArrayList, target: ArrayList, tol: float = 1e-9) -> float:
    """Fraction of questions whose predicted normalised entropy is ≥ the target's."""
    return float(entropy_coverage(pred, target, tol).mean())


def squared_error_sums(pred: ArrayList, target: ArrayList) -> tuple[np.ndarray, np.ndarray]:
    """Per question Σ_options (p − t)² and the number of options K_i."""
    p, t, m = _pair(pred, target)
    return ((p - t) ** 2).sum(1), m.sum(1).astype(float)


def mse(pred: ArrayList, target: ArrayList) -> float:
    """Mean squared error over all (question, option) rows."""
    s, k = squared_error_sums(pred, target)
    return float(s.sum() / k.sum())


def one_minus_jsd(pred: ArrayList, target: ArrayList) -> np.ndarray:
    """Per question 1 − Jensen–Shannon distance (base 2); inputs are renormalised to sum 1."""
    p, t, _ = _pair(pred, target)
    p = p / _safe_sum(p, "pred")
    t = t / _safe_sum(t, "target")
    mid = 0.5 * (p + t)

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(np.where(a > 0, a, 1.0) / np.where(b > 0, b, 1.0)), 0.0).sum(1)

    jsd = np.clip(0.5 * kl(p, mid) + 0.5 * kl(t, mid), 0.0, 1.0)
    return 1.0 - np.sqrt(jsd)


def _safe_sum(a: np.ndarray, name: str) -> np.ndarray:
    s = a.sum(1, keepdims=True)
    if (s <= 0).any():
        raise BadInput(f"{name}: a question's distribution sums to 0")
    return s


def wasserstein(pred: ArrayList, target: ArrayList, ordinals: ArrayList) -> np.ndarray:
    """Per question W1 on the ordinal positions, normalised by (max − min position); inputs renormalised."""
    p, t, m = _pair(pred, target)
    o, mo = pack(ordinals, name="ordinals")
    if o.shape != p.shape or not (mo == m).all():
        raise BadInput("ordinals must give one position per option of every question")
    lo = np.where(m, o, np.inf).min(1)
    hi = np.where(m, o, -np.inf).max(1)
    span = hi - lo
    if (span <= 0).any():
        raise BadInput(f"ordinals: question {int(np.argmax(span <= 0))} has all positions equal")
    p = p / _safe_sum(p, "pred")
    t = t / _safe_sum(t, "target")
    o = np.where(m, o, hi[:, None])  # padding sits at the maximum with zero mass: adds nothing
    order = np.argsort(o, axis=1, kind="stable")
    o_s = np.take_along_axis(o, order, 1)
    d_s = np.take_along_axis(p - t, order, 1)
    cdf = np.cumsum(d_s, axis=1)[:, :-1]
    gaps = np.diff(o_s, axis=1)
    return (np.abs(cdf) * gaps).sum(1) / span


def _argmax_low(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    a = np.where(m, a, -np.inf)
    mx = a.max(1, keepdims=True)
    return np.argmax(a >= mx - TIE_TOL, axis=1)


def majority_match(pred: ArrayList, target: ArrayList) -> np.ndarray:
    """Per question 1.0 when the most likely option agrees (ties: lowest option index), else 0.0."""
    p, t, m = _pair(pred, target)
    return (_argmax_low(p, m) == _argmax_low(t, m)).astype(float)


def r2(pred: ArrayList, target: ArrayList) -> float:
    """Coefficient of determination over all (question, option) rows."""
    p, t, m = _pair(pred, target)
    tv = t[m]
    ss_tot = ((tv - tv.mean()) ** 2).sum()
    if ss_tot <= 0:
        raise BadInput("r2: target rows have zero variance")
    return float(1.0 - ((tv - p[m]) ** 2).sum() / ss_tot)


def kish_ess(weights: Sequence[float] | np.ndarray) -> float:
    """Kish effective sample size (Σw)² / Σw² of a weight vector: 1/Σw² for nonnegative weights summing to one.

    The one definition used everywhere (calibration reports, panels, benchmarks). Signed weights (the p2p
    estimators may return some below zero) are read as |w|, so the figure stays in [1, n].
    """
    w = np.abs(np.asarray(weights, dtype=float).ravel())
    if w.size == 0 or not np.isfinite(w).all():
        raise BadInput("weights: empty or contains NaN/inf")
    s2 = float((w**2).sum())
    if s2 == 0:
        raise BadInput("weights: all zero")
    return float(w.sum() ** 2 / s2)


def uniform_like(target: ArrayList) -> list[np.ndarray]:
    """The uniform distribution over each question's options (the naive baseline)."""
    return [np.full(np.asarray(d).size, 1.0 / np.asarray(d).size) for d in target]


def tvd(p: Mapping[str, float] | Sequence[float] | np.ndarray, q: Mapping[str, float] | Sequence[float] | np.ndarray
        ) -> float:
    """Total variation distance ½ Σ |p − q| of two categorical distributions.

    Aligned arrays, or {category: share} mappings (a category missing from one side counts as share 0).
    """
    if isinstance(p, Mapping) and isinstance(q, Mapping):
        return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))
    return float(0.5 * np.abs(np.asarray(p, dtype=float) - np.asarray(q, dtype=float)).sum())


def asmd(p: Mapping[str, float], q: Mapping[str, float]) -> float | None:
    """Absolute standardised mean difference of a categorical variable, as facebookresearch/balance computes it
    for one-hot columns against a target: the mean over categories k of |p_k − q_k| / √(q_k (1 − q_k)) (the
    target's standard deviation of the indicator), categories with q_k ∈ {0, 1} skipped; None when none is left.
    """
    vals = [abs(p.get(k, 0.0) - v) / math.sqrt(v * (1 - v)) for k, v in q.items() if 0 < v < 1]
    return float(np.mean(vals)) if vals else None
