"""Export a library + one calibration as a Hugging Face dataset folder (parquet configs + README card).

Layout written (all files small, parquet zstd):
    README.md                                      dataset card (YAML front matter with `configs:`)
    personagen.json                                provenance + calibration report + what was left out
    data/personas/train-00000-of-00001.parquet     persona attributes, texts, `weight`
    data/responses/train-00000-of-00001.parquet    the panel's own model answers (qid + option only)
    data/calibration/train-00000-of-00001.parquet  held-out metrics with CIs (and baselines)

Survey targets are never exported, and question text is exported only for surveys whose source is known to
allow redistribution (see `survey_licence`).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from personagen._version import __version__
from personagen.calibration_report import CalibrationReport, read_report, weights_summary
from personagen.errors import BadInput
from personagen.library import RESPONSE_SCHEMA, Library
from personagen.options import stage_options
from personagen.publish.card import CONFIGS, SPLIT_FILE, render_card
from personagen.publish.preferences import CONFIG as PREFERENCES
from personagen.publish.preferences import preference_frame, write_preferences
from personagen.resources import templates_dir
from personagen.store import atomic_write_json, atomic_write_parquet, read_parquet, staged_dir
from personagen.templating import template_hash

FORMAT = "personagen-panel"
FORMAT_VERSION = 1
PANEL_JSON = "personagen.json"
WEIGHT_TOL = 1e-6

# Survey sources whose terms forbid redistributing targets or question wording (matched in survey_id / source).
_RESTRICTED: tuple[tuple[str, str], ...] = (
    ("opinionqa", "OpinionQA (Pew American Trends Panel): Pew terms forbid redistribution"),
    ("subpop", "SubPOP (built from Pew ATP / GSS): source terms forbid redistribution"),
    ("pew", "Pew Research Center surveys: Pew terms forbid redistribution"),
    ("atp", "Pew American Trends Panel: Pew terms forbid redistribution"),
    ("wvs", "World Values Survey: WVS terms forbid redistribution"),
    ("gss", "General Social Survey: targets are survey data, not ours to republish"),
    ("global", "Pew Global Attitudes: Pew terms forbid redistribution"),
)
# Sources we generate ourselves from public-domain census data: question text may be republished.
_OPEN = ("census", "acs", "pums", "personagen", "synthetic")

_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass
class ExportResult:
    """What `export_panel` wrote: the folder, row counts and what was left out (with reasons)."""

    path: Path
    calibration: str
    n_personas: int
    n_responses: int
    n_metrics: int
    left_out: list[dict[str, str]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    n_answers: int = 0  # persona x question answers (n_responses counts their option rows), as elicit counts

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "calibration": self.calibration, "n_personas": self.n_personas,
                "n_answers": self.n_answers, "n_responses": self.n_responses, "n_metrics": self.n_metrics,
                "left_out": self.left_out, "files": self.files}


def count_answers(responses: pl.DataFrame) -> int:
    """Answers (one per persona, survey, question, model and mode) in a responses frame of option rows."""
    keys = [c for c in ("persona_id", "survey_id", "qid", "model", "mode") if c in responses.columns]
    return responses.select(keys).unique().height if keys and responses.height else 0


def validate_repo_id(repo: str) -> str:
    """Check an `ORG/NAME` Hub repo id; BadInput (one line) when it is malformed."""
    if not isinstance(repo, str) or not _REPO_RE.match(repo) or "--" in repo or ".." in repo \
            or repo.endswith((".", "-")) or repo.split("/")[1].endswith((".git", ".", "-")):
        raise BadInput(f"repo {repo!r}: invalid repo id (expected ORG/NAME with letters, digits, '-', '_', '.')",
                       field="repo")
    return repo


def survey_licence(survey_id: str, source: str | None = None) -> dict[str, Any]:
    """Licence decision for one survey: {"restricted": bool, "question_text": bool, "reason": str}."""
    key = f"{survey_id} {source or ''}".lower()
    for pat, why in _RESTRICTED:
        if re.search(rf"(^|[^a-z]){pat}", key):
            return {"restricted": True, "question_text": False, "reason": why}
    if any(re.search(rf"(^|[^a-z]){p}", key) for p in _OPEN):
        return {"restricted": False, "question_text": True,
                "reason": "generated from public-domain census data"}
    return {"restricted": False, "question_text": False,
            "reason": "survey source not recognised; question text withheld unless its terms are known"}


# ---- reading the library --------------------------------------------------------------------------

def choose_calibration(lib: Library, name: str | None) -> str:
    """`Library.choose_calibration` (kept as a function for this module's callers)."""
    return lib.choose_calibration(name)


def read_calibration(lib: Library, name: str) -> tuple[pl.DataFrame, CalibrationReport | None]:
    """Load and validate weights.parquet + report.json of calibration `name` (weights ≥ 0, Σ = 1 ± 1e-6)."""
    d = lib.calibration_dir(name)
    wp, rp = d / "weights.parquet", d / "report.json"
    if not wp.is_file():
        raise BadInput(f"{wp}: calibration {name!r} has no weights.parquet")
    w = read_parquet(wp)
    for c in ("persona_id", "weight"):
        if c not in w.columns:
            raise BadInput(f"{wp}: lacks column {c!r}")
    if not w.schema["weight"].is_numeric():
        raise BadInput(f"{wp}: column 'weight' is {w.schema['weight']}, expected a number")
    reps = sorted((c for c in w.columns if c.startswith("rep_") and c[4:].isdigit()), key=lambda c: int(c[4:]))
    extra = ([pl.col("asked").cast(pl.Boolean)] if "asked" in w.columns else []) + \
        [pl.col(c).cast(pl.Float64) for c in reps]
    w = w.select(pl.col("persona_id").cast(pl.String), pl.col("weight").cast(pl.Float64), *extra)
    report = None
    if rp.exists():
        fitted = w.filter(pl.col("asked").fill_null(False)) if "asked" in w.columns else w
        report = read_report(rp, weights=fitted["weight"].to_numpy())
    check_weights(w, str(wp))
    if report is not None and report.negative_weights > 0:
        raise BadInput(f"{rp}: calibration {name!r} reports {report.negative_weights} negative weights "
                       f"(signed p2p weights are not a panel; refit with --method simplex)")
    return w, report


def check_weights(w: pl.DataFrame, where: str) -> None:
    """BadInput unless weights are finite, nonnegative, unique by persona and sum to 1 (±1e-6)."""
    if w.height == 0:
        raise BadInput(f"{where}: no weights")
    if w["persona_id"].null_count() or w["persona_id"].n_unique() != w.height:
        raise BadInput(f"{where}: persona_id values must be present and unique")
    vals = w["weight"]
    if vals.null_count() or not vals.is_finite().all():
        raise BadInput(f"{where}: weight has null, NaN or infinite values")
    neg = int((vals < 0).sum())
    if neg:
        raise BadInput(f"{where}: {neg} negative weight(s) (min {vals.min():.3g}); a shipped panel needs "
                       f"nonnegative weights (signed p2p weights are for replication only)")
    s = float(vals.sum())
    if abs(s - 1.0) > WEIGHT_TOL:
        raise BadInput(f"{where}: weights sum to {s:.9g}, not 1 (±{WEIGHT_TOL:g})")


def _surveys_in(resp: pl.DataFrame, manifest: dict[str, Any], report: CalibrationReport) -> dict[str, dict]:
    """{survey_id: licence decision}, with any source recorded in the manifest history."""
    ids = set(resp["survey_id"].drop_nulls().unique().to_list()) if resp.height else set()
    if report.survey_id:
        ids.add(report.survey_id)
    sources: dict[str, str] = {}
    for h in manifest.get("history", []) or []:
        sid = h.get("survey_id") or h.get("survey")
        src = h.get("survey_source") or h.get("source") or h.get("format")
        if isinstance(sid, str) and isinstance(src, str):
            sources[sid] = f"{sources.get(sid, '')} {src}"
    return {s: survey_licence(s, sources.get(s)) for s in sorted(ids)}


def _hashes(obj: Any, prefix: str = "", inside: bool = False) -> dict[str, str]:
    """Every string under a `*hash*` key (e.g. template_hashes: {name: sha}) recorded in a manifest."""
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            hit = inside or "hash" in str(k).lower()
            key = f"{prefix}{k}"
            if isinstance(v, str) and hit:
                out[key] = v
            elif isinstance(v, dict | list):
                out.update(_hashes(v, key + ".", hit))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, dict) and isinstance(v.get("stage"), str):
                out.update(_hashes(v, f"{v['stage']}.", inside))
            else:
                out.update(_hashes(v, f"{prefix}{i}.", inside))
    return out


def _template_hashes(manifest: dict[str, Any]) -> dict[str, str]:
    recorded = _hashes({k: v for k, v in manifest.items() if k in ("config", "history", "templates")})
    if recorded:
        return recorded
    out = {}
    try:
        root = templates_dir()
    except FileNotFoundError:
        return {}
    for sub in ("personas", "elicit"):
        for p in sorted((root / sub).glob("*.j2")) if (root / sub).is_dir() else []:
            name = f"{sub}/{p.name}"
            out[f"{name} (shipped, at publish time)"] = template_hash(name)
    return out


def _sanitize_census(c: Any) -> dict[str, Any] | None:
    """Census provenance without local paths (only the file name is kept)."""
    if not isinstance(c, dict):
        return None
    def scalar(v: Any) -> bool:
        return isinstance(v, str | int | float | bool) or v is None

    out = {k: v for k, v in c.items() if scalar(v) or (isinstance(v, list) and all(scalar(x) for x in v))}
    for k in ("path", "source", "file"):
        if isinstance(out.get(k), str) and ("/" in out[k] or "\\" in out[k]):
            out[k] = os.path.basename(out[k].replace("\\", "/"))
    return out


_REPORT_KEYS = ("name", "method", "survey_id", "group", "created", "lam", "alpha", "l1_ratio", "pull",
                "n_personas", "nonzeros", "ess", "negative_weights", "solver", "solver_seconds", "objective",
                "census_margins", "block_weighting", "metrics", "baselines", "caveats", "replicates",
                "personas_built", "personas_asked", "n_questions", "split_seed", "model", "mode")


def panel_caveats(report: CalibrationReport, personas: pl.DataFrame) -> list[str]:
    """What a reader of the panel must know: the calibration's warnings, then the questions and splits it used,
    personas asked vs built, and whether replicate weights travel with it."""
    out = [f"warning: {c}" for c in report.caveats]
    nq = report.n_questions
    if nq:
        out.append(f"questions used: {nq.get('train', 0)} train (fitted), {nq.get('valid', 0)} valid and "
                   f"{nq.get('test', 0)} test (held out) of survey {report.survey_id!r}, group "
                   f"{report.group!r}")
    asked = int(personas["asked"].sum()) if "asked" in personas.columns else report.personas_asked
    line = f"personas asked (fitted) / in the panel: {'not recorded' if asked is None else asked} / {personas.height}"
    if asked is not None and asked < personas.height:
        line += "; the others carry weight 0 because they were never fitted, not because the fit gave them none"
    out.append(line)
    r = sum(c.startswith("rep_") for c in personas.columns)
    out.append(f"{r} half-sample replicate weights (rep_1..rep_{r}) travel with `weight`" if r else
               "no replicate weights: standard errors cannot be computed from this panel")
    return out


def _clean_report(report: CalibrationReport) -> dict[str, Any]:
    """The report as personagen.json carries it: schema_version and the public fields (no notes, paths, CV)."""
    full = report.to_dict()
    return {"schema_version": full["schema_version"], **{k: full[k] for k in _REPORT_KEYS}}


def _report_of_weights(name: str, weights: pl.DataFrame) -> CalibrationReport:
    """The report of a calibration folder without report.json: what its weights say (method unknown)."""
    fitted = weights.filter(pl.col("asked")) if "asked" in weights.columns else weights
    return CalibrationReport(name=name, method="unknown", **weights_summary(fitted["weight"].to_numpy()),
                             notes=("report.json was missing: only the weights' figures are known",))


def _metric_rows(report: CalibrationReport, name: str) -> list[dict[str, Any]]:
    """One row per (estimator, split, metric) of the report: the calibrated panel's, then each baseline's."""

    def f(x: Any) -> float | None:
        return None if x is None or not math.isfinite(x) else float(x)

    blocks = [("calibrated", report.metrics), *report.baselines.items()]
    return [{"calibration": name, "method": report.method, "survey_id": report.survey_id, "group": report.group,
             "estimator": est, "split": split, "metric": metric, "value": f(m.get("value")),
             "ci_low": f(m.get("ci_low")), "ci_high": f(m.get("ci_high"))}
            for est, block in blocks for split, metrics in block.items() for metric, m in metrics.items()]


_METRICS_SCHEMA = {"calibration": pl.String, "method": pl.String, "survey_id": pl.String, "group": pl.String,
                   "estimator": pl.String, "split": pl.String, "metric": pl.String, "value": pl.Float64,
                   "ci_low": pl.Float64, "ci_high": pl.Float64}


# ---- the export ---------------------------------------------------------------------------------

def build_panel(lib: Library, calibration: str | None = None) -> dict[str, Any]:
    """Assemble (in memory) the frames and provenance of a panel; validates everything, writes nothing."""
    name = choose_calibration(lib, calibration)
    weights, found = read_calibration(lib, name)
    report = found or _report_of_weights(name, weights)
    personas = lib.personas()
    personas = personas.drop([c for c in personas.columns if c in ("weight", "asked") or
                              (c.startswith("rep_") and c[4:].isdigit())])
    known = set(personas["persona_id"].to_list())
    unknown = [p for p in weights["persona_id"].to_list() if p not in known]
    if unknown:
        raise BadInput(f"{lib.calibration_dir(name) / 'weights.parquet'}: {len(unknown)} persona_id(s) not in "
                       f"personas.parquet (e.g. {unknown[0]!r})")
    personas = personas.join(weights, on="persona_id", how="left").with_columns(
        pl.col("weight").fill_null(0.0), *[pl.col(c).fill_null(0.0) for c in weights.columns if c.startswith("rep_")],
        *([pl.col("asked").fill_null(False)] if "asked" in weights.columns else []))

    left_out: list[dict[str, str]] = [
        {"item": "survey target distributions",
         "reason": "survey targets are survey data owned by their publishers (Pew ATP/OpinionQA, WVS, Pew Global, "
                   "GSS); only aggregate error metrics against them are published"},
        {"item": "LLM call log (llm.sqlite)",
         "reason": "holds full prompts, which include survey question wording"},
        {"item": "local file paths and credentials",
         "reason": "census source is identified by file name and sha256 only; no token is ever written"},
    ]
    resp = lib.responses()
    surveys = _surveys_in(resp, lib.manifest, report)
    extra = [c for c in resp.columns if c not in RESPONSE_SCHEMA]
    text_cols = [c for c in extra if c in ("question", "question_text")]
    keep_text = bool(text_cols) and all(s["question_text"] for s in surveys.values())
    cols = list(RESPONSE_SCHEMA) + (text_cols if keep_text else [])
    dropped = [c for c in extra if c not in cols]
    if text_cols and not keep_text:
        why = "; ".join(f"{s}: {d['reason']}" for s, d in surveys.items() if not d["question_text"])
        left_out.append({"item": "survey question text (" + ", ".join(text_cols) + ")",
                         "reason": f"responses keep qid + option only ({why})"})
    other = [c for c in dropped if c not in text_cols]
    if other:
        left_out.append({"item": "response columns " + ", ".join(other),
                         "reason": "not part of the published response schema (may echo prompts or question text)"})
    for sid, d in surveys.items():
        if d["restricted"]:
            left_out.append({"item": f"targets and question text of survey {sid!r}", "reason": d["reason"]})
    responses = resp.select(cols) if resp.height else pl.DataFrame(schema=RESPONSE_SCHEMA)
    metrics = pl.DataFrame(_metric_rows(report, name), schema=_METRICS_SCHEMA)

    mf = lib.manifest
    models = sorted(set(resp["model"].drop_nulls().to_list())) if resp.height else []
    provenance = {
        "package": "personagen", "package_version": __version__, "library_created": mf.get("created"),
        "seed": mf.get("seed"), "census": _sanitize_census(mf.get("census")), "models": models,
        "templates": _template_hashes(mf),
        "stages": [h.get("stage") for h in mf.get("history", []) or [] if isinstance(h, dict)],
    }
    return {"calibration": name, "report": report, "personas": personas,
            "responses": responses, "metrics": metrics, "surveys": surveys, "left_out": left_out,
            "provenance": provenance, "caveats": panel_caveats(report, personas), "preferences": preference_frame(lib), "source_counts": personas["source"].value_counts().sort("source").rows()
            if "source" in personas.columns else []}


def write_panel_folder(panel: dict[str, Any], out: Path, *, repo: str | None = None,
                       templates: str | os.PathLike | None = None) -> list[str]:
    """Write the panel's files into an existing empty folder `out`; returns relative paths written."""
    files = []
    for cfg, frame in (("personas", panel["personas"]), ("responses", panel["responses"]),
                       ("calibration", panel["metrics"])):
        d = out / "data" / cfg
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(d / SPLIT_FILE, frame)
        files.append(f"data/{cfg}/{SPLIT_FILE}")
    configs = list(CONFIGS)
    if panel.get("preferences") is not None:
        files += write_preferences(panel["preferences"], out)
        configs.append(PREFERENCES)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "repo": repo,
            "calibration": panel["calibration"], "report": _clean_report(panel["report"]),
            "provenance": panel["provenance"],
            "surveys": panel["surveys"], "left_out": panel["left_out"], "configs": configs,
            "caveats": panel.get("caveats", [])}
    atomic_write_json(out / PANEL_JSON, meta)
    files.append(PANEL_JSON)
    card = render_card(panel, repo=repo, templates=templates)
    (out / "README.md").write_text(card, encoding="utf-8")
    files.append("README.md")
    return sorted(files)


@dataclass(frozen=True)
class PublishOptions:
    """Options of `publish_panel` (a Hub push) and `export_panel` (a local folder), docs/design.md §3 `publish`.

    calibration: NAME (None: the library's only one); templates: a folder overriding the dataset card template;
    private/revision/commit_message: the push's repo visibility, branch and message (a push only);
    overwrite: replace an existing export folder (a local export only)."""

    calibration: str | None = None
    templates: str | os.PathLike | None = None
    private: bool = False
    revision: str | None = None
    commit_message: str | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("calibration", "revision", "commit_message"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise BadInput(f"{name} {v!r}: expected a non-empty string or None", field=name)


def export_panel(lib: Library | str | os.PathLike, out: str | os.PathLike, options: PublishOptions | None = None,
                 *, repo: str | None = None, **deprecated: Any) -> ExportResult:
    """Export `lib` + one calibration as a Hub dataset folder at `out` (atomic: staged, then renamed).

    options: a `PublishOptions` (None: the defaults; `calibration=`/`templates=`/`overwrite=` keywords instead
    are deprecated, one release); repo: the ORG/NAME the card names (the folder is not pushed)."""
    o = stage_options(PublishOptions, options, deprecated, "export_panel")
    for name in ("private", "revision"):
        if getattr(o, name):
            raise BadInput(f"{name} {getattr(o, name)!r}: applies to a push (publish_panel), not to a local export",
                           field=name)
    if not isinstance(lib, Library):
        lib = Library.open(lib)
    if repo is not None:
        validate_repo_id(repo)
    panel = build_panel(lib, o.calibration)
    with staged_dir(out, overwrite=o.overwrite) as tmp:
        files = write_panel_folder(panel, tmp, repo=repo, templates=o.templates)
    return ExportResult(Path(out), panel["calibration"], panel["personas"].height, panel["responses"].height,
                        panel["metrics"].height, panel["left_out"], files, count_answers(panel["responses"]))
