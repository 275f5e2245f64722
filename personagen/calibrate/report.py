"""Calibration artifacts: weights.parquet, report.json, report.md, predicted_vs_target.png, cv_curve.png.

The report is built to make overfitting visible: train / valid / test metrics side by side with the
equal-weight panel and the uniform distribution, plus the effective sample size and the number of
personas that keep a weight.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from personagen.store import atomic_write_bytes, atomic_write_json, atomic_write_parquet, atomic_write_text

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


def render_markdown(report: dict[str, Any]) -> str:
    """A readable report: summary, then a split × (calibrated, equal weights, uniform) table per metric."""
    r = report
    lines = [f"# Calibration `{r.get('name')}`", ""]
    lines += [
        f"- method **{r['method']}** (pull {r.get('pull')}, base {r.get('base')}, block weighting "
        f"{'on' if r.get('block_weighting') else 'off'}), survey `{r['survey_id']}`, group `{r['group']}`",
        f"- λ = {_fmt(r.get('lam'))}, α = {_fmt(r.get('alpha'))} (chosen by CV grouped by question when not fixed)",
        f"- personas: {r['n_personas']}, nonzero weights: **{r['nonzeros']}**, Kish ESS: **{r['ess']:.1f}**, "
        f"negative weights: {r['negative_weights']}, largest weight: {r.get('max_weight', float('nan')):.4f}",
        f"- solver {r.get('solver')} in {_fmt(r.get('solver_seconds'))} s; questions train/valid/test: "
        + "/".join(str(r.get("n_questions", {}).get(s, 0)) for s in ("train", "valid", "test")),
    ]
    if r.get("model"):
        lines.append(f"- responses: model `{r['model']}`, mode `{r['mode']}`")
    if r.get("personas_built") is not None:
        lines.append(f"- personas asked (fitted) / built: {r.get('personas_asked')} / {r['personas_built']} "
                     "(weights.parquet `asked` = false marks the never-fitted ones, weight 0 by construction)")
    rp = r.get("replicates") or {}
    if rp.get("r"):
        lines.append(f"- {rp['r']} {rp.get('method')} replicate weights (rep_1..rep_{rp['r']}, seed {rp.get('seed')},"
                     f" {_fmt(rp.get('seconds'))} s); variance {rp.get('variance')}; penalty {rp.get('penalty')}")
    elif "replicates" in r:
        lines.append("- no replicate weights (--replicates 0): `estimate` gives no standard errors")
    if r.get("overfit") and r["overfit"].get("test_over_train") is not None:
        o = r["overfit"]
        lines.append(f"- overfitting check: test MSE / train MSE = {o['test_over_train']:.2f}; "
                     f"test MSE / equal-weight test MSE = {o['test_vs_uniform_average']:.2f}")
    lines.append("")
    metrics = r.get("metrics", {})
    base = r.get("baselines", {})
    cols = [("calibrated", metrics), ("equal weights", base.get("uniform_average", {})),
            ("uniform distribution", base.get("uniform_distribution", {}))]
    if "census_base" in base:
        cols.insert(2, ("census base weights", base["census_base"]))
    names = [m for m in METRIC_LABELS if any(m in (metrics.get(s) or {}) for s in metrics)]
    for m in names:
        arrow = "lower is better" if m in LOWER_IS_BETTER else "higher is better"
        lines += [f"## {METRIC_LABELS[m]} ({arrow}; 95% bootstrap CI over questions)", "",
                  "| split | " + " | ".join(c for c, _ in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for s in ("train", "valid", "test"):
            if s not in metrics:
                continue
            lines.append(f"| {s} | " + " | ".join(_cell(src.get(s), m) for _, src in cols) + " |")
        lines.append("")
    if r.get("margins_tvd"):
        t = r["margins_tvd"]
        lines += ["## Census margins (total variation distance)", "", "| variable | before | after |", "|---|---|---|"]
        for v in t["after"]:
            lines.append(f"| {v} | {t['before'][v]:.4f} | {t['after'][v]:.4f} |")
        lines.append("")
    if r.get("caveats"):
        lines += ["## Caveats", ""] + [f"- warning: {c}" for c in r["caveats"]] + [""]
    if r.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in r["notes"]] + [""]
    return "\n".join(lines)


def _plot_pred_vs_target(path: Path, cal: Any) -> None:

    prep = cal.prepared
    des = prep.design
    n = len(des.persona_ids)
    w = cal.weights["weight"].to_numpy()[:n]  # the fitted personas come first, in design order
    pred = des.predict(w)
    uni = des.predict(np.full(n, 1.0 / n))
    fig, ax = new_figure(5.5, 5.5)
    colors = {"train": "tab:blue", "valid": "tab:orange", "test": "tab:red"}
    for s, qs in prep.splits.items():
        if not qs:
            continue
        t = np.concatenate([prep.targets[q] for q in qs])
        p = np.concatenate([pred[q] for q in qs])
        u = np.concatenate([uni[q] for q in qs])
        ax.scatter(t, u, s=8, marker="x", color="0.6", alpha=0.6,
                   label="equal weights" if s == "train" else None)
        ax.scatter(t, p, s=12, color=colors.get(s, "k"), alpha=0.8, label=f"calibrated, {s}")
    ax.plot([0, 1], [0, 1], color="k", lw=0.8)
    ax.set_xlabel("target share")
    ax.set_ylabel("predicted share")
    ax.set_title(f"{cal.report['name']}: predicted vs target")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1) -> tuple[Any, Any]:
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global backend switch) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols)


def save_png(fig: Any, path: str | Path) -> None:
    """Render a figure to PNG bytes and write them atomically."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(Path(path), buf.getvalue())


def _cv_series(cv: dict[str, Any] | None) -> tuple[list[float], list[float], list[float], str] | None:
    """(grid, mean held-out error, standard error, parameter name) of a CV curve (CVCurve.to_dict fields)."""
    if not cv:
        return None
    return (list(map(float, cv["grid"])), list(map(float, cv["mean"])), list(map(float, cv["se"])),
            str(cv["param"]))


def _plot_cv(path: Path, cal: Any) -> None:

    rep = cal.report
    fig, ax = new_figure(6, 4)
    ser = _cv_series(rep.get("cv"))
    if ser is None:
        ax.text(0.5, 0.5, "no cross-validation curve\n(penalty fixed or not tuned for this method)",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        grid, err, se, pname = ser
        order = np.argsort(grid)
        grid = [grid[i] for i in order]
        err = [err[i] for i in order]
        se = [se[i] for i in order] if se is not None else None
        g = np.asarray(grid)
        pos = g > 0
        x = np.where(pos, g, np.min(g[pos]) / 10 if pos.any() else 1e-8)
        ax.plot(x, err, "o-", color="tab:blue", label="CV error")
        if se is not None:
            ax.fill_between(x, np.asarray(err) - se, np.asarray(err) + se, alpha=0.2, color="tab:blue")
        ax.set_xscale("log")
        chosen = rep.get("lam") if rep.get("lam") is not None else rep.get("alpha")
        if chosen is not None:
            cx = chosen if chosen > 0 else (np.min(g[pos]) / 10 if pos.any() else 1e-8)
            ax.axvline(cx, color="tab:red", ls="--", label=f"chosen {chosen:.3g}")
        ax.set_xlabel(f"{pname} (0 drawn at the left edge)")
        ax.set_ylabel("held-out-question error")
        ax.legend(fontsize=8)
    ax.set_title(f"{rep['name']}: cross-validation")
    fig.tight_layout()
    save_png(fig, path)


def write_calibration(folder: str | Path, cal: Any) -> None:
    """Write the five calibration files into `folder` (a staged temp dir renamed into place by the caller)."""
    folder = Path(folder)
    atomic_write_parquet(folder / "weights.parquet", cal.weights)
    atomic_write_json(folder / "report.json", cal.report)
    atomic_write_text(folder / "report.md", render_markdown(cal.report))
    _plot_pred_vs_target(folder / "predicted_vs_target.png", cal)
    _plot_cv(folder / "cv_curve.png", cal)
