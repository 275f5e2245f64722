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


def test_problem_families_shapes(tmp_path):
    """Latent-type answers: 3–5 options a question, every agent's answers and the target sum to 1 per question;
    the resampled family draws whole questions and personas of a responses.parquet to the asked size."""
    import numpy as np
    import polars as pl

    from personagen.bench.solver import family_problem

    D, r, g = family_problem("latent", 50, 40, seed=2)
    assert D.shape == (40, 50) and len(r) == len(g) == 40
    for q in np.unique(g):
        rows = g == q
        assert 3 <= rows.sum() <= 5
        assert np.allclose(D[rows].sum(axis=0), 1) and np.isclose(r[rows].sum(), 1)
    rng = np.random.default_rng(0)
    recs = []
    for p in range(6):
        for q in range(4):
            probs = rng.dirichlet(np.ones(3))
            recs += [{"persona_id": f"p{p}", "qid": f"q{q}", "option": o, "prob": float(x), "valid": True,
                      "survey_id": "s", "model": "m", "mode": "logprobs"} for o, x in zip("abc", probs)]
    pl.DataFrame(recs).write_parquet(tmp_path / "responses.parquet")
    D, r, g = family_problem("resampled", 30, 24, seed=1, responses=str(tmp_path / "responses.parquet"))
    assert D.shape == (24, 30) and np.allclose(D.sum(axis=0), 8) and np.isclose(r.sum(), 8)
