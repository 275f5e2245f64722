"""The money rules (personagen.llm.accounting) against misbehaving servers: real loopback HTTP servers that count
every request, the real client, and the real CLI where the behaviour is the command's. What a server bills is
kept or recorded (never paid for again), a body is resent at most once, budgets and time limits hold."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import yes_no_library
from openai_echo import EchoServer

from personagen.elicit import ElicitOptions, elicit_library
from personagen.errors import BadInput
from personagen.library import Library
from personagen.llm import BudgetExceeded, ChatRequest, LLMClient, PriceTable
from personagen.surveys import load

REPO = Path(__file__).resolve().parents[1]
PRICES = {"models": {"m": {"input": 1.0, "output": 2.0}}}
UNUSABLE = ("no_choices", "not_json", "half_json", "error_200", "logprob_x", "logprob_positive")


def _req(i: int) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": f"Question {i}? Answer A or B."}], max_tokens=1,
                       logprobs=True, top_logprobs=20)


def _client(srv: EchoServer, tmp_path: Path, **kw) -> LLMClient:
    c = LLMClient.create(backend="openai", base_url=srv.base_url, model="m", cache_path=tmp_path / "llm.sqlite",
                         progress=False, prices=PRICES, **kw)
    c.backoff_base = 0.001
    return c


def _cli(*args: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")}
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "personagen.cli", *args], capture_output=True, text=True, env=e,
                          timeout=120)


@pytest.mark.parametrize("mode", UNUSABLE)
def test_unusable_200_is_paid_and_sent_at_most_twice(mode: str, tmp_path: Path) -> None:
    with EchoServer(misbehave=mode) as srv, _client(srv, tmp_path) as c:
        res = c.run([_req(i) for i in range(3)])
    assert srv.total == 6  # each request sent once and resent once (main: 6 times each)
    assert all(r.invalid and r.error and "unusable response (HTTP 200)" in r.invalid for r in res)
    st = c.stats
    assert st["paid_calls"] == 6 and st["http_requests"] == 6 and st["invalid"] == 3 and st["errors"] == 0
    assert st["cost_usd"] > 0 and sum(r.cost_usd for r in res) == pytest.approx(st["cost_usd"])


@pytest.mark.parametrize("mode", ["usage_lots", "usage_negative"])
def test_answer_with_unreadable_usage_is_kept_and_its_tokens_estimated(mode: str, tmp_path: Path) -> None:
    with EchoServer(misbehave=mode) as srv, _client(srv, tmp_path) as c:
        res = c.run([_req(i) for i in range(3)])
    assert srv.total == 3 and all(r.error is None and r.text == "A" for r in res)
    assert c.stats["usage_estimated"] == 3 and c.stats["input_tokens"] >= 0
    assert all(r.cost_usd > 0 for r in res)  # never negative, never free: projected tokens are billed


def test_elicit_records_unusable_answers_as_invalid_and_rerun_pays_nothing(tmp_path: Path) -> None:
    lib, survey = yes_no_library(tmp_path)
    with EchoServer(misbehave="not_json") as srv:
        kw = dict(backend="openai", base_url=srv.base_url, model="m", progress=False)
        s = elicit_library(lib, load(survey), ElicitOptions(**kw))
        assert srv.total == 12 and s.errors == 0 and s.invalid == 6 and s.answers_written == 6
        s = elicit_library(lib, load(survey), ElicitOptions(**kw))
        assert srv.total == 12 and s.answers_skipped == 6
    df = lib.responses()
    assert df.height == 6 and not df["valid"].any() and df["raw"].str.contains("not JSON").all()


def test_max_requests_counts_every_http_request(tmp_path: Path) -> None:
    lib, survey = yes_no_library(tmp_path)
    with EchoServer(misbehave="not_json") as srv:
        r = _cli("elicit", str(lib.path), "--survey", str(survey), "--backend", "openai", "--base-url",
                 srv.base_url, "--model", "m", "--max-requests", "2", "--no-progress")
    assert srv.total == 2, r.stderr  # main: 12
    assert r.returncode == 1 and "request budget reached" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_token_budget_overshoots_only_by_requests_in_flight(tmp_path: Path) -> None:
    with EchoServer(misbehave="usage_huge", delay_s=0.3) as srv, \
            _client(srv, tmp_path, concurrency=8, max_tokens_budget=1_000_000) as c:
        with pytest.raises(BudgetExceeded, match="in flight") as ei:
            c.run([_req(i) for i in range(20)])
    assert srv.total == 8  # the 8 in flight when the first came back (main: 9)
    assert sum(r is not None for r in ei.value.results) == 8


def test_hanging_server_gets_a_request_at_most_twice(tmp_path: Path) -> None:
    with EchoServer(delay_s=4.0) as srv, _client(srv, tmp_path, timeout=0.3) as c:
        t0 = time.perf_counter()
        [res] = c.run([_req(0)])
        dt = time.perf_counter() - t0
    assert srv.total == 2 and res.error and "Timeout" in res.error and dt < 3.0


def test_elicit_time_limit_stops_keeps_paid_answers_and_resumes(tmp_path: Path) -> None:
    lib, survey = yes_no_library(tmp_path, n=4)
    args = ["elicit", str(lib.path), "--survey", str(survey), "--backend", "openai", "--model", "m",
            "--concurrency", "1", "--no-progress", "--timeout", "30"]
    with EchoServer(delay_s=0.5) as srv:  # 8 answers one at a time take 4 s: the limit stops the run halfway
        r = _cli(*args, "--base-url", srv.base_url, "--time-limit", "2.5")
        assert r.returncode == 1 and "time limit reached (2.5 s)" in r.stderr, r.stderr
        kept = Library.open(lib.path).responses().height // 2
        assert 1 <= kept < 8 and srv.total <= kept + 1
        r = _cli(*args, "--base-url", srv.base_url)
        assert r.returncode == 0, r.stderr
    assert Library.open(lib.path).responses().height == 16 and srv.total <= 8 + 1
    assert [h["stage"] for h in Library.open(lib.path).manifest["history"]].count("elicit") == 2


def test_n_asked_of_a_one_choice_server_keeps_the_paid_choice(tmp_path: Path) -> None:
    lib, survey = yes_no_library(tmp_path, n=4, nq=1)
    with EchoServer(misbehave="one_choice") as srv:
        s = elicit_library(lib, load(survey), ElicitOptions(backend="openai", base_url=srv.base_url, model="m",
                                                            progress=False, mode="sample", samples=3, fresh=True))
    assert s.answers_written == 4 and srv.total == 12  # 4 x 3 samples (main: 13, the probe's choice lost)
    probs = lib.responses().group_by("persona_id").agg(pl.col("prob").sum())["prob"]
    assert probs.to_list() == pytest.approx([1.0] * 4)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_prices_must_be_finite_and_nonnegative(bad: float) -> None:
    with pytest.raises(BadInput, match="finite numbers >= 0"):
        PriceTable.load({"models": {"m": {"input": 1.0, "output": bad}}})
    with pytest.raises(BadInput, match="finite numbers >= 0"):
        PriceTable.load({"models": {"m": {"input": 1.0, "output": 1.0, "batch": bad}}})


def test_usage_counts_are_whole_numbers_at_least_zero() -> None:
    from personagen.llm.accounting import read_usage

    ok = {"prompt_tokens": 12, "completion_tokens": 3.0, "prompt_tokens_details": {"cached_tokens": 4}}
    assert read_usage(ok) == {"input": 12, "output": 3, "cached": 4, "reasoning": 0}
    assert read_usage({}) == {"input": 0, "output": 0, "cached": 0, "reasoning": 0}
    for bad in ("lots", -1, 2.5, float("nan"), float("inf"), True, [3]):
        assert read_usage({"prompt_tokens": bad, "completion_tokens": 1}) is None, bad
    assert read_usage("lots") is None and read_usage(None) is None
