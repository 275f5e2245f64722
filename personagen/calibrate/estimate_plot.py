"""`estimate --plot`: one panel per question, bars for the weighted shares (one colour per group) with the
sampling interval as error bars, the prediction interval as a thin wide line, human targets as black ticks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl

from personagen.calibrate.report import new_figure, save_png

MAX_PANELS = 24


def plot_estimate(table: pl.DataFrame, path: str | Path, *, title: str = "") -> int:
    """Draw up to MAX_PANELS questions of an estimate table into a PNG; returns the number of panels drawn."""
    qids = list(dict.fromkeys(table["qid"].to_list()))[:MAX_PANELS]
    groups = list(dict.fromkeys(table["group"].to_list()))
    ncols = min(3, len(qids))
    nrows = math.ceil(len(qids) / ncols)
    fig, axes = new_figure(5.2 * ncols, 3.4 * nrows + 0.4, nrows, ncols)
    axes = np.atleast_1d(axes).ravel()
    width = 0.8 / len(groups)
    for ax, q in zip(axes, qids):
        sub = table.filter(pl.col("qid") == q)
        opts = list(dict.fromkeys(sub["option"].to_list()))
        x = np.arange(len(opts))
        for k, g in enumerate(groups):
            s = sub.filter(pl.col("group") == g)
            if s.height == 0:
                continue
            e = s["estimate"].fill_null(np.nan).to_numpy()
            xs = x + (k - (len(groups) - 1) / 2) * width
            lo, hi = s["lo"].fill_null(np.nan).to_numpy(), s["hi"].fill_null(np.nan).to_numpy()
            yerr = np.vstack([np.nan_to_num(e - lo), np.nan_to_num(hi - e)])
            ax.bar(xs, e, width * 0.9, yerr=yerr, capsize=2, label=g if ax is axes[0] else None,
                   color=f"C{k % 10}", alpha=0.85)
            plo, phi = s["plo"].fill_null(np.nan).to_numpy(), s["phi"].fill_null(np.nan).to_numpy()
            ax.vlines(xs, plo, phi, color="0.3", lw=0.8, alpha=0.7)
            t = s["target"].fill_null(np.nan).to_numpy()
            ax.scatter(xs, t, marker="_", s=120, color="k", zorder=3,
                       label="human share" if ax is axes[0] and k == 0 else None)
        split = sub["split"][0]
        ax.set_title(f"{q} ({split})", fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels([o if len(o) <= 18 else o[:17] + "…" for o in opts], rotation=30, ha="right",
                           fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_ylabel("share", fontsize=8)
    for ax in axes[len(qids):]:
        ax.set_axis_off()
    if len(qids):
        axes[0].legend(fontsize=7)
    fig.suptitle(title or "weighted shares: bars ± sampling interval, grey line = prediction interval", fontsize=10)
    fig.tight_layout()
    save_png(fig, path)
    return len(qids)
