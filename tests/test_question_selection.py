"""`--questions` / `--per-split` on elicit, endow, calibrate and reproduce (one rule: surveys.select_questions),
and one meaning per flag: `--max-tokens` is a per-call cap, elicit's total budget is `--token-budget`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from personagen.cli import main
from personagen.library import Library
from personagen.surveys import Survey

OPENAI = ["--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"]


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """The real CLI entry point in-process: (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LIB: 12 personas who answered 15 questions (random shares); S.parquet: the 15 questions, seeded splits."""
    w = tmp_path_factory.mktemp("sel")
    rng = np.random.default_rng(0)
    qs = [{"qid": f"q{j:02d}", "question": f"Question {j}?", "options": ["Yes", "No", "Not sure"],
           "targets": {"overall": dict(zip(["Yes", "No", "Not sure"], rng.dirichlet([2, 2, 1])))}} for j in range(15)]
    Survey.from_records("S", qs).save(w / "S.parquet")
    lib = Library.init(w / "LIB", seed=0)
    pids = [f"p{i}" for i in range(12)]
    lib.write_personas(pl.DataFrame({"persona_id": pids, "source": ["census"] * 12,
                                     "text_narrative": [f"I am person {i}." for i in range(12)]}))
    rows = [{"persona_id": p, "survey_id": "S", "qid": q["qid"], "option": o, "prob": float(s), "mode": "logprobs",
             "model": "m", "n": 1, "valid": True}
            for p in pids for q in qs for o, s in zip(q["options"], rng.dirichlet([1, 1, 1]))]
    lib.append_responses(pl.DataFrame(rows))
    return w


def test_elicit_per_split_and_questions_dry_run(work: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["elicit", str(work / "LIB"), "--survey", str(work / "S.parquet"), "--dry-run", "--json", *OPENAI]
    code, out, err = _run(capsys, *base, "--per-split", "1")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["questions"] == 3
    code, out, err = _run(capsys, *base, "--questions", "q03,q07")
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["questions"] == 2, err
    code, out, err = _run(capsys, *base, "--questions", "q03,nope")
    assert code == 2 and "no question 'nope'" in err and len(err.strip().splitlines()) == 1


def test_elicit_max_tokens_points_to_token_budget(work: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["elicit", str(work / "LIB"), "--survey", str(work / "S.parquet"), "--dry-run", *OPENAI]
    code, _, err = _run(capsys, *base, "--max-tokens", "5000")
    assert code == 2 and "--token-budget" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, *base, "--token-budget", "5000")
    assert code == 0, err


def test_calibrate_per_split(work: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = _run(capsys, "calibrate", str(work / "LIB"), "--survey", str(work / "S.parquet"), "--json",
                          "--folds", "2", "--per-split", "2", "--name", "ps")
    assert code == 0, err
    assert json.loads(out)["n_questions"] == {"train": 2, "valid": 2, "test": 2}


def test_endow_and_reproduce_take_the_same_flags(work: Path, capsys: pytest.CaptureFixture,
                                                 shared_data: Path) -> None:
    code, _, err = _run(capsys, "endow", str(work / "LIB"), "--survey", str(work / "S.parquet"), "--budget", "4",
                        "--questions", "nope", *OPENAI)
    assert code == 2 and "no question 'nope'" in err
    wave = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not wave.is_dir():
        pytest.skip(f"{wave} not present")
    plans = {}
    for extra in ([], ["--per-split", "1"]):
        code, out, err = _run(capsys, "reproduce", "p2p", str(wave), "--dry-run", "--json", "--out",
                              str(work / "RP"), *extra, *OPENAI)
        assert code == 0, err
        (plan,) = json.loads(out.strip().splitlines()[-1])["waves"].values()
        plans[len(extra)] = plan["total"]["calls"]
    assert plans[2] < plans[0]
