"""`personagen reproduce`: Stage-2 design, metrics and table aggregation by hand; dry-run counts by hand;
end-to-end runs of both commands on the bundled local model with tiny budgets (slow, llm)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from enrich_helpers import census_library  # noqa: E402

from personagen.reproduce.p2p import (  # noqa: E402
    P2PReproOptions,
    dummies,
    ecr,
    embed_texts,
    kmeans_medoids,
    question_metrics,
)
from personagen.reproduce.plan import p2p_plan  # noqa: E402
from personagen.reproduce.published import p2p_published  # noqa: E402
from personagen.reproduce.tables import p2p_table  # noqa: E402
from personagen.surveys import Survey  # noqa: E402


def _survey() -> Survey:
    qs = [{"qid": "Q1", "question": "a?", "options": ["Yes", "No"], "split": "train",
           "targets": {"overall": {"Yes": 0.6, "No": 0.4}}},
          {"qid": "Q2", "question": "b?", "options": ["A", "B", "C"], "split": "test",
           "targets": {"overall": {"A": 0.5, "B": 0.25, "C": 0.25}}}]
    return Survey.from_records("toy", qs)


def test_dummies_and_invalid_answers_by_hand() -> None:
    s = _survey()
    # agent 0: Yes, C; agent 1: No, unmatched (−1) → 1/3 on each of A, B, C
    d = dummies(np.array([[0, 2], [1, -1]]), s, ["Q1", "Q2"])
    assert d.tolist() == [[1, 0], [0, 1], [0, 1 / 3], [0, 1 / 3], [1, 1 / 3]]
    assert d[:2].sum(0).tolist() == [1, 1] and d[2:].sum(0) == pytest.approx([1, 1])  # Σ_k d_{j,ik} = 1 (eq. 7)


def test_test_metrics_by_hand() -> None:
    # prediction (0.5, 0.5, 0) vs target (0.5, 0.25, 0.25): Σ squared error = 0 + .0625 + .0625 = .125 over K = 3
    m = question_metrics([np.array([0.5, 0.5, 0.0])], [np.array([0.5, 0.25, 0.25])])
    assert m["sq"] == pytest.approx([0.125]) and m["k"].tolist() == [3.0]
    # majority: prediction argmax is option 0 (tie broken low), target argmax option 0 → match
    assert m["mcpa"].tolist() == [1.0]
    # identical distributions: 1 − JSD = 1
    assert question_metrics([np.array([0.6, 0.4])], [np.array([0.6, 0.4])])["jsd"] == pytest.approx([1.0])
    # ECR (eq. 12): ensemble (.5, .5) has H = 1, humans (1, 0) … use (.75, .25): H = 0.8112781 → 1 / 0.8112781
    assert ecr([np.array([0.5, 0.5])], [np.array([0.75, 0.25])]) == pytest.approx(1.2326229, abs=1e-6)


def test_table_mean_sd_over_repeats_by_hand() -> None:
    def rep(sq: float) -> dict:
        m = {"sq": np.array([sq, sq]), "k": np.array([2.0, 2.0]), "jsd": np.array([0.8, 0.9]),
             "mcpa": np.array([1.0, 0.0]), "ecr": 1.0, "entropy": 0.5, "nonzeros": 3, "invalid_share": 0.0}
        return {"P2P": {"lasso": m, "enet": m}}

    # repeat MSEs: (0.1 + 0.1) / 4 = 0.05 and (0.3 + 0.3) / 4 = 0.15 → mean 0.10, sd (ddof 1) = 0.0707107
    t = p2p_table("W26", [rep(0.1), rep(0.3)])
    cell = t["rows"]["Test MSE (Lasso)"]["P2P"]
    assert cell["mean"] == pytest.approx(0.10) and cell["sd"] == pytest.approx(0.0707107, abs=1e-6)
    assert 0.05 <= cell["ci"][0] <= cell["ci"][1] <= 0.15
    assert cell["paper"] == (0.0098, 0.0002)  # Table 2, W26
    assert t["rows"]["Test 1-JSD (Lasso)"]["P2P"]["mean"] == pytest.approx(0.85)


def test_published_numbers_transcribed() -> None:
    w42 = p2p_published("W42")
    assert w42["P2P"]["Test MSE (Lasso)"] == (0.0095, 0.0024)  # Table 7 (10 updates)
    assert w42["Vanilla"]["Avg. entropy"] == (0.3172, 0.0069)
    assert w42["Equal-weight average"]["Test MSE (Lasso)"] == (0.0254, None)  # §4.4
    assert p2p_published("W92")["P2P"]["Test MCPA (Enet)"] == (0.6154, 0.0769)
    assert p2p_published("W99") == {}


def test_kmeans_medoids_pick_one_member_per_cluster() -> None:
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(c, 0.05, (10, 2)) for c in ((0, 0), (5, 5), (0, 5))])
    med = kmeans_medoids(x, 3, seed=1)
    assert len(med) == 3 and sorted(i // 10 for i in med) == [0, 1, 2]
    e = embed_texts(["a farmer who likes guns", "a farmer who likes guns", "an urban poet"])
    assert np.linalg.norm(e, axis=1) == pytest.approx([1, 1, 1]) and e[0] @ e[1] == pytest.approx(1.0)
    assert e[0] @ e[2] < 0.5


def test_dry_run_counts_by_hand(tmp_path: Path) -> None:
    wave = tmp_path / "American_Trends_Panel_W99"
    wave.mkdir()
    rows = "".join(f'{i},Q{i},"{{}}","Question {i}?","[\'Yes\', \'No\', \'Refused\']","[1, 2]"\n' for i in range(26))
    (wave / "info.csv").write_text(",key,option_mapping,question,references,option_ordinal\n" + rows)
    # human answers for 20 of the 26 listed questions: the run asks only those (W26: 22 of 78 rows)
    counts = {f"Q{i}": {"MC_options": ["Yes", "No", "Refused"], "question_text": f"Question {i}?",
                        "Northeast": {"Yes": 3, "No": 2, "Refused": 0}} for i in range(20)}
    (wave / "CREGION_data.json").write_text(json.dumps(counts))
    opts = P2PReproOptions(waves=(wave,), out=tmp_path / "o", budget=300, repeats=3, n_updates=10,
                           baselines=("vanilla", "persona", "average", "kmeans"), model="gpt-4o-mini")
    full = p2p_plan(opts)
    w = full["waves"][wave.name]
    plan = w["parts"]
    assert w["questions"] == 20
    # P2P endowments per repeat: initial stage 11 modes (10 bank + learned) × 10 = 110 agents, 5 calls of 2 per
    # mode = 55; then 10 steps of (300 − 110) / 10 = 19: patches round(.75 · 19) = 14 → 5, 5, 4 agents → 3 + 3 + 2
    # calls, the other 5 agents → ceil(5 / 2) = 3 calls: 11 per step; 55 + 110 = 165, × 3 repeats = 495
    assert plan["P2P endowments"]["calls"] == 495
    # attribute learner: 1 survey-level + 3 questions × 10 steps = 31 per repeat → 93
    assert plan["P2P attribute learner"]["calls"] == 93
    # answers: 3 repeats × 300 agents × 20 questions (with human answers; 26 listed) = 18,000
    assert plan["P2P answers"]["calls"] == plan["Vanilla answers"]["calls"] == 18_000
    assert "PERSONA-style answers" not in plan  # no --census-lib: the run skips that baseline too
    # k-means: the vanilla library topped up by 700 → 3 × 350 calls; the 700 new agents answer the 14 train
    # questions as the pool grows, the 300 medoids the other 6: 3 × (700 × 14 + 300 × 6) = 34,800
    assert plan["k-means endowments"]["calls"] == 1050 and plan["k-means answers"]["calls"] == 34_800
    # dollars at gpt-4o-mini's shipped price ($0.15 in, $0.60 out per million tokens)
    t = w["total"]
    assert t["usd"] == pytest.approx((t["input_tokens"] * 0.15 + t["output_tokens"] * 0.60) / 1e6)
    # default update steps: the paper's for the wave's table (5; 10 on W42)
    dflt = P2PReproOptions(waves=(wave,), out=tmp_path / "o")
    assert dflt.n_updates is None and dflt.updates_for(wave) == 5
    assert dflt.updates_for(Path("American_Trends_Panel_W42")) == 10


@pytest.mark.slow
@pytest.mark.llm
def test_reproduce_p2p_one_wave_local_model(tmp_path: Path, local_llm_url: str, shared_data: Path) -> None:
    """The whole protocol on one real ATP wave: tiny budget, 7 questions, P2P + equal-weight + census pool."""
    wave = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26"
    if not (wave / "info.csv").is_file():
        pytest.skip(f"{wave} not present")
    cen = census_library(tmp_path / "census", n=4)
    cmd = [sys.executable, "-m", "personagen.cli", "reproduce", "p2p", str(wave), "--budget", "3", "--repeats", "1",
           "--max-questions", "7", "--n-updates", "1", "--max-tokens", "40", "--baselines", "average,persona",
           "--census-lib", str(cen.path), "--out", str(tmp_path / "out"), "--backend", "openai",
           "--base-url", local_llm_url, "--model", "smollm2", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    t = out["tables"]["W26"]
    assert t["methods"] == ["PERSONA-style census", "Equal-weight average", "P2P"]
    mse = t["rows"]["Test MSE (Lasso)"]["P2P"]
    assert 0 <= mse["mean"] < 1 and mse["paper"] == [0.0098, 0.0002]
    assert (tmp_path / "out" / "W26" / "table.md").is_file() and (tmp_path / "out" / "W26" / "table.json").is_file()
    assert (tmp_path / "out" / "W26" / "repeat0" / "active" / "endow" / "tracker.jsonl").is_file()


@pytest.mark.slow
@pytest.mark.llm
def test_reproduce_promptmix_local_model(tmp_path: Path, local_llm_url: str, shared_data: Path) -> None:
    folder = shared_data / "moblab_games"
    if not (folder / "dictator.csv").is_file():
        pytest.skip(f"{folder} not present")
    cmd = [sys.executable, "-m", "personagen.cli", "reproduce", "promptmix", "--target", "moblab", "--data",
           str(folder), "--dims", "dictator", "--components", "2", "--samples", "2", "--iters", "1", "--draws", "6",
           "--improve-rounds", "0", "--max-obs", "100", "--prompt-tokens", "24", "--out", str(tmp_path / "out"),
           "--backend", "openai", "--base-url", local_llm_url, "--model", "smollm2", "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(r.stdout.strip().splitlines()[-1])["table"]["rows"]
    assert rows["Ours (EM)"]["dictator"]["paper"] == 1.69 and rows["Ours (GB)"]["dictator"]["paper"] == 1.16
    assert rows["Ours (EM)"]["dictator"]["w1"] is not None and rows["Ours (GB)"]["dictator"]["k"] == 3
    assert rows["1,000 Human Samples"]["dictator"]["n"] == 6
    assert rows["Fine-tuned Llama"]["dictator"]["paper"] == 5.99  # published only


def test_reproduce_bad_input_exits_2(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "reproduce", "p2p", str(tmp_path), "--dry-run"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not an OpinionQA wave folder" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, "-m", "personagen.cli", "reproduce", "promptmix", "--target", "big5",
                        "--data", str(tmp_path / "nope.csv"), "--dry-run"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--data" in r.stderr


def _paper003(shared_data: Path) -> list[str]:
    (txt,) = sorted((shared_data.parent / "papers").glob("003_*.txt"))
    return txt.read_text(encoding="utf-8").splitlines()


def _table_rows(lines: list[str], start: str, stop: str) -> dict[str, list[float]]:
    """Group -> Llama-2-7B (human, base, fine-tuned) from a Table 9/10 block of the paper text. A line with two
    groups ("Northeast South  0.023 0.017  0.165 0.149 ...") interleaves their columns."""
    import re

    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    rows: dict[str, list[float]] = {}
    for line in lines[i + 1:]:
        if line.startswith(stop):
            break
        cells = [c for c in line.split("\t") if c.strip()]
        nums = [c for c in cells if re.fullmatch(r"[\d. ]+", c.strip())]
        names = [c for c in cells if c not in nums]
        if not nums:
            continue
        group = names[-1].replace("\\$", "$").replace("College grad*", "College graduate/some postgrad")
        cols = [c.split() for c in nums]
        if len(cols[0]) == 2:  # two groups on one line
            a, b = _split_two(group)
            rows[a] = [float(c[0]) for c in cols[:3]]
            rows[b] = [float(c[1]) for c in cols[:3]]
        else:
            rows[group] = [float(c[0]) for c in cols[:3]]
    return rows


def _split_two(label: str) -> tuple[str, str]:
    known = ("Northeast", "South", "College graduate/some postgrad", "Less than high school", "$100,000 or more", "Less than $30,000", "Democrat",
             "Republican")
    first = next(k for k in known if label.startswith(k + " "))
    return first, label[len(first) + 1:]


def test_subpop_paper_tables_transcribed_cell_by_cell(shared_data: Path) -> None:
    from personagen.reproduce.subpop import PAPER_GROUPS, PAPER_TABLE1

    lines = _paper003(shared_data)
    t9 = _table_rows(lines, "Attribute\tGroup\tHuman Baseline", "Table 10")
    t10_start = next(k for k, line in enumerate(lines) if line.startswith("Table 10"))
    t10 = _table_rows(lines[t10_start:], "Attribute\tGroup\tHuman Baseline", "Question:")
    assert t9.pop("Protestant") == [0.016, 0.015, 0.166]  # Table 9's garbled row, left out on purpose
    for fam, table in (("opinionqa", t9), ("subpop_eval", t10)):
        assert set(PAPER_GROUPS[fam]) == set(table), fam
        for g, cells in table.items():
            assert list(PAPER_GROUPS[fam][g]) == cells, (fam, g)
    t1 = {line.split("\t")[0]: line.split("\t")[1:] for line in lines if "\t" in line}
    for label, key in (("Zero-shot prompt (QA)", "zero_shot_qa"), ("Zero-shot prompt (BIO)", "zero_shot_bio"),
                       ("Zero-shot prompt (PORTRAY)", "zero_shot_portray"), ("Few-shot prompt", "few_shot"),
                       ("Ours (SubPOP-FT)", "fine_tuned")):
        row = [float(x) for x in t1[label] if x.strip()]
        assert (PAPER_TABLE1["opinionqa"][key], PAPER_TABLE1["subpop_eval"][key]) == (row[0], row[4]), label
    bounds = [float(x) for x in t1["Upper bound (Unif.) Lower bound (Human)"][0].split() +
              t1["Upper bound (Unif.) Lower bound (Human)"][1].split()]  # Table 6: 0.178 0.031 | 0.208 0.033
    assert [PAPER_TABLE1[f][k] for f in ("opinionqa", "subpop_eval") for k in ("uniform", "human_bound")] == bounds
