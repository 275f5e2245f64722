"""Result tables of the reproduction commands: aggregation with intervals, markdown, JSON (temp-then-replace)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from personagen.reproduce.published import P2P_SOURCE, p2p_published, paper_updates

P2P_ROWS: dict[str, tuple[str, str]] = {  # row label -> (estimator key, metric)
    "Avg. entropy": ("lasso", "entropy"),
    "Test MSE (Lasso)": ("lasso", "mse"),
    "Test MSE (Enet)": ("enet", "mse"),
    "Test 1-JSD (Lasso)": ("lasso", "jsd"),
    "Test MCPA (Lasso)": ("lasso", "mcpa"),
    "Test 1-JSD (Enet)": ("enet", "jsd"),
    "Test MCPA (Enet)": ("enet", "mcpa"),
    "ECR (Lasso)": ("lasso", "ecr"),
    "Agents with weight (Lasso)": ("lasso", "nonzeros"),
    "Invalid answers (share)": ("lasso", "invalid_share"),
}
METHOD_ORDER = ("Vanilla", "PERSONA-style census", "Vanilla k-means", "Equal-weight average", "P2P")


def _per_repeat(m: dict[str, Any], metric: str) -> float:
    if metric == "mse":
        return float(m["sq"].sum() / m["k"].sum())
    if metric in ("jsd", "mcpa"):
        return float(np.mean(m[metric]))
    return float(m[metric])


def _question_ci(ms: list[dict[str, Any]], metric: str, rng: np.random.Generator, n_boot: int = 1000
                 ) -> list[float] | None:
    """95% bootstrap interval over test questions (pooled over repeats) for per-question metrics."""
    if metric not in ("mse", "jsd", "mcpa"):
        return None
    if metric == "mse":
        num, den = np.concatenate([m["sq"] for m in ms]), np.concatenate([m["k"] for m in ms])
        idx = rng.integers(0, num.size, (n_boot, num.size))
        vals = num[idx].sum(1) / den[idx].sum(1)
    else:
        v = np.concatenate([m[metric] for m in ms])
        vals = v[rng.integers(0, v.size, (n_boot, v.size))].mean(1)
    return [float(np.quantile(vals, 0.025)), float(np.quantile(vals, 0.975))]


def p2p_table(wave: str, repeats: list[dict[str, dict]], seed: int = 0, n_updates: int | None = None
              ) -> dict[str, Any]:
    """{wave, methods, rows: {row: {method: {mean, sd, ci, paper}}}, source} from the repeats' scores."""
    rng = np.random.default_rng(seed)
    methods = [m for m in METHOD_ORDER if any(m in r for r in repeats)]
    paper = p2p_published(wave)
    rows: dict[str, dict[str, Any]] = {}
    for label, (est, metric) in P2P_ROWS.items():
        cells = {}
        for m in methods:
            ms = [r[m][est] for r in repeats if m in r and est in r[m]]
            pub = paper.get(m, {}).get(label)
            if not ms:
                cells[m] = {"mean": None, "sd": None, "ci": None, "paper": pub}
                continue
            vals = [_per_repeat(x, metric) for x in ms]
            cells[m] = {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                        "ci": _question_ci(ms, metric, rng), "paper": pub}
        rows[label] = cells
    return {"wave": wave, "repeats": len(repeats), "methods": methods, "rows": rows, "paper_source": P2P_SOURCE,
            "n_updates": n_updates, "paper_n_updates": paper_updates(wave)}


def _fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _cell(c: dict[str, Any]) -> str:
    s = _fmt(c.get("mean"))
    if c.get("sd") is not None:
        s += f" ± {_fmt(c['sd'])}"
    if c.get("ci"):
        s += f" [{_fmt(c['ci'][0])}, {_fmt(c['ci'][1])}]"
    p = c.get("paper")
    if p:
        s += f" (paper {_fmt(p[0])}" + (f" ± {_fmt(p[1])})" if p[1] is not None else ")")
    return s


def p2p_markdown(table: dict[str, Any]) -> str:
    ms = table["methods"]
    steps = table.get("n_updates")
    out = [f"## P2P reproduction, ATP {table['wave']} ({table['repeats']} repeats, P2P with "
           f"{steps if steps is not None else '?'} update steps; the paper's P2P cells: {table['paper_n_updates']})",
           "",
           "mean ± sd over repeats [95% bootstrap interval over test questions] (paper's value)", "",
           "| Metric | " + " | ".join(ms) + " |", "|---|" + "---|" * len(ms)]
    for label, cells in table["rows"].items():
        out.append(f"| {label} | " + " | ".join(_cell(cells[m]) for m in ms) + " |")
    out += ["", f"Paper numbers: {table['paper_source']}."]
    return "\n".join(out) + "\n"


def promptmix_markdown(table: dict[str, Any]) -> str:
    cols = table["columns"]
    out = [f"## Prompt-mixture reproduction, {table['target']} (Wasserstein distance, lower is better)", "",
           "ours (paper's value)", "", "| Method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, cells in table["rows"].items():
        parts = []
        for c in cols:
            x = cells.get(c, {})
            s = _fmt(x.get("w1"), 2)
            if x.get("paper") is not None:
                s += f" ({x['paper']:.2f})"
            parts.append(s)
        out.append(f"| {name} | " + " | ".join(parts) + " |")
    out += ["", f"Paper numbers: {table['paper_source']}."]
    return "\n".join(out) + "\n"


def write_table(stem: Path, table: dict[str, Any], markdown: str | None = None) -> dict[str, str]:
    """Write STEM/table.json and STEM/table.md (atomic); returns their paths."""
    from personagen.store import atomic_write_json, atomic_write_text

    stem.mkdir(parents=True, exist_ok=True)
    atomic_write_json(stem / "table.json", table)
    atomic_write_text(stem / "table.md", markdown or p2p_markdown(table))
    return {f"{stem.name}_json": str(stem / "table.json"), f"{stem.name}_md": str(stem / "table.md")}
