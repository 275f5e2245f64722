"""Elicitation end to end against the real bundled model (session server): both modes, reruns, kill -9;
plus fast runs through the real client against a scripted loopback server (persona_ids, a reused client)."""

from __future__ import annotations

import ast
import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from loopback import LoopbackServer

from personagen import ElicitOptions, Library
from personagen.errors import BadInput
from personagen.llm import LLMClient
from personagen.surveys import Survey, load

PERSONAS = [  # short on purpose: prompt tokens are what the model-backed tests spend their time on
    ("p1", "I am Mary, 67, a retired teacher in rural Vermont who goes to church."),
    ("p2", "I am Jamal, 29, a software developer in Burlington who cares about climate."),
    ("p3", "I am Tom, 45, a dairy farmer who distrusts big government."),
]


def opinionqa_survey(shared_data: Path, n: int = 5) -> Survey:
    """The first n questions of a real OpinionQA wave (options as listed, 'Refused' dropped)."""
    p = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W82" / "info.csv"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    qs = []
    with open(p, newline="") as fh:
        for row in csv.DictReader(fh):
            opts = [o for o in ast.literal_eval(row["references"]) if o != "Refused"]
            qs.append({"qid": row["key"], "question": row["question"], "options": opts,
                       "targets": {"overall": {o: 1 / len(opts) for o in opts}}})
            if len(qs) == n:
                break
    return Survey.from_records("ATP_W82", qs, source=str(p))


@pytest.fixture()
def setup(tmp_path, shared_data):
    lib = Library.init(tmp_path / "lib", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [p for p, _ in PERSONAS],
                                     "source": ["census"] * 3, "text_narrative": [t for _, t in PERSONAS]}))
    survey = opinionqa_survey(shared_data)
    spath = survey.save(tmp_path / "survey.parquet")
    return lib, survey, spath


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def _log(lib: Library) -> list[tuple[str, str | None]]:
    con = sqlite3.connect(lib.llm_db)
    try:
        return con.execute("SELECT hash, error FROM log").fetchall()
    finally:
        con.close()


@pytest.mark.llm
def test_logprobs_mode_rerun_and_cache(setup, local_llm_url):
    lib, survey, _ = setup
    kw = dict(backend="openai", base_url=local_llm_url, model="smollm2", progress=False)
    s = lib.elicit(survey, ElicitOptions(mode="logprobs", **kw))
    assert s.answers_written == 15 and s.requests_sent == 15 and s.errors == 0
    r = lib.responses()
    assert set(r["persona_id"]) == {"p1", "p2", "p3"} and r["qid"].n_unique() == 5
    assert set(r["mode"]) == {"logprobs"} and set(r["model"]) == {"smollm2"} and set(r["n"]) == {1}
    valid = r.filter(pl.col("valid"))
    sums = valid.group_by("persona_id", "qid").agg(pl.col("prob").sum())
    assert ((sums["prob"] - 1).abs() < 1e-9).all()
    assert ((valid["mass"] > 0) & (valid["mass"] <= 1)).all()
    for q in survey.qids:  # every option of every question has a row for a valid answer
        assert set(valid.filter(pl.col("qid") == q)["option"]) <= set(survey.options(q))
    before = r.sort("persona_id", "qid", "option")
    # rerun: everything is already answered -> no calls at all
    s2 = lib.elicit(survey, ElicitOptions(mode="logprobs", **kw))
    assert s2.requests_sent == 0 and s2.cache_hits == 0 and s2.answers_skipped == 15
    assert lib.responses().height == r.height
    # answers gone but cache kept -> rebuilt from the cache, still no calls
    lib.responses_path.unlink()
    s3 = lib.elicit(survey, ElicitOptions(mode="logprobs", **kw))
    assert s3.requests_sent == 0 and s3.cache_hits == 15
    assert lib.responses().sort("persona_id", "qid", "option").equals(before)
    assert len(_log(lib)) == 15 + 3  # and the constraint probes of the first run (grammar; logprobs on 2 prompts)
    hist = [h for h in Library.open(lib.path).manifest["history"] if h["stage"] == "elicit"]
    assert len(hist) == 2 and set(hist[0]["templates"]) == {"elicit/system.j2", "elicit/user.j2"}
    assert hist[0]["mode"] == "logprobs" and hist[0]["model"] == "smollm2"


@pytest.mark.llm
def test_sample_mode_keeps_unmatched(setup, local_llm_url):
    lib, survey, _ = setup
    s = lib.elicit(survey, ElicitOptions(mode="sample", samples=2, temperature=1.0, backend="openai",
                                         base_url=local_llm_url, model="smollm2", progress=False,
                                         constrain="none"))
    # the llama.cpp server rejects the API's n=2 once (the probe), then 15 answers x 2 seeded single calls
    assert s.answers_written == 15 and s.requests_sent == 1 + 30
    r = lib.responses()
    assert set(r["n"]) == {2} and set(r["mode"]) == {"sample"}
    tot = r.group_by("persona_id", "qid").agg(pl.col("prob").sum())
    assert tot.height == 15 and ((tot["prob"] - 1).abs() < 1e-9).all()  # matched + unmatched = K answers
    bad = r.filter(~pl.col("valid"))
    assert bad.height == s.invalid
    assert bad["raw"].is_not_null().all() and bad["option"].is_null().all()
    assert set(r.filter(pl.col("valid"))["prob"].to_list()) <= {0.0, 0.5, 1.0}
    s2 = lib.elicit(survey, ElicitOptions(mode="sample", samples=2, backend="openai", base_url=local_llm_url,
                                          model="smollm2", progress=False, constrain="none"))
    assert s2.requests_sent == 0


@pytest.mark.llm
def test_min_mass_marks_invalid_not_guessed(setup, local_llm_url):
    lib, survey, _ = setup
    s = lib.elicit(survey, ElicitOptions(limit=1, max_questions=2, min_mass=1.0, backend="openai",
                                         base_url=local_llm_url, model="smollm2", progress=False,
                                         constrain="none"))
    r = lib.responses()
    assert s.invalid == 2 and s.invalid_total == 2 and s.answers_total == 2
    # the renormalised distribution is kept (marked invalid) so --min-mass can be re-applied without calls
    assert not r["valid"].any() and (r["mass"] < 1.0).all()
    opts = {q: survey.options(q) for q in survey.qids[:2]}
    assert r.height == sum(len(v) for v in opts.values()) or r["option"].is_null().any()


@pytest.mark.llm
def test_kill9_then_rerun_answers_each_once(setup, local_llm_url):
    lib, survey, spath = setup
    args = ["elicit", str(lib.path), "--survey", str(spath), "--backend", "openai", "--base-url", local_llm_url,
            "--model", "smollm2", "--limit", "3", "--max-questions", "5", "--concurrency", "2", "--no-progress",
            "--constrain", "none"]
    proc = subprocess.Popen([sys.executable, "-m", "personagen.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    killed = False
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if lib.llm_db.exists():
            try:
                n = len(_log(lib))
            except sqlite3.OperationalError:
                n = 0
            if n >= 4:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed, "the run finished before it could be killed"
    first = len(_log(lib))
    assert 4 <= first < 15
    out = _cli(*args, "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    r = lib.responses()
    per = r.group_by("persona_id", "qid").agg(pl.len())
    assert per.height == 15  # every (persona, question) answered
    keys = r.select("persona_id", "qid", "option").unique()
    assert keys.height == r.height  # ...exactly once
    log = _log(lib)
    hashes = [h for h, e in log if e is None]
    assert len(hashes) == len(set(hashes)) == 15  # no request sent twice
    assert summary["requests_sent"] == 15 - first
    assert not (lib.path / ".responses").exists() or not list((lib.path / ".responses").glob("part-*"))


@pytest.mark.llm
def test_bad_inputs_exit_clearly(setup, local_llm_url, tmp_path, monkeypatch):
    lib, survey, spath = setup
    base = ["elicit", str(lib.path), "--survey", str(spath), "--no-progress"]
    out = _cli(*base, "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert out.returncode == 1 and "cannot reach" in out.stderr and "Traceback" not in out.stderr
    out = _cli(*base, "--backend", "openai", "--base-url", local_llm_url, "--model", "gpt-99")
    assert out.returncode == 2 and "gpt-99" in out.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")}
    out = subprocess.run([sys.executable, "-m", "personagen.cli", *base, "--backend", "openai",
                          "--base-url", "https://api.example.invalid/v1", "--model", "gpt-4o-mini"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "OPENAI_API_KEY not set" in out.stderr
    # a question with one option: the survey is refused with a message naming it
    f = load(spath).frame
    one = f.filter(~((pl.col("qid") == survey.qids[0]) & (pl.col("option_index") > 0)))
    bad = tmp_path / "bad.parquet"
    one.with_columns(pl.when(pl.col("qid") == survey.qids[0]).then(1.0).otherwise(pl.col("share"))
                     .alias("share")).write_parquet(bad)
    out = _cli("elicit", str(lib.path), "--survey", str(bad), "--backend", "openai", "--base-url", local_llm_url,
               "--model", "smollm2")
    assert out.returncode == 2 and survey.qids[0] in out.stderr and "option" in out.stderr
    assert not lib.responses_path.exists()


@pytest.mark.llm
def test_dry_run_sends_and_writes_nothing(setup, local_llm_url):
    lib, survey, spath = setup
    manifest = (lib.path / "manifest.json").read_text()
    out = _cli("elicit", str(lib.path), "--survey", str(spath), "--backend", "openai", "--base-url",
               "http://127.0.0.1:9/v1", "--model", "gpt-4o-mini", "--mode", "sample", "--samples", "3",
               "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout.strip().splitlines()[-1])
    # 15 answers x 3 samples: one call each with the API's n=3 (the prompt is paid once per answer)
    assert s["estimate"]["requests"] == 15 and s["estimate"]["input_tokens"] > 15 * 50
    assert s["estimate"]["output_tokens"] == 15 * 3 * 12  # n x SAMPLE_MAX_TOKENS
    assert s["estimate"]["cost_usd"] > 0 and s["requests_sent"] == 0
    assert sorted(p.name for p in lib.path.iterdir()) == ["manifest.json", "personas.parquet"]
    assert (lib.path / "manifest.json").read_text() == manifest


# ---- fast: the real client against a scripted loopback server --------------------------------------------


def _by_persona(body: dict) -> str:
    """Mary answers A, Jamal B, anyone else C (logprobs put all the mass on the reply's letter)."""
    system = body["messages"][0]["content"]
    return "A" if "Mary" in system else "B" if "Jamal" in system else "C"


@pytest.fixture()
def small(tmp_path):
    lib = Library.init(tmp_path / "lib", seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [p for p, _ in PERSONAS],
                                     "source": ["census"] * 3, "text_narrative": [t for _, t in PERSONAS]}))
    survey = Survey.from_records("toy", [
        {"qid": "Q1", "question": "Do you trust the government?", "options": ["Yes", "No", "Unsure"],
         "targets": {"overall": {"Yes": 0.3, "No": 0.5, "Unsure": 0.2}}},
        {"qid": "Q2", "question": "Is the economy improving?", "options": ["Better", "Worse", "Same"],
         "targets": {"overall": {"Better": 0.3, "Worse": 0.4, "Same": 0.3}}}])
    with LoopbackServer(responder=_by_persona) as srv:
        yield lib, survey, srv


def test_persona_ids_with_a_reused_client(small, tmp_path):
    lib, survey, srv = small
    client = LLMClient.create(backend="openai", base_url=srv.base_url, model=srv.model,
                              cache_path=tmp_path / "llm.sqlite", progress=False)
    with client:
        s = lib.elicit(survey, ElicitOptions(persona_ids=["p2", "p1"]), client=client)
        assert s.answers_written == 4 and s.requests_sent == 4 and srv.hits == 4
        assert s.backend == "openai" and s.model == "loopback"
        r = lib.responses()
        assert set(r["persona_id"]) == {"p1", "p2"} and set(r["mode"]) == {"logprobs"}
        top = r.filter(pl.col("prob") == 1.0).sort("persona_id", "qid")
        assert top.select("persona_id", "qid", "option").rows() == [
            ("p1", "Q1", "Yes"), ("p1", "Q2", "Better"), ("p2", "Q1", "No"), ("p2", "Q2", "Worse")]
        assert client._loop is not None  # still open: elicit_library does not close a client it did not create
        # the same client again, for the remaining persona: only its answers are asked; counts are per run
        s2 = lib.elicit(survey, ElicitOptions(persona_ids=["p3", "p1"], mode="logprobs"), client=client)
        assert s2.answers_skipped == 2 and s2.requests_sent == 2 and srv.hits == 6
        assert client.stats["requests_sent"] == 6
        assert set(lib.responses()["persona_id"]) == {"p1", "p2", "p3"}
        assert lib.responses().filter((pl.col("persona_id") == "p3") & (pl.col("prob") == 1.0)) \
            .sort("qid")["option"].to_list() == ["Unsure", "Same"]
        # sample mode through the same client: the cache is the client's (tmp_path/llm.sqlite)
        s3 = lib.elicit(survey, ElicitOptions(persona_ids=["p1"], mode="sample", samples=2), client=client)
        # this server ignores the API's n (one choice back): learnt from the first call, whose paid choice is
        # kept (one more seeded call completes that answer), then 2 seeded calls per answer
        assert s3.answers_written == 2 and s3.requests_sent == 1 + 1 + 2 and s3.invalid == 0
        # an unknown id is refused, naming it, before anything is sent
        with pytest.raises(BadInput, match="'p9'"):
            lib.elicit(survey, ElicitOptions(persona_ids=["p1", "p9"]), client=client)
        assert srv.hits == 10
    assert client._loop is None
    assert not lib.llm_db.exists()  # the reused client's cache was used, not one at LIB/llm.sqlite
    hist = [h for h in Library.open(lib.path).manifest["history"] if h["stage"] == "elicit"]
    assert len(hist) == 3 and hist[0]["backend"] == "openai" and hist[0]["model"] == "loopback"


def test_persona_ids_with_an_own_client(small):
    lib, survey, srv = small
    kw = dict(backend="openai", base_url=srv.base_url, model=srv.model, progress=False)
    s = lib.elicit(survey, ElicitOptions(persona_ids=["p3"], max_questions=1, **kw))
    assert s.personas == 1 and s.requests_sent == 1 and srv.hits == 1
    assert lib.responses().filter(pl.col("prob") == 1.0)["option"].to_list() == ["Unsure"]
    assert lib.llm_db.exists()  # its own client caches in the library
    s = lib.elicit(survey, ElicitOptions(persona_ids=[], **kw))  # nothing selected: nothing to do
    assert s.personas == 0 and s.requests == 0 and srv.hits == 1


def test_style_picks_the_text_and_is_recorded(small, tmp_path):
    lib, survey, srv = small
    # the BIO texts swap who is who, so the answers show which text the model saw
    bio = {"p1": "I am Jamal, a developer.", "p2": "I am Mary, a teacher.", "p3": "I am Tom, a farmer."}
    lib.write_personas(lib.personas().with_columns(
        pl.col("persona_id").replace_strict(bio, return_dtype=pl.String).alias("text_bio")))
    kw = dict(backend="openai", base_url=srv.base_url, model=srv.model, progress=False)
    s = lib.elicit(survey, ElicitOptions(style="bio", max_questions=1, **kw))
    assert s.style == "bio" and s.answers_written == 3
    r = lib.responses().filter(pl.col("prob") == 1.0).sort("persona_id")
    assert r.select("persona_id", "option", "style").rows() == [
        ("p1", "No", "bio"), ("p2", "Yes", "bio"), ("p3", "Unsure", "bio")]
    # the narrative text is a different prompt: nothing is skipped, both styles are kept apart
    s = lib.elicit(survey, ElicitOptions(max_questions=1, **kw))
    assert s.style == "narrative" and s.answers_skipped == 0 and s.answers_written == 3
    assert lib.responses().group_by("style").len().sort("style").rows() == [("bio", 9), ("narrative", 9)]
    assert lib.elicit(survey, ElicitOptions(style="bio", max_questions=1, **kw)).answers_skipped == 3
    hist = [h for h in Library.open(lib.path).manifest["history"] if h["stage"] == "elicit"]
    assert [h["style"] for h in hist] == ["bio", "narrative"]  # a run with nothing to do records nothing
    # a style the library did not render, or no such style: exit 2 naming it, nothing sent
    spath = survey.save(tmp_path / "toy.parquet")
    base = ["elicit", str(lib.path), "--survey", str(spath), "--backend", "openai", "--base-url", srv.base_url,
            "--model", srv.model, "--no-progress"]
    hits = srv.hits
    out = _cli(*base, "--style", "portray")
    assert out.returncode == 2 and "no portray text" in out.stderr and "bio, narrative" not in out.stderr
    assert "rendered: narrative, bio" in out.stderr
    out = _cli(*base, "--style", "essay")
    assert out.returncode == 2 and "--style essay" in out.stderr
    assert srv.hits == hits
