"""bench solver / simulate functions and CLI (small sizes)."""

from __future__ import annotations

import json
import subprocess
import sys

from personagen.bench import bench_simulate
from personagen.bench.solver import bench_solver


def test_bench_solver_small():
    out = bench_solver(100, 40, repeat=1)
    assert len(out["fits"]) == 2 and out["fits"][0]["lam"] == 0.0
    for f in out["fits"]:
        assert f["gap"] <= 1e-6
    assert out["cv"]["grid_full"] == 20 and 8 <= out["cv"]["grid_size"] <= 12  # coarse-to-fine search


def test_bench_simulate_small():
    out = bench_simulate(40, k_true=4, test_questions=10, ratios=(1.0,), betas=(1.5,))
    row = out["ratio_sweep"][0]
    assert 0 <= row["sparse"]["precision"] <= 1 and row["simplex"]["test_mse"] >= 0
    assert 0 < out["ecr_sweep"][0]["ecr"]


def test_bench_solver_cli_json():
    p = subprocess.run([sys.executable, "-m", "personagen.cli", "bench", "solver", "--agents", "60",
                        "--questions", "20", "--no-cv", "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["agents"] == 60 and out["fits"][0]["gap"] <= 1e-6
