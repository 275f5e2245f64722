"""The OpenAI Batch API backend end to end: a loopback files/batches server whose batches are answered by the
bundled llama.cpp model. Same answers as the online engine, half price, request files split within limits,
an expired batch (only its unfinished requests go again), a partial failure (error file), budgets, and a
kill -9 while polling then a resume that submits nothing again (the server counts every request line)."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time

import polars as pl
import pytest
from batch_server import BatchServer
from test_elicit import PERSONAS, opinionqa_survey

from personagen import ElicitOptions, Library
from personagen.elicit import ElicitFailed
from personagen.errors import PersonagenError
from personagen.llm import BudgetExceeded, LLMClient

PRICES = {"models": {"smollm2": {"input": 1.0, "output": 2.0}}}  # USD per million tokens, made up
SMALL = dict(limit=2, max_questions=3, constrain="none")  # 2 personas x 3 questions; batch runs are not probed,
# so online runs compared with them go unconstrained too
N = 6


def _lib(path) -> Library:
    lib = Library.init(path, seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [p for p, _ in PERSONAS], "source": ["census"] * 3,
                                     "text_narrative": [t for _, t in PERSONAS]}))
    return lib


@pytest.fixture()
def survey(shared_data):
    return opinionqa_survey(shared_data)


@pytest.fixture(scope="module")
def model_url():
    """The bundled model with prompt caching off: each answer is computed from its whole prompt, so it does not
    depend on which requests came before (the online and batch paths send them in different patterns)."""
    from personagen.llm import LocalServer, local_available

    if local_available():
        pytest.skip(local_available())
    with LocalServer(cache_prompt=False, cache_ram_mib=0) as srv:
        yield srv.base_url


@pytest.fixture()
def server(local_llm_url):
    with BatchServer(local_llm_url) as s:
        s.hold.set()
        yield s


def _batch_client(lib: Library, url: str, **kw) -> LLMClient:
    from personagen.llm import BatchOptions

    c = LLMClient.create(backend="openai-batch", base_url=url, model="smollm2", cache_path=lib.llm_db,
                         progress=False, prices=PRICES, **kw)
    c.options = BatchOptions(max_file_requests=4, poll_first_s=0.02, poll_max_s=0.1)
    return c


def _answers(lib: Library) -> pl.DataFrame:
    return lib.responses().sort("persona_id", "qid", "option", nulls_last=True)


def _batch_rows(lib: Library) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(lib.llm_db)) as con:
        return con.execute("SELECT batch_id, status FROM batches ORDER BY created").fetchall()


def _one_file_run(lib: Library, survey, server) -> tuple[dict, dict]:
    """Elicit through one request file (up to 50 requests); returns the summary and the client's stats."""
    from personagen.llm import BatchOptions

    with _batch_client(lib, server.base_url) as c:
        c.options = BatchOptions(max_file_requests=50, poll_first_s=0.02, poll_max_s=0.1)
        return lib.elicit(survey, ElicitOptions(**SMALL), client=c), c.stats


@pytest.mark.llm
def test_same_answers_as_online_at_half_price_and_rerun_pays_nothing(tmp_path, survey, model_url):
    small = SMALL  # 6 requests: 4 + 2 in two request files
    online = _lib(tmp_path / "online")
    s_on = online.elicit(survey, ElicitOptions(backend="openai", base_url=model_url, model="smollm2", progress=False,
                                               prices=PRICES, **small))
    batch = _lib(tmp_path / "batch")
    with BatchServer(model_url) as server, _batch_client(batch, server.base_url) as c:
        server.hold.set()
        s_b = batch.elicit(survey, ElicitOptions(**small), client=c)
        assert c.stats["batches_submitted"] == 2
        assert s_b.answers_written == 6 and s_b.requests_sent == 6 and s_b.errors == 0
        assert server.submitted == 6 and len(server.answered) == 6 and max(server.answered.values()) == 1
        a, b = _answers(online), _answers(batch)
        assert a.select(pl.exclude("prob", "mass")).equals(b.select(pl.exclude("prob", "mass")))
        assert (a["prob"] - b["prob"]).abs().max() < 1e-9 and (a["mass"] - b["mass"]).abs().max() < 1e-9
        # the same tokens at batch prices: (input * $1 + output * $2) / 1e6, times the batch multiplier 0.5
        assert s_b.input_tokens == s_on.input_tokens and s_b.output_tokens == s_on.output_tokens == 6
        assert s_b.cost_usd == pytest.approx((s_on.input_tokens * 1.0 + 6 * 2.0) / 1e6 * 0.5)
        assert s_on.cost_usd == pytest.approx(2 * s_b.cost_usd)
        assert {st for _, st in _batch_rows(batch)} == {"collected"}

        os.unlink(batch.responses_path)  # answers gone, cache kept: a rerun asks nothing again
        with _batch_client(batch, server.base_url) as c2:
            s2 = batch.elicit(survey, ElicitOptions(**small), client=c2)
        assert s2.answers_written == 6 and s2.requests_sent == 0 and s2.cache_hits == 6
        assert server.submitted == 6 and server.creates == 2
    # the online engine reads the batch results from the same cache
    os.unlink(batch.responses_path)
    s3 = batch.elicit(survey, ElicitOptions(backend="openai", base_url=model_url, model="smollm2", progress=False,
                                            **small))
    assert s3.answers_written == 6 and s3.requests_sent == 0 and s3.cache_hits == 6


@pytest.mark.llm
def test_expired_batch_resubmits_only_unfinished(tmp_path, survey, server):
    lib = _lib(tmp_path / "lib")
    server.expire_after = 3
    s, stats = _one_file_run(lib, survey, server)
    assert stats["batches_resubmitted"] == 1
    assert s.answers_written == N and s.errors == 0
    assert server.creates == 2 and server.submitted == N + (N - 3)  # the second batch: only the 3 unfinished
    assert len(server.answered) == N and max(server.answered.values()) == 1


@pytest.mark.llm
def test_partial_failure_is_an_error_and_a_rerun_asks_only_those(tmp_path, survey, server):
    lib = _lib(tmp_path / "lib")
    server.fail_first = 2
    with pytest.raises(ElicitFailed, match="2 answer") as failed:  # a Python call raises; answers are saved
        _one_file_run(lib, survey, server)
    s = failed.value.summary
    assert s.errors == 2 and s.answers_written == N - 2 and s.requests_sent == N
    assert "HTTP 500: upstream overloaded" in s.first_error
    con = sqlite3.connect(lib.llm_db)
    assert con.execute("SELECT COUNT(*) FROM log WHERE error IS NOT NULL").fetchone()[0] == 2
    con.close()
    with _batch_client(lib, server.base_url) as c:
        s2 = lib.elicit(survey, ElicitOptions(**SMALL), client=c)
    assert s2.answers_written == 2 and s2.requests_sent == 2 and s2.errors == 0
    assert server.submitted == N + 2 and len(server.answered) == N and max(server.answered.values()) == 1


@pytest.mark.llm
def test_request_budget_submits_only_that_many(tmp_path, survey, server):
    lib = _lib(tmp_path / "lib")
    with _batch_client(lib, server.base_url, max_requests=4) as c, pytest.raises(BudgetExceeded):
        lib.elicit(survey, ElicitOptions(**SMALL), client=c)
    assert server.submitted == 4 and lib.responses()["qid"].len() > 0
    assert lib.responses().select("persona_id", "qid").unique().height == 4


def test_dry_run_costs_batch_prices(tmp_path, survey):
    lib = _lib(tmp_path / "lib")
    kw = dict(base_url="http://127.0.0.1:9/v1", model="gpt-4o-mini", dry_run=True, progress=False)
    on = lib.elicit(survey, ElicitOptions(backend="openai", **kw, **SMALL)).estimate
    ba = lib.elicit(survey, ElicitOptions(backend="openai-batch", **kw, **SMALL)).estimate
    assert ba["requests"] == on["requests"] == N and ba["input_tokens"] == on["input_tokens"]
    # gpt-4o-mini: $0.15 input, $0.60 output per million tokens; batch: half of that
    assert ba["cost_usd"] == pytest.approx((on["input_tokens"] * 0.15 + N * 1 * 0.60) / 1e6 * 0.5)
    assert not lib.llm_db.exists() or _batch_rows(lib) == []


def _cli(lib: Library, spath, url: str) -> subprocess.Popen:
    env = {**os.environ, "PERSONAGEN_BATCH_POLL": "0.05,0.2"}
    return subprocess.Popen([sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(spath),
                             "--backend", "openai-batch", "--base-url", url, "--model", "smollm2", "--json",
                             "--no-progress", "--limit", "2", "--max-questions", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.llm
@pytest.mark.slow
def test_kill9_while_polling_then_resume_submits_nothing_again(tmp_path, survey, server):
    lib = _lib(tmp_path / "lib")
    spath = survey.save(tmp_path / "survey.parquet")
    server.hold.clear()  # batches stay in progress: the client polls
    proc = _cli(lib, spath, server.base_url)
    deadline = time.time() + 90
    while server.retrieves < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert server.creates == 1 and server.submitted == N and not server.answered
    assert [st for _, st in _batch_rows(lib)] == ["submitted"]

    server.hold.set()
    proc = _cli(lib, spath, server.base_url)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert server.creates == 1 and server.submitted == N  # picked its batch up: nothing submitted again
    assert len(server.answered) == N and max(server.answered.values()) == 1
    assert lib.responses().select("persona_id", "qid").unique().height == N
    assert [st for _, st in _batch_rows(lib)] == ["collected"]


def test_unreachable_batch_server_is_one_clear_error(tmp_path, survey):
    lib = _lib(tmp_path / "lib")
    c = LLMClient.create(backend="openai-batch", base_url="http://127.0.0.1:9/v1", model="smollm2",
                         cache_path=lib.llm_db, progress=False, max_retries=0)
    with c, pytest.raises(PersonagenError, match="cannot reach"):
        lib.elicit(survey, client=c)
