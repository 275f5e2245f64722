"""PERSONA pairs end to end on the bundled local model (SmolLM2-135M): curation with the classifier, pairs for
1 persona × 2 prompts, rerun with no new call, the evaluator check and a tiny LOO grid, publish, and
`datasets.load_dataset(..., name="preferences")`. The tiny model's answers are poor; the test checks the
machinery and the bookkeeping, not the quality."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enrich_helpers import census_library  # noqa: E402

from personagen.llm import LLMClient  # noqa: E402
from personagen.prefs import CurateOptions, curate, read_preferences  # noqa: E402
from personagen.store import atomic_write_parquet  # noqa: E402

pytestmark = [pytest.mark.llm, pytest.mark.slow]
DATA = Path(__file__).resolve().parent / "data" / "prefs_prompts.jsonl"


def _cli(*args: str, env: dict | None = None) -> tuple[int, dict | None, str]:
    r = subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                       timeout=300, env={**os.environ, **(env or {})})
    out = r.stdout.strip().splitlines()
    return r.returncode, (json.loads(out[-1]) if out and r.returncode == 0 else None), r.stderr


def test_prefs_local_model_end_to_end(tmp_path: Path, local_llm_url: str) -> None:
    lib = census_library(tmp_path / "lib", n=3)
    model = ["--backend", "openai", "--base-url", local_llm_url, "--model", "smollm2"]
    # curation with the zero-shot classifier on the first 2 rule-filtered prompts
    with LLMClient.create(backend="openai", base_url=local_llm_url, model="smollm2", progress=False,
                          cache_path=lib.llm_db) as c:
        cur = curate(CurateOptions(str(DATA), limit=2, max_retries=1), c)
    n = cur.counts
    assert n["min_words"] == 17 and n["limit"] == 2
    assert n["controversial"] + n["classifier_unparsed_rejected"] <= 2 and cur.prompts.height == n["controversial"]
    # pairs: 1 persona × (1 train-pool + 1 held-out prompt), classifier skipped so prompts are certain
    args = ["prefs", str(lib.path), "--prompts", str(DATA), *model, "--no-classify", "--personas", "1",
            "--per-persona", "1", "--train-per-persona", "1", "--heldout-per-persona", "1", "--answer-tokens", "16",
            "--critique-tokens", "16", "--max-retries", "0", "--no-consistency-judge", "--json"]
    code, res, err = _cli(*args)
    assert code == 0, err[-2000:]
    p = res["pairs"]
    assert p["planned"] == 2 and p["total_pairs"] + sum(p["dropped"].values()) == 2
    assert p["total_pairs"] >= 1 and p["llm"]["requests_sent"] >= 2
    df = read_preferences(lib)
    assert df.height == p["total_pairs"] and (df["chosen"] != df["rejected"]).all()
    assert set(df["split"]) <= {"train", "test_unseen"} and df["model_chosen"].str.contains("smollm2|local").all()
    # rerun: every call is in the cache
    code, again, err = _cli(*args)
    assert code == 0 and again["pairs"]["llm"]["requests_sent"] == 0 and again["pairs"]["new_pairs"] == 0, err
    # validation: evaluator check, the stand-in second role-player, LOO on a 1 × 2 grid
    code, ev, err = _cli("prefs-eval", str(lib.path), *model, "--limit", "4", "--loo-attributes", "age",
                         "--loo-personas", "1", "--loo-base", "2", "--loo-questions", "2", "--answer-tokens", "16",
                         "--max-retries", "0", "--json")
    assert code == 0, err[-2000:]
    assert ev["evaluator"]["pairs"] == df.height and ev["evaluator"]["paper_rate"] == 0.96
    assert ev["agreement"]["configs"]["second"]["stand_in"] is True
    assert ev["loo"]["age"]["n"] == 1
    assert (lib.path / "prefs" / "eval" / "eval.png").stat().st_size > 1000
    # publish the preferences config and read it back with datasets
    cal = lib.calibration_dir("main")
    cal.mkdir(parents=True)
    ids = lib.personas()["persona_id"].to_list()
    atomic_write_parquet(cal / "weights.parquet", pl.DataFrame({"persona_id": ids, "weight": np.full(3, 1 / 3)}))
    code, pub, err = _cli("publish", str(lib.path), "--out", str(tmp_path / "panel"), "--json")
    assert code == 0, err
    load = ("import sys, json; from datasets import load_dataset\n"
            "d = load_dataset(sys.argv[1], name='preferences')\n"
            "print(json.dumps({k: v.num_rows for k, v in d.items()}))\n")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", load, str(tmp_path / "panel")], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sum(json.loads(r.stdout.strip().splitlines()[-1]).values()) == df.height
