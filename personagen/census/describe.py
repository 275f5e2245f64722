"""Compare a library's persona pool with its census source: per attribute, pool shares vs PWGTP-weighted census
shares and their total variation distance (TVD = ½ Σ |p − q|). A PWGTP-proportional pool is self-weighting,
so the pool side is the plain share of personas.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from personagen.census.codebook import attributes
from personagen.census.population import check_same_states, load_population, manifest_census
from personagen.errors import BadInput
from personagen.library import Library
from personagen.metrics import tvd

ATTRIBUTES: tuple[str, ...] = (
    "age_band", "sex", "race", "hispanic", "education", "employment", "class_of_worker", "marital_status",
    "citizenship", "nativity", "veteran", "disability", "health_insurance", "income_band", "language",
    "english_ability",
)
NA = "(not applicable)"


def _shares(df: pl.DataFrame, col: str, weight: str | None) -> dict[str, float]:
    w = pl.col(weight).cast(pl.Float64) if weight else pl.lit(1.0)
    g = (df.select(pl.col(col).cast(pl.String).fill_null(NA).alias("k"), w.alias("w"))
         .group_by("k").agg(pl.col("w").sum()).sort("k"))
    total = float(g["w"].sum())
    return {k: float(v) / total for k, v in zip(g["k"].to_list(), g["w"].to_list())} if total > 0 else {}


def describe_library(lib: Library | str | os.PathLike, census: str | os.PathLike | None = None,
                     attributes: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """Pool vs weighted-census distributions and TVD per attribute, for a Library (or its path)."""

    if not isinstance(lib, Library):
        lib = Library.open(lib)
    personas = lib.personas()
    src = manifest_census(lib.manifest, lib.path / "manifest.json")
    path = census or src["path"]
    if not path:
        raise BadInput(f"{lib.path}: manifest names no census source; pass --census PATH")
    if not Path(path).exists():
        raise BadInput(f"{path}: census file (from {'--census' if census else 'the manifest'}) does not exist;"
                       " pass --census PATH")
    pop = load_population(path, min_age=18 if src["min_age"] is None else src["min_age"], state=src["build_state"],
                          year=src["year"] if not census else None)
    check_same_states(personas, pop, path, lib.path)
    if "source" in personas.columns and personas.filter(pl.col("source") == "census").height:
        pool = personas.filter(pl.col("source") == "census")
    else:
        pool = personas
    attrs = [a for a in (attributes or ATTRIBUTES) if a in pool.columns and a in pop.columns]
    out: dict[str, Any] = {}
    for a in attrs:
        p, q = _shares(pool, a, None), _shares(pop, a, "pwgtp")
        out[a] = {"tvd": round(tvd(p, q), 6), "pool": p, "census": q}
    return {"library": str(lib.path), "census": str(path), "n_personas": pool.height,
            "census_records": pop.height, "census_population": int(pop["pwgtp"].sum()), "attributes": out}


SMALL_SHARE = 0.01  # categories under 1 % on both sides are grouped into "other (k categories)"


def _panel(name: str, d: dict[str, Any], order: dict[str, list[str]], top: int) -> tuple:
    """(name, tvd, categories, pool shares, census shares): census order (or band order), the `top` largest
    shown, categories under SMALL_SHARE on both sides and the rest grouped as "other (k categories)"."""
    cats = sorted(d["census"], key=lambda k: -d["census"][k])
    if name in order:
        rank = {k: i for i, k in enumerate(order[name])}
        cats = sorted(d["census"], key=lambda k: rank.get(k, len(rank)))
    cats += [k for k in d["pool"] if k not in d["census"]]
    share = {k: max(d["pool"].get(k, 0.0), d["census"].get(k, 0.0)) for k in cats}
    small = [k for k in cats if share[k] < SMALL_SHARE] if name not in order else []
    keep = [k for k in cats if k not in small] if len(small) > 1 else cats
    rest = [k for k in cats if k not in keep[:top]]
    keep = keep[:top]
    pool = [d["pool"].get(k, 0.0) for k in keep]
    cen = [d["census"].get(k, 0.0) for k in keep]
    if rest:
        keep = keep + [f"other ({len(rest)} categories)" if len(rest) > 1 else rest[0]]
        pool.append(sum(d["pool"].get(k, 0.0) for k in rest))
        cen.append(sum(d["census"].get(k, 0.0) for k in rest))
    return name, d["tvd"], keep, pool, cen


def percent_decimals(ticks: list[float]) -> int:
    """Fewest decimals (0-3) that print every tick share exactly as a percentage: 0.025 -> 1 ("2.5%")."""
    for dec in range(4):
        if all(abs(round(t * 100, dec) - t * 100) < 1e-9 for t in ticks):
            return dec
    return 3


def _draw_panel(ax: Any, panel: tuple, matplotlib: Any) -> None:
    import textwrap

    name, t, cats, pool, cen = panel
    y = list(range(len(cats)))
    ax.barh([v - 0.2 for v in y], cen, height=0.4, color="#4C72B0", label="census (PWGTP-weighted)")
    ax.barh([v + 0.2 for v in y], pool, height=0.4, color="#DD8452", label="persona pool")
    xmax = max(cen + pool + [1e-9]) * 1.18  # room for the value labels
    locator = matplotlib.ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10])
    ticks = [v for v in locator.tick_values(0, xmax) if 0 <= v <= xmax]
    ax.set_xlim(0, xmax)
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=percent_decimals(ticks)))
    for v, c, p in zip(y, cen, pool):  # every bar labelled, so a small category is never invisible
        ax.text(c, v - 0.2, f" {c:.1%}", va="center", fontsize=6, color="#4C72B0")
        ax.text(p, v + 0.2, f" {p:.1%}", va="center", fontsize=6, color="#DD8452")
    ax.set_yticks(y)
    ax.set_yticklabels([textwrap.fill(c, 30).replace("$", r"\$") for c in cats], fontsize=7)
    ax.invert_yaxis()
    ax.set_title(f"{name}   TVD = {t:.3f}", fontsize=10, loc="left")
    ax.tick_params(axis="x", labelsize=8)


def plot_describe(result: dict[str, Any], path: str | os.PathLike, *, top: int = 10) -> Path:
    """Write a PNG of pool vs census shares per attribute: correct percentage ticks, wrapped category names,
    every bar labelled with its share, small categories grouped as "other (k categories)"."""
    import matplotlib
    import matplotlib.ticker  # noqa: F401  (the panels' tick locators and formatters)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if not path.parent.exists():
        raise BadInput(f"{path}: directory {path.parent} does not exist")

    spec = attributes()
    order = {"age_band": [b[0] for b in spec["age_bands"]], "income_band": [b[0] for b in spec["income_bands"]]}
    panels = [_panel(name, d, order, top) for name, d in result["attributes"].items()]
    ncol = 2
    rows = [panels[i:i + ncol] for i in range(0, len(panels), ncol)]
    lines = [max(sum(1 + len(c) // 31 for c in p[2]) for p in r) for r in rows]
    heights = [n * 0.3 + 0.9 for n in lines]
    total = sum(heights) + 0.8
    fig = Figure(figsize=(15, total))  # its own Agg canvas: the caller's pyplot backend is left alone
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(len(rows), ncol, height_ratios=heights, hspace=0.55, wspace=0.45,
                          top=1 - 0.7 / total, bottom=0.3 / total, left=0.14, right=0.98)
    for i, r in enumerate(rows):
        for j, panel in enumerate(r):
            ax = fig.add_subplot(gs[i, j])
            _draw_panel(ax, panel, matplotlib)
            if i == 0 and j == 0:
                fig.legend(fontsize=9, loc="upper left", ncol=2, frameon=False)
    fig.suptitle(f"Persona pool (n={result['n_personas']:,}) vs census ({Path(result['census']).name})",
                 fontsize=12, y=1 - 0.25 / total)
    try:
        fig.savefig(path, dpi=80)
    except OSError as e:
        raise BadInput(f"{path}: cannot write the plot ({e.strerror})") from None
    return path
