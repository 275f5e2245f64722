"""Print what replicate weights cost: the default calibration fit (λ by CV) beside R half-sample refits at the
chosen λ, at 5000 personas × 2000 questions (4 options), measured in one run (CPU seconds, which other load on
the machine inflates less than wall time).

Usage: .venv/bin/python benchmarks/replicates.py [--agents 5000] [--questions 2000] [--timed 10] [--lam X]
  --timed K   replicate refits actually run (the figure for R replicates is R × their mean; every refit solves
              a problem of the same size at the same λ, so the mean is representative)
  --lam X     also time refits at this fixed λ (a problem whose CV picks λ = 0 refits faster than one at λ > 0)

It calls the same code as `calibrate --replicates R` (personagen.calibrate.replicates.half_sample_replicates
around fit_weights); design building and scoring, which calibrate also does, are the same with or without.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from personagen.bench.solver import make_problem
from personagen.calibrate import fit_weights
from personagen.calibrate.replicates import half_sample_replicates


def _timed_refits(D: np.ndarray, r: np.ndarray, lam: float, k: int) -> float:
    """Mean CPU seconds of one half-sample refit at fixed λ over k replicates."""
    c0 = time.process_time()
    n = D.shape[1]
    half_sample_replicates(n, k, 0, lambda idx: fit_weights(D[:, idx], r, lam=lam).weights, full=np.full(n, 1.0 / n))
    return (time.process_time() - c0) / k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=5000)
    ap.add_argument("--questions", type=int, default=2000)
    ap.add_argument("--timed", type=int, default=10)
    ap.add_argument("--lam", type=float, default=None)
    a = ap.parse_args()
    D, r, groups, _ = make_problem(a.agents, a.questions)
    c0, t0 = time.process_time(), time.perf_counter()
    res = fit_weights(D, r, groups=groups)
    cv_cpu, cv_wall = time.process_time() - c0, time.perf_counter() - t0
    out = {"agents": a.agents, "questions": a.questions, "default_fit_cpu_s": round(cv_cpu, 2),
           "default_fit_wall_s": round(cv_wall, 2), "lam": res.lam, "rows": []}
    lams = [res.lam] + ([a.lam] if a.lam is not None else [])
    for lam in lams:
        per = _timed_refits(D, r, float(lam), a.timed)
        for R in (0, 20, 40, 80):
            out["rows"].append({"lam": lam, "R": R, "replicates_cpu_s": round(R * per, 2),
                                "calibrate_fit_cpu_s": round(cv_cpu + R * per, 2),
                                "ratio_to_default_fit": round((cv_cpu + R * per) / cv_cpu, 2),
                                "relative_se_of_se": round(1 / np.sqrt(2 * (R - 1)), 3) if R > 1 else None})
    print(f"default fit (λ by CV) at {a.agents} × {a.questions}: {cv_cpu:.1f} CPU s ({cv_wall:.1f} s wall), "
          f"λ = {res.lam:.3g}")
    print(f"{'λ':>9} {'R':>4} {'replicates CPU s':>17} {'fit+replicates':>15} {'× default':>10} {'rel. SE of SE':>14}")
    for row in out["rows"]:
        print(f"{row['lam']:>9.3g} {row['R']:>4} {row['replicates_cpu_s']:>17.1f} {row['calibrate_fit_cpu_s']:>15.1f} "
              f"{row['ratio_to_default_fit']:>10.2f} {row['relative_se_of_se'] or float('nan'):>14.3f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
