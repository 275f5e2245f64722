"""prefs stage: parsing, curation counts, topic-even split, kappa by hand, sampling plan, DPF pairs on a scripted
loopback model (resume pays nothing twice), consistency judge, evaluation, dry-run, Hub download, publish."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from enrich_helpers import census_library, scripted_client  # noqa: E402
from test_publish import TOKEN, hub  # noqa: E402,F401  (the loopback Hub fixture)

from personagen.errors import BadInput  # noqa: E402
from personagen.prefs import (  # noqa: E402
    PAPER,
    CurateOptions,
    EvalOptions,
    PairOptions,
    PrefsOptions,
    cohen_kappa,
    consistency_filter,
    curate,
    evaluate_library,
    make_preferences,
    parse_choice,
    parse_consistency,
    parse_controversial,
    parse_critique,
    parse_revision,
    plan_pairs,
    read_preferences,
    rule_filter,
    split_by_topic,
)
from personagen.store import atomic_write_parquet  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "prefs_prompts.jsonl"
SHORT = "Short answer."


# ---- parsing ------------------------------------------------------------------------------------------

def test_parsers() -> None:
    assert parse_controversial("YES") is True and parse_controversial(" no.") is False
    assert parse_controversial("Not controversial") is False and parse_controversial("Controversial.") is True
    assert parse_controversial("The capital is Paris.") is None and parse_controversial(None) is None
    assert parse_revision("REVISED PREFERENCE:\nKeep it short.\nDONE") == "Keep it short."
    assert parse_revision("revised preference: 'Quoted.' DONE") == "Quoted."
    assert parse_revision("Plain reply") == "Plain reply" and parse_revision("REVISED PREFERENCE: DONE") is None
    assert parse_critique("EVALUATION: long. SUGGESTIONS: cut.\nDONE") == "EVALUATION: long. SUGGESTIONS: cut."
    assert parse_choice("B") == "B" and parse_choice("Answer a.") == "A" and parse_choice("(b)") == "B"
    assert parse_choice("Both are fine") is None and parse_choice("") is None
    assert parse_consistency("INCONSISTENT: income", ["age", "income"]) == ("inconsistent", "income")
    assert parse_consistency("inconsistent", ["age"]) == ("inconsistent", None)
    assert parse_consistency("CONSISTENT", ["age"]) == ("consistent", None)
    assert parse_consistency("maybe", ["age"]) == ("unparsed", None)


# ---- Cohen's kappa, by hand ---------------------------------------------------------------------------

def test_cohen_kappa_by_hand() -> None:
    # a = a a b b a, b = a b b b a: agree on 4 of 5 -> p_o = 0.8;
    # shares a: (3/5, 2/5), b: (2/5, 3/5) -> p_e = 3/5·2/5 + 2/5·3/5 = 12/25 = 0.48; κ = 0.32 / 0.52 = 8/13
    assert cohen_kappa(list("aabba"), list("abbba")) == pytest.approx(8 / 13)
    # 2×2 table yes/yes 20, yes/no 5, no/yes 10, no/no 15 (n = 50): p_o = 35/50 = 0.7;
    # rater 1 yes 25/50, rater 2 yes 30/50 -> p_e = 0.5·0.6 + 0.5·0.4 = 0.5; κ = 0.2 / 0.5 = 0.4
    r1 = ["y"] * 25 + ["n"] * 25
    r2 = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(r1, r2) == pytest.approx(0.4)
    # three labels: pairs (x,x) (y,y) (z,z) (x,y) (y,z) (z,x): p_o = 3/6; each rater 2/6 per label ->
    # p_e = 3 · (1/3)² = 1/3; κ = (1/2 − 1/3) / (2/3) = 1/4
    assert cohen_kappa(list("xyzxyz"), list("xyzyzx")) == pytest.approx(0.25)
    assert cohen_kappa(list("ab"), list("ab")) == pytest.approx(1.0)
    assert math.isnan(cohen_kappa(list("aaa"), list("aaa")))  # p_e = 1: undefined
    # one rater constant, the other not: p_o = p_e = share of the constant label -> κ = 0
    assert cohen_kappa(list("aaaa"), list("aabb")) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        cohen_kappa([1], [1, 2])


# ---- curation rules and the split ---------------------------------------------------------------------

def test_rule_filter_counts_on_our_prompt_file() -> None:
    raw = pl.read_ndjson(DATA)
    df, counts = rule_filter(raw, 5)
    # 20 prompts; "Tell me about the history of the Senate." and "Write a poem about autumn leaves falling down"
    # have no question mark (18 left); "God?" has 1 word (17 left).
    assert counts == {"input": 20, "nonempty_unique": 20, "question_mark": 18, "min_words": 17}
    assert "God?" not in df["prompt"].to_list()


def test_split_covers_topics_evenly() -> None:
    # 8 A, 4 B, 4 C at 1/4 held out: quotas 2, 1, 1 exactly.
    df = pl.DataFrame({"prompt": [f"p{i}" for i in range(16)], "topic": ["A"] * 8 + ["B"] * 4 + ["C"] * 4})
    out = split_by_topic(df, 0.25, seed=3)
    held = out.filter(pl.col("split") == "heldout")["topic"].value_counts().sort("topic")
    assert held.rows() == [("A", 2), ("B", 1), ("C", 1)]
    # 3 A, 3 B, 2 C at 1/2: total 4; quotas 1.5, 1.5, 1 -> floors 1, 1, 1; the one left goes to the largest
    # remainder (A and B tie at 0.5; ties by name) -> A 2, B 1, C 1.
    df2 = pl.DataFrame({"prompt": [f"q{i}" for i in range(8)], "topic": ["A"] * 3 + ["B"] * 3 + ["C"] * 2})
    held2 = split_by_topic(df2, 0.5, seed=0).filter(pl.col("split") == "heldout")["topic"].value_counts()
    assert sorted(held2.rows()) == [("A", 2), ("B", 1), ("C", 1)]


def test_plan_is_independent_of_persona_and_follows_the_paper_split() -> None:
    prompts = pl.DataFrame({"prompt_id": [f"q{i}" for i in range(30)], "prompt": [f"Q{i}?" for i in range(30)],
                            "topic": ["t"] * 30, "split": ["train"] * 24 + ["heldout"] * 6})
    opts = PairOptions(per_persona=6, train_per_persona=4, heldout_per_persona=2, seed=1)
    plan = plan_pairs(["a", "b", "c"], prompts, opts)
    for _pid, g in plan.group_by("persona_id"):
        assert g["split"].value_counts().sort("split").rows() == [("test_seen", 2), ("test_unseen", 2),
                                                                    ("train", 4)]
        assert g["prompt_id"].n_unique() == 8
        held = set(g.filter(pl.col("split") == "test_unseen")["prompt_id"])
        assert held <= {f"q{i}" for i in range(24, 30)}
    # a persona's prompts depend only on the seed and its id, not on who else is in the run
    alone = plan_pairs(["b"], prompts, opts)
    assert alone["prompt_id"].to_list() == plan.filter(pl.col("persona_id") == "b")["prompt_id"].to_list()
    with pytest.raises(BadInput, match="--train-per-persona"):
        PairOptions(per_persona=2, train_per_persona=3)


# ---- the scripted model ---------------------------------------------------------------------------------

def scripted(user: str, system: str, body: dict) -> str:
    """Classifier: NO for factual questions, garbage for the voting question; base answers; Appendix B
    critique/revision replies (identical revision for the coworker question); evaluators; consistency judge."""
    if user.startswith("Would people with different backgrounds"):
        if "capital city" in user or "spider" in user:
            return "NO"
        return "hmm" if "mandatory" in user else "YES"
    if user.startswith("Examine the COMPLETION"):
        return "EVALUATION: too long. SUGGESTIONS: shorter.\nDONE"
    if user.startswith("Revise the COMPLETION"):
        if "coworker" in user:
            return "REVISED PREFERENCE: " + user.split("COMPLETION: '")[1].split("', with")[0] + "\nDONE"
        return f"REVISED PREFERENCE: {SHORT}\nDONE"
    if user.startswith("Someone asked"):
        if system.startswith("You are role-playing") and ("age:" in system or "sex:" not in system):
            first = user.split("Answer A: ")[1].split("\n")[0]
            return "A" if first == SHORT else "B"
        return "A"  # the second role-player (and LOO personas without age): always the first answer
    if user.startswith("Here is a demographic profile"):
        return "INCONSISTENT: age" if "age: 30" in user else ("garbage" if "age: 37" in user else "CONSISTENT")
    if "Sabbath" in user:
        return ""
    return f"Base answer to: {user[:30]}"


def _options(**pairs: object) -> PrefsOptions:
    po = {"per_persona": 3, "train_per_persona": 2, "heldout_per_persona": 1, "answer_tokens": 32,
          "critique_tokens": 32, "chunk": 3, **pairs}
    return PrefsOptions(CurateOptions(str(DATA)), PairOptions(**po), consistency_judge=True)


def test_pairs_end_to_end_scripted_and_resume(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=4)  # ages 30, 37, 44, 51
    with scripted_client(tmp_path, scripted) as (c, srv):
        res = make_preferences(lib, _options(), client=c)
        cur = res.curation["counts"]
        # 17 after the rules; NO for capital city and spider; the voting question stays unparsed after a retry
        assert cur["controversial"] == 14 and cur["classifier_unparsed_rejected"] == 1
        # held out round(14 · 868/3868) = 3: topics of 3 prompts get quota 0.67 each, politics (2) 0.45;
        # the three largest remainders (ties by name): economy, relationships, religion
        assert (cur["train"], cur["heldout"]) == (11, 3)
        assert {t: s.get("heldout", 0) for t, s in res.curation["topics"].items()} == \
            {"economy": 1, "values": 0, "politics": 0, "religion": 1, "relationships": 1}
        # consistency judge: age 30 named inconsistent, age 37 unparsed twice -> rejected (fails closed)
        assert res.consistency["rejected_by_reason"] == {"age": 1, "unparsed": 1}
        pairs = read_preferences(lib)
        assert set(pairs["persona_id"]) <= {"p002", "p003"}
        prompts = pl.read_parquet(lib.path / "prefs" / "prompts.parquet")
        plan = plan_pairs(["p002", "p003"], prompts, _options().pairs)
        assert res.pairs.planned == plan.height == 8
        exp_base = sum("Sabbath" in p for p in plan["prompt"])
        exp_same = sum("coworker" in p for p in plan["prompt"])
        assert res.pairs.dropped["base_empty"] == exp_base
        assert res.pairs.dropped["revision_identical"] == exp_same
        assert pairs.height == 8 - exp_base - exp_same
        assert (pairs["chosen"] == SHORT).all() and pairs["rejected"].str.starts_with("Base answer").all()
        assert pairs["persona"].str.contains("occupation:").all()
        # resume: a finished run sends nothing; a half-lost file is rebuilt from the cache alone
        hits = srv.hits
        again = make_preferences(lib, _options(), client=c)
        assert srv.hits == hits and again.pairs.new_pairs == 0
        atomic_write_parquet(lib.path / "preferences.parquet", pairs.head(2))
        rebuilt = make_preferences(lib, _options(), client=c)
        assert srv.hits == hits and rebuilt.pairs.new_pairs == pairs.height - 2
        assert read_preferences(lib).sort("persona_id", "prompt_id").equals(pairs.sort("persona_id", "prompt_id"))
        ev = evaluate_library(lib, EvalOptions(limit=None, loo_attributes=("age",), loo_personas=2, loo_base=2,
                                               loo_questions=2), client=c)
    # the first role-player always picks the rewrite; the second always says "A" (order is random per pair)
    assert ev.evaluator["rate"] == 1.0 and ev.evaluator["parsed"] == pairs.height
    assert ev.agreement["kappa"] in (0.0, None)  # one constant rater: κ = 0 (or undefined if both constant)
    assert ev.agreement["configs"]["second"]["stand_in"] is True
    # LOO (§4.1, refinements design): both personas see the two refinements, both SHORT; the persona with age picks
    # A (its first answer is SHORT) and the one without always says A: they agree on every question, so
    # κ = 1 where both labels occur (the shown order is seeded per question) and undefined where only one does
    ks = ev.loo["age"]["kappas"]
    assert len(ks) == 2 and all(k in (1.0, None) for k in ks)
    for f in ("report.json", "report.md", "eval.png"):
        assert (lib.path / "prefs" / "eval" / f).stat().st_size > 0
    assert "| age |" in (lib.path / "prefs" / "eval" / "report.md").read_text()


def test_undefined_kappa_is_reported_as_undefined() -> None:
    from personagen.prefs.report import render_markdown

    # both role-players pick the rewrite on all 20 items: p_e = 1, κ has no value
    assert cohen_kappa(["chosen"] * 20, ["chosen"] * 20) != cohen_kappa(["chosen"] * 20, ["chosen"] * 20)  # NaN
    pp = {"n": 1, "defined": 0, "mean": None, "median": None, "q1": None, "q3": None}
    rep = {"evaluator": {"pairs": 20, "parsed": 20, "unparsed": 0, "prefers_chosen": 20, "rate": 1.0,
                         "paper_rate": 0.96},
           "agreement": {"configs": {}, "per_persona": pp, "n": 20, "kappa": None, "raw_agreement": 1.0},
           "loo": {"age": {**pp, "n": 2, "kappas": [None, None]}}}
    md = render_markdown(rep)
    assert "| 20 | undefined | 1.000 |" in md and "| age | 2 | 0 | undefined | undefined |" in md
    assert EvalOptions().loo_design == "refinements"
    assert PrefsOptions(CurateOptions(str(DATA))).consistency_judge is True  # §3.1: the filter is part of PERSONA


def test_consistency_filter_counts_reasons(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=4)
    with scripted_client(tmp_path, scripted) as (c, srv):
        res = consistency_filter(lib.personas(), c, max_retries=2)
    assert res.kept == ["p002", "p003"]
    assert res.rejected_by_reason == {"age": 1, "unparsed": 1}
    assert res.calls == 4 + 1 + 1  # p001's garbage verdict is asked three times
    assert res.to_dict()["rejection_rate"] == 0.5


# ---- dry run, bad input -----------------------------------------------------------------------------

def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_dry_run_paper_configuration(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=4)
    r = _cli("prefs", str(lib.path), "--prompts", str(DATA), "--dry-run", "--price-model", "gpt-4o", "--json")
    assert r.returncode == 0, r.stderr
    est = json.loads(r.stdout.strip().splitlines()[-1])
    paper = est["paper"]
    # §3.2: 1,586 personas × (150 + 50) prompts = 317,200 pairs; 3 calls each (Fig. 4) + 8,011 classified;
    # §3.1's judge saw the personas before it removed ~8.5%: round(1,586 / 0.915) = 1,733 calls
    assert paper["n_pairs"] == 317_200 == PAPER["personas"] * 200
    assert round(1586 / 0.915) == 1733 == PAPER["judged"]
    assert paper["total"]["calls"] == 3 * 317_200 + 8_011 + 1_733
    # gpt-4o: $2.50 / M input, $10 / M output (datasets/prices.yaml)
    t = paper["total"]
    assert paper["total"]["cost_usd"] == pytest.approx((t["input_tokens"] * 2.5 + t["output_tokens"] * 10) / 1e6,
                                                       abs=0.05)
    # output tokens are the caps: 256 per answer/critique/revision, 8 per classification
    assert t["output_tokens"] == 317_200 * 3 * 256 + 8_011 * 8 + 1_733 * 24
    # this run: 4 personas × (13 train-pool + 4 held-out prompts after the rules and the split)
    assert est["this_run"]["n_pairs"] == 4 * 17
    assert "paper: 317,200 pairs" in r.stderr
    assert not (lib.path / "preferences.parquet").exists() and not (lib.path / "llm.sqlite").exists()
    bad = _cli("prefs", str(lib.path), "--prompts", str(tmp_path / "none.jsonl"), "--dry-run")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "none.jsonl" in bad.stderr
    bad2 = _cli("prefs", str(lib.path), "--prompts", str(DATA), "--per-persona", "2", "--train-per-persona", "3",
                "--dry-run")
    assert bad2.returncode == 2 and "--train-per-persona" in bad2.stderr


# ---- a Hub dataset by name, through the loopback Hub server ---------------------------------------------

def test_hub_prompts_downloaded_into_cache(tmp_path: Path, hub, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001,F811
    from huggingface_hub import HfApi

    src = tmp_path / "src" / "data"
    src.mkdir(parents=True)
    pl.read_ndjson(DATA).rename({"prompt": "opening_prompt"}).write_parquet(src / "train.parquet")
    api = HfApi(token=TOKEN, endpoint=hub.url)
    api.create_repo("acme/prompts", repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=str(src.parent), repo_id="acme/prompts", repo_type="dataset")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    res = curate(CurateOptions("acme/prompts", prompt_column="opening_prompt", classify=False))
    assert res.source["kind"] == "hub" and res.source["files"] == 1
    assert res.counts["min_words"] == 17 and res.prompts.height == 17
    assert any((tmp_path / "hfhome" / "hub").rglob("train.parquet"))  # in the Hugging Face cache
    with pytest.raises(BadInput, match="not found"):
        curate(CurateOptions("acme/missing", classify=False))


# ---- publish: the preferences config, loadable by datasets -------------------------------------------

def test_publish_preferences_config_loads_with_datasets(tmp_path: Path) -> None:
    from personagen.publish import export_panel

    lib = census_library(tmp_path / "lib", n=4)
    with scripted_client(tmp_path, scripted) as (c, _srv):
        make_preferences(lib, _options(), client=c)
    n = read_preferences(lib).height
    ids = lib.personas()["persona_id"].to_list()
    cal = lib.calibration_dir("main")
    cal.mkdir(parents=True)
    atomic_write_parquet(cal / "weights.parquet", pl.DataFrame({"persona_id": ids, "weight": np.full(4, 0.25)}))
    out = tmp_path / "panel"
    res = export_panel(lib, out)
    assert any(f.startswith("data/preferences/") for f in res.files)
    assert "config_name: preferences" in (out / "README.md").read_text()
    code = (
        "import sys, json; from datasets import load_dataset\n"
        "d = load_dataset(sys.argv[1], name='preferences')\n"
        "row = d['train'][0]\n"
        "print(json.dumps({'splits': {k: v.num_rows for k, v in d.items()}, 'prompt': row['prompt'],"
        " 'chosen': row['chosen'], 'rejected': row['rejected'], 'system': row['system']}))\n"
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert sum(got["splits"].values()) == n and set(got["splits"]) <= {"train", "test_seen", "test_unseen"}
    assert [m["role"] for m in got["prompt"]] == ["system", "user"] and got["prompt"][0]["content"] == got["system"]
    assert got["chosen"] == [{"role": "assistant", "content": SHORT}]
    assert got["rejected"][0]["role"] == "assistant" and got["rejected"][0]["content"].startswith("Base answer")


# ---- real census personas (../shared/data) --------------------------------------------------------------

def test_real_census_profiles_and_dry_run(vt_pums: Path, tmp_path: Path) -> None:
    import personagen as pg
    from personagen.prefs import dry_run_library

    lib = pg.build(out=tmp_path / "vt", census=str(vt_pums), n=12, seed=0)
    opts = PrefsOptions(CurateOptions(str(DATA)), PairOptions(personas=5))
    est = dry_run_library(lib, opts, "gpt-4")
    assert est["this_run"]["n_pairs"] == 5 * 17 and est["paper"]["n_pairs"] == 317_200
    row = lib.personas().row(0, named=True)
    from personagen.prefs.profile import attributes

    attrs = attributes(row)
    assert attrs["age"] == str(row["age"]) and "sex" in attrs
    assert not any(k.startswith("text") or k in ("persona id", "weight census") for k in attrs)
    assert "state code" not in attrs and "openness" in attrs and attrs["openness"] == row["big5_openness_level"]


def _agreeable(user: str, system: str, body: dict) -> str:
    """Every verdict parses and every pair succeeds on the first try (no retries): the calls a run sends are the
    ones the dry run counts."""
    if user.startswith("Would people with different backgrounds"):
        return "YES"
    if user.startswith("Here is a demographic profile"):
        return "CONSISTENT"
    if user.startswith("Examine the COMPLETION"):
        return "EVALUATION: too long. SUGGESTIONS: shorter.\nDONE"
    if user.startswith("Revise the COMPLETION"):
        return f"REVISED PREFERENCE: {SHORT}\nDONE"
    return f"Base answer to: {user[:30]}"


@pytest.mark.parametrize("extra", [{}, {"base_per_prompt": True}])
def test_dry_run_counts_the_calls_a_run_sends(tmp_path: Path, extra: dict) -> None:
    from personagen.prefs import dry_run_library

    lib = census_library(tmp_path / "lib", n=4)
    opts = PrefsOptions(CurateOptions(str(DATA), limit=9), PairOptions(per_persona=3, train_per_persona=2,
                        heldout_per_persona=1, answer_tokens=32, critique_tokens=32, chunk=3, **extra))
    assert opts.consistency_judge  # the paper's default (§3.1)
    both = dry_run_library(lib, opts, "gpt-4o")
    est = both["this_run"]
    steps = {r["step"]: r for r in est["steps"]}
    # the judge: one call per library persona, 24 output tokens each, priced like the rest (gpt-4o: $2.50 / M
    # input, $10 / M output; this run's judge costs under a cent, the paper's 1,733 calls are priced)
    assert steps["consistency"]["calls"] == 4 and steps["consistency"]["output_tokens"] == 4 * 24
    assert steps["consistency"]["input_tokens"] > 4 * 40
    judge = next(r for r in both["paper"]["steps"] if r["step"] == "consistency")
    assert judge["cost_usd"] == pytest.approx((judge["input_tokens"] * 2.5 + judge["output_tokens"] * 10) / 1e6,
                                              abs=0.005) and judge["cost_usd"] > 0
    assert steps["classify"]["calls"] == 9  # --prompt-limit 9 of the 17 rule-filtered prompts
    # base answers: one per pair, or one per distinct planned prompt (4 personas share some of the 7 prompts)
    assert (steps["base"]["calls"] < est["n_pairs"]) if extra else (steps["base"]["calls"] == est["n_pairs"])
    with scripted_client(tmp_path, _agreeable) as (c, srv):
        res = make_preferences(lib, opts, client=c)
        sent = c.stats["requests_sent"]
    assert res.consistency["calls"] == steps["consistency"]["calls"]
    assert res.pairs.planned == est["n_pairs"] and res.pairs.new_pairs == est["n_pairs"]
    assert sent == est["total"]["calls"], (sent, steps)
