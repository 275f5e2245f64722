"""Print the solver figures: fast path vs cvxpy/Clarabel side by side in one run (see personagen.bench.solver).

Usage: .venv/bin/python benchmarks/solver.py [--big] [--scale] [--before DIR] [--cap S]
  --big    adds the 5000 agents × 2000 questions fit
  --scale  adds 20k agents × 5000 rows and 100k × 1000 rows per problem family: the default fit
           (λ by CV) and λ = 0, each in its own subprocess (time and peak RSS from ru_maxrss), Clarabel at λ = 0,
           every case stopped at --cap seconds (default 300). --before DIR runs the same cases with the package
           found in DIR (e.g. an exported older commit) for a side-by-side table.
  --families F[,F...]  problem families of --scale (personagen.bench.solver.FAMILIES; default sparse,latent,
           and resampled when --responses PATH names a real LIB/responses.parquet to resample to size:
           benchmarks/make_responses.sh makes one)
  --sizes AxR[,AxR...]  agents × rows of --scale instead of 20000x5000,100000x1000; --no-clarabel skips Clarabel
  --before DIR also times single fits (λ = 0 and the mid-grid λ) at 1000 × 500 and 5000 × 2000 with this tree
           and with DIR, alternating fresh processes (--rounds N, default 2), best wall time of each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from personagen.bench.solver import bench_onehot_cv, bench_solver

SCALE_CASES = ((20_000, 5_000), (100_000, 1_000))
SINGLE_CASES = ((1_000, 500, 5), (5_000, 2_000, 2))  # agents, questions, repeats per process
# Uses only what older trees also have (make_problem, lam_grid, Quad.from_design, fit_weights).
SINGLE_CODE = """
import json, sys, time
import numpy as np
from personagen.bench.solver import make_problem
from personagen.calibrate import fit_weights
from personagen.calibrate import simplex as sx
from personagen.calibrate.solvers import Quad
agents, questions, repeat = map(int, sys.argv[1:4])
D, r, groups, _ = make_problem(agents, questions)
out = []
for lam in (0.0, float(sx.lam_grid(Quad.from_design(D, r))[10])):
    best, cpu = np.inf, np.inf
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fit_weights(D, r, lam=lam)
        best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    out.append({"lam": lam, "seconds": best, "cpu_seconds": cpu, "objective": res.objective})
print(json.dumps(out))
"""
REPO = Path(__file__).resolve().parents[1]


# The problem generators come from this tree (loaded by path), the solver from the tree measured.
CASE_CODE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("gen", sys.argv[1])
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)
agents, rows, how, family, responses = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
print(json.dumps(gen.scale_case(agents, rows, how, family=family, responses=responses or None)))
"""


def run_case(agents: int, rows: int, how: str, cap: float, root: Path, family: str = "sparse",
             responses: str = "") -> dict:
    """One scale case in a fresh interpreter with `root` first on the path; None figures when it ran past cap."""
    code = CASE_CODE
    argv = [str(REPO / "personagen" / "bench" / "solver.py"), str(agents), str(rows), how, family, responses]
    env = {**os.environ, "PYTHONPATH": str(root)}
    try:
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=cap, env=env,
                           cwd=root)  # cwd first on sys.path: run inside the tree measured
    except subprocess.TimeoutExpired:
        return {"agents": agents, "rows": rows, "how": how, "seconds": None, "stopped_at": cap}
    if r.returncode != 0:
        why = "killed (out of memory?)" if r.returncode in (-9, 137) else f"exit {r.returncode}"
        return {"agents": agents, "rows": rows, "how": how, "seconds": None,
                "error": (r.stderr.strip().splitlines() or [why])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def single_fits(before: Path, rounds: int) -> list[dict]:
    """Single fits with this tree and with `before`, alternating fresh processes; best of all rounds each."""
    out = []
    for agents, questions, repeat in SINGLE_CASES:
        best: dict = {}
        for _ in range(rounds):
            for tag, root in (("after", REPO), ("before", before)):
                env = {**os.environ, "PYTHONPATH": str(root)}
                r = subprocess.run([sys.executable, "-c", SINGLE_CODE, str(agents), str(questions), str(repeat)],
                                   capture_output=True, text=True, env=env, check=True, cwd=root)
                for f in json.loads(r.stdout.strip().splitlines()[-1]):
                    key = (tag, f["lam"])
                    if key not in best or f["seconds"] < best[key]["seconds"]:
                        best[key] = f
        for lam in sorted({k[1] for k in best}):
            a, b = best[("after", lam)], best[("before", lam)]
            row = {"agents": agents, "questions": questions, "lam": lam, "after": a, "before": b,
                   "ratio": a["seconds"] / b["seconds"]}
            print(f"  single fit {agents} × {questions} λ={lam:.3g}: after {a['seconds'] * 1e3:.1f} ms "
                  f"(cpu {a['cpu_seconds'] * 1e3:.1f}), before {b['seconds'] * 1e3:.1f} ms "
                  f"(cpu {b['cpu_seconds'] * 1e3:.1f}), after/before {row['ratio']:.2f}, "
                  f"objective gap {(a['objective'] - b['objective']) / abs(b['objective']):.1e}", flush=True)
            out.append(row)
    return out


def _fmt(c: dict | None) -> str:
    if c is None:
        return "-"
    if c.get("seconds") is None:
        return f"> {c['stopped_at']:.0f} s (stopped)" if "stopped_at" in c else f"failed: {c.get('error')}"
    return f"{c['seconds']:.1f} s (cpu {c.get('cpu_seconds', float('nan')):.1f} s), {c['peak_rss_mb'] / 1024:.2f} GB"


def scale(cap: float, before: Path | None, families: list[str], responses: str,
          sizes: tuple[tuple[int, int], ...] = SCALE_CASES, clarabel: bool = True) -> list[dict]:
    """Run and print the scale table per problem family: after (this tree) and optionally before; Clarabel on
    the sparse family."""
    out = []
    print(f"scale (each case its own process, stopped at {cap:.0f} s; peak RSS includes the design; wall times "
          f"are under whatever load the machine has, CPU times count both cores)")
    for family in families:
        for agents, rows in sizes:
            row: dict = {"family": family, "agents": agents, "rows": rows}
            for how in ("cv", "lam0"):
                row[f"{how}_after"] = run_case(agents, rows, how, cap, REPO, family, responses)
                if before is not None:
                    row[f"{how}_before"] = run_case(agents, rows, how, cap, before, family, responses)
            line = (f"  {family} {agents} agents × {rows} rows: default (CV) {_fmt(row['cv_after'])}"
                    f"{_lam(row['cv_after'])} [before {_fmt(row.get('cv_before'))}{_lam(row.get('cv_before'))}];"
                    f" λ=0 {_fmt(row['lam0_after'])} [before {_fmt(row.get('lam0_before'))}]")
            if family == "sparse" and clarabel:
                row["clarabel"] = run_case(agents, rows, "clarabel", min(cap, 120.0), REPO, family)
                line += f"; Clarabel λ=0 {_fmt(row['clarabel'])}"
            print(line, flush=True)
            out.append(row)
    return out


def _lam(c: dict | None) -> str:
    if not c or c.get("lam") is None:
        return ""
    return f", λ = {c['lam']:.4g}, {c['nonzeros']} agents"


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
    extra: list = [{"census_shaped_cv": oh}]
    if before is not None:
        rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 2
        extra.append({"single_fits": single_fits(before, rounds)})
    if "--scale" in args:
        responses = args[args.index("--responses") + 1] if "--responses" in args else ""
        fams = args[args.index("--families") + 1].split(",") if "--families" in args else \
            ["sparse", "latent"] + (["resampled"] if responses else [])
        sizes = tuple(tuple(int(x) for x in z.split("x")) for z in args[args.index("--sizes") + 1].split(",")) \
            if "--sizes" in args else SCALE_CASES
        extra.append({"scale": scale(cap, before, fams, responses, sizes, "--no-clarabel" not in args)})
    print(json.dumps(out + extra))


if __name__ == "__main__":
    main()
