"""Calibrate a library: fit persona weights to a survey wave (or to census margins) and report honestly.

`calibrate_library(lib, survey, ...)` reads LIB/responses.parquet (one model/mode, valid rows only), builds the
design matrix over the survey's questions, fits weights on the train questions (λ/α by CV grouped by
question, inside `fit_weights`), scores train/valid/test questions against the weighted panel, the equal-weight
panel and the uniform distribution (bootstrap CIs over questions), and writes
LIB/calibrations/NAME/{weights.parquet, report.json, report.md, predicted_vs_target.png, cv_curve.png}
through a staged directory, so a failure leaves nothing behind.

Every bad input is detected before anything is written and raised as BadInput (exit 2).
"""

from __future__ import annotations

import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.calibrate.design import (
    Design,
    attribute_design,
    attribute_options,
    attribute_targets,
    block_row_weights,
    select_responses,
    stack,
    survey_design,
)
from personagen.errors import BadInput

METHODS = ("simplex", "sparse", "p2p-lasso", "p2p-enet", "rake")
PULLS = ("l2", "kl")
BASES = ("uniform", "census")
SPLITS = ("train", "valid", "test")
CENSUS_SURVEY_ID = "census-margins"


@dataclass
class Calibration:
    """Result of a calibration: weights (persona_id, weight; sums to 1), the report dict, and where it lives."""

    weights: pl.DataFrame
    report: dict[str, Any]
    path: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict, repr=False)


# ---- helpers ------------------------------------------------------------------------------------
def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-._") or "calibration"


def kish_ess(w: np.ndarray) -> float:
    """Kish effective sample size (Σw)²/Σw² (of |w| for signed weights)."""
    a = np.abs(np.asarray(w, dtype=float))
    s2 = float((a ** 2).sum())
    return float(a.sum() ** 2 / s2) if s2 > 0 else 0.0


def _clean_dists(pred: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """Clip negative predictions (signed p2p weights) to 0 and renormalise; count questions touched."""
    out, n = {}, 0
    for q, p in pred.items():
        p = np.asarray(p, dtype=float)
        if (p < -1e-12).any() or abs(p.sum() - 1) > 1e-6:
            n += 1
            p = np.clip(p, 0, None)
            s = p.sum()
            p = p / s if s > 0 else np.full(p.size, 1.0 / p.size)
        out[q] = np.clip(p, 0, None)
    return out, n


def _score(pred: dict[str, np.ndarray], target: dict[str, np.ndarray], ordinals: dict[str, Any], *,
           n_boot: int, seed: int) -> dict[str, dict[str, Any]]:
    from personagen.metrics import evaluate

    return evaluate(pred, target, ordinals=ordinals, n_boot=n_boot, seed=seed)


def _fit(D: np.ndarray, r: np.ndarray, *, groups: np.ndarray | None, method: str, row_weights: np.ndarray | None,
         base: np.ndarray | None, pull: str, seed: int, folds: int | None, constraints: Any = None,
         lam: float | None = None, alpha: float | None = None,
         max_agents: int | None = None):  # noqa: ANN202 (FitResult)
    """Call fit_weights with the options it understands (folds/seed/constraints are optional extras)."""
    from personagen.calibrate import fit_weights

    kw: dict[str, Any] = dict(groups=groups, method=method, row_weights=row_weights, base=base, pull=pull,
                              lam=lam, alpha=alpha, seed=seed)
    if folds is not None:
        kw["folds"] = folds
    if constraints is not None:
        kw["constraints"] = constraints
    if max_agents is not None:
        kw["max_agents"] = max_agents
    return fit_weights(D, r, **kw)


def _cv_info(res: Any) -> dict[str, Any] | None:
    """The CV curve of a FitResult as {param, grid, errors, se, chosen} (whatever fields it exposes)."""
    cv = getattr(res, "cv", None)
    if cv is None:
        return None
    if not isinstance(cv, dict):
        cv = cv.to_dict() if hasattr(cv, "to_dict") else getattr(cv, "__dict__", {"value": str(cv)})
    out: dict[str, Any] = {}
    for k, v in cv.items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, np.generic):
            v = v.item()
        out[k] = v
    return out


def _result_fields(res: Any) -> dict[str, Any]:
    def f(name: str) -> Any:
        v = getattr(res, name, None)
        return v.item() if isinstance(v, np.generic) else v

    return {"lam": f("lam"), "alpha": f("alpha"), "solver": f("solver"), "n_iter": f("n_iter"),
            "solver_seconds": f("seconds"), "objective": f("objective")}


def _refit_top_k(D: np.ndarray, r: np.ndarray, w: np.ndarray, k: int, fit_kw: dict[str, Any]
                 ) -> tuple[np.ndarray, Any]:
    """Keep the k largest |weights| and refit on those personas only with the chosen λ/α (compact panel)."""
    keep = np.sort(np.argsort(-np.abs(w), kind="stable")[:k])
    base = fit_kw.get("base")
    kw = dict(fit_kw)
    if base is not None:
        b = np.asarray(base, dtype=float)[keep]
        kw["base"] = b / b.sum() if b.sum() > 0 else None
    kw["groups"] = None  # λ/α fixed: no second CV
    cons = kw.get("constraints")
    if cons is not None:
        kw["constraints"] = type(cons)(np.asarray(cons.A)[:, keep], cons.m, cons.tol)
    res = _fit(D[:, keep], r, **kw)
    full = np.zeros(D.shape[1])
    full[keep] = np.asarray(res.weights, dtype=float)
    return full, res


def _base_weights(personas: pl.DataFrame, pids: Sequence[str], base: str) -> np.ndarray:
    n = len(pids)
    if base == "uniform":
        return np.full(n, 1.0 / n)
    if "weight_census" not in personas.columns:
        raise BadInput("personas.parquet: --base census needs a weight_census column")
    wc = dict(zip(personas["persona_id"].cast(pl.String).to_list(), personas["weight_census"].to_list()))
    vals = [wc.get(p) for p in pids]
    nulls = sum(v is None or not np.isfinite(v) for v in vals)
    if nulls:
        raise BadInput(f"personas.parquet: {nulls} of {n} personas have no weight_census "
                       "(generated personas); use --base uniform")
    w = np.asarray(vals, dtype=float)
    if (w < 0).any() or w.sum() <= 0:
        raise BadInput("personas.parquet: weight_census must be nonnegative with a positive sum")
    return w / w.sum()


def _census_population(lib: Any) -> pl.DataFrame:
    """The library's census source (manifest census path), decoded, with the library's age/state filters."""
    from personagen.census import load_population

    cen = lib.manifest.get("census") or {}
    path = cen.get("path") if isinstance(cen, dict) else None
    if not path:
        raise BadInput(f"{lib.path}/manifest.json: no census source path recorded; --census-margins needs one")
    if not Path(path).exists():
        raise BadInput(f"{lib.path}/manifest.json: census source {path} does not exist")
    cfg = lib.manifest.get("config") or {}
    min_age = cfg.get("min_age", cen.get("min_age", 18))
    state = cen.get("state_code") or cen.get("state")
    try:
        return load_population(path, min_age=min_age, state=state)
    except BadInput:
        raise
    except Exception:  # noqa: BLE001 - a state label the reader does not take: read unfiltered
        return load_population(path, min_age=min_age)


def _margin_design(lib: Any, personas: pl.DataFrame, variables: Sequence[str]
                   ) -> tuple[Design, np.ndarray, dict[str, np.ndarray]]:
    bad = [v for v in variables if v not in personas.columns]
    if bad:
        raise BadInput(f"--census-margins: personas have no column(s) {', '.join(bad)}")
    pop = _census_population(lib)
    bad = [v for v in variables if v not in pop.columns]
    if bad:
        raise BadInput(f"--census-margins: census population has no column(s) {', '.join(bad)}")
    opts = attribute_options(pop, variables)
    des = attribute_design(personas, opts)
    tgt = attribute_targets(pop, opts)
    return des, stack(tgt, des.qids), tgt


def _tvd(pred: dict[str, np.ndarray], tgt: dict[str, np.ndarray]) -> dict[str, float]:
    return {q: float(0.5 * np.abs(np.asarray(pred[q]) - np.asarray(tgt[q])).sum()) for q in tgt}


# ---- the stage ----------------------------------------------------------------------------------
def calibrate_library(lib: Any, survey: Any = None, *, method: str = "simplex", group: str = "overall",
                      census_margins: str | Sequence[str] | None = None, block_weighting: bool = False,
                      pull: str = "l2", seed: int = 0, name: str | None = None, max_agents: int | None = None,
                      split_seed: int | None = None, base: str = "uniform", model: str | None = None,
                      mode: str | None = None, drop_incomplete: bool = False, folds: int | None = None,
                      n_boot: int = 1000, census_tol: float = 0.01, overwrite: bool = False,
                      write: bool = True) -> Calibration:
    """Fit persona weights of `lib` to `survey` (group `group`) and/or census margins; write the calibration.

    survey: a Survey or a path to one (None with `census_margins` = reweight to census margins only).
    census_margins: persona columns ("age_band,sex,education" or a list) whose PWGTP-weighted census shares
    are matched: alone they are the targets; with a survey they become constraints of the fit
    (each weighted category share within ±census_tol of the census share; simplex only).
    Returns Calibration(weights, report, path). Raises BadInput (nothing written) on bad input.
    """
    from personagen.library import Library
    from personagen.store import staged_dir

    if not isinstance(lib, Library):
        lib = Library.open(lib)
    if method not in METHODS:
        raise BadInput(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if pull not in PULLS:
        raise BadInput(f"--pull {pull!r}: expected one of {', '.join(PULLS)}")
    if base not in BASES:
        raise BadInput(f"--base {base!r}: expected one of {', '.join(BASES)}")
    if max_agents is not None and max_agents < 1:
        raise BadInput(f"--max-agents {max_agents}: must be at least 1")
    if isinstance(census_margins, str):
        census_margins = [v.strip() for v in census_margins.split(",") if v.strip()]
    census_margins = list(census_margins or [])
    if survey is None and not census_margins:
        raise BadInput("give --survey SURVEY or --census-margins VARS")
    if survey is not None and census_margins and method != "simplex":
        raise BadInput(f"--census-margins with --survey adds constraints to the simplex fit; not to --method {method}")
    if survey is not None and not hasattr(survey, "qids"):
        from personagen.surveys import load

        survey = load(survey)

    default = f"{method}-{CENSUS_SURVEY_ID if survey is None else survey.survey_id}-{group if survey else 'overall'}"
    nm = _slug(name or default)
    if name is not None and nm != name:
        raise BadInput(f"--name {name!r}: use letters, digits, '.', '_' or '-' only")
    existing = lib.calibration_dir(nm)
    if write and not overwrite and existing.exists() and any(existing.iterdir()):
        raise BadInput(f"{existing}: calibration {nm!r} already exists; pass --name NAME or --overwrite")
    personas = lib.personas()
    all_pids = personas["persona_id"].cast(pl.String).to_list()
    notes: list[str] = []
    t0 = time.perf_counter()

    if survey is not None:
        prep = _prepare_survey(lib, survey, personas, all_pids, group=group, split_seed=split_seed, model=model,
                               mode=mode, drop_incomplete=drop_incomplete, notes=notes)
    else:
        prep = _prepare_margins(lib, personas, all_pids, census_margins)
    des: Design = prep["design"]
    pids = des.persona_ids
    w0 = _base_weights(personas, pids, base)
    train_des: Design = prep["train"]
    r_train: np.ndarray = prep["r_train"]
    row_w = block_row_weights(train_des.rows) if block_weighting else None

    constraints = None
    margin_info: dict[str, Any] | None = None
    if survey is not None and census_margins:
        keep_idx = {p: i for i, p in enumerate(personas["persona_id"].cast(pl.String).to_list())}
        sub = personas[[keep_idx[p] for p in pids]]
        mdes, mr, mt = _margin_design(lib, sub, census_margins)
        from personagen.calibrate import MarginConstraints

        constraints = MarginConstraints(mdes.D, mr, census_tol)
        margin_info = {"variables": census_margins, "design": mdes, "targets": mt}

    fit_kw: dict[str, Any] = dict(method=method, row_weights=row_w, base=None if base == "uniform" else w0,
                                  pull=pull, seed=seed, folds=folds, constraints=constraints)
    n_q_train = len(train_des.qids)
    native_top_k = method == "sparse" and max_agents is not None
    res = _fit(train_des.D, r_train, groups=train_des.groups if n_q_train >= 2 else None,
               max_agents=max_agents if native_top_k else None, **fit_kw)
    w = np.asarray(res.weights, dtype=float)
    info = _result_fields(res)
    cv = _cv_info(res)
    if max_agents is not None and max_agents < len(w) and not native_top_k:
        w, res2 = _refit_top_k(train_des.D, r_train, w, max_agents,
                               dict(fit_kw, lam=info["lam"], alpha=info["alpha"]))
        info["solver_seconds"] = (info["solver_seconds"] or 0.0) + (getattr(res2, "seconds", 0.0) or 0.0)
        info["objective"] = getattr(res2, "objective", info["objective"])
        notes.append(f"refit on the top {max_agents} personas (max_agents) with the CV-chosen penalty")
    if not np.isfinite(w).all():
        raise RuntimeError("fit_weights returned non-finite weights")
    s = w.sum()
    if abs(s - 1) > 1e-6 and s > 0:
        w = w / s

    report = _build_report(lib, survey, prep, des, w, w0, info, cv, method=method, group=group, pull=pull,
                           base=base, block_weighting=block_weighting, seed=seed, split_seed=split_seed,
                           max_agents=max_agents, n_boot=n_boot, census_margins=census_margins,
                           margin_info=margin_info, notes=notes)
    report["seconds_total"] = round(time.perf_counter() - t0, 3)
    report = {"name": nm, **report}
    weights = pl.DataFrame({"persona_id": pids, "weight": w}, schema={"persona_id": pl.String, "weight": pl.Float64})
    cal = Calibration(weights, report, None, {"design": des, "prep": prep, "w0": w0})
    if not write:
        return cal

    from personagen.calibrate.report import write_calibration

    final = lib.calibration_dir(nm)
    final.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(final, overwrite=overwrite) as tmp:
        write_calibration(tmp, cal)
    cal.path = final
    lib.record("calibrate", name=nm, method=method, survey_id=report["survey_id"], group=report["group"],
               lam=report["lam"], alpha=report["alpha"], nonzeros=report["nonzeros"], ess=report["ess"])
    return cal


def _prepare_survey(lib: Any, survey: Any, personas: pl.DataFrame, all_pids: list[str], *, group: str,
                    split_seed: int | None, model: str | None, mode: str | None, drop_incomplete: bool,
                    notes: list[str]) -> dict[str, Any]:
    """Validate survey × responses and build the design over the survey's answered questions."""
    if split_seed is not None:
        survey = survey.with_splits(seed=split_seed)
    dist = survey.distributions(group)  # BadInput for an unknown group (lists groups)
    src = str(lib.responses_path)
    resp, model_used, mode_used = select_responses(lib.responses(), survey_id=survey.survey_id, model=model,
                                                   mode=mode, source=src)
    answered = set(resp["qid"].unique().to_list())
    unknown = sorted(answered - set(survey.qids))
    if unknown and not (answered & set(survey.qids)):
        raise BadInput(f"{src}: no question of survey {survey.survey_id!r} was answered "
                       f"(responses use qids like {unknown[0]!r})")
    qids = [q for q in survey.qids if q in answered]
    if not qids:
        raise BadInput(f"{src}: no overlap between the responses' questions and survey {survey.survey_id!r}")
    not_elicited = [q for q in survey.qids if q not in answered]
    if not_elicited:
        notes.append(f"{len(not_elicited)} survey questions have no responses and are left out")
    no_target = [q for q in qids if q not in dist]
    if no_target:
        notes.append(f"{len(no_target)} questions have no target for group {group!r} and are left out")
        qids = [q for q in qids if q in dist]
    for q in qids:
        t = np.asarray([dist[q][o] for o in survey.options(q)], dtype=float)
        if not np.isfinite(t).all():
            raise BadInput(f"{survey.source}: target of {q!r} for group {group!r} has NaN values")
        if abs(t.sum() - 1) > 1e-3:
            raise BadInput(f"{survey.source}: target of {q!r} for group {group!r} sums to {t.sum():.4f}, not 1")
    split_q = {s: [q for q in qids if survey.split_of(q) == s] for s in SPLITS}
    for s in ("train", "test"):
        if not split_q[s]:
            raise BadInput(f"{survey.source}: the {s} split has no answered questions for group {group!r} "
                           f"({len(qids)} usable questions; re-split with --split-seed or elicit --split all)")
    if len(split_q["train"]) < 2:
        raise BadInput(f"{survey.source}: the train split has 1 question; CV needs at least 2")
    des, dropped = survey_design(resp, survey, qids, all_pids, drop_incomplete=drop_incomplete, source=src)
    if dropped:
        msg = f"{len(dropped)} personas lack answers and were excluded (--drop-incomplete)"
        notes.append(msg)
        warnings.warn(msg, stacklevel=3)
    if len(des.persona_ids) < 2:
        raise BadInput(f"{src}: calibration needs at least 2 personas with answers, found {len(des.persona_ids)}")
    targets = {q: np.asarray([dist[q][o] for o in survey.options(q)], dtype=float) for q in qids}
    ordinals = {q: survey.ordinal(q) for q in qids}
    train = des.take(split_q["train"])
    return {"kind": "survey", "survey": survey, "design": des, "train": train,
            "r_train": stack(targets, train.qids), "targets": targets, "ordinals": ordinals, "splits": split_q,
            "model": model_used, "mode": mode_used, "dropped": dropped, "not_elicited": not_elicited}


def _prepare_margins(lib: Any, personas: pl.DataFrame, all_pids: list[str], variables: list[str]) -> dict[str, Any]:
    """Census margins as the only targets: every variable is a 'train' question."""
    des, r, tgt = _margin_design(lib, personas, variables)
    return {"kind": "census", "survey": None, "design": des, "train": des, "r_train": r, "targets": tgt,
            "ordinals": {q: None for q in des.qids}, "splits": {"train": list(des.qids), "valid": [], "test": []},
            "model": None, "mode": None, "dropped": [], "not_elicited": []}


def _build_report(lib: Any, survey: Any, prep: dict[str, Any], des: Design, w: np.ndarray, w0: np.ndarray,
                  info: dict[str, Any], cv: dict[str, Any] | None, *, method: str, group: str, pull: str, base: str,
                  block_weighting: bool, seed: int, split_seed: int | None, max_agents: int | None, n_boot: int,
                  census_margins: list[str], margin_info: dict[str, Any] | None, notes: list[str]
                  ) -> dict[str, Any]:
    from personagen.store import now_iso

    n = len(w)
    uni = np.full(n, 1.0 / n)
    targets, ordinals = prep["targets"], prep["ordinals"]
    metrics: dict[str, Any] = {}
    baselines: dict[str, dict[str, Any]] = {"uniform_average": {}, "uniform_distribution": {}}
    if base == "census":
        baselines["census_base"] = {}
    pred_all, n_clipped = _clean_dists(des.predict(w))
    pred_uni, _ = _clean_dists(des.predict(uni))
    pred_base, _ = _clean_dists(des.predict(w0))
    for s in SPLITS:
        qs = prep["splits"].get(s) or []
        if not qs:
            continue
        tgt = {q: targets[q] for q in qs}
        ords = {q: ordinals.get(q) for q in qs}
        metrics[s] = _score({q: pred_all[q] for q in qs}, tgt, ords, n_boot=n_boot, seed=seed)
        baselines["uniform_average"][s] = _score({q: pred_uni[q] for q in qs}, tgt, ords, n_boot=n_boot, seed=seed)
        baselines["uniform_distribution"][s] = _score({q: np.full(len(tgt[q]), 1.0 / len(tgt[q])) for q in qs},
                                                      tgt, ords, n_boot=n_boot, seed=seed)
        if base == "census":
            baselines["census_base"][s] = _score({q: pred_base[q] for q in qs}, tgt, ords, n_boot=n_boot, seed=seed)
    tol = 1e-9
    nonzeros = int((np.abs(w) > tol).sum())
    rep: dict[str, Any] = {
        "method": method,
        "survey_id": survey.survey_id if survey is not None else CENSUS_SURVEY_ID,
        "group": group if survey is not None else "overall",
        "created": now_iso(),
        "lam": info["lam"], "alpha": info["alpha"],
        "n_personas": n, "nonzeros": nonzeros, "ess": kish_ess(w), "ess_uniform": float(n),
        "negative_weights": int((w < -tol).sum()),
        "max_weight": float(np.max(w)) if n else 0.0,
        "solver": info["solver"], "solver_seconds": info["solver_seconds"], "n_iter": info["n_iter"],
        "objective": info["objective"],
        "pull": pull, "base": base, "block_weighting": block_weighting, "seed": seed, "split_seed": split_seed,
        "max_agents": max_agents, "model": prep["model"], "mode": prep["mode"],
        "n_questions": {s: len(prep["splits"].get(s) or []) for s in SPLITS},
        "dropped_personas": len(prep["dropped"]), "questions_not_elicited": len(prep["not_elicited"]),
        "metrics": metrics, "baselines": baselines,
        "cv": cv,
        "census_margins": census_margins or None,
        "notes": notes,
    }
    if n_clipped:
        rep["notes"].append(f"{n_clipped} predicted distributions had negative entries (signed weights); "
                            "clipped at 0 and renormalised for scoring")
    if "train" in metrics and "test" in metrics:
        tr, te = metrics["train"]["mse"]["value"], metrics["test"]["mse"]["value"]
        ua = baselines["uniform_average"]["test"]["mse"]["value"]
        rep["overfit"] = {"train_mse": tr, "test_mse": te, "test_over_train": (te / tr) if tr else None,
                          "test_vs_uniform_average": (te / ua) if ua else None}
    if prep["kind"] == "census":
        rep["margins_tvd"] = {"before": _tvd(pred_uni, targets), "after": _tvd(pred_all, targets)}
        if base == "census":
            rep["margins_tvd"]["base"] = _tvd(pred_base, targets)
    if margin_info is not None:
        md: Design = margin_info["design"]
        rep["margins_tvd"] = {"before": _tvd(md.predict(uni), margin_info["targets"]),
                              "after": _tvd(md.predict(w), margin_info["targets"])}
    return rep

