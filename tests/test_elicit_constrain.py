"""elicit --constrain / --option-order / --show-prompt: answers on the options, option order under control, the
prompt in view. Through the real client against loopback OpenAI servers (one that says "A" to everything, ones
that honour a constraint kind) and the bundled llama.cpp model."""

from __future__ import annotations

import ast
import csv
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from loopback import LoopbackServer

from personagen import ElicitOptions, Library
from personagen.elicit import display_order, elicit_library, stays_last
from personagen.surveys import Survey

OPTS = ["Yes", "No", "Maybe", "Refused"]  # "Refused" must stay last whatever the order


def _lib(path: Path, n: int) -> Library:
    lib = Library.init(path, seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [f"p{i:02d}" for i in range(n)], "source": ["census"] * n,
                                     "text_narrative": [f"I am person {i}." for i in range(n)]}))
    return lib


def _survey(n_questions: int = 2) -> Survey:
    return Survey.from_records("toy", [
        {"qid": f"Q{j}", "question": f"Question {j}?", "options": OPTS,
         "targets": {"overall": {o: 0.25 for o in OPTS}}} for j in range(n_questions)])


def _shares(lib: Library, mode: str) -> dict[str, float]:
    r = lib.responses().filter((pl.col("mode") == mode) & pl.col("valid"))
    tot = r.group_by("option").agg(pl.col("prob").sum()).rows()
    n = sum(p for _o, p in tot)
    return {o: p / n for o, p in tot}


@pytest.mark.parametrize("mode", ["sample", "logprobs"])
def test_a_server_that_always_says_a_under_given_shuffle_and_reverse(tmp_path, mode):
    with LoopbackServer(responder=lambda req: "A") as srv:
        kw = dict(backend="openai", base_url=srv.base_url, model=srv.model, progress=False, mode=mode)
        for order in ("given", "shuffle", "reverse"):
            lib = _lib(tmp_path / order, 60)
            s = elicit_library(lib, _survey(), ElicitOptions(option_order=order, **kw))
            shares = _shares(lib, mode)
            assert s.invalid == 0 and s.constraint is None and "takes no grammar" in s.constraint_note
            assert shares.get("Refused", 0.0) == 0.0  # never shown first, so never "A"
            r = lib.responses()
            assert set(r["constrained"]) == {False} and all(o.endswith(",3") for o in r["option_order"])
            pb = s.position_bias
            assert pb["first_share"] == 1.0 and pb["answers"] == 120
            if order == "given":
                assert shares["Yes"] == 1.0 and set(r["option_order"]) == {"0,1,2,3"}
                assert pb["expected_first_share"] == 1.0  # position and content cannot be told apart
            elif order == "reverse":
                assert shares["Maybe"] == 1.0 and set(r["option_order"]) == {"2,1,0,3"}
            else:  # about 1/K for each of the K = 3 substantive options; the bias shows in the summary
                assert all(0.2 <= shares[o] <= 0.47 for o in OPTS[:3]), shares
                assert pb["expected_first_share"] < 0.5
                # mapped back by the recorded permutation: "A" is the option listed first
                for order_s, opt in r.filter(pl.col("prob") == 1.0).select("option_order", "option").rows():
                    assert OPTS[int(order_s.split(",")[0])] == opt
        assert srv.probes == 3 * 3  # grammar, guided_choice, JSON schema: once per run (a new library each)


def test_non_substantive_options_stay_last_in_every_order():
    scale = ["Very likely", "Somewhat likely", "Not too likely", "Don't know", "Refused"]
    assert [stays_last(o) for o in scale] == [False, False, False, True, True]
    assert stays_last("DK/Refused") and stays_last("I am not sure if there were guns in my household")
    assert not stays_last("Nothing at all") and not stays_last("No, never")
    assert display_order(scale, "given", 0, "p", "q") == [0, 1, 2, 3, 4]
    assert display_order(scale, "reverse", 0, "p", "q") == [2, 1, 0, 3, 4]
    drawn = {tuple(display_order(scale, "shuffle", 0, f"p{i}", "q")) for i in range(40)}
    assert all(sorted(d[:3]) == [0, 1, 2] and d[3:] == (3, 4) for d in drawn) and len(drawn) == 6  # all 3!
    assert display_order(scale, "shuffle", 0, "p1", "q") == display_order(scale, "shuffle", 0, "p1", "q")


def _honouring(req: dict) -> str:
    """A server that obeys structured outputs / guided_choice (answering the last allowed letter) and otherwise
    answers in prose."""
    if req.get("response_format"):
        enum = req["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"]
        return json.dumps({"answer": enum[-1]})
    if req.get("guided_choice"):
        return req["guided_choice"][-1]
    return "Well, I suppose I would say it depends"


@pytest.mark.parametrize("kind", ["json_schema", "guided_choice"])
def test_constraint_detected_and_answers_on_the_options(tmp_path, kind):
    with LoopbackServer(responder=_honouring, honours=frozenset({kind})) as srv:
        srv.keep_bodies = True
        kw = dict(backend="openai", base_url=srv.base_url, model=srv.model, progress=False, mode="sample")
        lib = _lib(tmp_path / "auto", 3)
        old = pl.DataFrame({"persona_id": ["p00"], "survey_id": ["older"], "qid": ["Q0"], "option": ["Yes"],
                            "prob": [1.0], "mode": ["sample"], "model": ["loopback"], "n": [1], "valid": [True]})
        lib.append_responses(old)  # a library from before the constrained / option_order columns
        s = elicit_library(lib, _survey(), ElicitOptions(**kw))
        assert lib.responses().filter(pl.col("survey_id") == "older")["constrained"].to_list() == [None]
        assert s.constraint == kind and s.constraint_note is None and s.invalid == 0
        r = lib.responses().filter((pl.col("prob") > 0) & (pl.col("survey_id") == "toy"))
        assert set(r["option"]) == {"Refused"} and set(r["constrained"]) == {True}  # D: the last letter
        assert all((kind == "guided_choice") == ("guided_choice" in b) for b in srv.bodies)
        lib2 = _lib(tmp_path / "none", 3)
        s2 = elicit_library(lib2, _survey(), ElicitOptions(constrain="none", **kw))
        assert s2.constraint is None and s2.invalid == 6 and not lib2.responses()["valid"].any()
        if kind == "guided_choice":  # its logprobs come from the constrained choice: logprob answers too
            lib3 = _lib(tmp_path / "lp", 3)
            s3 = elicit_library(lib3, _survey(), ElicitOptions(**{**kw, "mode": "logprobs"}))
            assert s3.constraint == "guided_choice" and s3.mass_quantiles["min"] == 1.0
        else:  # a JSON answer starts with "{": no letter distribution at the first token
            s3 = elicit_library(_lib(tmp_path / "lp", 3), _survey(),
                                ElicitOptions(**{**kw, "mode": "logprobs"}))
            assert s3.constraint is None and "logprob answers are unconstrained" in s3.constraint_note


def test_show_prompt_sends_nothing(tmp_path):
    lib = _lib(tmp_path / "lib", 2)
    spath = _survey(3).save(tmp_path / "s.parquet")
    with LoopbackServer() as srv:
        r = subprocess.run([sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(spath),
                            "--backend", "openai", "--base-url", srv.base_url, "--model", srv.model,
                            "--option-order", "shuffle", "--show-prompt", "4"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert srv.hits == 0 and srv.probes == 0
    assert r.stdout.count("--- request") == 4 and r.stdout.count("[system]\nI am person 0.") == 3
    assert "Question 0?" in r.stdout and "D. Refused" in r.stdout and '"max_tokens": 1' in r.stdout
    assert not (lib.path / "responses.parquet").exists() and not lib.llm_db.exists()


def _w26(shared_data: Path, n: int) -> Survey:
    p = shared_data / "opinionqa" / "human_resp" / "American_Trends_Panel_W26" / "info.csv"
    if not p.is_file():
        pytest.skip(f"{p} not present")
    qs = []
    with open(p, newline="") as fh:
        for row in list(csv.DictReader(fh))[:n]:
            opts = [o for o in ast.literal_eval(row["references"]) if o != "Refused"]
            qs.append({"qid": row["key"], "question": row["question"], "options": opts,
                       "targets": {"overall": {o: 1 / len(opts) for o in opts}}})
    return Survey.from_records("ATP_W26", qs, source=str(p))


@pytest.mark.llm
@pytest.mark.slow
def test_bundled_model_constrained_answers_are_on_the_options(tmp_path, shared_data, local_llm_url):
    """W26's yes/no questions are where the bundled model answered off the letters most (issue 21)."""
    survey = _w26(shared_data, 3)
    lib = _lib(tmp_path / "lib", 2)
    kw = dict(backend="openai", base_url=local_llm_url, model="smollm2", progress=False)
    s = elicit_library(lib, survey, ElicitOptions(mode="sample", **kw))
    assert s.constraint == "grammar" and s.invalid == 0 and s.answers_written == 6
    s = elicit_library(lib, survey, ElicitOptions(mode="logprobs", option_order="shuffle", **kw))
    assert s.constraint == "grammar" and s.invalid == 0 and s.mass_quantiles["min"] >= 0.99
    r = lib.responses()
    assert r["valid"].all() and r["constrained"].all() and set(r["option"]) <= {o for q in survey.qids
                                                                                 for o in survey.options(q)}
