"""Elicitation speed figures, measured side by side on this machine.

1. Persona-grouped vs shuffled request order on the bundled local model (answers/s, logprobs mode).
   Why order matters: every elicitation prompt is [system: persona text + survey instruction][user: question].
   llama.cpp keeps the KV cache of the last prompt in its slot and only evaluates the tokens after the longest
   common prefix. In persona-grouped order consecutive requests share the whole system part, so each further
   question of a persona costs only its own ~50 question tokens; in shuffled order consecutive requests almost
   never share a persona, so the whole persona prefix is evaluated again for nearly every request. On a CPU the
   cost of a request is dominated by prompt evaluation, so this is where the speed-up comes from.
   Two server configurations are reported, each order on a fresh server (and a fresh request cache) so neither
   order inherits the other's state:
   - `host_prompt_cache_default`: llama.cpp's default host-memory prompt cache (cache_ram, 8 GiB) saves the
     slot's state when a request with a different prefix arrives and restores the best-matching saved prefix
     later. For a 135M model one persona prefix is a few MiB, so this cache holds thousands of personas and
     shuffled order also reuses prefixes: expect a ratio near 1 at any size a benchmark can run.
   - `host_prompt_cache_off` (cache_ram 0): only the slot's own KV cache is reused, as with a real run whose
     personas far outnumber what the server keeps (or with a hosted API whose prefix cache is small/short-lived).
     This line shows the gain that persona-grouped order (what `personagen elicit` sends) buys.
   The numbers are answers/s of this machine's CPU; the ratio grouped/shuffled is the figure that transfers.
2. Cached rerun of 10,000 answers: the cache is filled by eliciting against a trivial loopback OpenAI-format
   server (another process), then responses.parquet is removed and the run repeated from the cache.
3. Client overhead per request (CPU time on top of the bare openai client, and wall time) against the
   loopback server.
4. Engines side by side on the bundled model: the single-process engine, and the Ray engine (local Ray
   instance, ray.data.llm HTTP processor) with 1 and 2 workers; the same elicitation (persona-grouped work
   list, logprobs mode) into a fresh library each, all against one llama.cpp server (one slot: the server,
   not the client, is the bottleneck on a CPU, so this measures the engines' overhead, not a speed-up; Ray
   pays off with many model replicas: vLLM engines on GPUs or a fleet of endpoints). Ray's start-up is timed
   apart. Needs the [ray] extra; skipped with a note without it.

Usage: .venv/bin/python benchmarks/elicit.py [--personas 8] [--questions 6] [--threads 2] [--answers 10000] [--skip-local]
       [--skip-loopback] [--skip-engines] [--engine-personas 4] [--engine-questions 4]
Prints a human summary and one JSON object last.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from personagen import Library
from personagen.elicit import ElicitOptions, build_messages
from personagen.llm import ChatRequest, LLMClient
from personagen.surveys import Survey

REPO = Path(__file__).resolve().parents[1]
W82 = REPO.parent / "shared" / "data" / "opinionqa" / "human_resp" / "American_Trends_Panel_W82" / "info.csv"

PERSONA = ("I am {name}, a {age}-year-old {job} living in {place}. I grew up in a family of {kids} children and "
           "{edu}. These days I spend my free time {hobby}. I describe myself as {trait}, and people who know me "
           "say I am {trait2}. Politically I lean {lean}, I follow the news {news}, and the issues I care about "
           "most are {issue}. Money is {money} for my household right now.")


def personas(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    pick = rng.choice
    return [PERSONA.format(name=pick(["Mary", "Jamal", "Tom", "Ana", "Wei", "Priya", "Olu", "Sara"]) + f" #{i}",
                           age=rng.randint(19, 88),
                           job=pick(["nurse", "farmer", "teacher", "software developer", "truck driver", "retiree"]),
                           place=pick(["rural Vermont", "Burlington", "Texas", "a Chicago suburb", "Atlanta"]),
                           kids=rng.randint(1, 7),
                           edu=pick(["finished high school", "have a master's degree", "left college early"]),
                           hobby=pick(["hiking and fishing", "reading history", "at church", "gaming online"]),
                           trait=pick(["practical", "curious", "cautious", "outgoing"]),
                           trait2=pick(["stubborn", "generous", "reserved", "funny"]),
                           lean=pick(["conservative", "liberal", "moderate"]),
                           news=pick(["daily", "rarely", "on social media"]),
                           issue=pick(["health care costs", "immigration", "climate change", "jobs"]),
                           money=pick(["tight", "comfortable", "a constant worry"])) for i in range(n)]


def opinionqa(n: int) -> Survey:
    qs = []
    with open(W82, newline="") as fh:
        for row in csv.DictReader(fh):
            opts = [o for o in ast.literal_eval(row["references"]) if o != "Refused"]
            if len(opts) < 2:
                continue
            qs.append({"qid": row["key"], "question": row["question"], "options": opts,
                       "targets": {"overall": {o: 1 / len(opts) for o in opts}}})
            if len(qs) == n:
                break
    return Survey.from_records("ATP_W82", qs, source=str(W82))


def bench_order(n_personas: int, n_questions: int, concurrency: int, threads: int = 2) -> dict:
    """answers/s in persona-grouped vs shuffled order; a fresh server (and fresh request cache) per run so
    neither order inherits the other's server-side prompt cache. Run with llama.cpp's host-memory prompt
    cache at its default and switched off (cache_ram_mib=0)."""
    from personagen.llm import LocalServer

    survey = opinionqa(n_questions)
    texts = personas(n_personas, seed=1)
    grouped = [ChatRequest(messages=build_messages(t, survey.question(q).text, survey.options(q)), max_tokens=1,
                           logprobs=True, top_logprobs=20) for t in texts for q in survey.qids]
    shuffled = grouped[:]
    random.Random(0).shuffle(shuffled)
    warm = [ChatRequest(messages=[{"role": "user", "content": "Hello"}], max_tokens=1)]
    out: dict = {}
    for cache_name, ram in (("host_prompt_cache_default", None), ("host_prompt_cache_off", 0)):
        res_cfg: dict = {}
        for name, reqs in (("grouped", grouped), ("shuffled", shuffled)):
            with tempfile.TemporaryDirectory() as d:
                client = LLMClient.create(backend="local", cache_path=Path(d) / "llm.sqlite", fresh=True,
                                          concurrency=concurrency, progress=False)
                client._local = LocalServer(cache_ram_mib=ram, threads=threads)  # same threads in every run
                with client:
                    client.run(warm)  # load the model
                    t0 = time.perf_counter()
                    res = client.run(reqs)
                    dt = time.perf_counter() - t0
                assert all(r.error is None for r in res)
                res_cfg[name] = {"answers": len(reqs), "seconds": round(dt, 2),
                                 "answers_per_s": round(len(reqs) / dt, 3)}
                res_cfg["threads"] = client._local.threads
                print(f"  {cache_name:26s} {name:9s} {len(reqs)} answers in {dt:6.1f}s = "
                      f"{len(reqs) / dt:.2f} answers/s", flush=True)
        res_cfg["speedup"] = round(res_cfg["grouped"]["answers_per_s"] / res_cfg["shuffled"]["answers_per_s"], 2)
        print(f"  {cache_name}: grouped/shuffled = {res_cfg['speedup']}x", flush=True)
        out[cache_name] = res_cfg
    out["personas"], out["questions"], out["answers_per_order"] = n_personas, n_questions, len(grouped)
    return out


def _loopback_proc() -> tuple[subprocess.Popen, str]:
    # the loopback server is test code (tests/loopback.py), not part of the package
    code = (f"import sys, time\nsys.path.insert(0, {str(REPO / 'tests')!r})\nfrom loopback import LoopbackServer\n"
            "s = LoopbackServer().start()\nprint(s.base_url, flush=True)\ntime.sleep(3600)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return p, p.stdout.readline().strip()


def bench_cached_rerun(n_answers: int, url: str) -> dict:
    n_q = 50
    n_p = max(1, n_answers // n_q)
    survey = opinionqa(n_q)
    with tempfile.TemporaryDirectory() as d:
        lib = Library.init(Path(d) / "lib", seed=0)
        texts = personas(n_p, seed=2)
        lib.write_personas(pl.DataFrame({"persona_id": [f"p{i:05d}" for i in range(n_p)],
                                         "text_narrative": texts}))
        kw = ElicitOptions(backend="openai", base_url=url, model="loopback", progress=False, concurrency=16)
        t0 = time.perf_counter()
        s1 = lib.elicit(survey, kw)
        fill = time.perf_counter() - t0
        print(f"  filled cache: {s1.requests_sent} requests to the loopback server in {fill:.1f}s", flush=True)
        t0 = time.perf_counter()
        s2 = lib.elicit(survey, kw)
        skip = time.perf_counter() - t0
        lib.responses_path.unlink()
        t0 = time.perf_counter()
        s3 = lib.elicit(survey, kw)
        cached = time.perf_counter() - t0
        assert s3.requests_sent == 0 and s3.cache_hits == n_p * n_q and s3.answers_written == n_p * n_q
        assert s2.requests_sent == 0
        print(f"  rerun, answers already in responses.parquet: {skip:.2f}s", flush=True)
        print(f"  rerun from the cache ({s3.cache_hits} answers): {cached:.2f}s", flush=True)
        return {"answers": n_p * n_q, "fill_seconds": round(fill, 2), "rerun_all_done_seconds": round(skip, 3),
                "rerun_from_cache_seconds": round(cached, 3)}


def bench_overhead(url: str, n: int = 200, rounds: int = 3) -> dict:
    import openai

    reqs = [ChatRequest(messages=[{"role": "system", "content": "You are a persona."},
                                  {"role": "user", "content": f"Question {i}?"}], max_tokens=1, logprobs=True,
                        top_logprobs=20) for i in range(n)]

    async def bare() -> tuple[float, float]:
        cl = openai.AsyncOpenAI(api_key="x", base_url=url, max_retries=0)
        for r in reqs[:5]:
            await cl.chat.completions.with_raw_response.create(model="loopback", messages=r.messages, max_tokens=1,
                                                               logprobs=True, top_logprobs=20, temperature=0.0)
        c0, w0 = time.process_time(), time.perf_counter()
        for r in reqs:
            raw = await cl.chat.completions.with_raw_response.create(
                model="loopback", messages=r.messages, max_tokens=1, logprobs=True, top_logprobs=20, temperature=0.0)
            raw.http_response.content  # noqa: B018
        out = (time.process_time() - c0) / n, (time.perf_counter() - w0) / n
        await cl.close()
        return out

    rows = []
    with tempfile.TemporaryDirectory() as d:
        c = LLMClient.create(backend="openai", base_url=url, model="loopback", cache_path=Path(d) / "llm.sqlite",
                             progress=False, concurrency=1, fresh=True)
        with c:
            c.run(reqs[:5])
            for _ in range(rounds):
                b_cpu, b_wall = asyncio.run(bare())
                c0, w0, h0 = time.process_time(), time.perf_counter(), c.stats["http_s"]
                c.run(reqs)
                o_cpu, o_wall = (time.process_time() - c0) / n, (time.perf_counter() - w0) / n
                outside = o_wall - (c.stats["http_s"] - h0) / n
                rows.append({"bare_cpu_ms": b_cpu * 1e3, "ours_cpu_ms": o_cpu * 1e3,
                             "cpu_overhead_ms": (o_cpu - b_cpu) * 1e3, "bare_wall_ms": b_wall * 1e3,
                             "ours_wall_ms": o_wall * 1e3, "wall_outside_http_ms": outside * 1e3})
    best = min(rows, key=lambda r: r["cpu_overhead_ms"])
    for k, v in best.items():
        best[k] = round(v, 3)
    print(f"  per request: bare openai {best['bare_cpu_ms']:.2f} ms CPU / {best['bare_wall_ms']:.2f} ms wall; "
          f"LLMClient {best['ours_cpu_ms']:.2f} ms CPU / {best['ours_wall_ms']:.2f} ms wall; "
          f"overhead {best['cpu_overhead_ms']:.3f} ms CPU, {best['wall_outside_http_ms']:.3f} ms wall outside HTTP")
    return best


def bench_engines(n_personas: int, n_questions: int, threads: int) -> dict:
    """answers/s of the single-process engine and of Ray with 1 and 2 workers, side by side (see doc, 4)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("aiohttp") is None:
        print("  skipped: the Ray engine needs the [ray] extra (ray[data], aiohttp)", flush=True)
        return {"skipped": "ray extra not installed"}
    import ray

    from personagen.elicit import EngineOptions, make_client
    from personagen.llm import LocalServer

    survey = opinionqa(n_questions)
    frame = pl.DataFrame({"persona_id": [f"p{i}" for i in range(n_personas)], "source": ["census"] * n_personas,
                          "text_narrative": personas(n_personas, seed=2)})
    out: dict = {}
    with LocalServer(threads=threads) as srv, tempfile.TemporaryDirectory() as d:
        warm = Library.init(Path(d) / "warm", seed=0)
        warm.write_personas(frame.head(1))
        warm.elicit(survey, ElicitOptions(backend="openai", base_url=srv.base_url, model="smollm2", progress=False,
                                          max_questions=1))  # load the model
        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        out["ray_start_s"] = round(time.perf_counter() - t0, 2)
        print(f"  local Ray instance started in {out['ray_start_s']:.1f}s (not counted below)", flush=True)
        try:
            for name, opts in (("single", EngineOptions()), ("ray_1_worker", EngineOptions("ray", ray_workers=1)),
                               ("ray_2_workers", EngineOptions("ray", ray_workers=2))):
                lib = Library.init(Path(d) / name, seed=0)
                lib.write_personas(frame)
                client = make_client(opts, backend="openai", base_url=srv.base_url, model="smollm2",
                                     cache_path=lib.llm_db, progress=False)
                try:
                    t0 = time.perf_counter()
                    s = lib.elicit(survey, client=client)
                    dt = time.perf_counter() - t0
                finally:
                    client.close()
                assert s.errors == 0 and s.answers_written == n_personas * n_questions
                out[name] = {"answers": s.answers_written, "seconds": round(dt, 2),
                             "answers_per_s": round(s.answers_written / dt, 3)}
                print(f"  {name:14s} {s.answers_written} answers in {dt:6.1f}s = "
                      f"{s.answers_written / dt:.2f} answers/s", flush=True)
        finally:
            ray.shutdown()
    base = out["single"]["answers_per_s"]
    out["ratios_vs_single"] = {k: round(out[k]["answers_per_s"] / base, 2) for k in ("ray_1_worker", "ray_2_workers")}
    print(f"  answers/s relative to single: ray 1 worker {out['ratios_vs_single']['ray_1_worker']}x, "
          f"ray 2 workers {out['ratios_vs_single']['ray_2_workers']}x", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--personas", type=int, default=8)
    ap.add_argument("--questions", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads, fixed for every run")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--answers", type=int, default=10_000)
    ap.add_argument("--skip-local", action="store_true")
    ap.add_argument("--skip-loopback", action="store_true")
    ap.add_argument("--skip-engines", action="store_true")
    ap.add_argument("--engine-personas", type=int, default=4)
    ap.add_argument("--engine-questions", type=int, default=4)
    a = ap.parse_args()
    result: dict = {}
    import os

    print(f"machine: {os.cpu_count()} cores, 1-min load {os.getloadavg()[0]:.1f}", flush=True)
    if not a.skip_local:
        print(f"1. persona-grouped vs shuffled order, local model, {a.personas} personas x {a.questions} questions",
              flush=True)
        result["order"] = bench_order(a.personas, a.questions, a.concurrency, a.threads)
    if not a.skip_engines:
        print(f"4. engines: single process vs Ray 1 and 2 workers, local model, {a.engine_personas} personas x "
              f"{a.engine_questions} questions", flush=True)
        result["engines"] = bench_engines(a.engine_personas, a.engine_questions, a.threads)
    if a.skip_loopback:
        print(json.dumps(result))
        return
    proc, url = _loopback_proc()
    try:
        print(f"2. cached rerun of {a.answers} answers", flush=True)
        result["cached_rerun"] = bench_cached_rerun(a.answers, url)
        print("3. client overhead against a loopback server", flush=True)
        result["overhead"] = bench_overhead(url)
    finally:
        proc.kill()
        proc.wait()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
