"""`bench census` (docs/design.md §7): does calibration on some census variables fix the held-out ones?

A pool of adults drawn *uniformly* from one state's PUMS persons (ignoring PWGTP) is a biased sample of the
state. The targets are the PWGTP-weighted shares of that state's variables, each recast as a question whose
"answers" are the personas' own one-hot attributes. Weights are fitted on the calibration variables only and
scored on the held-out variables, for:

* simplex       — the default: simplex with the l2 pull, λ by K-fold CV grouped by variable;
* simplex-lam0  — the pure simplex fit (λ = 0): sparse, and overfits the calibration margins;
* sparse        — nonnegative lasso, α by CV, normalised;
* rake          — iterative proportional fitting to the calibration margins (the survey statistician's baseline);
* uniform       — no weighting (equal weights on the pool).

Single pools of 1,000 are noisy (the sampling error of the held-out shares is as large as the bias), so
`seeds` runs several pools and the summary averages over them (ratios are ratios of mean MSEs).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from personagen.calibrate import block_row_weights, fit_weights
from personagen.calibrate.design import attribute_design, attribute_options, attribute_targets, stack
from personagen.census import load_population
from personagen.errors import BadInput
from personagen.metrics import evaluate, kish_ess

CALIB_VARS: tuple[str, ...] = ("age_band", "sex", "race", "hispanic", "education", "marital_status")
TEST_VARS: tuple[str, ...] = ("employment", "class_of_worker", "income_band", "citizenship", "nativity",
                              "veteran", "disability", "health_insurance")
EXTRA_VARS: tuple[str, ...] = ("language", "english_ability", "dis_cognitive", "dis_ambulatory")
ORDINAL_VARS: tuple[str, ...] = ("age_band", "education", "income_band")
# benchmark arm -> fit_weights options (a registry, not an if/elif chain); "uniform" is equal weights, no fit
FIT_OPTIONS: dict[str, dict[str, Any]] = {
    "simplex": {"method": "simplex"},
    "simplex-lam0": {"method": "simplex", "lam": 0.0},
    "sparse": {"method": "sparse"},
    "rake": {"method": "rake"},
}
METHODS: tuple[str, ...] = (*FIT_OPTIONS, "uniform")

EDUCATION_ORDER = ("Less than high school", "High school or GED", "Some college or associate's",
                   "Bachelor's degree", "Graduate or professional degree")


def _education(label: str | None) -> str | None:
    """Collapse the 24 PUMS SCHL levels to 5 ordered ones (tiny cells would only add noise rows)."""
    if label is None:
        return None
    s = label.lower()
    if "high school diploma" in s or "ged" in s:
        return EDUCATION_ORDER[1]
    if "some college" in s or "associate" in s:
        return EDUCATION_ORDER[2]
    if "bachelor" in s and "beyond" not in s:
        return EDUCATION_ORDER[3]
    if "master" in s or "doctorate" in s or "professional" in s:
        return EDUCATION_ORDER[4]
    return EDUCATION_ORDER[0]


def _income_key(label: str) -> float:
    if label.lower().startswith("no income") or "loss" in label.lower():
        return -1.0
    m = re.search(r"\$([\d,]+)", label)
    return float(m.group(1).replace(",", "")) if m else float("inf")


def recode(pop: pl.DataFrame) -> pl.DataFrame:
    """Benchmark coding of decoded PUMS persons: coarse education, Hispanic yes/no, language 3 levels."""
    cols = []
    if "education" in pop.columns:
        cols.append(pl.col("education").map_elements(_education, return_dtype=pl.String).alias("education"))
    if "hispanic" in pop.columns:
        cols.append(pl.when(pl.col("hispanic").is_null()).then(None)
                    .when(pl.col("hispanic").str.starts_with("Not")).then(pl.lit("Not Hispanic"))
                    .otherwise(pl.lit("Hispanic")).alias("hispanic"))
    if "language" in pop.columns:
        cols.append(pl.when(pl.col("language").is_null()).then(None)
                    .when(pl.col("language") == "English only").then(pl.lit("English only"))
                    .when(pl.col("language") == "Spanish").then(pl.lit("Spanish"))
                    .otherwise(pl.lit("Other language")).alias("language"))
    return pop.with_columns(cols) if cols else pop


def ordinal_orders(pop: pl.DataFrame, variables: Sequence[str]) -> dict[str, list[str]]:
    """Option order of the ordinal variables present (age band, education, income band)."""
    out: dict[str, list[str]] = {}
    for v in variables:
        if v not in ORDINAL_VARS or v not in pop.columns:
            continue
        cats = [c for c in pop[v].drop_nulls().unique().to_list()]
        if v == "education":
            out[v] = [c for c in EDUCATION_ORDER if c in cats] + sorted(set(cats) - set(EDUCATION_ORDER))
        elif v == "income_band":
            out[v] = sorted(cats, key=_income_key)
        else:
            out[v] = sorted(cats)
    return out


def _metrics(des: Any, targets: dict[str, np.ndarray], w: np.ndarray, ordinals: dict[str, Any]) -> dict[str, float]:

    pred = des.predict(w)
    pred = {q: np.clip(p, 0, None) / max(np.clip(p, 0, None).sum(), 1e-300) for q, p in pred.items()}
    ev = evaluate(pred, {q: targets[q] for q in des.qids}, ordinals=ordinals, n_boot=0,
                  metrics=("mse", "one_minus_jsd", "wd"))
    return {"mse": ev["mse"]["value"], "one_minus_jsd": ev["one_minus_jsd"]["value"], "wd": ev["wd"]["value"]}


def _fit(method: str, D: np.ndarray, r: np.ndarray, groups: np.ndarray, seed: int, folds: int | None,
         block_weighting: bool) -> tuple[np.ndarray, dict[str, Any]]:
    n = D.shape[1]
    if method == "uniform":
        return np.full(n, 1.0 / n), {"lam": None, "alpha": None, "seconds": 0.0, "solver": None}
    if method not in FIT_OPTIONS:
        raise BadInput(f"bench census: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    kw: dict[str, Any] = {"groups": groups, "seed": seed, **FIT_OPTIONS[method]}
    if folds is not None:
        kw["folds"] = folds
    if block_weighting:
        kw["row_weights"] = block_row_weights(groups)
    res = fit_weights(D, r, **kw)
    w = np.asarray(res.weights, dtype=float)
    w = w / w.sum() if w.sum() > 0 else w
    info = {"lam": getattr(res, "lam", None), "alpha": getattr(res, "alpha", None),
            "seconds": float(getattr(res, "seconds", 0.0) or 0.0), "solver": getattr(res, "solver", None)}
    return w, {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()}


def _check_args(calib_vars: list[str], test_vars: list[str], methods: Sequence[str], pool_size: int) -> None:
    if not calib_vars or not test_vars:
        raise BadInput("bench census: need at least one calibration and one held-out variable")
    both = set(calib_vars) & set(test_vars)
    if both:
        raise BadInput(f"bench census: variable(s) {', '.join(sorted(both))} are both calibrated and held out")
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise BadInput(f"bench census: unknown method {bad[0]!r}; expected one of {', '.join(METHODS)}")
    if pool_size < 10:
        raise BadInput(f"--pool-size {pool_size}: need at least 10 personas")


def _mean_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(k: str) -> float | None:
        v = [x[k] for x in rows if x[k] is not None]
        return float(np.mean(v)) if v else None

    return {"test_mse": mean("test_mse"), "test_one_minus_jsd": mean("test_one_minus_jsd"),
            "test_wd": mean("test_wd"), "train_mse": mean("train_mse"), "nonzeros": mean("nonzeros"),
            "ess": mean("ess"), "lam": [x["lam"] for x in rows], "alpha": [x["alpha"] for x in rows],
            "seconds": mean("seconds"), "per_seed": rows}


def run_census_bench(census: str | os.PathLike, *, pool_size: int = 1000, seeds: Sequence[int] = (0,),
                     calib_vars: Sequence[str] = CALIB_VARS, test_vars: Sequence[str] = TEST_VARS,
                     methods: Sequence[str] = METHODS, min_age: int = 18, folds: int | None = None,
                     block_weighting: bool = False, population: pl.DataFrame | None = None) -> dict[str, Any]:
    """Run the census benchmark on one PUMS file; returns the JSON-ready result (per method, mean over seeds)."""
    calib_vars, test_vars = list(calib_vars), list(test_vars)
    _check_args(calib_vars, test_vars, methods, pool_size)
    t_start = time.perf_counter()
    if population is None:
        population = load_population(census, min_age=min_age)
    pop = recode(population)
    missing = [v for v in calib_vars + test_vars if v not in pop.columns]
    if missing:
        raise BadInput(f"{census}: census population has no column(s) {', '.join(missing)}")
    if pop.height < pool_size:
        raise BadInput(f"{census}: only {pop.height} adults, fewer than --pool-size {pool_size}")
    state = pop["state"].drop_nulls().mode().to_list()[0] if "state" in pop.columns and pop["state"].null_count() \
        < pop.height else None
    orders = ordinal_orders(pop, calib_vars + test_vars)
    opts_c = attribute_options(pop, calib_vars, orders)
    opts_t = attribute_options(pop, test_vars, orders)
    tgt_c = attribute_targets(pop, opts_c)
    tgt_t = attribute_targets(pop, opts_t)
    ords_t = {v: (list(range(len(opts_t[v]))) if v in orders else None) for v in test_vars}
    ords_c = {v: (list(range(len(opts_c[v]))) if v in orders else None) for v in calib_vars}

    per_seed: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
    for seed in seeds:
        pool = pop.sample(n=pool_size, seed=int(seed), shuffle=True).with_row_index("persona_id")
        pool = pool.with_columns(pl.col("persona_id").cast(pl.String))
        dc = attribute_design(pool, opts_c)
        dt = attribute_design(pool, opts_t)
        r = stack(tgt_c, dc.qids)
        for m in methods:
            t0 = time.perf_counter()
            w, info = _fit(m, dc.D, r, dc.groups, int(seed), folds, block_weighting)
            wall = time.perf_counter() - t0
            te = _metrics(dt, tgt_t, w, ords_t)
            tr = _metrics(dc, tgt_c, w, ords_c)
            a = np.abs(w)
            per_seed[m].append({
                "seed": int(seed), "test_mse": te["mse"], "test_one_minus_jsd": te["one_minus_jsd"],
                "test_wd": te["wd"], "train_mse": tr["mse"], "nonzeros": int((a > 1e-9).sum()),
                "ess": kish_ess(w), "lam": info["lam"], "alpha": info["alpha"],
                "seconds": wall,
            })
    out_methods = {m: _mean_over_seeds(rows) for m, rows in per_seed.items()}
    ratios: dict[str, Any] = {}
    if "uniform" in out_methods:
        u = out_methods["uniform"]["test_mse"]
        ratios["test_mse_vs_uniform"] = {m: v["test_mse"] / u for m, v in out_methods.items() if u}
    if "rake" in out_methods:
        rk = out_methods["rake"]["test_mse"]
        ratios["test_mse_vs_rake"] = {m: v["test_mse"] / rk for m, v in out_methods.items() if rk}
    return {
        "bench": "census", "census": str(census), "state": state, "adults": pop.height, "pool_size": pool_size,
        "seeds": [int(s) for s in seeds], "calib_vars": calib_vars, "test_vars": test_vars,
        "n_rows": {"calib": int(sum(len(v) for v in opts_c.values())), "test": int(sum(len(v) for v in opts_t.values()))},
        "block_weighting": block_weighting, "methods": out_methods, "ratios": ratios,
        "seconds": round(time.perf_counter() - t_start, 3),
    }


def format_table(result: dict[str, Any]) -> str:
    """Plain-text table of one `run_census_bench` result."""
    head = (f"{result.get('state') or result['census']}: pool {result['pool_size']} of {result['adults']} adults, "
            f"seeds {result['seeds']}, calibrate on {len(result['calib_vars'])} variables, "
            f"test on {len(result['test_vars'])}")
    lines = [head, f"{'method':14s} {'test MSE':>10s} {'vs unif':>8s} {'vs rake':>8s} {'1-JSD':>7s} {'WD':>7s} "
                   f"{'train MSE':>10s} {'nonzero':>8s} {'ESS':>7s}  λ (per seed)"]
    ru = result["ratios"].get("test_mse_vs_uniform", {})
    rr = result["ratios"].get("test_mse_vs_rake", {})
    for m, v in result["methods"].items():
        lam = ",".join("–" if x is None else f"{x:.2g}" for x in v["lam"])

        def f(x: Any, spec: str) -> str:
            return "–" if x is None else format(x, spec)

        lines.append(f"{m:14s} {f(v['test_mse'], '10.3e')} {f(ru.get(m), '8.2f')} {f(rr.get(m), '8.2f')} "
                     f"{f(v['test_one_minus_jsd'], '7.4f')} {f(v['test_wd'], '7.4f')} {f(v['train_mse'], '10.3e')} "
                     f"{f(v['nonzeros'], '8.1f')} {f(v['ess'], '7.1f')}  {lam}")
    return "\n".join(lines)
