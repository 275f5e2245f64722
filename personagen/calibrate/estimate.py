"""Estimates from a calibrated panel: weighted answer shares, their replicate-weight standard errors, and a
prediction interval that adds the proxy panel's error measured on held-out questions.

For question q, option o and a group G of personas (the whole panel, or one value of a persona column):
    estimate = Σ_{j∈A} w_j p_jo / Σ_{j∈A} w_j,   A = personas in G with a valid answer to q,
p_j the persona's answer distribution (renormalised to sum to 1), w the calibration's weights (weights
renormalised within the question and group). The same formula with each replicate weight column rep_b gives
θ̂_b; se = √v with the bootstrap variance v = 1/(R−1) Σ_b (θ̂_b − θ̄)² (personagen.calibrate.replicates);
lo/hi = estimate ∓ z·se (normal, clipped to [0, 1]).

The prediction interval (plo/phi) is split conformal prediction (Vovk et al. 2005; Lei et al. 2018) on the
calibration's held-out questions: the scores are the absolute errors |estimate − human share| of every
(question, option) row of the valid and test questions with a target for the group; q̂ is their
⌈(m+1)·level⌉-th smallest value (m rows) and plo/phi = estimate ∓ q̂. It assumes that new questions (and their
options) are exchangeable with the held-out ones; it needs MIN_HELDOUT_QUESTIONS held-out questions and gives
null otherwise. Its coverage is reported leave-one-question-out on the held-out questions themselves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from personagen.calibrate.replicates import bootstrap_variance
from personagen.calibration_report import CalibrationReport, read_report
from personagen.errors import BadInput
from personagen.library import Library
from personagen.metrics import kish_ess
from personagen.options import stage_options
from personagen.surveys import Survey
from personagen.surveys import load as load_survey

MIN_HELDOUT_QUESTIONS = 10  # below this the conformal quantile rests on too few questions: plo/phi null
HELDOUT_SPLITS = ("valid", "test")
OVERALL = "overall"

SCHEMA = {"qid": pl.String, "option": pl.String, "by": pl.String, "group": pl.String, "estimate": pl.Float64,
          "se": pl.Float64, "lo": pl.Float64, "hi": pl.Float64, "n": pl.Int64, "ess": pl.Float64,
          "target": pl.Float64, "error": pl.Float64, "split": pl.String, "plo": pl.Float64, "phi": pl.Float64}


@dataclass(frozen=True)
class EstimateOptions:
    """Options of `estimate_library` (docs/design.md §3 `estimate`), validated once when built."""

    calibration: str | None = None
    by: tuple[str, ...] | str = ()
    questions: tuple[str, ...] | str | None = None
    level: float = 0.95
    model: str | None = None
    mode: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not isinstance(self.level, int | float) or not 0 < self.level < 1:
            raise BadInput(f"level {self.level!r}: must be a number strictly between 0 and 1 (e.g. 0.95)",
                           field="level")
        object.__setattr__(self, "by", _names(self.by, "by"))
        if self.questions is not None:
            object.__setattr__(self, "questions", _names(self.questions, "questions") or None)


def _names(v: Sequence[str] | str | None, field: str) -> tuple[str, ...]:
    items = v.split(",") if isinstance(v, str) else list(v or ())
    out = tuple(dict.fromkeys(str(x).strip() for x in items if str(x).strip()))
    if isinstance(v, str) and v.strip() and not out:
        raise BadInput(f"{field} {v!r}: no names given", field=field)
    return out


@dataclass
class Estimate:
    """The estimate table (one row per question × option × group) and how its intervals were formed."""

    table: pl.DataFrame
    calibration: str
    level: float
    prediction: dict[str, Any]
    replicates: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The `--json` object: rows plus the prediction-interval and replicate facts."""
        return {"calibration": self.calibration, "level": self.level, "replicates": self.replicates,
                "prediction": self.prediction, "notes": self.notes, "rows": self.table.to_dicts()}


# ---- inputs ---------------------------------------------------------------------------------------

def choose_calibration(lib: Library, name: str | None) -> str:
    """`Library.choose_calibration` (kept as a function for this module's callers)."""
    return lib.choose_calibration(name)


def read_weights(lib: Library, name: str) -> tuple[pl.DataFrame, CalibrationReport | None]:
    """weights.parquet (persona_id, weight[, asked, rep_*]) and report.json (None when absent) of `name`."""
    d = lib.calibration_dir(name)
    wp = d / "weights.parquet"
    if not wp.is_file():
        raise BadInput(f"{wp}: calibration {name!r} has no weights.parquet")
    w = pl.read_parquet(wp)
    if not {"persona_id", "weight"} <= set(w.columns):
        raise BadInput(f"{wp}: needs columns persona_id and weight")
    reps = sorted((c for c in w.columns if c.startswith("rep_") and c[4:].isdigit()), key=lambda c: int(c[4:]))
    w = w.select(pl.col("persona_id").cast(pl.String), *[pl.col(c).cast(pl.Float64) for c in ["weight", *reps]])
    vals = w.select(pl.exclude("persona_id")).to_numpy()
    if w["persona_id"].n_unique() != w.height or not np.isfinite(vals).all():
        raise BadInput(f"{wp}: persona_id must be unique and weights finite")
    rp = d / "report.json"
    if not rp.exists():
        return w, None
    raw = pl.read_parquet(wp, columns=["asked"]) if "asked" in pl.read_parquet_schema(wp) else None
    fitted = w["weight"].to_numpy() if raw is None else w["weight"].to_numpy()[raw["asked"].fill_null(False)]
    return w, read_report(rp, weights=fitted)


def _model_mode(lf: pl.LazyFrame, survey_id: str, model: str | None, mode: str | None, source: str
                ) -> pl.LazyFrame:
    """The valid answers to `survey_id` of one (model, mode); BadInput when none or when the choice is ambiguous."""
    lf = lf.filter((pl.col("survey_id") == survey_id) & pl.col("valid").fill_null(False))
    if model is not None:
        lf = lf.filter(pl.col("model") == model)
    if mode is not None:
        lf = lf.filter(pl.col("mode") == mode)
    combos = _collect(lf.select("model", "mode").unique(), source).rows()
    if not combos:
        raise BadInput(f"{source}: no valid responses for survey {survey_id!r} with model={model!r} mode={mode!r} "
                       "(elicit the survey first, or choose --model/--mode)")
    if len(combos) > 1:
        listed = "; ".join(f"{m}/{d}" for m, d in combos[:6])
        raise BadInput(f"{source}: responses from several model/mode pairs ({listed}); choose with --model/--mode")
    return lf


def _collect(lf: pl.LazyFrame, source: str) -> pl.DataFrame:
    try:
        return lf.collect()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise BadInput(f"{source}: unreadable responses table ({str(e).splitlines()[0][:200]})") from None


def _answers(lib: Library, survey: Survey, report: CalibrationReport | None, o: EstimateOptions, panel: _Panel
             ) -> tuple[dict[str, tuple[np.ndarray, ...]], list[str]]:
    """Valid answers of the calibration's model/mode to the survey's questions, as integer arrays per question:
    {qid: (persona rows into the panel, option positions, probabilities)}; personas without a weight left out.
    Read lazily (only the needed columns and rows of responses.parquet), joined on integer codes."""
    source = str(lib.responses_path)
    if not lib.responses_path.is_file():
        raise BadInput(f"{source}: library has no responses (run `personagen elicit` first)")
    lf = _model_mode(pl.scan_parquet(lib.responses_path), survey.survey_id, o.model or (report and report.model),
                     o.mode or (report and report.mode), source)
    opts = pl.DataFrame([(q, opt, i, k) for i, q in enumerate(survey.qids) for k, opt in enumerate(survey.options(q))],
                        schema={"qid": pl.String, "option": pl.String, "_q": pl.Int32, "_opt": pl.Int32},
                        orient="row")
    rows = pl.DataFrame({"persona_id": list(panel.index), "_row": np.arange(len(panel.index), dtype=np.int64)})
    a = _collect(lf.filter(pl.col("qid").is_in(survey.qids)).select(
        pl.col("persona_id").cast(pl.String), pl.col("qid").cast(pl.String), pl.col("option").cast(pl.String),
        pl.col("prob").cast(pl.Float64)).join(opts.lazy(), on=["qid", "option"], how="left")
        .join(rows.lazy(), on="persona_id", how="left").select("qid", "option", "_q", "_opt", "_row", "prob"), source)
    _check_answers(a, source)
    a = a.filter(pl.col("_row").is_not_null()).drop("qid", "option")
    q = a["_q"].to_numpy()
    order = np.argsort(q, kind="stable")
    cols = [a[c].to_numpy()[order] for c in ("_row", "_opt", "prob")]
    bounds = np.searchsorted(q[order], np.arange(len(survey.qids) + 1))
    per = {survey.qids[i]: tuple(c[bounds[i]:bounds[i + 1]] for c in cols)
           for i in range(len(survey.qids)) if bounds[i + 1] > bounds[i]}
    wanted = o.questions
    if wanted is not None:
        bad = [x for x in wanted if x not in set(survey.qids)]
        if bad:
            raise BadInput(f"questions: {', '.join(bad[:5])} not in survey {survey.survey_id!r}", field="questions")
        none = [x for x in wanted if x not in per]
        if none:
            raise BadInput(f"questions: {', '.join(none[:5])} have no valid answers from weighted personas in "
                           f"{source}", field="questions")
    if not per:
        raise BadInput(f"{source}: no valid answers of weighted personas to the questions of survey "
                       f"{survey.survey_id!r}")
    return per, [x for x in survey.qids if x in per]


def _check_answers(a: pl.DataFrame, source: str) -> None:
    unk = a.filter(pl.col("_opt").is_null())
    if unk.height:
        r = unk.row(0, named=True)
        raise BadInput(f"{source}: option {r['option']!r} of {r['qid']!r} is not one of the survey's options")
    bad = a.filter(pl.col("prob").is_null() | pl.col("prob").is_nan() | (pl.col("prob") < 0))
    if bad.height:
        raise BadInput(f"{source}: answers to {bad['qid'][0]!r} have null, NaN or negative probabilities")


@dataclass(frozen=True)
class _Panel:
    """The weights (n × (1+R): weight, rep_1..rep_R) and the group masks, over the weights' persona order."""

    index: dict[str, int]
    W: np.ndarray
    groups: list[tuple[str | None, str, np.ndarray]]


def _panel(lib: Library, w: pl.DataFrame, by: Sequence[str], notes: list[str]) -> _Panel:
    pids = w["persona_id"].to_list()
    index = {p: i for i, p in enumerate(pids)}
    W = w.select(pl.exclude("persona_id")).to_numpy().astype(float)
    groups: list[tuple[str | None, str, np.ndarray]] = [(None, OVERALL, np.ones(len(pids), bool))]
    if by:
        personas = lib.personas()
        bad = [c for c in by if c not in personas.columns]
        if bad:
            raise BadInput(f"by {','.join(bad)}: personas.parquet has no such column (have: "
                           f"{', '.join(c for c in personas.columns if not c.startswith('text'))[:300]})", field="by")
        attrs = pl.DataFrame({"persona_id": pids}).join(
            personas.select(pl.col("persona_id").cast(pl.String), *[pl.col(c).cast(pl.String) for c in by]),
            on="persona_id", how="left", maintain_order="left")
        for c in by:
            col = attrs[c]
            if col.null_count():
                notes.append(f"--by {c}: {col.null_count()} personas have no value and are in no {c} group")
            for v in sorted(col.drop_nulls().unique().to_list()):
                groups.append((c, v, (col == v).fill_null(False).to_numpy()))
    return _Panel(index, W, groups)


def _question_matrix(rows: np.ndarray, opt: np.ndarray, prob: np.ndarray, n_options: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(persona rows into the panel, P: their answer distributions over the options, rows summing to 1)."""
    u, inv = np.unique(rows, return_inverse=True)
    P = np.zeros((len(u), n_options))
    np.add.at(P, (inv, opt), prob)
    s = P.sum(axis=1, keepdims=True)
    ok = s[:, 0] > 0
    return u[ok], P[ok] / s[ok]


def _shares(u: np.ndarray, P: np.ndarray, panel: _Panel, mask: np.ndarray, z: float) -> dict[str, np.ndarray]:
    """Weighted shares of one question in one group, with replicate SEs, normal interval, n and Kish ESS."""
    m = mask[u]
    Wq = panel.W[u[m]]
    num = np.einsum("nk,nr->kr", P[m], Wq)  # K × (1+R); einsum: no BLAS thread hand-off on a busy machine
    den = Wq.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = np.where(den > 0, num / den, np.nan)
    e = est[:, 0]
    se = np.sqrt(bootstrap_variance(est[:, 1:])) if est.shape[1] > 2 else np.full(e.size, np.nan)
    w = Wq[:, 0]
    n = int((w > 0).sum())
    ess = kish_ess(w) if n else 0.0
    if e.size and not n:
        e = np.full(e.size, np.nan)
    return {"estimate": e, "se": se, "lo": np.clip(e - z * se, 0, 1), "hi": np.clip(e + z * se, 0, 1),
            "n": np.full(e.size, n), "ess": np.full(e.size, ess)}


def _target_group(known: set[str], by: str | None, group: str, cal_group: str) -> str | None:
    """The survey group whose human shares stand beside a row: the calibration's target group for the whole
    panel (the weighted panel stands for it), the group's own value otherwise; None when the survey lacks it."""
    name = cal_group if by is None else group
    return name if name in known else None


def _table(per: dict[str, tuple[np.ndarray, ...]], qids: list[str], survey: Survey, panel: _Panel, cal_group: str,
           z: float) -> pl.DataFrame:
    """Every question × option × group row (estimate, se, lo, hi, n, ess, target, error, split)."""
    dists: dict[str, dict] = {}
    known_groups = set(survey.groups())
    cols: dict[str, list] = {k: [] for k in SCHEMA if k not in ("plo", "phi")}
    for q in qids:
        options = survey.options(q)
        u, P = _question_matrix(*per[q], len(options))
        for by, group, mask in panel.groups:
            tg = _target_group(known_groups, by, group, cal_group)
            if tg is not None and tg not in dists:
                dists[tg] = survey.distributions(tg)
            tq = dists[tg].get(q) if tg is not None else None
            res = _shares(u, P, panel, mask, z)
            target = [None if tq is None else tq.get(o) for o in options]
            cols["qid"] += [q] * len(options)
            cols["option"] += options
            cols["by"] += [by] * len(options)
            cols["group"] += [group] * len(options)
            for k in ("estimate", "se", "lo", "hi", "ess"):
                cols[k] += [None if not math.isfinite(x) else float(x) for x in res[k]]
            cols["n"] += [int(x) for x in res["n"]]
            cols["target"] += target
            cols["error"] += [None if t is None or not math.isfinite(e) else float(e - t)
                              for e, t in zip(res["estimate"], target)]
            cols["split"] += [survey.split_of(q)] * len(options)
    return pl.DataFrame(cols, schema={k: v for k, v in SCHEMA.items() if k in cols})


def conformal_halfwidth(scores: np.ndarray, level: float) -> float | None:
    """Split-conformal quantile: the ⌈(m+1)·level⌉-th smallest of m scores (None when that exceeds m)."""
    s = np.sort(np.asarray(scores, dtype=float))
    k = math.ceil((s.size + 1) * level)
    return float(s[k - 1]) if 0 < k <= s.size else None


def _prediction(tab: pl.DataFrame, heldout: set[str], level: float) -> tuple[pl.DataFrame, dict[str, Any]]:
    """plo/phi per group from its held-out rows' absolute errors; coverage leave-one-question-out."""
    info: dict[str, Any] = {}
    half: dict[tuple, float | None] = {}
    for (by, group), g in tab.group_by("by", "group", maintain_order=True):
        h = g.filter(pl.col("qid").is_in(list(heldout)) & pl.col("error").is_not_null())
        nq = h["qid"].n_unique()
        key = OVERALL if by is None else f"{by}={group}"
        rec: dict[str, Any] = {"heldout_questions": nq, "heldout_rows": h.height, "halfwidth": None,
                               "coverage": None, "sampling_coverage": None}
        if h.height:
            inside = (h["target"] >= h["lo"]) & (h["target"] <= h["hi"])
            rec["sampling_coverage"] = float(inside.mean()) if h["se"].null_count() < h.height else None
        if nq < MIN_HELDOUT_QUESTIONS:
            rec["note"] = (f"{nq} held-out question(s) with human shares for this group (< {MIN_HELDOUT_QUESTIONS}):"
                           " too few to measure the panel's error on unseen questions; no prediction interval")
        else:
            err = h["error"].abs().to_numpy()
            rec["halfwidth"] = conformal_halfwidth(err, level)
            rec["coverage"] = _loqo_coverage(h["qid"].to_list(), err, level)
        half[(by, group)] = rec["halfwidth"]
        info[key] = rec
    hw = pl.DataFrame({"by": [k[0] for k in half], "group": [k[1] for k in half], "_hw": list(half.values())},
                      schema={"by": pl.String, "group": pl.String, "_hw": pl.Float64})
    tab = tab.join(hw, on=["by", "group"], how="left", nulls_equal=True, maintain_order="left").with_columns(
        (pl.col("estimate") - pl.col("_hw")).clip(0, 1).alias("plo"),
        (pl.col("estimate") + pl.col("_hw")).clip(0, 1).alias("phi")).drop("_hw")
    return tab, info


def _loqo_coverage(qids: list[str], err: np.ndarray, level: float) -> float | None:
    """Share of held-out rows inside the interval formed from the other held-out questions' rows."""
    q = np.asarray(qids)
    hit = []
    for h in np.unique(q):
        hw = conformal_halfwidth(err[q != h], level)
        hit += [False if hw is None else bool(e <= hw) for e in err[q == h]]
    return float(np.mean(hit)) if hit else None


def _heldout(survey: Survey, qids: list[str], report: CalibrationReport | None, notes: list[str]) -> set[str]:
    """Questions the calibration never fitted that can measure its error: valid/test of its own survey (the
    P2P methods fitted valid too: test only), every question of another survey."""
    fitted = report.survey_id if report is not None else None
    if fitted != survey.survey_id:
        notes.append(f"calibration fitted {fitted!r}, not {survey.survey_id!r}: every question "
                     "of this survey with human shares counts as held out")
        return set(qids)
    splits = ("test",) if report is not None and report.method.startswith("p2p") else HELDOUT_SPLITS
    return {q for q in qids if survey.split_of(q) in splits}


def estimate_library(lib: Library | str, survey: Survey | str, options: EstimateOptions | None = None,
                     **deprecated: Any) -> Estimate:
    """Weighted answer shares of `lib`'s calibrated panel for `survey`'s questions (see the module docstring).

    options: an `EstimateOptions` (None: the defaults; keyword arguments instead are deprecated, one release)."""
    if not isinstance(lib, Library):
        lib = Library.open(lib)
    o = stage_options(EstimateOptions, options, deprecated, "estimate_library")
    if not hasattr(survey, "qids"):
        survey = load_survey(survey)
    name = choose_calibration(lib, o.calibration)
    w, report = read_weights(lib, name)
    notes: list[str] = []
    if report is not None and report.split_seed is not None and report.survey_id == survey.survey_id:
        survey = survey.with_splits(seed=report.split_seed)
    panel = _panel(lib, w, o.by, notes)
    per, qids = _answers(lib, survey, report, o, panel)
    n_reps = w.width - 2
    if n_reps < 2:
        notes.append("the calibration has no replicate weights (made with --replicates 0, by an older version, or "
                     "pulled): se/lo/hi are null; re-run calibrate (default --replicates 40)")
    z = NormalDist().inv_cdf(0.5 + o.level / 2)
    cal_group = (report.group if report is not None else None) or OVERALL
    tab = _table(per, qids, survey, panel, cal_group, z)
    tab, info = _prediction(tab, _heldout(survey, qids, report, notes), o.level)
    if o.questions is not None:
        tab = tab.filter(pl.col("qid").is_in(list(o.questions)))
    pred = {"level": o.level, "method": "split conformal on held-out questions' absolute errors",
            "assumption": "new questions resemble the held-out ones (exchangeable); a different kind of question "
                          "can miss by more", "min_heldout_questions": MIN_HELDOUT_QUESTIONS, "groups": info}
    for c in report.caveats if report is not None else ():
        notes.append(f"calibration caveat: {c}")
    return Estimate(tab.select(list(SCHEMA)), name, o.level, pred, max(n_reps, 0), notes)
