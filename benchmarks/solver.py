"""Print the solver figures: fast path vs cvxpy/Clarabel side by side in one run (see personagen.bench.solver).

Usage: .venv/bin/python benchmarks/solver.py [--big]   (--big adds the 5000 agents × 2000 questions fit)
"""

from __future__ import annotations

import json
import sys

from personagen.bench.solver import bench_onehot_cv, bench_solver


def main() -> None:
    """1000 × 500 with Clarabel and full CV; census-shaped CV; optionally 5000 × 2000 fast path only."""
    out = [bench_solver(1000, 500)]
    if "--big" in sys.argv:
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
    print(json.dumps(out + [{"census_shaped_cv": oh}]))


if __name__ == "__main__":
    main()
