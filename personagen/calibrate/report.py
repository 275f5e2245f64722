"""Calibration artifacts: weights.parquet, report.json, report.md, predicted_vs_target.png, cv_curve.png.

The report is built to make overfitting visible: train / valid / test metrics side by side with the
equal-weight panel and the uniform distribution, plus the effective sample size and the number of
personas that keep a weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from personagen.calibration_report import write_report
from personagen.store import atomic_write_bytes, atomic_write_parquet


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
    ax.set_title(f"{cal.report.name}: predicted vs target")
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
    ser = _cv_series(rep.cv)
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
        chosen = rep.lam if rep.lam is not None else rep.alpha
        if chosen is not None:
            cx = chosen if chosen > 0 else (np.min(g[pos]) / 10 if pos.any() else 1e-8)
            ax.axvline(cx, color="tab:red", ls="--", label=f"chosen {chosen:.3g}")
        ax.set_xlabel(f"{pname} (0 drawn at the left edge)")
        ax.set_ylabel("held-out-question error")
        ax.legend(fontsize=8)
    ax.set_title(f"{rep.name}: cross-validation")
    fig.tight_layout()
    save_png(fig, path)


def write_calibration(folder: str | Path, cal: Any) -> None:
    """Write the five calibration files into `folder` (a staged temp dir renamed into place by the caller)."""
    folder = Path(folder)
    atomic_write_parquet(folder / "weights.parquet", cal.weights)
    write_report(folder, cal.report)
    _plot_pred_vs_target(folder / "predicted_vs_target.png", cal)
    _plot_cv(folder / "cv_curve.png", cal)
