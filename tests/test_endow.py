"""Endow: robust parsing, the attribute bank, the endowment model and active generation (scripted loopback model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from enrich_helpers import census_library, scripted_client, small_survey  # noqa: E402

from personagen import Library  # noqa: E402
from personagen.endow import (  # noqa: E402  # noqa: E402
    MAX_ATTRIBUTES,
    Counters,
    EndowOptions,
    endow_library,  # noqa: E402
    generate_endowments,
    load_bank,
    personas_from_json,
)
from personagen.errors import BadInput  # noqa: E402
from personagen.llm import clean_text, parse_json, parse_list, parse_number  # noqa: E402

# ---- parsing robustness on nasty outputs -------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ('```json\n[{"description": "You are Ann.",}, ]\n```', [{"description": "You are Ann."}]),
    ("Sure! Here you go: [{'description': 'You are Bo', 'ok': True}] Hope that helps", [{"description": "You are Bo", "ok": True}]),
    ('[{"description": "You are a retired', [{"description": "You are a retired"}]),  # truncated output
    ('{description: "x", attributes: {age: "40",},}', {"description": "x", "attributes": {"age": "40"}}),
    ("\u201c[\u201dno", None),
    ("{\u201cdescription\u201d: \u201cYou are Cy\u201d}", {"description": "You are Cy"}),
    ('{"a": 1}\n{"b": 2}', {"a": 1}),
    ("", None),
    ("just words, no json", None),
    ('[{"description": "He said \\"hi\\", then left"}]', [{"description": 'He said "hi", then left'}]),
])
def test_parse_json_nasty(text: str, expected: object) -> None:
    assert parse_json(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("1. Income level\n2) Trust in government\n3: Party loyalty\n- Religiosity", ["Income level", "Trust in government", "Party loyalty", "Religiosity"]),
    ("Here are some attributes:\n* **Risk aversion**\n* Patience.\n* patience", ["Risk aversion", "Patience"]),
    ('["age", "income", "age", ""]', ["age", "income"]),
    ('{"attributes": ["thrift", "piety"]}', ["thrift", "piety"]),
    ("income, trust in science, age", ["income", "trust in science", "age"]),
    ("Attributes: loss aversion; patience; status quo bias.", ["loss aversion", "patience", "status quo bias"]),
    ("a) first thing\nb) second thing", ["first thing", "second thing"]),
    ("```\n- one\n- two\n```", ["one", "two"]),
    ("", []),
    ("12345\n!!!", []),
])
def test_parse_list_nasty(text: str, expected: list[str]) -> None:
    assert parse_list(text) == expected


@pytest.mark.parametrize("text,lo,hi,expected", [
    ("I'd give $1,000.50", None, None, 1000.5),
    ("fifty dollars", None, None, 50.0),
    ("Maybe -3, no wait 40", 0, 100, 40.0),
    ("30%", 0, 100, 30.0),
    ("Answer: 4.5 out of 5", 1, 5, 4.5),
    ("nothing here", None, None, None),
    ("999", 0, 100, None),
    ("\u22122", None, None, -2.0),
    (".5", 0, 1, 0.5),
])
def test_parse_number_nasty(text: str, lo: float | None, hi: float | None, expected: float | None) -> None:
    assert parse_number(text, lo=lo, hi=hi) == expected


def test_clean_text() -> None:
    assert clean_text('Answer: "He hums while cooking."\n\nSecond paragraph') == "He hums while cooking."
    assert clean_text("```\nassistant: hello there\n```") == "hello there"


# ---- attribute bank ----------------------------------------------------------------------------------


def test_shipped_bank() -> None:
    b = load_bank()
    assert len(b.modes) >= 8
    # paper 000 §4.4 / Table 3: budget 110 is the initial stage alone, 10 per mode -> 10 preset + learned modes
    from personagen.endow.aeg import initial_allocation

    init = initial_allocation([*b.modes, "learned"], 300, 10, np.random.default_rng(0))
    assert sum(init.values()) == 110 and set(init.values()) == {10}
    # App. C.1: mixed modes from the second update step on, i.e. a question's 2nd time among the lowest (> 1)
    assert EndowOptions(budget=300, strategy="active").mix_after == 1
    templates = {m.template for m in b.modes.values()}
    assert templates == {"core", "thematic", "theoretical"}
    for need in ("economics", "politics", "behavioral_biases", "maslow", "big_five"):
        assert need in b.modes
    for m in b.modes.values():
        assert 10 <= len(m.attributes) <= 20
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = b.sample("politics", rng)
        assert 3 <= len(s) <= MAX_ATTRIBUTES and len(set(s)) == len(s)


def test_user_bank(tmp_path: Path) -> None:
    (tmp_path / "mine.yaml").write_text("template: thematic\nmodes:\n  housing:\n    attributes: [rent burden, owns home, commute]\n")
    b = load_bank(tmp_path)
    assert "housing" in b.modes and "economics" in b.modes
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.yaml").write_text("template: core\nmodes:\n  m:\n    attributes: []\n")
    with pytest.raises(BadInput, match="attributes"):
        load_bank(bad)
    (bad / "x.yaml").write_text("template: [\n")
    with pytest.raises(BadInput, match="invalid YAML"):
        load_bank(bad)
    with pytest.raises(BadInput, match="does not exist"):
        load_bank(tmp_path / "nope")


# ---- endowment model -----------------------------------------------------------------------------------


def test_personas_from_json_shapes() -> None:
    assert personas_from_json({"personas": [{"persona": "You are Al, a baker."}]}, 3) == [("You are Al, a baker.", {})]
    got = personas_from_json([{"description": "You are Bea, a nurse.", "attributes": {"risk": "low", "x": None}},
                              "You are Cal, a student.", 7, {"name": "Dee", "job": "pilot in Ohio"}], 3)
    assert got[0] == ("You are Bea, a nurse.", {"risk": "low"})
    assert got[1][0] == "You are Cal, a student."
    assert len(got) == 3
    assert personas_from_json("not a list", 2) == []


def test_generate_endowments_counts_and_retries(tmp_path: Path) -> None:
    """Malformed output is counted, retried once with a fix-up prompt, then replaced by a fallback."""
    def reply(user: str, system: str, body: dict) -> str | None:
        if "not valid JSON" in user:  # fix-up prompt
            return '[{"description": "You are fixed."}]' if "RECOVERABLE" in user else "still garbage"
        if "loss aversion" in user:
            return "RECOVERABLE garbage"
        if "patience" in user:
            return None  # server error (HTTP 500, retried by the client, then an error result)
        return '```json\n[{"description": "You are Ann, a careful saver.", "attributes": {"patience": "high"},},]\n```'

    specs = [{"source": "bank", "mode": "behavioral_biases", "attributes": ["loss aversion"], "n": 2},
             {"source": "bank", "mode": "behavioral_biases", "attributes": ["patience"], "n": 1},
             {"source": "bank", "mode": "economics", "attributes": ["thrift"], "n": 2},
             {"source": "learned", "mode": "x", "attributes": ["anything"], "n": 1}]
    with scripted_client(tmp_path, reply) as (c, srv):
        counters = Counters()
        out = generate_endowments(c, specs, topic="money", counters=counters)
        # 4 endowment calls (the "patience" one fails twice: first try + 1 client retry) + 1 fix-up call
        assert srv.hits == 4 + 1 + 1 and c.stats["errors"] == 1 and c.stats["retries"] == 1
        assert c.stats["requests_sent"] == 5
        assert [len(g) for g in out] == [2, 1, 2, 1]  # fallback fills the budget
        assert out[0][0].description == "You are fixed." and out[0][0].parsed
        assert out[0][1].parsed is False  # one of two asked for came back
        assert out[1][0].parsed is False and out[1][0].attributes == ["patience"]
        assert out[2][0].description.startswith("You are Ann") and out[2][0].values == {"patience": "high"}
        assert counters.json_failures == 2 and counters.empty == 1
        assert counters.fixups == 1 and counters.fixup_successes == 1
        assert counters.fallbacks == 3  # 1 (spec 0) + 1 (spec 1) + 1 (spec 2 asked 2, got 1)
        assert "patience" in out[1][0].narrative()
        # fallback="skip" leaves failures out instead (failures are never cached: the server is asked again)
        hits = srv.hits
        out2 = generate_endowments(c, specs[1:2], topic="money", counters=Counters(), fallback="skip")
        assert out2 == [[]] and srv.hits == hits + 2


# ---- active generation with a scripted loopback model (fast, deterministic) ----------------------------


def _garbage_or_json(user: str, system: str, body: dict) -> str:
    """Mixes nasty outputs: JSON sometimes, lists for the learner, letters for answers."""
    seed = body.get("seed") or 0
    if "Answer with the letter" in user:
        return ["A", "b) no", "C.", "???", "Answer: B"][seed % 5]
    if "List" in user:
        return "1. Distrust of institutions\n2. Rural upbringing\n3. Union membership\n- Faith"
    if "Reply with a JSON list" in user:
        return ["[{'description': 'You are a union electrician.',}]", "no json here", "```json\n{\"people\": [{\"bio\": \"You are a pastor.\"}]}\n```"][seed % 3]
    return "garbage"


@pytest.mark.parametrize("strategy", ["active", "vanilla"])
def test_endow_scripted_run(tmp_path: Path, strategy: str) -> None:
    lib = census_library(tmp_path / "lib")
    survey = small_survey(4)
    with scripted_client(tmp_path, _garbage_or_json) as (c, srv):
        log = endow_library(lib, survey,
                            EndowOptions(budget=9, strategy=strategy, seed=1, step_size=3, lowest_k=2),
                            client=c)
        assert srv.hits == c.stats["requests_sent"] > 9 * 4  # every call went over HTTP (no retries needed)
        assert log["llm"]["requests_sent"] == srv.hits and log["model"] == "scripted"
    assert log["n_generated"] == 9
    df = Library.open(lib.path).personas()
    gen = df.filter(pl.col("source") != "census")
    assert gen.height == 9 and df.filter(pl.col("source") == "census").height == 4
    assert set(gen["source"].unique().to_list()) <= {"bank", "learned", "mixed"}
    assert gen["weight_census"].is_null().all() and gen["text_narrative"].is_not_null().all()
    assert gen["mode"].is_not_null().all()
    run = json.loads((lib.path / "endow" / strategy / "run_log.json").read_text())
    assert run["steps"] and "entropies_after" in run["steps"][-1]
    assert (lib.path / "endow" / "run_log.png").is_file()
    assert run["answers"]["total"] == 9 * 4 and 0 < run["answers"]["valid"] < 36
    if strategy == "active":
        kinds = [s.get("kind") for s in run["steps"]]
        assert kinds[0] == "initial" and "active" in kinds
        act = [s for s in run["steps"] if s.get("kind") == "active"]
        assert all("allocation" in s and "probabilities" in s and "patches" in s for s in act)
        assert any(s["patches"] for s in act)
        assert run["failures"]["json_failures"] > 0  # garbage was counted
    # rerun replaces, does not duplicate
    with scripted_client(tmp_path, _garbage_or_json) as (c, srv):
        endow_library(lib, survey, EndowOptions(budget=9, strategy=strategy, seed=1, step_size=3), client=c)
    assert Library.open(lib.path).personas().height == 13


def test_endow_random_census_and_bad_input(tmp_path: Path) -> None:
    lib = census_library(tmp_path / "lib", n=6)
    survey = small_survey(4)
    log = endow_library(lib, survey, EndowOptions(budget=3, strategy="random-census"))
    assert len(log["persona_ids"]) == 3 and set(log["persona_ids"]) <= {f"p{i:03d}" for i in range(6)}
    with scripted_client(tmp_path, _garbage_or_json) as (c, srv):
        with pytest.raises(BadInput, match="^budget 0") as e:  # the Python argument; the CLI shows --budget
            endow_library(lib, survey, EndowOptions(budget=0), client=c)
        assert e.value.field == "budget"
        with pytest.raises(BadInput, match="^strategy 'nope'") as e:
            endow_library(lib, survey, EndowOptions(budget=3, strategy="nope"), client=c)
        assert e.value.field == "strategy"
    assert srv.hits == 0  # bad input is refused before any call
