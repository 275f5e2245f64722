"""Metrics: entropy, entropy coverage, MSE, 1-JSD, ordinal WD, majority accuracy, R², Kish ESS, bootstrap CIs.

See `personagen.metrics.core` for the exact definitions and `personagen.metrics.scoring` for aggregation,
bootstrap CIs and the handling of questions without an ordinal mapping.
"""

from personagen.metrics.core import (
    asmd,
    entropy_coverage,
    entropy_coverage_ratio,
    group_entropy,
    kish_ess,
    majority_match,
    mse,
    normalised_entropy,
    one_minus_jsd,
    r2,
    tvd,
    uniform_like,
    wasserstein,
)
from personagen.metrics.scoring import (
    ALL_METRICS,
    DEFAULT_METRICS,
    evaluate,
    survey_arrays,
    uniform_baseline,
)

__all__ = [
    "ALL_METRICS",
    "asmd",
    "DEFAULT_METRICS",
    "entropy_coverage",
    "entropy_coverage_ratio",
    "evaluate",
    "group_entropy",
    "kish_ess",
    "tvd",
    "majority_match",
    "mse",
    "normalised_entropy",
    "one_minus_jsd",
    "r2",
    "survey_arrays",
    "uniform_baseline",
    "uniform_like",
    "wasserstein",
]
