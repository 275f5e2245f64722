"""The calibration report: one versioned type, written by one function and read (validated, upgraded) by one.

LIB/calibrations/NAME/report.json is what a calibration says about itself: the estimator and its penalty,
the splits used and the metrics per split (train / valid / test) beside the baselines, the Kish effective
sample size, personas asked vs built, the replicate weights, the caveats. `calibrate`, `mixture` and `pull`
write it through `write_report` (report.json, and report.md rendered from the same object); `estimate`,
`describe`, `publish`, `pull` and `sample-panel` read it through `read_report`, which names the file and the
field of any bad value (BadInput, exit 2) and upgrades older files:

- schema_version 0: the dict written before the type existed (no `schema_version` key); still found in
  existing libraries and in personagen.json of panels on the Hub. Its keys are the same as version 1's;
  `name` defaults to the calibration folder's name, `replicates` to "not recorded", and where the weights
  are at hand (every reader has them) a missing `n_personas` / `nonzeros` / `ess` is computed from them and a
  missing `method` reads "unknown" (a panel published without its report carried only its name).
- schema_version 1: this type; `to_dict()` is the file. docs/design.md §2 lists the fields.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from personagen.errors import BadInput
from personagen.infile import MANIFEST_MAX_BYTES, load_json
from personagen.metrics import kish_ess
from personagen.store import atomic_write_json, atomic_write_text
from personagen.surveys import SPLITS

SCHEMA_VERSION = 1
REPORT_FILE = "report.json"
REQUIRED = ("name", "method", "n_personas", "nonzeros", "ess")


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class ReplicateInfo:
    """How the replicate weight columns rep_1..rep_R of weights.parquet were made; r = 0: none were made."""

    r: int
    method: str | None = None
    seed: int | None = None
    seconds: float | None = None
    variance: str | None = None
    penalty: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (only `r` when there are none)."""
        if not self.r:
            return {"r": 0}
        return {"r": self.r, "method": self.method, "seed": self.seed, "seconds": self.seconds,
                "variance": self.variance, "penalty": self.penalty}


@dataclass(frozen=True)
class CalibrationReport:
    """What one calibration says about itself (report.json, schema `SCHEMA_VERSION`).

    n_personas: personas fitted (asked); personas_built: personas in the library (None: not recorded);
    nonzeros: personas keeping a weight; ess: Kish (Σw)²/Σw² of the fitted weights (`metrics.kish_ess`).
    metrics: {split: {metric: {value, ci_low, ci_high, n_questions}}} with split in train/valid/test;
    baselines: {baseline: the same per split}; n_questions: {split: questions used}. caveats: the warnings it
    earned (calibrate/caveats.py); replicates: None when not recorded (an old report).
    target / mixture / llm / pulled_from: what only a prompt mixture or a pulled panel records.
    """

    name: str
    method: str
    n_personas: int
    nonzeros: int
    ess: float
    schema_version: int = SCHEMA_VERSION
    survey_id: str | None = None
    group: str | None = None
    created: str | None = None
    lam: float | None = None
    alpha: float | None = None
    l1_ratio: float | None = None
    ess_uniform: float | None = None
    negative_weights: int = 0
    max_weight: float | None = None
    solver: str | None = None
    solver_seconds: float | None = None
    n_iter: int | None = None
    objective: float | None = None
    seconds_total: float | None = None
    pull: str | None = None
    base: str | None = None
    block_weighting: bool = False
    seed: int | None = None
    split_seed: int | None = None
    max_agents: int | None = None
    model: str | None = None
    mode: str | None = None
    n_questions: dict[str, int] = field(default_factory=dict)
    dropped_personas: int = 0
    questions_not_elicited: int = 0
    metrics: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    baselines: dict[str, dict[str, dict[str, dict[str, Any]]]] = field(default_factory=dict)
    cv: dict[str, Any] | None = None
    overfit: dict[str, Any] | None = None
    census_margins: tuple[str, ...] | None = None
    margins_tvd: dict[str, dict[str, float]] | None = None
    replicates: ReplicateInfo | None = None
    personas_built: int | None = None
    personas_asked: int | None = None
    caveats: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    target: dict[str, Any] | None = None
    mixture: dict[str, Any] | None = None
    llm: dict[str, Any] | None = None
    pulled_from: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        _validate(self, "calibration report")

    @property
    def n_built(self) -> int | None:
        """Personas in the library when it was fitted (None when the report did not record it)."""
        return self.personas_built

    @property
    def n_asked(self) -> int:
        """Personas fitted (they answered the questions); the others carry weight 0 by construction."""
        return self.personas_asked if self.personas_asked is not None else self.n_personas

    @property
    def splits_used(self) -> tuple[str, ...]:
        """The splits with at least one question, in train/valid/test order."""
        return tuple(s for s in SPLITS if self.n_questions.get(s))

    def metric(self, split: str, metric: str = "mse", baseline: str | None = None) -> float | None:
        """One metric's value on one split (of a baseline when named); None when not reported."""
        block = self.metrics if baseline is None else self.baselines.get(baseline, {})
        v = (block.get(split) or {}).get(metric, {}).get("value")
        return None if v is None else float(v)

    def __getitem__(self, key: str) -> Any:
        """Deprecated: `report["ess"]` (the dict this type replaced) still reads; use `report.ess`."""
        warnings.warn(f"CalibrationReport[{key!r}] is deprecated: use the attribute report.{key} "
                      "(or report.to_dict())", DeprecationWarning, stacklevel=2)
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of report.json (every field; schema_version first)."""
        out: dict[str, Any] = {"schema_version": self.schema_version}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = list(v)
            elif isinstance(v, ReplicateInfo):
                v = v.to_dict()
            out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str, *, name: str | None = None, weights: Any = None) -> CalibrationReport:
        """Validate and upgrade a parsed report (any schema this personagen reads); BadInput naming `where` and
        the field. A schema-0 report's missing name is `name`; its missing weight figures come from `weights`
        (the fitted personas' weights), its missing method is "unknown"."""
        if not isinstance(d, dict):
            raise BadInput(f"{where}: expected a JSON object, found {type(d).__name__}")
        version = d.get("schema_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
            raise BadInput(f"{where}: field 'schema_version' {version!r} is not one this personagen reads (0 to "
                           f"{SCHEMA_VERSION}); upgrade personagen")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if version == 0:
            kw.update(_upgrade_0(kw, name, weights, where))
        missing = [k for k in REQUIRED if kw.get(k) is None]
        if missing:
            raise BadInput(f"{where}: field {missing[0]!r} is missing")
        kw["schema_version"] = SCHEMA_VERSION
        rp = kw.get("replicates")
        if rp is not None:
            kw["replicates"] = _replicates(rp, where)
        for k in ("caveats", "notes", "census_margins"):
            if isinstance(kw.get(k), list):
                kw[k] = tuple(kw[k])
        try:
            return _checked(cls, kw, where)
        except TypeError as e:  # a wrong kind of value reaching a property is still bad input
            raise BadInput(f"{where}: {e}") from None


def _upgrade_0(kw: dict[str, Any], name: str | None, weights: Any, where: str) -> dict[str, Any]:
    """What a schema-0 report lacks and can be filled: its name, and (weights at hand) method and weight figures."""
    fill: dict[str, Any] = {"name": name}
    if weights is not None and any(kw.get(k) is None for k in REQUIRED[1:]):
        w = np.asarray(weights, dtype=float)
        if not w.size or not np.isfinite(w).all() or not np.abs(w).sum():
            raise BadInput(f"{where}: fields {', '.join(REQUIRED[1:])} are missing and the weights are empty or zero")
        fill.update(method="unknown", **weights_summary(w))
    return {k: v for k, v in fill.items() if kw.get(k) is None and v is not None}


def _replicates(rp: Any, where: str) -> ReplicateInfo:
    if not isinstance(rp, dict):
        raise BadInput(f"{where}: field 'replicates' must be an object")
    r = rp.get("r", 0)
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise BadInput(f"{where}: field 'replicates.r' must be a nonnegative integer")
    kinds = {"method": str, "seed": int, "seconds": (int, float), "variance": str, "penalty": str}
    for k, t in kinds.items():
        v = rp.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, t)):
            raise BadInput(f"{where}: field 'replicates.{k}' has the wrong type ({type(v).__name__})")
    return ReplicateInfo(r, *(rp.get(k) for k in kinds))


def _checked(cls: type[CalibrationReport], kw: dict[str, Any], where: str) -> CalibrationReport:
    """Build the report, re-raising the validator's message with `where` (the file) in front."""
    try:
        return cls(**kw)
    except BadInput as e:
        raise BadInput(str(e).replace("calibration report:", f"{where}:", 1)) from None


# ---- validation: one rule per kind of field ---------------------------------------------------------
_STR = ("name", "method")
_OPT_STR = ("survey_id", "group", "created", "solver", "pull", "base", "model", "mode")
_INT = ("n_personas", "nonzeros", "negative_weights", "dropped_personas", "questions_not_elicited",
        "schema_version")
_OPT_INT = ("n_iter", "seed", "split_seed", "max_agents", "personas_built", "personas_asked")
_OPT_FLOAT = ("lam", "alpha", "l1_ratio", "ess_uniform", "max_weight", "solver_seconds", "objective",
              "seconds_total")
_OPT_DICT = ("cv", "overfit", "margins_tvd", "target", "mixture", "llm", "pulled_from")
_STR_TUPLES = ("caveats", "notes")


def _bad(name: str, what: str, v: Any) -> BadInput:
    return BadInput(f"calibration report: field {name!r} must be {what}, found {v!r:.60}")


def _validate(rep: CalibrationReport, where: str) -> None:
    """Every field of the right kind; BadInput naming the first that is not."""
    g = rep.__getattribute__
    for k in _STR:
        if not isinstance(g(k), str) or not g(k):
            raise _bad(k, "a non-empty string", g(k))
    for k in _OPT_STR:
        if g(k) is not None and not isinstance(g(k), str):
            raise _bad(k, "a string or null", g(k))
    for k in _INT + _OPT_INT:
        v = g(k)
        if (v is not None or k in _INT) and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise _bad(k, "a nonnegative integer" + (" or null" if k in _OPT_INT else ""), v)
    if not _is_num(rep.ess) or not math.isfinite(rep.ess) or rep.ess < 0:
        raise _bad("ess", "a finite nonnegative number", rep.ess)
    for k in _OPT_FLOAT:
        if g(k) is not None and not _is_num(g(k)):
            raise _bad(k, "a number or null", g(k))
    if not isinstance(rep.block_weighting, bool):
        raise _bad("block_weighting", "true or false", rep.block_weighting)
    for k in _OPT_DICT:
        if g(k) is not None and not isinstance(g(k), dict):
            raise _bad(k, "an object or null", g(k))
    for k in _STR_TUPLES + ("census_margins",):
        v = g(k)
        if (v is not None or k in _STR_TUPLES) and (not isinstance(v, tuple) or
                                                    not all(isinstance(x, str) for x in v)):
            raise _bad(k, "a list of strings", v)
    if rep.replicates is not None and not isinstance(rep.replicates, ReplicateInfo):
        raise _bad("replicates", "a ReplicateInfo", rep.replicates)
    _validate_splits(rep)


def _validate_splits(rep: CalibrationReport) -> None:
    """n_questions, metrics and each baseline are keyed by split (train / valid / test)."""
    nq = rep.n_questions
    if not isinstance(nq, dict) or any(s not in SPLITS or isinstance(v, bool) or not isinstance(v, int)
                                       for s, v in nq.items()):
        raise _bad("n_questions", f"an object of question counts per split ({', '.join(SPLITS)})", nq)
    if not isinstance(rep.baselines, dict):
        raise _bad("baselines", "an object of per-split metrics per baseline", rep.baselines)
    for label, block in (("metrics", rep.metrics), *((f"baselines.{b}", v) for b, v in rep.baselines.items())):
        if not isinstance(block, dict):
            raise _bad(label, "an object of metrics per split", block)
        for s, ms in block.items():
            if s not in SPLITS:
                raise _bad(label, f"keyed by split ({', '.join(SPLITS)})", s)
            if not isinstance(ms, dict):
                raise _bad(f"{label}.{s}", "an object of metrics", ms)
            for m, e in ms.items():
                if not isinstance(e, dict) or not all(e.get(k) is None or _is_num(e[k])
                                                      for k in ("value", "ci_low", "ci_high")):
                    raise _bad(f"{label}.{s}.{m}", "an object with numeric value, ci_low, ci_high", e)


# ---- the one writer and the one reader --------------------------------------------------------------
def read_report(path: str | Path, *, weights: Any = None, name: str | None = None) -> CalibrationReport:
    """report.json at `path`, validated and upgraded to the current schema; BadInput naming file and field.
    A schema-0 report lacking them takes its name from `name` (default: the folder's) and its weight figures
    from `weights` (the fitted personas' weights, when the caller has them)."""
    path = Path(path)
    d = load_json(path, "calibration report", MANIFEST_MAX_BYTES)
    return CalibrationReport.from_dict(d, str(path), name=name or path.parent.name, weights=weights)


def write_report(folder: str | Path, report: CalibrationReport, extra_markdown: str = "") -> None:
    """report.json (report.to_dict()) and report.md (rendered from the same object, then `extra_markdown`)."""
    folder = Path(folder)
    atomic_write_json(folder / REPORT_FILE, report.to_dict())
    md = render_markdown(report)
    atomic_write_text(folder / "report.md", md + ("\n" + extra_markdown if extra_markdown else ""))


def weights_summary(weights: Any, tol: float = 1e-9) -> dict[str, Any]:
    """n_personas, nonzeros, Kish ESS (metrics.kish_ess) and largest weight of a weight vector: the fields every
    writer of a report fills the same way."""
    w = np.asarray(weights, dtype=float)
    return {"n_personas": int(w.size), "nonzeros": int((np.abs(w) > tol).sum()), "ess": kish_ess(w),
            "ess_uniform": float(w.size), "negative_weights": int((w < -tol).sum()),
            "max_weight": float(w.max()) if w.size else 0.0}


# ---- report.md --------------------------------------------------------------------------------------
METRIC_LABELS = {"mse": "MSE", "one_minus_jsd": "1-JSD", "wd": "WD", "majority_acc": "majority acc"}
LOWER_IS_BETTER = {"mse", "wd"}


def _fmt(v: Any, metric: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if metric == "mse" or (isinstance(v, float) and 0 < abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def _cell(m: dict[str, Any] | None, metric: str) -> str:
    if not m or metric not in m or m[metric].get("value") is None:
        return "–"
    e = m[metric]
    s = _fmt(e["value"], metric)
    if e.get("ci_low") is not None and e.get("ci_high") is not None:
        s += f" [{_fmt(e['ci_low'], metric)}, {_fmt(e['ci_high'], metric)}]"
    return s


def _summary_lines(r: CalibrationReport) -> list[str]:
    fit = (f" (pull {r.pull}, base {r.base}, block weighting {'on' if r.block_weighting else 'off'})"
           if r.pull is not None else "")
    lines = [
        f"- method **{r.method}**{fit}" + (f", survey `{r.survey_id}`, group `{r.group}`" if r.survey_id else ""),
        f"- λ = {_fmt(r.lam)}, α = {_fmt(r.alpha)} (chosen by CV grouped by question when not fixed)",
        f"- personas: {r.n_personas}, nonzero weights: **{r.nonzeros}**, Kish ESS: **{r.ess:.1f}**, "
        f"negative weights: {r.negative_weights}, largest weight: {_fmt(r.max_weight)}",
        f"- solver {r.solver} in {_fmt(r.solver_seconds)} s; questions train/valid/test: "
        + "/".join(str(r.n_questions.get(s, 0)) for s in SPLITS),
    ]
    if r.model:
        lines.append(f"- responses: model `{r.model}`, mode `{r.mode}`")
    if r.personas_built is not None:
        lines.append(f"- personas asked (fitted) / built: {r.n_asked} / {r.personas_built} "
                     "(weights.parquet `asked` = false marks the never-fitted ones, weight 0 by construction)")
    rp = r.replicates
    if rp is not None and rp.r:
        lines.append(f"- {rp.r} {rp.method} replicate weights (rep_1..rep_{rp.r}, seed {rp.seed},"
                     f" {_fmt(rp.seconds)} s); variance {rp.variance}; penalty {rp.penalty}")
    elif rp is not None:
        lines.append("- no replicate weights (--replicates 0): `estimate` gives no standard errors")
    o = r.overfit or {}
    if o.get("test_over_train") is not None and o.get("test_vs_uniform_average") is not None:
        lines.append(f"- overfitting check: test MSE / train MSE = {o['test_over_train']:.2f}; "
                     f"test MSE / equal-weight test MSE = {o['test_vs_uniform_average']:.2f}")
    return lines


def _metric_tables(r: CalibrationReport) -> list[str]:
    metrics, base = r.metrics, r.baselines
    cols = [("calibrated", metrics), ("equal weights", base.get("uniform_average", {})),
            ("uniform distribution", base.get("uniform_distribution", {}))]
    if "census_base" in base:
        cols.insert(2, ("census base weights", base["census_base"]))
    lines: list[str] = []
    for m in (m for m in METRIC_LABELS if any(m in (metrics.get(s) or {}) for s in metrics)):
        arrow = "lower is better" if m in LOWER_IS_BETTER else "higher is better"
        lines += [f"## {METRIC_LABELS[m]} ({arrow}; 95% bootstrap CI over questions)", "",
                  "| split | " + " | ".join(c for c, _ in cols) + " |", "|---|" + "---|" * len(cols)]
        lines += [f"| {s} | " + " | ".join(_cell(src.get(s), m) for _, src in cols) + " |"
                  for s in SPLITS if s in metrics]
        lines.append("")
    return lines


def render_markdown(r: CalibrationReport) -> str:
    """A readable report: summary, then a split × (calibrated, equal weights, uniform) table per metric."""
    lines = [f"# Calibration `{r.name}`", "", *_summary_lines(r), "", *_metric_tables(r)]
    t = r.margins_tvd
    if t and t.get("after"):
        lines += ["## Census margins (total variation distance)", "", "| variable | before | after |", "|---|---|---|"]
        lines += [f"| {v} | {_fmt(t.get('before', {}).get(v))} | {_fmt(t['after'][v])} |" for v in t["after"]]
        lines.append("")
    if r.caveats:
        lines += ["## Caveats", ""] + [f"- warning: {c}" for c in r.caveats] + [""]
    if r.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    return "\n".join(lines)


__all__ = ["SCHEMA_VERSION", "REPORT_FILE", "CalibrationReport", "ReplicateInfo", "read_report", "write_report",
           "weights_summary", "render_markdown"]
