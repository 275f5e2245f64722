"""`evaluate`: survey-level metrics with percentile bootstrap CIs over questions, and the uniform baseline.

Each metric is computed per question and then aggregated over the evaluated questions:
mean for one_minus_jsd, wd, majority_acc, ecr (entropy coverage), entropy, entropy_target; pooled over
(question, option) rows for mse and r2 (a resample of questions recomputes the pooled ratio).

WD handling: "wd" uses only questions that have an ordinal mapping (`ordinals[qid]` not None) and reports
how many in `n_questions`. If no evaluated question has one:
* metrics=None (the default set) → the wd entry is {"value": None, "ci_low": None, "ci_high": None,
  "n_questions": 0} (skipped quietly, so a nominal survey can still be scored);
* "wd" requested explicitly in `metrics` → BadInput (never a silent guess of positions).

Bootstrap: `n_boot` resamples of the question set with replacement (numpy default_rng(seed)); the CI is the
2.5 / 97.5 percentiles. n_boot=0 (or a single question) gives ci_low = ci_high = None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.metrics import core

DEFAULT_METRICS = ("mse", "one_minus_jsd", "wd", "majority_acc")
ALL_METRICS = ("mse", "one_minus_jsd", "wd", "majority_acc", "r2", "ecr", "entropy", "entropy_target")
SUM_TOL = 1e-3


def _check(d: np.ndarray, qid: str, name: str) -> np.ndarray:
    if not np.isfinite(d).all() or (d < 0).any():
        raise BadInput(f"{name}[{qid!r}]: NaN, infinite or negative values")
    if abs(d.sum() - 1) > SUM_TOL:
        raise BadInput(f"{name}[{qid!r}]: sums to {d.sum():.4f}, not 1")
    return d


def _ci(stat_boot: np.ndarray) -> tuple[float, float]:
    ok = stat_boot[np.isfinite(stat_boot)]  # an R² resample can have zero target variance
    if ok.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(ok, [2.5, 97.5])
    return float(lo), float(hi)


def _result(value: float | None, boot: np.ndarray | None, n: int) -> dict[str, Any]:
    lo, hi = _ci(boot) if boot is not None else (None, None)
    return {"value": None if value is None else float(value), "ci_low": lo, "ci_high": hi, "n_questions": int(n)}


def evaluate(pred: Mapping[str, Sequence[float] | np.ndarray], target: Mapping[str, Sequence[float] | np.ndarray], *,
             ordinals: Mapping[str, Sequence[float] | None] | None = None,
             metrics: Sequence[str] | None = None, n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Score `pred` against `target` ({qid: distribution}) over target's questions.

    Returns {metric: {"value", "ci_low", "ci_high", "n_questions"}}; see the module docstring for WD handling.
    """
    names = tuple(DEFAULT_METRICS if metrics is None else metrics)
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise BadInput(f"unknown metric {unknown[0]!r}; expected one of {', '.join(ALL_METRICS)}")
    qids = list(target)
    if not qids:
        raise BadInput("target: no questions to evaluate")
    missing = [q for q in qids if q not in pred]
    if missing:
        raise BadInput(f"pred: no distribution for question {missing[0]!r} ({len(missing)} missing)")
    P, T = [], []
    for q in qids:
        p = _check(np.asarray(pred[q], dtype=float).ravel(), q, "pred")
        t = _check(np.asarray(target[q], dtype=float).ravel(), q, "target")
        if p.size != t.size:
            raise BadInput(f"pred[{q!r}]: {p.size} options but target has {t.size}")
        if t.size < 2:
            raise BadInput(f"target[{q!r}]: a question needs at least 2 options")
        P.append(p)
        T.append(t)
    n = len(qids)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n)) if n_boot > 0 and n > 1 else None
    sc = _Scoring(qids, P, T, idx, ordinals, metrics is not None, n_boot, rng)
    return {name: METRIC_SCORERS[name](sc) for name in names}


@dataclass(frozen=True)
class _Scoring:
    """The checked inputs of one evaluation: per-question arrays and the bootstrap resamples of questions."""

    qids: list[str]
    P: list[np.ndarray]
    T: list[np.ndarray]
    idx: np.ndarray | None
    ordinals: Mapping[str, Sequence[float] | None] | None
    explicit: bool
    n_boot: int
    rng: np.random.Generator


def _mean_metric(vals: np.ndarray, ix: np.ndarray | None) -> dict[str, Any]:
    return _result(vals.mean(), vals[ix].mean(1) if ix is not None else None, vals.size)


def _mse(sc: _Scoring) -> dict[str, Any]:
    s, k = core.squared_error_sums(sc.P, sc.T)
    boot = s[sc.idx].sum(1) / k[sc.idx].sum(1) if sc.idx is not None else None
    return _result(s.sum() / k.sum(), boot, len(sc.qids))


def _r2(sc: _Scoring) -> dict[str, Any]:
    p, t, m = core._pair(sc.P, sc.T)
    res = (((t - p) ** 2) * m).sum(1)
    st, st2, k = (t * m).sum(1), (t**2 * m).sum(1), m.sum(1)
    boot = None
    if sc.idx is not None:
        idx = sc.idx
        tot = st2[idx].sum(1) - st[idx].sum(1) ** 2 / k[idx].sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = 1 - res[idx].sum(1) / tot
    return _result(core.r2(sc.P, sc.T), boot, len(sc.qids))


def _wd(sc: _Scoring) -> dict[str, Any]:
    qids, ordinals = sc.qids, sc.ordinals
    has = [i for i, q in enumerate(qids) if ordinals is not None and ordinals.get(q) is not None]
    if not has:
        if sc.explicit:
            raise BadInput("wd: no evaluated question has an explicit ordinal mapping; "
                           "drop 'wd' from metrics or give ordinals")
        return _result(None, None, 0)
    ords = []
    for i in has:
        o = np.asarray(ordinals[qids[i]], dtype=float).ravel()
        if o.size != sc.T[i].size:
            raise BadInput(f"ordinals[{qids[i]!r}]: {o.size} positions for {sc.T[i].size} options")
        if not np.isfinite(o).all() or o.max() <= o.min():
            raise BadInput(f"ordinals[{qids[i]!r}]: positions must be finite and not all equal")
        ords.append(o)
    vals = core.wasserstein([sc.P[i] for i in has], [sc.T[i] for i in has], ords)
    nw = len(has)
    ix = sc.rng.integers(0, nw, size=(sc.n_boot, nw)) if sc.n_boot > 0 and nw > 1 else None
    return _mean_metric(vals, ix)


# metric name -> scorer (names are ALL_METRICS); per-question metrics are averaged with a bootstrap CI
METRIC_SCORERS: dict[str, Callable[[_Scoring], dict[str, Any]]] = {
    "mse": _mse,
    "one_minus_jsd": lambda sc: _mean_metric(core.one_minus_jsd(sc.P, sc.T), sc.idx),
    "wd": _wd,
    "majority_acc": lambda sc: _mean_metric(core.majority_match(sc.P, sc.T), sc.idx),
    "r2": _r2,
    "ecr": lambda sc: _mean_metric(core.entropy_coverage(sc.P, sc.T), sc.idx),
    "entropy": lambda sc: _mean_metric(core.normalised_entropy(sc.P), sc.idx),
    "entropy_target": lambda sc: _mean_metric(core.normalised_entropy(sc.T), sc.idx),
}
assert tuple(METRIC_SCORERS) == ALL_METRICS


def uniform_baseline(target: Mapping[str, Sequence[float] | np.ndarray], *,
                     ordinals: Mapping[str, Sequence[float] | None] | None = None,
                     metrics: Sequence[str] | None = None, n_boot: int = 1000,
                     seed: int = 0) -> dict[str, dict[str, Any]]:
    """`evaluate` of the uniform distribution on every question: the bound any panel should beat."""
    pred = {q: np.full(np.asarray(t).size, 1.0 / np.asarray(t).size) for q, t in target.items()}
    return evaluate(pred, target, ordinals=ordinals, metrics=metrics, n_boot=n_boot, seed=seed)


def survey_arrays(survey: Any, qids: Sequence[str], group: str = "overall"
                  ) -> tuple[dict[str, np.ndarray], dict[str, list[float] | None]]:
    """({qid: target vector}, {qid: ordinals or None}) for `qids` of a `Survey` group, ready for `evaluate`."""
    d = survey.distributions(group)
    tgt = {}
    for q in qids:
        if q not in d:
            raise BadInput(f"{survey.source}: group {group!r} has no distribution for {q!r}")
        tgt[q] = np.array([d[q][o] for o in survey.options(q)], dtype=float)
    return tgt, {q: survey.ordinal(q) for q in qids}
