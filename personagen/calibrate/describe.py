"""`describe --calibration`: the weighted panel beside the pool and the census.

Per persona attribute: the pool's shares (every persona counts once), the weighted panel's (the calibration's
weights) and the PWGTP-weighted census's, with total variation distance and balance's absolute standardised mean
difference (metrics.asmd) before (pool) and after (weighted) weighting; Kish's effective sample size
(Σw)²/Σw² and design effect n/ESS = 1 + CV²(w) over the fitted personas; the attributes the weights moved
furthest from the census, named.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.calibrate.estimate import choose_calibration, read_weights
from personagen.calibrate.report import new_figure, save_png
from personagen.census import describe_library
from personagen.errors import BadInput
from personagen.library import Library
from personagen.metrics import asmd, kish_ess, tvd
from personagen.options import stage_options

TOP_MOVED = 3
NA = "(not applicable)"  # the census describe's label for a missing value
MAX_CATEGORIES = 30  # without a census, describe persona columns with at most this many values


def _attribute_columns(personas: pl.DataFrame) -> list[str]:
    """Categorical persona columns worth describing when there is no census to name them."""
    skip = {"persona_id", "source", "mode", "enriched", "weight_census", "pwgtp", "serialno", "weight"}
    return [c for c in personas.columns if c not in skip and not c.startswith(("text", "rep_"))
            and personas[c].dtype in (pl.String, pl.Categorical, pl.Boolean)
            and personas[c].n_unique() <= MAX_CATEGORIES]


def _shares(df: pl.DataFrame, col: str, w: np.ndarray | None) -> dict[str, float]:
    ww = np.ones(df.height) if w is None else w
    g = (pl.DataFrame({"k": df[col].cast(pl.String).fill_null(NA), "w": ww}).group_by("k")
         .agg(pl.col("w").sum()).sort("k"))
    total = float(g["w"].sum())
    return {k: float(v) / total for k, v in zip(g["k"].to_list(), g["w"].to_list())} if total > 0 else {}


def _census(lib: Library, census: str | None, notes: list[str]) -> dict[str, Any]:
    try:
        return describe_library(lib, census=census)["attributes"]
    except BadInput as e:  # a library without a census source still gets its weights described
        if census is not None:
            raise
        notes.append(f"no census comparison: {e}")
        return {}


@dataclass(frozen=True)
class DescribeOptions:
    """Options of `describe_calibration` (docs/design.md §3 `describe --calibration`).

    calibration: the calibration NAME (None: the library's only one); census: a PUMS file to compare with
    (None: the library's census source)."""

    calibration: str | None = None
    census: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        if self.calibration is not None and not isinstance(self.calibration, str):
            raise BadInput(f"calibration {self.calibration!r}: expected a calibration name", field="calibration")


def describe_calibration(lib: Library | str, options: DescribeOptions | None = None, **deprecated: Any
                         ) -> dict[str, Any]:
    """Pool vs weighted panel vs census per attribute, ESS, design effect, weights summary (a JSON-ready dict).

    options: a `DescribeOptions` (None: the defaults; keyword arguments instead are deprecated, one release)."""
    if not isinstance(lib, Library):
        lib = Library.open(lib)
    o = stage_options(DescribeOptions, options, deprecated, "describe_calibration")
    calibration, census = o.calibration, (None if o.census is None else os.fspath(o.census))
    name = choose_calibration(lib, calibration)
    w, report = read_weights(lib, name)
    raw = pl.read_parquet(lib.calibration_dir(name) / "weights.parquet")
    asked = raw["asked"].to_numpy() if "asked" in raw.columns else np.ones(raw.height, bool)
    personas = pl.DataFrame({"persona_id": w["persona_id"]}).join(lib.personas(), on="persona_id", how="left",
                                                                    maintain_order="left")
    weights = w["weight"].to_numpy()
    fitted = weights[asked]
    notes: list[str] = []
    cen = _census(lib, census, notes)
    attrs = [a for a in (list(cen) or _attribute_columns(personas)) if a in personas.columns]
    out: dict[str, Any] = {}
    for a in attrs:
        pool, panel = _shares(personas.filter(pl.Series(asked)), a, None), _shares(personas, a, weights)
        c = cen.get(a, {}).get("census")
        rec: dict[str, Any] = {"pool": pool, "weighted": panel, "census": c}
        if c:
            rec.update(tvd_before=tvd(pool, c), tvd_after=tvd(panel, c), asmd_before=asmd(pool, c),
                       asmd_after=asmd(panel, c))
        out[a] = rec
    ess = kish_ess(fitted)
    moved = sorted((a for a in out if "tvd_after" in out[a]), key=lambda a: out[a]["tvd_before"] - out[a]["tvd_after"])
    return {"library": str(lib.path), "calibration": name, "n_personas": int(asked.sum()),
            "n_built": raw.height, "ess": ess, "design_effect": int(asked.sum()) / ess,
            "nonzeros": int((fitted > 0).sum()), "max_weight": float(fitted.max()),
            "weight_quantiles": {str(q): float(np.quantile(fitted, q)) for q in (0.5, 0.9, 0.99)},
            "top10_weight_share": float(np.sort(fitted)[::-1][:10].sum() / fitted.sum()),
            "moved_furthest_from_census": [a for a in moved[:TOP_MOVED] if out[a]["tvd_after"] > out[a]["tvd_before"]],
            "furthest_from_census": sorted((a for a in out if "tvd_after" in out[a]),
                                           key=lambda a: -out[a]["tvd_after"])[:TOP_MOVED],
            "attributes": out, "caveats": list(report.caveats) if report is not None else [],
            "notes": notes}


def plot_calibration(res: dict[str, Any], weights: np.ndarray, path: str | Path) -> None:
    """Two panels: the Lorenz curve of the weights (share of personas vs share of weight, with ESS and deff), and
    TVD to the census per attribute before (pool) and after (weighted)."""
    fig, (a1, a2) = new_figure(12, 4.8, 1, 2)
    w = np.sort(np.asarray(weights, dtype=float))
    x = np.linspace(0, 1, w.size + 1)
    a1.plot(x, np.concatenate([[0], np.cumsum(w) / w.sum()]), color="tab:blue", label="weighted panel")
    a1.plot([0, 1], [0, 1], color="0.5", ls="--", lw=0.8, label="equal weights")
    a1.set_xlabel("share of personas (smallest weight first)")
    a1.set_ylabel("share of total weight")
    a1.set_title(f"weights: Kish ESS {res['ess']:.1f} of {res['n_personas']}, design effect "
                 f"{res['design_effect']:.2f}", fontsize=10)
    a1.legend(fontsize=8)
    names = [a for a, d in res["attributes"].items() if "tvd_after" in d]
    if names:
        y = np.arange(len(names))
        a2.barh(y - 0.2, [res["attributes"][a]["tvd_before"] for a in names], 0.4, label="pool (before)",
                color="#DD8452")
        a2.barh(y + 0.2, [res["attributes"][a]["tvd_after"] for a in names], 0.4, label="weighted (after)",
                color="#4C72B0")
        a2.set_yticks(y)
        a2.set_yticklabels(names, fontsize=8)
        a2.invert_yaxis()
        a2.set_xlabel("TVD to the census (PWGTP-weighted)")
        a2.legend(fontsize=8)
    else:
        a2.text(0.5, 0.5, "no census comparison", ha="center", va="center", transform=a2.transAxes)
        a2.set_axis_off()
    a2.set_title(f"{res['calibration']}: attributes vs census", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
