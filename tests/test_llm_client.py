"""LLM client transport: retries, Retry-After, budgets, cache, dedupe, errors (real loopback HTTP; per-request overhead is measured by benchmarks/elicit.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from loopback import LoopbackServer

from personagen.errors import BadInput, PersonagenError
from personagen.llm import BudgetExceeded, ChatRequest, LLMClient
from personagen.llm.prices import PriceTable


def _req(i: int = 0, **kw) -> ChatRequest:
    return ChatRequest(messages=[{"role": "system", "content": "You are a persona."},
                                 {"role": "user", "content": f"Question {i}? Answer A or B."}],
                       max_tokens=1, logprobs=True, top_logprobs=20, **kw)


def _client(srv: LoopbackServer, tmp_path: Path, **kw) -> LLMClient:
    c = LLMClient.create(backend="openai", base_url=srv.base_url, model=srv.model,
                         cache_path=tmp_path / "llm.sqlite", progress=False, **kw)
    c.backoff_base = 0.01
    return c


def _log_rows(tmp_path: Path) -> list[tuple]:
    con = sqlite3.connect(tmp_path / "llm.sqlite")
    try:
        return con.execute("SELECT hash, error FROM log ORDER BY id").fetchall()
    finally:
        con.close()


@pytest.fixture()
def srv():
    with LoopbackServer() as s:
        yield s


def test_429_retry_after_then_200(srv, tmp_path):
    srv.script.append((429, {"Retry-After": "0.3"}, {"error": {"message": "slow down"}}))
    with _client(srv, tmp_path) as c:
        t0 = time.perf_counter()
        [res] = c.run([_req()])
        dt = time.perf_counter() - t0
    assert res.error is None and res.text == "A"
    assert res.top_logprobs and res.top_logprobs[0]["A"] == pytest.approx(-0.5)
    assert srv.hits == 2 and c.stats["retries"] == 1 and c.stats["requests_sent"] == 1
    assert srv.times[1] - srv.times[0] >= 0.29  # honoured Retry-After
    assert dt < 2.0
    assert len(_log_rows(tmp_path)) == 1


def test_5xx_backoff_then_success_and_final_failure(srv, tmp_path):
    srv.script.extend([(503, {}, {"error": {"message": "busy"}}), (500, {}, {"error": {"message": "oops"}})])
    with _client(srv, tmp_path, max_retries=3) as c:
        [res] = c.run([_req(1)])
        assert res.error is None and srv.hits == 3 and c.stats["retries"] == 2
        srv.script.extend([(502, {}, {"error": {"message": "bad gateway"}})] * 4)
        [bad] = c.run([_req(2)])
    assert bad.error and "502" in bad.error and bad.text is None
    assert c.stats["errors"] == 1
    # failures are logged but never cached: a rerun sends it again
    with _client(srv, tmp_path) as c2:
        [again] = c2.run([_req(2)])
    assert again.error is None and not again.cached and c2.stats["requests_sent"] == 1


def test_cache_rerun_fresh_and_dedupe(srv, tmp_path):
    reqs = [_req(i) for i in range(5)] + [_req(0), _req(0)]
    with _client(srv, tmp_path, concurrency=3) as c:
        res = c.run(reqs)
    assert srv.hits == 5 and c.stats["requests_sent"] == 5 and c.stats["deduplicated"] == 2
    assert [r.text for r in res] == ["A"] * 7
    with _client(srv, tmp_path) as c:
        res = c.run(reqs)
    assert srv.hits == 5 and all(r.cached for r in res) and c.stats["requests_sent"] == 0
    assert c.stats["cache_hits"] == 7
    with _client(srv, tmp_path, fresh=True) as c:
        res = c.run(reqs[:2])
    assert srv.hits == 7 and not any(r.cached for r in res)
    assert len(_log_rows(tmp_path)) == 7
    # every sampling parameter is part of the key
    with _client(srv, tmp_path) as c:
        c.run([_req(0, seed=1), _req(0, temperature=0.7)])
    assert srv.hits == 9


def test_budget_stops_cleanly_and_keeps_finished(srv, tmp_path):
    reqs = [_req(i) for i in range(10)]
    with _client(srv, tmp_path, max_requests=3, concurrency=2) as c:
        with pytest.raises(BudgetExceeded) as ei:
            c.run(reqs)
    done = [r for r in ei.value.results if r is not None]
    assert len(done) == 3 and srv.hits == 3
    with _client(srv, tmp_path, max_tokens_budget=1) as c:
        with pytest.raises(BudgetExceeded):
            c.run(reqs)
    assert srv.hits == 4  # one request then the token budget is spent
    with _client(srv, tmp_path) as c:
        res = c.run(reqs)
    assert c.stats["requests_sent"] == 6 and c.stats["cache_hits"] == 4 and all(r.error is None for r in res)


def test_wrong_model_unreachable_and_missing_key(srv, tmp_path, monkeypatch):
    c = LLMClient.create(backend="openai", base_url=srv.base_url, model="nope", cache_path=tmp_path / "x.sqlite",
                         progress=False)
    with c, pytest.raises(BadInput, match="nope"):
        c.run([_req()])
    # a 404 during the run (server without a /models listing that matches) is a clear BadInput too
    srv.script.append((404, {}, {"error": {"message": "The model `loopback` does not exist"}}))
    with _client(srv, tmp_path) as c, pytest.raises(BadInput, match="404"):
        c.run([_req(3)])
    c = LLMClient.create(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", progress=False)
    with c, pytest.raises(PersonagenError, match="cannot reach"):
        c.run([_req()])
    for env in ("OPENAI_API_KEY", "PERSONAGEN_API_KEY"):
        monkeypatch.delenv(env, raising=False)
    c = LLMClient.create(backend="openai", base_url="https://api.example.invalid/v1", model="gpt-4o-mini")
    with pytest.raises(BadInput, match="OPENAI_API_KEY not set"):
        c.start()
    with pytest.raises(BadInput, match="--model is required"):
        LLMClient.create(backend="openai", base_url=srv.base_url)
    with pytest.raises(BadInput, match="--backend"):
        LLMClient.create(backend="nope")


def test_api_key_never_stored(srv, tmp_path, monkeypatch):
    secret = "sk-test-SECRET-4242"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with _client(srv, tmp_path) as c:
        c.run([_req(i) for i in range(3)])
    for f in tmp_path.iterdir():
        assert secret.encode() not in f.read_bytes(), f


def test_prices_prefix_and_user_table(tmp_path, monkeypatch):
    t = PriceTable.load()
    assert t.lookup("gpt-4o-mini-2024-07-18") == t.lookup("gpt-4o-mini")
    assert t.lookup("gpt-4o-2024-08-06") == t.lookup("gpt-4o")
    assert t.lookup("unknown-model") is None
    # 1M input (half cached) + 1M output on gpt-4o-mini
    assert t.cost("gpt-4o-mini", 1_000_000, 1_000_000, cached_tokens=500_000) == pytest.approx(
        0.5 * 0.15 + 0.5 * 0.075 + 0.60)
    f = tmp_path / "p.yaml"
    f.write_text("models:\n  my-model: {input: 1.0, output: 2.0}\n")
    monkeypatch.setenv("PERSONAGEN_PRICES", str(f))
    assert PriceTable.load().cost("my-model-v2", 1000, 1000) == pytest.approx(0.003)
    f.write_text("models: [1, 2]\n")
    with pytest.raises(BadInput, match="models"):
        PriceTable.load()

