"""The dataset card (README.md): YAML front matter for the Hub + sections rendered from a Jinja template."""

from __future__ import annotations

import os
from typing import Any

import yaml

from personagen.calibration_report import CalibrationReport
from personagen.metrics import kish_ess
from personagen.publish.preferences import card_config as preferences_config
from personagen.templating import render

SPLIT_FILE = "train-00000-of-00001.parquet"  # one parquet file per config, the Hub's split naming
CONFIGS = ("personas", "responses", "calibration")
CARD_TEMPLATE = "publish/dataset_card.md.j2"
LICENSE = "cc-by-4.0"
SPLIT_ROLE = {"train": "in-sample (fitted)", "valid": "held out", "test": "held out"}

_METHOD_TEXT = {
    "simplex": "Simplex-constrained least squares with a pull towards base weights w0: "
               "min ½‖W^½(r − Dw)‖² + λ·N/2·‖w − w0‖² (or λ·KL(w‖w0)) subject to w ≥ 0, Σw = 1; "
               "λ chosen by K-fold cross-validation grouped by question (grid includes λ = 0).",
    "sparse": "Nonnegative lasso without the sum constraint, min ½‖r − Dw‖² + α‖w‖₁ s.t. w ≥ 0, then "
              "w / Σw; α chosen by cross-validation grouped by question.",
    "p2p-lasso": "Prompts-to-Proxies eq. (6): L1-penalised least squares with per-question sum-to-one "
                 "equality constraints; α by cross-validation.",
    "p2p-enet": "Prompts-to-Proxies eq. (7): elastic-net penalised least squares with per-question sum-to-one "
                "equality constraints; α and l1_ratio by cross-validation.",
    "rake": ("Raking of persona weights to the target margins (minimum KL divergence from the base weights: "
             "iterative proportional fitting on one-hot answers, Newton on the dual for probabilistic ones)."),
}


def front_matter(panel: dict[str, Any], repo: str | None = None) -> dict[str, Any]:
    """The card's YAML metadata (licence, task categories, tags, size, `configs:` with data_files)."""
    n = panel["personas"].height
    configs = []
    for cfg in CONFIGS:
        c: dict[str, Any] = {"config_name": cfg,
                             "data_files": [{"split": "train", "path": f"data/{cfg}/{SPLIT_FILE}"}]}
        if cfg == "personas":
            c["default"] = True
        configs.append(c)
    if panel.get("preferences") is not None:
        configs.append(preferences_config(panel["preferences"]))
    return {
        "license": LICENSE,
        "language": ["en"],
        "pretty_name": f"{repo.split('/')[-1] if repo else 'personagen'} synthetic persona panel",
        "task_categories": ["text-generation", "tabular-classification"],
        "tags": ["synthetic", "personas", "survey-simulation", "census", "acs-pums", "calibration",
                 "llm", "personagen"],
        "size_categories": [size_category(n)],
        "configs": configs,
    }


def size_category(n: int) -> str:
    """The Hub's `size_categories` label for a panel of `n` personas."""
    for lim, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                       (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < lim:
            return label
    return "10M<n<100M"


def _fmt(x: Any, nd: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.{nd}g}"
    return str(x)


def card_context(panel: dict[str, Any], repo: str | None = None) -> dict[str, Any]:
    """Everything the card template needs, already formatted."""
    rep = panel["report"]
    prov = panel["provenance"]
    method = rep.method
    metrics = panel["metrics"]
    rows = []
    for r in metrics.iter_rows(named=True):
        ci = f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]" if r["ci_low"] is not None else "—"
        rows.append({"estimator": r["estimator"], "split": r["split"], "metric": r["metric"],
                     "value": _fmt(r["value"]), "ci": ci, "role": SPLIT_ROLE.get(r["split"], "—")})
    census = prov.get("census") or {}
    return {
        "repo": repo or "ORG/NAME",
        "title": (repo.split("/")[-1] if repo else "personagen panel"),
        "n_personas": panel["personas"].height,
        "n_responses": panel["responses"].height,
        "n_nonzero": int((panel["personas"]["weight"] > 0).sum()),
        "source_counts": panel.get("source_counts") or [],
        "calibration": panel["calibration"],
        "method": method,
        "method_text": _METHOD_TEXT.get(method, "See the calibration report for the estimator."),
        "lam": _fmt(rep.lam), "alpha": _fmt(rep.alpha),
        "survey_id": rep.survey_id or "—", "group": rep.group or "overall",
        "ess": _fmt(kish_ess(panel["personas"]["weight"].to_numpy())),
        "nonzeros": int((panel["personas"]["weight"] > 0).sum()),
        "solver": rep.solver or "—",
        "metric_rows": rows,
        "census": {k: ", ".join(map(str, v)) if isinstance(v, list) else _fmt(v) for k, v in census.items()
                   if v is not None},
        "seed": _fmt(prov.get("seed")),
        "models": prov.get("models") or [],
        "templates": prov.get("templates") or {},
        "package_version": prov.get("package_version"),
        "surveys": panel["surveys"],
        "left_out": panel["left_out"],
        "response_columns": panel["responses"].columns,
        "n_preferences": panel["preferences"].height if panel.get("preferences") is not None else 0,
        "license": LICENSE,
        "caveats": panel.get("caveats") or [],
        "replicates": _replicates(rep, panel["personas"]),
    }


def _replicates(rep: CalibrationReport, personas: Any) -> dict[str, Any] | None:
    """How the published replicate weight columns were made (None when the panel has none)."""
    r = sum(c.startswith("rep_") for c in personas.columns)
    if not r:
        return None
    info = rep.replicates
    if info is None or not info.r:
        return {"r": r, "method": "bootstrap", "seed": "—", "penalty": "not recorded"}
    return {"r": r, "method": info.method or "bootstrap", "seed": "—" if info.seed is None else info.seed,
            "penalty": info.penalty or "not recorded"}


def render_card(panel: dict[str, Any], *, repo: str | None = None,
                templates: str | os.PathLike | None = None) -> str:
    """README.md text: `---` YAML front matter `---` then the rendered card template."""
    fm = yaml.safe_dump(front_matter(panel, repo), sort_keys=False, allow_unicode=True)
    body = render(CARD_TEMPLATE, templates, **card_context(panel, repo))
    return f"---\n{fm}---\n\n{body}\n"
