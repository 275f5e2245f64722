"""The Ray engine end to end on a local Ray instance (CPU, two workers) against the bundled llama.cpp model,
through a counting proxy (tests/batch_server.py) that records every request body the model is asked:
same answers as the single-process engine, a rerun asks nothing, budgets cut the work list before it is
scheduled, and a kill -9 of the driver then a resume asks no request whose answer had come back."""

from __future__ import annotations

import json
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
from personagen.elicit import ElicitSummary, EngineOptions, make_client
from personagen.errors import BadInput
from personagen.llm import BudgetExceeded

pytest.importorskip("ray", reason="the Ray engine needs the [ray] extra")
pytest.importorskip("aiohttp", reason="ray.data.llm's HTTP processor needs aiohttp (the [ray] extra)")

SMALL = dict(limit=2, max_questions=3, constrain="none")  # 6 requests; Ray runs are not probed, so the
# single-engine runs compared with them go unconstrained too


def _lib(path) -> Library:
    lib = Library.init(path, seed=0)
    lib.write_personas(pl.DataFrame({"persona_id": [p for p, _ in PERSONAS], "source": ["census"] * 3,
                                     "text_narrative": [t for _, t in PERSONAS]}))
    return lib


@pytest.fixture(scope="module")
def proxy():
    """The bundled model with prompt caching off (an answer does not depend on which requests came before:
    two Ray workers interleave them), behind a counting proxy."""
    from personagen.llm import LocalServer, local_available

    if local_available():
        pytest.skip(local_available())
    with LocalServer(cache_prompt=False, cache_ram_mib=0) as srv, BatchServer(srv.base_url) as p:
        yield p


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the in-process tests: 2 CPUs, kept light."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def survey(shared_data):
    return opinionqa_survey(shared_data)


def _ray_client(lib: Library, url: str, workers: int = 2, **kw):
    return make_client(EngineOptions(engine="ray", ray_workers=workers), backend="openai", base_url=url,
                       model="smollm2", cache_path=lib.llm_db, progress=False, **kw)


def _elicit(lib: Library, survey, client) -> ElicitSummary:
    try:
        return lib.elicit(survey, ElicitOptions(**SMALL), client=client)
    finally:
        client.close()


@pytest.mark.llm
@pytest.mark.slow
def test_ray_matches_single_engine_rerun_and_budget(tmp_path, survey, proxy, local_ray):
    single = _lib(tmp_path / "single")
    s1 = single.elicit(survey, ElicitOptions(backend="openai", base_url=proxy.base_url, model="smollm2",
                                             progress=False, **SMALL))
    asked = sum(proxy.online.values())
    lib = _lib(tmp_path / "ray")
    s = _elicit(lib, survey, _ray_client(lib, proxy.base_url))
    assert s.answers_written == 6 and s.requests_sent == 6 and s.errors == 0
    assert s.input_tokens == s1.input_tokens
    assert sum(proxy.online.values()) == asked + 6 and max(proxy.online.values()) == 2  # each: single, then ray
    a = single.responses().sort("persona_id", "qid", "option", nulls_last=True)
    b = lib.responses().sort("persona_id", "qid", "option", nulls_last=True)
    assert a.select(pl.exclude("prob", "mass")).equals(b.select(pl.exclude("prob", "mass")))
    assert (a["prob"] - b["prob"]).abs().max() < 1e-9 and (a["mass"] - b["mass"]).abs().max() < 1e-9
    assert not list((lib.path / ".ray-shards").glob("*.parquet"))  # shards went into the cache

    os.unlink(lib.responses_path)  # answers gone, cache kept: the rerun schedules nothing
    s2 = _elicit(lib, survey, _ray_client(lib, proxy.base_url))
    assert s2.answers_written == 6 and s2.requests_sent == 0 and s2.cache_hits == 6
    assert sum(proxy.online.values()) == asked + 6

    lib3 = _lib(tmp_path / "budget")  # the budget cuts the work list before it becomes a dataset
    with pytest.raises(BudgetExceeded):
        _elicit(lib3, survey, _ray_client(lib3, proxy.base_url, max_requests=2))
    assert sum(proxy.online.values()) == asked + 8
    assert lib3.responses().select("persona_id", "qid").unique().height == 2


def test_ray_engine_bad_options():
    with pytest.raises(BadInput, match="--ray-workers"):
        make_client(EngineOptions(engine="ray", ray_workers=0), backend="openai", base_url="http://127.0.0.1:9/v1",
                    model="m")
    with pytest.raises(BadInput, match="openai-batch"):
        make_client(EngineOptions(engine="ray"), backend="openai-batch", base_url="http://127.0.0.1:9/v1", model="m")
    with pytest.raises(BadInput, match="--engine"):
        EngineOptions(engine="spark")
    with pytest.raises(BadInput, match="need --engine ray"):
        EngineOptions(ray_address="auto")


def _cached_keys(lib: Library) -> set[str]:
    con = sqlite3.connect(lib.llm_db)
    try:
        return {json.loads(r)["messages"][0]["content"] + json.loads(r)["messages"][1]["content"]
                for (r,) in con.execute("SELECT request FROM cache")}
    finally:
        con.close()


def _body_keys(bodies) -> set[str]:
    return {json.loads(b)["messages"][0]["content"] + json.loads(b)["messages"][1]["content"] for b in bodies}


@pytest.mark.llm
@pytest.mark.slow
def test_ray_kill9_then_resume_asks_nothing_answered(tmp_path, survey, proxy):
    lib = _lib(tmp_path / "lib")
    spath = survey.save(tmp_path / "survey.parquet")
    cmd = [sys.executable, "-m", "personagen.cli", "elicit", str(lib.path), "--survey", str(spath), "--engine", "ray",
           "--ray-workers", "2", "--ray-batch-size", "2", "--backend", "openai", "--base-url", proxy.base_url, "--model", "smollm2",
           "--no-progress", "--json", "--limit", "3", "--max-questions", "5"]
    proxy.online.clear()
    proxy.delay_s = 0.3
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None and \
                not (lib.llm_db.exists() and len(_cached_keys(lib)) >= 3):
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        try:  # the local Ray instance the killed driver started (same session), by its group id
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(1.0)
    cached = _cached_keys(lib)
    assert 3 <= len(cached) < 15  # results come back a block (2 requests) at a time
    asked_before = set(proxy.online)
    proxy.online.clear()
    proxy.delay_s = 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["engine"] == "ray" and summary["errors"] == 0
    assert lib.responses().select("persona_id", "qid").unique().height == 15
    assert not (_body_keys(proxy.online) & cached)  # nothing whose answer had come back is asked again
    assert _body_keys(proxy.online) | _body_keys(asked_before) >= _cached_keys(lib)
