"""Real survey data is messy: every OpinionQA wave folder imports; an option label differing from info.csv
in case/whitespace still matches; a question that cannot be matched is skipped with one warning naming it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from personagen.errors import BadInput
from personagen.surveys import import_opinionqa

REPO = Path(__file__).resolve().parents[1]


def _waves(shared_data: Path) -> list[Path]:
    root = shared_data / "opinionqa" / "human_resp"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    return sorted(p for p in root.iterdir() if p.is_dir())


def test_every_opinionqa_wave_imports(shared_data: Path) -> None:
    waves = _waves(shared_data)
    imported = 0
    for w in waves:
        if not (w / "CREGION_data.json").is_file():  # disagreement_500 lists questions, no counts: clear refusal
            with pytest.raises(BadInput, match="count files"):
                import_opinionqa(w)
            continue
        s = import_opinionqa(w)
        assert len(s.qids) >= 5 and s.survey_id.startswith("opinionqa_W"), w
        assert abs(sum(s.distributions("overall")[s.qids[0]].values()) - 1) < 1e-9
        imported += 1
    assert imported >= 11


def test_option_typo_in_case_matches_and_unmatched_question_is_skipped(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not src.is_dir():
        pytest.skip(f"{src} not present")
    ref = import_opinionqa(src)
    w = tmp_path / "American_Trends_Panel_W26"
    shutil.copytree(src, w)  # a temporary working copy, altered below (never kept)
    data = json.loads((w / "CREGION_data.json").read_text())
    q_case, q_bad = ref.qids[0], ref.qids[1]
    for group, counts in data[q_case].items():
        if isinstance(counts, dict) and group not in ("MC_options", "question_text"):
            opt = ref.options(q_case)[0]  # "Yes" -> "  yES " (the real "noR" kind of typo)
            data[q_case][group] = {(f"  {opt[0].lower()}{opt[1:].upper()} " if k == opt else k): v
                                   for k, v in counts.items()}
            data[q_bad][group] = {("An option nobody listed" if i == 0 else k): v
                                  for i, (k, v) in enumerate(counts.items())}
    (w / "CREGION_data.json").write_text(json.dumps(data))
    with pytest.warns(UserWarning, match=f"question '{q_bad}' skipped"):
        s = import_opinionqa(w)
    assert q_bad in s.skipped_questions and "1 of 78 info.csv questions name an option that is not in info.csv" \
        in s.import_notes
    assert q_bad not in s.qids and q_case in s.qids and len(s.qids) == len(ref.qids) - 1
    assert s.distributions("overall")[q_case] == pytest.approx(ref.distributions("overall")[q_case])

    e = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "surveys", "import", "opinionqa", str(w), "-o",
                        str(tmp_path / "s.parquet")], capture_output=True, text=True, env=e, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("warning:") == 1 and q_bad in r.stderr
    assert "57 question(s) skipped" in r.stdout and "skipped: 56 of 78 info.csv questions have no human answers" \
        in r.stderr


# ---- --min-mass is a scoring choice -------------------------------------------------------------------
def test_min_mass_rescored_from_stored_logprobs_without_model_calls(tmp_path: Path) -> None:
    import math

    import polars as pl
    from openai_echo import EchoServer

    from personagen.library import Library
    from personagen.surveys import Survey

    lib = Library.init(tmp_path / "lib", seed=0)
    texts = ["I am Ann.", "I am Bo.", "I am a quiet LOWMASS person.", "I am another LOWMASS person."]
    lib.write_personas(pl.DataFrame({"persona_id": ["a", "b", "c", "d"], "source": ["census"] * 4,
                                     "text_narrative": texts}))
    splits = ["train"] * 4 + ["valid", "test"]
    qs = [{"qid": f"q{j}", "question": f"Q{j}?", "options": ["Yes", "No", "Unsure"], "split": sp,
           "targets": {"overall": {"Yes": 0.5, "No": 0.3, "Unsure": 0.2}}} for j, sp in enumerate(splits)]
    Survey.from_records("S", qs).save(tmp_path / "s.parquet")
    e = dict(os.environ, PYTHONPATH=str(REPO))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                              env=e, timeout=120)

    with EchoServer(low_mass_if="LOWMASS") as srv:
        base = ["elicit", str(lib.path), "--survey", str(tmp_path / "s.parquet"), "--backend", "openai",
                "--base-url", srv.base_url, "--model", "m", "--no-progress"]
        r = run(*base)  # default --min-mass 0.5: personas c, d cover e^-2 + e^-2.5 = 0.2174 < 0.5 -> invalid
        assert r.returncode == 0 and srv.total == 24, r.stderr
        assert "warning: 12 of 24 answers (50%) are invalid" in r.stderr and "--min-mass" in r.stderr
        resp = Library.open(lib.path).responses()
        low = resp.filter(pl.col("persona_id").is_in(["c", "d"]))
        assert low.height == 12 * 3 and not low["valid"].any()  # option rows kept, marked invalid
        assert low["mass"].to_list() == pytest.approx([math.exp(-2) + math.exp(-2.5)] * 36)
        # renormalised over letters: A = e^-2 / (e^-2 + e^-2.5) = 0.6225
        a = low.filter(pl.col("option") == "Yes")["prob"].to_list()
        assert a == pytest.approx([math.exp(-2) / (math.exp(-2) + math.exp(-2.5))] * 12)

        r = run("calibrate", str(lib.path), "--survey", str(tmp_path / "s.parquet"))
        assert r.returncode == 2 and "--min-mass" in r.stderr and "no new model calls" in r.stderr

        r = run(*base, "--min-mass", "0.2")
        assert r.returncode == 0 and srv.total == 24, r.stderr  # no new model call
        assert "12 changed validity" in r.stderr and "warning" not in r.stderr
        assert Library.open(lib.path).responses()["valid"].all()
        r = run("calibrate", str(lib.path), "--survey", str(tmp_path / "s.parquet"))
        assert r.returncode == 0, r.stderr
        # every persona says "Yes" (A) with p >= 0.62 against a 0.5/0.3/0.2 target: the uniform distribution
        # (MSE ((.5-1/3)^2 + (.3-1/3)^2 + (.2-1/3)^2)/3 = 0.0156) beats any weighting of these personas
        assert "WORSE THAN BASELINE" in r.stdout and "uniform distribution" in r.stdout
        assert "test split has only 1 question(s)" in r.stdout
        md = next((lib.path / "calibrations").glob("*/report.md")).read_text()
        assert "WORSE THAN BASELINE" in md and "only 1 question(s)" in md
        assert "λ=" in r.stdout and "α=-" in r.stdout  # rounded, no None
        r = run(*base, "--min-mass", "0.25")  # and back: a pure scoring choice
        assert r.returncode == 0 and srv.total == 24
        assert not Library.open(lib.path).responses().filter(pl.col("persona_id") == "c")["valid"].any()


def test_honesty_notes_by_hand() -> None:
    from personagen.calibrate import honesty_notes

    ci = lambda v: {"mse": {"value": v, "ci_low": v, "ci_high": v}}  # noqa: E731
    rep = {"n_questions": {"train": 12, "valid": 2, "test": 3}, "metrics": {"test": ci(7.1e-2)},
           "baselines": {"uniform_average": {"test": ci(8.0e-2)}, "uniform_distribution": {"test": ci(4.9e-2)}}}
    notes = honesty_notes(rep)
    assert len(notes) == 2  # 0.071 > 0.049 (uniform distribution) but < 0.080 (equal weights); 3 < 5 questions
    assert "0.071" in notes[1] and "0.049" in notes[1] and "uniform distribution" in notes[1]
    assert "only 3 question(s)" in notes[0]
    rep["metrics"]["test"] = ci(4.0e-2)
    rep["n_questions"]["test"] = 5
    assert honesty_notes(rep) == []
