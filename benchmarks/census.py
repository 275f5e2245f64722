"""Print the `bench census` table for Vermont, Wyoming and Hawaii (pool 1,000 adults, several pools averaged).

Usage: .venv/bin/python benchmarks/census.py [--repeats R] [--json]
Each state: a pool drawn uniformly from the state's PUMS adults (ignoring PWGTP) is calibrated on 6 demographic
variables and scored on 8 held-out ones; simplex (CV λ), simplex λ = 0, sparse, rake and no weighting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from personagen.bench import format_table, run_census_bench

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "acs_pums"
STATES = {"Vermont": "psam_p50.csv.gz", "Wyoming": "psam_p56.csv.gz", "Hawaii": "psam_p15.csv.gz"}


def main() -> None:
    """Run the three states and print one table each, then a one-line summary of the ratios."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5, help="pools (seeds 0..R-1) averaged per state")
    ap.add_argument("--pool-size", type=int, default=1000)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    results = []
    for state, f in STATES.items():
        p = DATA / f
        if not p.is_file():
            print(f"{state}: {p} not present, skipped")
            continue
        res = run_census_bench(p, pool_size=a.pool_size, seeds=list(range(a.repeats)))
        results.append(res)
        print(format_table(res))
        ru, rr = res["ratios"]["test_mse_vs_uniform"], res["ratios"]["test_mse_vs_rake"]
        print(f"  -> simplex held-out MSE is {100 * (1 - ru['simplex']):.0f}% below no weighting and "
              f"{rr['simplex']:.2f}x rake ({res['seconds']:.0f} s)\n")
    if a.json:
        print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
