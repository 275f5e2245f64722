"""Endow end to end against the bundled local model: budget 10 on a 4-question survey, tracker math checked.

That an endowed library flows on through elicit and calibrate is checked end to end by
tests/test_reproduce.py::test_reproduce_p2p_one_wave_local_model (endow -> elicit -> calibrate on a real wave)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from enrich_helpers import census_library, small_survey  # noqa: E402

from personagen import Library  # noqa: E402

pytestmark = pytest.mark.llm


def test_endow_cli_tracker_log_recomputes_from_responses(tmp_path: Path, local_llm_url: str) -> None:
    """P2P eq. 4–5 and the softmax, recomputed from LIB/endow/responses.parquet for every tracker.jsonl line."""
    import numpy as np

    from personagen.endow.tracker import answer_entropies, softmax

    lib = census_library(tmp_path / "lib", n=2)
    survey = small_survey(4, split=["train", "train", "train", "test"])
    sp = survey.save(tmp_path / "survey.parquet")
    cmd = [sys.executable, "-m", "personagen.cli", "endow", str(lib.path), "--survey", str(sp), "--budget", "10",
           "--n-updates", "2", "--backend", "openai", "--base-url", local_llm_url, "--model", "smollm2",
           "--max-tokens", "24", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["n_generated"] == 10
    gen = Library.open(lib.path).personas().filter(pl.col("source") != "census")
    assert gen.height == 10 and gen["text_narrative"].is_not_null().all()
    assert set(gen["source"]) <= {"bank", "learned", "mixed"} and gen["weight_census"].is_null().all()
    assert (lib.path / "endow" / "run_log.png").is_file()
    lines = [json.loads(x) for x in (lib.path / "endow" / "tracker.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [0, 1, 2]  # after the initial stage and after each of the 2 updates
    assert len(lines[-1]["pool"]) == 10
    resp = pl.read_parquet(lib.path / "endow" / "responses.parquet")
    qids = ["Q1", "Q2", "Q3"]  # the train split: the pool answers only Q_train
    assert sorted(resp["qid"].unique().to_list()) == qids
    opts = {q: survey.options(q) for q in qids}
    for line in lines:
        pool = line["pool"]
        sub = resp.filter(pl.col("persona_id").is_in(pool))
        idx = {(p, q): (opts[q].index(o) if o is not None else -1)
               for p, q, o in sub.select("persona_id", "qid", "option").iter_rows()}
        mat = np.array([[idx[(p, q)] for q in qids] for p in pool])
        h_total = answer_entropies(mat, [len(opts[q]) for q in qids])  # eq. 4 over the whole pool
        assert [line["question_entropy"][q] for q in qids] == pytest.approx(h_total.tolist(), abs=1e-9)
        scores = {}
        for mode in line["scores"]:
            rows = [i for i, p in enumerate(pool) if line["modes"][p] == mode]
            if not rows:
                continue
            h_mode = answer_entropies(mat[rows], [len(opts[q]) for q in qids])
            scores[mode] = sum(h_mode[i] / h_total[i] for i in range(len(qids)) if h_total[i] > 0)  # eq. 5
            assert line["scores"][mode] == pytest.approx(scores[mode], abs=1e-9)
        if len(scores) == len(line["scores"]):
            ms = list(line["scores"])
            p = softmax(np.array([scores[m] for m in ms]))
            assert [line["probabilities"][m] for m in ms] == pytest.approx(p.tolist(), abs=1e-9)
    log = json.loads((lib.path / "endow" / "run_log.json").read_text())
    assert "question_learner_empty" in log["failures"]
    assert all("patch_failures" in s for s in log["steps"] if s.get("kind") == "active")
