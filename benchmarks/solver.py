"""Print the solver figures: fast path vs cvxpy/Clarabel side by side in one run (see personagen.bench.solver).

Usage: .venv/bin/python benchmarks/solver.py [--big] [--scale] [--before DIR] [--cap S]
  --big    adds the 5000 agents × 2000 questions fit
  --scale  adds 20k agents × 5000 rows and 100k × 1000 rows (rows = questions × 4 options): the default fit
           (λ by CV) and λ = 0, each in its own subprocess (time and peak RSS from ru_maxrss), Clarabel at λ = 0,
           every case stopped at --cap seconds (default 300). --before DIR runs the same cases with the package
           found in DIR (e.g. an exported older commit) for a side-by-side table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from personagen.bench.solver import bench_onehot_cv, bench_solver

SCALE_CASES = ((20_000, 5_000), (100_000, 1_000))
REPO = Path(__file__).resolve().parents[1]


def run_case(agents: int, rows: int, how: str, cap: float, root: Path) -> dict:
    """One scale case in a fresh interpreter with `root` first on the path; None figures when it ran past cap."""
    code = ("import json, sys; from personagen.bench.solver import scale_case; "
            f"print(json.dumps(scale_case({agents}, {rows}, {how!r})))")
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=cap, env=env)
    except subprocess.TimeoutExpired:
        return {"agents": agents, "rows": rows, "how": how, "seconds": None, "stopped_at": cap}
    if r.returncode != 0:
        return {"agents": agents, "rows": rows, "how": how, "seconds": None,
                "error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def _fmt(c: dict | None) -> str:
    if c is None:
        return "-"
    if c.get("seconds") is None:
        return f"> {c['stopped_at']:.0f} s (stopped)" if "stopped_at" in c else f"failed: {c.get('error')}"
    return f"{c['seconds']:.1f} s, {c['peak_rss_mb'] / 1024:.2f} GB"


def scale(cap: float, before: Path | None) -> list[dict]:
    """Run and print the scale table: after (this tree) and optionally before, plus Clarabel."""
    out = []
    print(f"scale (each case its own process, stopped at {cap:.0f} s; peak RSS includes the 0.8 GB design)")
    for agents, rows in SCALE_CASES:
        row: dict = {"agents": agents, "rows": rows}
        for how in ("cv", "lam0"):
            row[f"{how}_after"] = run_case(agents, rows, how, cap, REPO)
            if before is not None:
                row[f"{how}_before"] = run_case(agents, rows, how, cap, before)
        row["clarabel"] = run_case(agents, rows, "clarabel", min(cap, 120.0), REPO)
        print(f"  {agents} agents × {rows} rows: default (CV) {_fmt(row['cv_after'])}"
              f" [before {_fmt(row.get('cv_before'))}]; λ=0 {_fmt(row['lam0_after'])}"
              f" [before {_fmt(row.get('lam0_before'))}]; Clarabel λ=0 {_fmt(row['clarabel'])}", flush=True)
        out.append(row)
    return out


def main() -> None:
    """1000 × 500 with Clarabel and full CV; census-shaped CV; optionally 5000 × 2000 and the scale cases."""
    args = sys.argv[1:]
    cap = float(args[args.index("--cap") + 1]) if "--cap" in args else 300.0
    before = Path(args[args.index("--before") + 1]) if "--before" in args else None
    out: list = [bench_solver(1000, 500)]
    if "--big" in args:
        out.append(bench_solver(5000, 2000, cvxpy=False, cv=False, repeat=1))
    for o in out:
        print(f"{o['agents']} agents × {o['questions']} questions ({o['rows']} rows)")
        for f in o["fits"]:
            line = f"  lam={f['lam']:.3g}: fast {f['fast_seconds']:.3f}s"
            if "ratio" in f:
                line += f"  clarabel {f['cvxpy_seconds']:.2f}s  ratio {f['ratio']:.1f}x  gap {f['gap']:.1e}"
            print(line)
        if "cv" in o:
            print(f"  full CV ({o['cv']['folds']} folds x {o['cv']['grid_size']} lam): {o['cv']['seconds']:.2f}s")
    oh = bench_onehot_cv(60, 1000)
    print(f"census-shaped CV {oh['rows']} rows × {oh['agents']} agents: {oh['seconds']:.3f} s "
          f"({oh['folds']} folds x {oh['grid_size']} lam, one-hot agents)")
    extra = [{"census_shaped_cv": oh}]
    if "--scale" in args:
        extra.append({"scale": scale(cap, before)})
    print(json.dumps(out + extra))


if __name__ == "__main__":
    main()
