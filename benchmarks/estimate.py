"""Time `estimate` on a large panel: 100,000 personas × 50 questions (4 options, logprob answers, 20 M response
rows), 40 replicate weights, overall and by a 4-valued persona column. Prints seconds (wall and CPU) and peak RSS.

Usage: .venv/bin/python benchmarks/estimate.py [--personas 100000] [--questions 50] [--replicates 40]
The library is generated into a temporary folder (synthetic Dirichlet answers; nothing from ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

from personagen.calibrate import EstimateOptions, estimate_library
from personagen.library import Library
from personagen.store import atomic_write_json, atomic_write_parquet
from personagen.surveys import Survey, load


def make(root: Path, n: int, nq: int, reps: int) -> Survey:
    rng = np.random.default_rng(0)
    opts = ["a", "b", "c", "d"]
    qids = [f"q{i:03d}" for i in range(nq)]
    survey = Survey.from_records("big", [{"qid": q, "question": q, "options": opts,
                                          "targets": {"overall": dict(zip(opts, rng.dirichlet(np.ones(4))))}}
                                         for q in qids])
    lib = Library.init(root / "lib", seed=0)
    pids = [f"p{i:06d}" for i in range(n)]
    lib.write_personas(pl.DataFrame({"persona_id": pids, "source": ["census"] * n,
                                     "region": rng.choice(["Northeast", "Midwest", "South", "West"], n)}))
    frames = []
    for q in qids:
        p = rng.dirichlet(np.ones(4), size=n).ravel()
        frames.append(pl.DataFrame({"persona_id": np.repeat(pids, 4), "survey_id": "big", "qid": q,
                                    "option": np.tile(opts, n), "prob": p, "mode": "logprobs", "model": "m",
                                    "n": 1, "valid": True}))
    atomic_write_parquet(lib.responses_path, pl.concat(frames))
    w = rng.dirichlet(np.ones(n))
    cols = {"persona_id": pids, "weight": w, "asked": np.ones(n, bool)}
    for b in range(reps):
        m = np.bincount(rng.integers(0, n, n), minlength=n) * w
        cols[f"rep_{b + 1}"] = m / m.sum()
    d = lib.calibration_dir("big")
    d.mkdir(parents=True)
    atomic_write_parquet(d / "weights.parquet", pl.DataFrame(cols))
    atomic_write_json(d / "report.json", {"name": "big", "survey_id": "big", "group": "overall", "model": "m",
                                          "mode": "logprobs", "method": "simplex"})
    return survey


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--personas", type=int, default=100_000)
    ap.add_argument("--questions", type=int, default=50)
    ap.add_argument("--replicates", type=int, default=40)
    ap.add_argument("--make", default=None, help=argparse.SUPPRESS)  # internal: generate into this folder
    a = ap.parse_args()
    if a.make:
        make(Path(a.make), a.personas, a.questions, a.replicates).save(Path(a.make) / "survey.parquet")
        return
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()  # generated in a child process, so peak RSS below is estimate's own
        subprocess.run([sys.executable, __file__, "--make", tmp, "--personas", str(a.personas), "--questions",
                        str(a.questions), "--replicates", str(a.replicates)], check=True)
        survey = load(Path(tmp) / "survey.parquet")
        made = time.perf_counter() - t0
        out = {"personas": a.personas, "questions": a.questions, "replicates": a.replicates,
               "generate_s": round(made, 1)}
        for label, by in (("overall", ()), ("by_region", ("region",))):
            t0, c0 = time.perf_counter(), time.process_time()
            est = estimate_library(Path(tmp) / "lib", survey, EstimateOptions(calibration="big", by=by))
            out[label] = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - c0, 2),
                          "rows": est.table.height}
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
