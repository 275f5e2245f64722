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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.calibrate.caveats import calibration_caveats
from personagen.calibrate.constraints import MarginConstraints
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
from personagen.calibrate.fit import FitResult, fit_weights
from personagen.calibrate.honesty import honesty_notes
from personagen.calibrate.names import BASES, METHODS, PULLS, SEARCHES
from personagen.calibrate.replicates import (
    DEFAULT_REPLICATES,
    REPLICATE_PENALTIES,
    Replicates,
    check_replicates,
    half_sample_replicates,
)
from personagen.calibrate.report import write_calibration
from personagen.calibration_report import CalibrationReport, ReplicateInfo, weights_summary
from personagen.census import check_same_states, load_population, manifest_census
from personagen.errors import BadInput
from personagen.library import Library
from personagen.locking import library_lock
from personagen.metrics import evaluate, tvd
from personagen.names import safe_name
from personagen.options import caller_stacklevel, options_record, stage_options
from personagen.store import now_iso, staged_dir
from personagen.surveys import SPLITS, Survey
from personagen.surveys import load as load_survey

CENSUS_SURVEY_ID = "census-margins"


@dataclass(frozen=True)
class CalibrateOptions:
    """Every option of `calibrate_library` (docs/design.md §3 `calibrate`), validated once when built.

    census_margins may be given as "age_band,sex" or a sequence; it is kept as a tuple of column names.
    """

    method: str = "simplex"
    group: str = "overall"
    census_margins: tuple[str, ...] | str | None = ()
    block_weighting: bool = False
    pull: str = "l2"
    seed: int = 0
    name: str | None = None
    max_agents: int | None = None
    split_seed: int | None = None
    base: str = "uniform"
    model: str | None = None
    mode: str | None = None
    drop_incomplete: bool = False
    folds: int | None = None
    lam_search: str = "refine"
    n_boot: int = 1000
    census_tol: float = 0.01
    overwrite: bool = False
    write: bool = True
    replicates: int = DEFAULT_REPLICATES
    replicate_penalty: str = "fixed"

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicates", check_replicates(self.replicates))
        choices = {"replicate_penalty": REPLICATE_PENALTIES, "method": METHODS, "pull": PULLS, "base": BASES,
                   "lam_search": SEARCHES}
        for name, allowed in choices.items():  # messages name the Python argument; the CLI shows its flag
            if getattr(self, name) not in allowed:
                raise BadInput(f"{name} {getattr(self, name)!r}: expected one of {', '.join(allowed)}", field=name)
        if self.max_agents is not None and self.max_agents < 1:
            raise BadInput(f"max_agents {self.max_agents}: must be at least 1", field="max_agents")
        if self.folds is not None and self.folds < 2:
            raise BadInput(f"folds {self.folds}: cross-validation needs at least 2 folds", field="folds")
        if self.n_boot < 0:
            raise BadInput(f"n_boot {self.n_boot}: must be nonnegative", field="n_boot")
        if not 0 <= self.census_tol < 1:
            raise BadInput(f"census_tol {self.census_tol}: must be in [0, 1)", field="census_tol")
        cm = self.census_margins
        if isinstance(cm, str):
            cm = [v.strip() for v in cm.split(",") if v.strip()]
        object.__setattr__(self, "census_margins", tuple(cm or ()))


@dataclass(frozen=True)
class Prepared:
    """What a calibration fits and scores: the design over the usable questions and everything around it.

    kind: "survey" or "census" (margins only); train: the design restricted to the train questions, with
    r_train its stacked targets; targets/ordinals per question id; splits: split name -> question ids;
    model/mode: the responses used; dropped: persona ids left out; not_elicited: survey questions without answers.
    """

    kind: str
    survey: Survey | None
    design: Design
    train: Design
    r_train: np.ndarray
    targets: dict[str, np.ndarray]
    ordinals: dict[str, Any]
    splits: dict[str, list[str]]
    model: str | None = None
    mode: str | None = None
    dropped: list[str] = field(default_factory=list)
    not_elicited: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Margins:
    """Census margins used as constraints of a survey fit: the columns, their design and the census shares."""

    variables: list[str]
    design: Design
    targets: dict[str, np.ndarray]


@dataclass(frozen=True)
class _Fitted:
    """The fitted weights and the fit's figures that the report carries."""

    weights: np.ndarray
    lam: float | None
    alpha: float | None
    solver: str
    n_iter: int
    solver_seconds: float
    objective: float
    cv: dict[str, Any] | None
    l1_ratio: float | None = None


@dataclass
class Calibration:
    """Result of a calibration: weights (persona_id, weight; sums to 1), its report, and where it lives."""

    weights: pl.DataFrame
    report: CalibrationReport
    path: Path | None = None
    prepared: Prepared | None = field(default=None, repr=False)
    w0: np.ndarray | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """The calibration's name (its folder under LIB/calibrations)."""
        return self.report.name


# ---- helpers ------------------------------------------------------------------------------------
def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", s).strip("-._") or "calibration"


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
    return evaluate(pred, target, ordinals=ordinals, n_boot=n_boot, seed=seed)


def _json_ready(cv: dict[str, Any] | None) -> dict[str, Any] | None:
    """A FitResult.cv dict (CVCurve.to_dict) with numpy scalars/arrays turned into plain numbers and lists."""
    if cv is None:
        return None
    return {k: v.tolist() if isinstance(v, np.ndarray | np.generic) else v for k, v in cv.items()}


def _refit_top_k(D: np.ndarray, r: np.ndarray, w: np.ndarray, k: int, fit_kw: dict[str, Any]) -> tuple[np.ndarray,
                                                                                                         FitResult]:
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
    res = fit_weights(D[:, keep], r, **kw)
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


def _census_population(lib: Library) -> pl.DataFrame:
    """The library's census source (manifest census path), decoded, with the library's age/state filters."""
    src = manifest_census(lib.manifest, lib.path / "manifest.json")
    path = src["path"]
    if not path:
        raise BadInput(f"{lib.path}/manifest.json: no census source path recorded; --census-margins needs one")
    if not Path(path).exists():
        raise BadInput(f"{lib.path}/manifest.json: census source {path} does not exist")
    return load_population(path, min_age=18 if src["min_age"] is None else src["min_age"], state=src["data_state"])


def _margin_design(lib: Library, personas: pl.DataFrame, variables: Sequence[str]
                   ) -> tuple[Design, np.ndarray, dict[str, np.ndarray]]:
    bad = [v for v in variables if v not in personas.columns]
    if bad:
        raise BadInput(f"census_margins: personas have no column(s) {', '.join(bad)}", field="census_margins")
    pop = _census_population(lib)
    check_same_states(personas, pop, manifest_census(lib.manifest, lib.path)["path"], lib.path)
    bad = [v for v in variables if v not in pop.columns]
    if bad:
        raise BadInput(f"census_margins: census population has no column(s) {', '.join(bad)}",
                       field="census_margins")
    opts = attribute_options(pop, variables)
    des = attribute_design(personas, opts)
    tgt = attribute_targets(pop, opts)
    return des, stack(tgt, des.qids), tgt


def _tvd_per_question(pred: dict[str, np.ndarray], tgt: dict[str, np.ndarray]) -> dict[str, float]:
    return {q: tvd(pred[q], tgt[q]) for q in tgt}


# ---- the stage ----------------------------------------------------------------------------------
def calibrate_library(lib: Library | str | Path, survey: Survey | str | Path | None = None,
                      options: CalibrateOptions | None = None, **deprecated: Any) -> Calibration:
    """Fit persona weights of `lib` to `survey` (group `group`) and/or census margins; write the calibration.

    survey: a Survey or a path to one (None with `census_margins` = reweight to census margins only).
    options: a `CalibrateOptions` (None: the defaults; keyword arguments instead are deprecated, one release),
    recorded whole in the manifest entry (`options`). census_margins: persona columns ("age_band,sex,education" or a
    list) whose PWGTP-weighted census shares are matched: alone they are the targets; with a survey they become
    constraints of the fit (each weighted category share within ±census_tol of the census share; simplex only).
    Returns Calibration(weights, report, path). Raises BadInput (nothing written) on bad input.
    """
    if not isinstance(lib, Library):
        lib = Library.open(lib)
    o = stage_options(CalibrateOptions, options, deprecated, "calibrate_library")
    survey = _check_survey(survey, o)
    nm = _calibration_name(lib, survey, o)
    personas = lib.personas()
    all_pids = personas["persona_id"].cast(pl.String).to_list()
    notes: list[str] = []
    t0 = time.perf_counter()
    if survey is not None:
        prep = _prepare_survey(lib, survey, personas, all_pids, o, notes)
    else:
        prep = _prepare_margins(lib, personas, list(o.census_margins))
    pids = prep.design.persona_ids
    w0 = _base_weights(personas, pids, o.base)
    constraints, margin_info = None, None
    if survey is not None and o.census_margins:
        constraints, margin_info = _margin_constraints(lib, personas, pids, o)
    fitted = _fit_train(prep, w0, constraints, o, notes)
    reps = _replicate(prep, fitted, w0, constraints, o)
    fields = _build_report(survey, prep, fitted, w0, o, margin_info, notes)
    fields["seconds_total"] = round(time.perf_counter() - t0, 3)
    report = _with_caveats({"name": nm, **fields}, reps, len(all_pids), prep)
    weights = _weights_frame(all_pids, pids, fitted.weights, reps)
    cal = Calibration(weights, report, None, prepared=prep, w0=w0)
    return _write(lib, cal, nm, o) if o.write else cal


def _with_caveats(fields: dict[str, Any], reps: Replicates | None, n_built: int, prep: Prepared
                  ) -> CalibrationReport:
    """The report with replicates, personas asked vs built and the caveats; each caveat is also a UserWarning."""
    fields["replicates"] = ReplicateInfo(**reps.info()) if reps is not None else ReplicateInfo(0)
    fields["personas_built"] = n_built
    fields["personas_asked"] = len(prep.design.persona_ids)
    report = CalibrationReport(**{**fields, "notes": tuple(fields["notes"])})
    report = replace(report, caveats=tuple(calibration_caveats(report, census=prep.kind == "census")))
    for c in report.caveats:
        warnings.warn(c, stacklevel=caller_stacklevel())  # the user's line, in a notebook too
    return report


def _weights_frame(all_pids: list[str], pids: Sequence[str], w: np.ndarray, reps: Replicates | None
                   ) -> pl.DataFrame:
    """persona_id, weight, asked (False: never fitted, weight 0 by construction), rep_1..rep_R; every persona
    of the library, the fitted ones first in design order."""
    fitted = set(pids)
    rest = [p for p in all_pids if p not in fitted]
    n, m = len(pids), len(rest)
    cols: dict[str, Any] = {"persona_id": list(pids) + rest,
                            "weight": np.concatenate([w, np.zeros(m)]),
                            "asked": np.concatenate([np.ones(n, bool), np.zeros(m, bool)])}
    if reps is not None:
        for b in range(reps.r):
            cols[f"rep_{b + 1}"] = np.concatenate([reps.weights[:, b], np.zeros(m)])
    return pl.DataFrame(cols).with_columns(pl.col("persona_id").cast(pl.String))


def _check_survey(survey: Survey | str | Path | None, o: CalibrateOptions) -> Survey | None:
    if survey is None and not o.census_margins:
        raise BadInput("give --survey SURVEY or --census-margins VARS")
    if survey is not None and o.census_margins and o.method != "simplex":
        raise BadInput(f"census_margins with a survey adds constraints to the simplex fit; not to method {o.method}",
                       field="census_margins")
    if survey is not None and not hasattr(survey, "qids"):
        survey = load_survey(survey)
    return survey


def _calibration_name(lib: Library, survey: Survey | None, o: CalibrateOptions) -> str:
    sid = CENSUS_SURVEY_ID if survey is None else survey.survey_id
    default = f"{o.method}-{sid}-{o.group if survey else 'overall'}"
    nm = _slug(default) if o.name is None else safe_name(o.name, "--name")
    existing = lib.calibration_dir(nm)
    if o.write and existing.parent.exists() and not existing.parent.is_dir():
        raise BadInput(f"{existing.parent}: is a file where the library's calibrations folder belongs")
    if o.write and not o.overwrite and existing.exists() and any(existing.iterdir()):
        raise BadInput(f"{existing}: calibration {nm!r} already exists; pass --name NAME or --overwrite")
    return nm


def _margin_constraints(lib: Library, personas: pl.DataFrame, pids: Sequence[str], o: CalibrateOptions
                        ) -> tuple[MarginConstraints, _Margins]:
    """Census margins as constraints of a survey fit, over the personas in the design."""
    keep_idx = {p: i for i, p in enumerate(personas["persona_id"].cast(pl.String).to_list())}
    sub = personas[[keep_idx[p] for p in pids]]
    variables = list(o.census_margins)
    mdes, mr, mt = _margin_design(lib, sub, variables)
    return MarginConstraints(mdes.D, mr, o.census_tol), _Margins(variables, mdes, mt)


def _fit_kwargs(prep: Prepared, w0: np.ndarray, constraints: MarginConstraints | None,
                o: CalibrateOptions) -> dict[str, Any]:
    """The keyword options of `fit_weights` for this calibration (penalty left to CV)."""
    row_w = block_row_weights(prep.train.groups) if o.block_weighting else None
    fit_kw: dict[str, Any] = dict(method=o.method, row_weights=row_w, base=None if o.base == "uniform" else w0,
                                  pull=o.pull, seed=o.seed, constraints=constraints)
    if o.method == "simplex" and constraints is None:
        fit_kw["lam_search"] = o.lam_search
    if o.folds is not None:
        fit_kw["folds"] = o.folds
    return fit_kw


def _fit_train(prep: Prepared, w0: np.ndarray, constraints: MarginConstraints | None, o: CalibrateOptions,
               notes: list[str]) -> _Fitted:
    """Fit on the train questions (CV inside fit_weights), then the optional top-k refit; weights sum to 1."""
    train = prep.train
    fit_kw = _fit_kwargs(prep, w0, constraints, o)
    native_top_k = o.method == "sparse" and o.max_agents is not None
    res = fit_weights(train.D, prep.r_train, groups=train.groups if len(train.qids) >= 2 else None,
                      max_agents=o.max_agents if native_top_k else None, **fit_kw)
    w = np.asarray(res.weights, dtype=float)
    seconds, objective = res.seconds, res.objective
    if o.max_agents is not None and o.max_agents < len(w) and not native_top_k:
        w, res2 = _refit_top_k(train.D, prep.r_train, w, o.max_agents, dict(fit_kw, lam=res.lam, alpha=res.alpha))
        seconds, objective = seconds + res2.seconds, res2.objective
        notes.append(f"refit on the top {o.max_agents} personas (max_agents) with the CV-chosen penalty")
    if not np.isfinite(w).all():
        raise RuntimeError("fit_weights returned non-finite weights")
    s = w.sum()
    if abs(s - 1) > 1e-6 and s > 0:
        w = w / s
    return _Fitted(w, res.lam, res.alpha, res.solver, res.n_iter, seconds, objective, _json_ready(res.cv),
                   res.l1_ratio)


def _replicate(prep: Prepared, fitted: _Fitted, w0: np.ndarray, constraints: MarginConstraints | None,
               o: CalibrateOptions) -> Replicates | None:
    """Half-sample replicate weights: the same estimator on half-samples of personas, at the chosen penalty or
    with the penalty chosen again by CV in every replicate (replicate_penalty="cv": R times the CV's cost)."""
    if o.replicates == 0:
        return None
    train = prep.train
    cv = o.replicate_penalty == "cv" and len(train.qids) >= 2
    kw = _fit_kwargs(prep, w0, constraints, o)
    if not cv:
        kw.pop("lam_search", None)
        kw.pop("folds", None)
        kw.update(lam=fitted.lam, alpha=fitted.alpha)
        if o.method == "p2p-enet":
            kw["l1_ratio"] = fitted.l1_ratio
    needs_groups = cv or o.method == "rake" or o.method.startswith("p2p")
    native_top_k = o.method == "sparse" and o.max_agents is not None

    def refit(idx: np.ndarray) -> np.ndarray:
        k = dict(kw)
        if kw["base"] is not None:
            k["base"] = w0[idx] / w0[idx].sum() if w0[idx].sum() > 0 else None
        if constraints is not None:
            k["constraints"] = type(constraints)(np.asarray(constraints.A)[:, idx], constraints.m, constraints.tol)
        D = train.D[:, idx]
        res = fit_weights(D, prep.r_train, groups=train.groups if needs_groups else None,
                          max_agents=o.max_agents if native_top_k else None, **k)
        w = np.asarray(res.weights, dtype=float)
        if o.max_agents is not None and o.max_agents < len(w) and not native_top_k:
            w, _ = _refit_top_k(D, prep.r_train, w, o.max_agents, dict(k, lam=res.lam, alpha=res.alpha))
        return w

    return half_sample_replicates(train.D.shape[1], o.replicates, o.seed, refit, full=fitted.weights,
                                  penalty="cv" if cv else "fixed")


def _write(lib: Library, cal: Calibration, nm: str, o: CalibrateOptions) -> Calibration:
    """Write LIB/calibrations/NAME through a staged directory and record the run in the manifest."""
    final = lib.calibration_dir(nm)
    report = cal.report
    with library_lock(lib.path):  # one writer at a time: the calibration folder and its history entry
        final.parent.mkdir(parents=True, exist_ok=True)
        with staged_dir(final, overwrite=o.overwrite) as tmp:
            write_calibration(tmp, cal)
        cal.path = final
        lib.record("calibrate", name=nm, method=o.method, survey_id=report.survey_id, group=report.group,
                   lam=report.lam, alpha=report.alpha, nonzeros=report.nonzeros, ess=report.ess,
                   options=options_record(o))
    return cal


def _prepare_survey(lib: Library, survey: Survey, personas: pl.DataFrame, all_pids: list[str], o: CalibrateOptions,
                    notes: list[str]) -> Prepared:
    """Validate survey × responses and build the design over the survey's answered questions."""
    if o.split_seed is not None:
        survey = survey.with_splits(seed=o.split_seed)
    group = o.group
    if group not in survey.groups():  # the Python argument `group` (the CLI's --target)
        raise BadInput(f"group {group!r}: not in survey {survey.source} (groups: {', '.join(survey.groups()[:12])})",
                       field="group")
    dist = survey.distributions(group)
    src = str(lib.responses_path)
    resp, model_used, mode_used = select_responses(lib.responses(), survey_id=survey.survey_id, model=o.model,
                                                   mode=o.mode, source=src)
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
        notes.append(f"{len(not_elicited)} of {len(survey.qids)} survey questions have no valid answers (not "
                     "elicited, or every answer invalid: a lower elicit --min-mass may recover them) and are "
                     "left out")
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
        raise BadInput(f"{survey.source}: the train split has 1 question; CV needs at least 2 (elicit more "
                       "questions, re-split with --split-seed, or lower elicit --min-mass to recover invalid ones)")
    des, dropped = survey_design(resp, survey, qids, all_pids, drop_incomplete=o.drop_incomplete, source=src)
    if dropped:
        msg = f"{len(dropped)} personas lack answers and were excluded (--drop-incomplete)"
        notes.append(msg)
        warnings.warn(msg, stacklevel=caller_stacklevel())
    if len(des.persona_ids) < 2:
        raise BadInput(f"{src}: calibration needs at least 2 personas with answers, found {len(des.persona_ids)} "
                       "(elicit more personas, or lower elicit --min-mass to re-score invalid answers)")
    # P2P stage 2 (paper 000, §3.1) fits on Q_train ∪ Q_valid and reports on Q_test
    fit_splits = ("train", "valid") if o.method.startswith("p2p") else ("train",)
    if len(fit_splits) > 1:
        notes.append(f"fitted on the {' + '.join(fit_splits)} questions (P2P stage 2), reported on test")
    targets = {q: np.asarray([dist[q][opt] for opt in survey.options(q)], dtype=float) for q in qids}
    ordinals = {q: survey.ordinal(q) for q in qids}
    train = des.take([q for s in fit_splits for q in split_q[s]])
    return Prepared("survey", survey, des, train, stack(targets, train.qids), targets, ordinals, split_q,
                    model=model_used, mode=mode_used, dropped=list(dropped), not_elicited=not_elicited)


def _prepare_margins(lib: Library, personas: pl.DataFrame, variables: list[str]) -> Prepared:
    """Census margins as the only targets: every variable is a 'train' question."""
    des, r, tgt = _margin_design(lib, personas, variables)
    return Prepared("census", None, des, des, r, tgt, {q: None for q in des.qids},
                    {"train": list(des.qids), "valid": [], "test": []})


def _score_splits(prep: Prepared, preds: dict[str, dict[str, np.ndarray]], o: CalibrateOptions
                  ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Metrics of the weighted panel and of the baselines on every split that has questions."""
    metrics: dict[str, Any] = {}
    baselines: dict[str, dict[str, Any]] = {"uniform_average": {}, "uniform_distribution": {}}
    if o.base == "census":
        baselines["census_base"] = {}
    for s in SPLITS:
        qs = prep.splits.get(s) or []
        if not qs:
            continue
        tgt = {q: prep.targets[q] for q in qs}
        ords = {q: prep.ordinals.get(q) for q in qs}

        def score(pred: dict[str, np.ndarray], qs: list[str] = qs, tgt: dict = tgt, ords: dict = ords) -> dict:
            return _score({q: pred[q] for q in qs}, tgt, ords, n_boot=o.n_boot, seed=o.seed)

        metrics[s] = score(preds["weighted"])
        baselines["uniform_average"][s] = score(preds["uniform"])
        baselines["uniform_distribution"][s] = score({q: np.full(len(tgt[q]), 1.0 / len(tgt[q])) for q in qs})
        if o.base == "census":
            baselines["census_base"][s] = score(preds["base"])
    return metrics, baselines


def _build_report(survey: Survey | None, prep: Prepared, fitted: _Fitted, w0: np.ndarray, o: CalibrateOptions,
                  margin_info: _Margins | None, notes: list[str]) -> dict[str, Any]:
    w = fitted.weights
    n = len(w)
    uni = np.full(n, 1.0 / n)
    des = prep.design
    pred_all, n_clipped = _clean_dists(des.predict(w))
    pred_uni, _ = _clean_dists(des.predict(uni))
    pred_base, _ = _clean_dists(des.predict(w0))
    metrics, baselines = _score_splits(prep, {"weighted": pred_all, "uniform": pred_uni, "base": pred_base}, o)
    rep: dict[str, Any] = {
        "method": o.method,
        "survey_id": survey.survey_id if survey is not None else CENSUS_SURVEY_ID,
        "group": o.group if survey is not None else "overall",
        "created": now_iso(),
        "lam": fitted.lam, "alpha": fitted.alpha, "l1_ratio": fitted.l1_ratio, **weights_summary(w),
        "solver": fitted.solver, "solver_seconds": fitted.solver_seconds, "n_iter": fitted.n_iter,
        "objective": fitted.objective,
        "pull": o.pull, "base": o.base, "block_weighting": o.block_weighting, "seed": o.seed,
        "split_seed": o.split_seed, "max_agents": o.max_agents, "model": prep.model, "mode": prep.mode,
        "n_questions": {s: len(prep.splits.get(s) or []) for s in SPLITS},
        "dropped_personas": len(prep.dropped), "questions_not_elicited": len(prep.not_elicited),
        "metrics": metrics, "baselines": baselines,
        "cv": fitted.cv,
        "census_margins": tuple(o.census_margins) or None,
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
    rep["notes"].extend(honesty_notes(rep))
    if prep.kind == "census":
        rep["margins_tvd"] = {"before": _tvd_per_question(pred_uni, prep.targets),
                              "after": _tvd_per_question(pred_all, prep.targets)}
        if o.base == "census":
            rep["margins_tvd"]["base"] = _tvd_per_question(pred_base, prep.targets)
    if margin_info is not None:
        md = margin_info.design
        rep["margins_tvd"] = {"before": _tvd_per_question(md.predict(uni), margin_info.targets),
                              "after": _tvd_per_question(md.predict(w), margin_info.targets)}
    return rep

