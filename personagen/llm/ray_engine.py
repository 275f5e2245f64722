"""The Ray Data engine (``personagen elicit --engine ray``): the work list as a Ray Dataset, answered by a
``ray.data.llm`` processor on a Ray cluster (or a local Ray instance).

Processors (``RayOptions.processor``):
- ``http``: ray.data.llm's HTTP request processor against an OpenAI-compatible endpoint (the bundled model's
  llama.cpp server, a vLLM/llama.cpp server fleet, or a hosted API); runs on CPU workers, needs no vLLM.
- ``vllm``: ray.data.llm's vLLM engine processor, one engine replica per worker on the cluster's GPUs, for a
  self-hosted model (``--model`` is the model path or id and the cache identity; ``engine_kwargs`` go to
  vLLM). This path needs vLLM on the cluster (``pip install 'ray[llm]'``) and is not exercised by the tests.

The guarantees of the single-process engine hold: the SQLite cache is consulted before anything is
scheduled (only unfinished, deduplicated work becomes the dataset), budgets cut the work list before it is
scheduled, and the same request payloads (hence prompts and cache keys) are sent. Results stream back to the
driver block by block; each block is first written as a parquet shard under LIB/.ray-shards/ (temp file, then
rename), then put into the cache in one transaction and the shard removed, then yielded to the stage, which
turns answers into rows exactly as for the single-process engine. A shard left by a killed run is put into
the cache at the start of the next run, so no answer that reached the driver is paid for twice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personagen.errors import BadInput, PersonagenError
from personagen.llm.cache import Cache, canonical_json
from personagen.llm.client import (
    NO_KEY,
    BudgetExceeded,
    ChatRequest,
    ChatResult,
    LLMClient,
    _api_key,
    _parse_response,
    chat_body,
    request_from_json,
)
from personagen.store import atomic_write_parquet

SHARDS_DIR = ".ray-shards"
SHARD_COLUMNS = ("key", "request", "response", "error")


@dataclass(frozen=True)
class RayOptions:
    """Where and how the Ray engine runs (see module doc)."""

    address: str | None = None  # an existing cluster ("auto", "ray://host:10001"); None: a local instance
    workers: int = 2  # processor replicas: concurrent HTTP request actors, or vLLM engines
    batch_size: int = 8  # rows per block handed to a replica
    processor: str = "http"
    engine_kwargs: dict[str, Any] = field(default_factory=dict)  # vLLM engine options (processor vllm)
    accelerator_type: str | None = None  # e.g. "H100" (processor vllm)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise BadInput(f"--ray-workers {self.workers}: must be at least 1")
        if self.batch_size < 1:
            raise BadInput(f"--ray-batch-size {self.batch_size}: must be at least 1")
        if self.processor not in PROCESSORS:
            raise BadInput(f"--ray-processor {self.processor!r}: expected one of {', '.join(PROCESSORS)}")
        if not isinstance(self.engine_kwargs, dict):
            raise BadInput("--vllm-engine: expected a JSON object of vLLM engine options")


# ---- row functions (run on the Ray workers; module level so they pickle by reference) ---------------------
def _http_pre(row: dict) -> dict:
    return {"key": row["key"], "payload": json.loads(row["body"])}


def _http_post(row: dict) -> dict:
    data = row.get("http_response") or {}
    try:
        return {"key": row["key"], "response": canonical_json(_parse_response(data)), "error": ""}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        inner = data.get("error") if isinstance(data, dict) else None
        msg = inner.get("message") if isinstance(inner, dict) else f"malformed response: {e}"
        return {"key": row["key"], "response": "", "error": str(msg)[:500]}


def _vllm_pre(row: dict) -> dict:
    body = json.loads(row["body"])
    sp: dict[str, Any] = {"temperature": body["temperature"], "max_tokens": body["max_tokens"]}
    if body.get("logprobs"):
        sp["logprobs"] = body.get("top_logprobs") or 1
    for k in ("seed", "stop"):
        if body.get(k) is not None:
            sp[k] = body[k]
    return {"key": row["key"], "messages": body["messages"], "sampling_params": sp}


def _vllm_post(row: dict) -> dict:
    """vLLM's output in the compact form the cache keeps (top logprobs per generated token by decoded text)."""
    tops = None
    if row.get("logprobs") is not None:
        tops = [{str(v["decoded_token"]): float(v["logprob"]) for v in (pos or {}).values() if v}
                for pos in row["logprobs"]]
    parsed = {"text": row.get("generated_text"), "top_logprobs": tops, "finish_reason": None,
              "usage": {"input": int(row.get("num_input_tokens") or 0),
                        "output": int(row.get("num_generated_tokens") or 0), "cached": 0, "reasoning": 0}}
    return {"key": row["key"], "response": canonical_json(parsed), "error": ""}


# ---- processors --------------------------------------------------------------------------------------------
def _http_processor(client: RayClient) -> Any:
    from ray.data.llm import HttpRequestProcessorConfig, build_processor

    key = NO_KEY if client.backend == "local" else _api_key(client.base_url or "")
    o = client.ray
    cfg = HttpRequestProcessorConfig(
        url=f"{client.base_url}/chat/completions", headers={"Authorization": f"Bearer {key}"},
        concurrency=o.workers, batch_size=o.batch_size, max_retries=client.max_retries,
        base_retry_wait_time_in_s=client.backoff_base,
        http_request_stage={"num_cpus": 0.5})
    light = {"num_cpus": 0.25}
    return build_processor(cfg, preprocess=_http_pre, postprocess=_http_post, preprocess_map_kwargs=light,
                           postprocess_map_kwargs=light)


def _vllm_processor(client: RayClient) -> Any:
    from ray.data.llm import build_processor, vLLMEngineProcessorConfig

    o = client.ray
    cfg = vLLMEngineProcessorConfig(model_source=client.model, engine_kwargs=dict(o.engine_kwargs),
                                    concurrency=o.workers, batch_size=o.batch_size,
                                    accelerator_type=o.accelerator_type, should_continue_on_error=True)
    return build_processor(cfg, preprocess=_vllm_pre, postprocess=_vllm_post)


PROCESSORS = {"http": _http_processor, "vllm": _vllm_processor}


class RayClient(LLMClient):
    """LLMClient whose uncached requests are answered through a Ray Dataset (see module doc). Build it with
    `RayClient.create(...)` (backend local or openai), then set `ray` to the RayOptions."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.ray = RayOptions()
        self._ray_started = False

    def start(self) -> None:
        """The online client's start (bundled server, model check) unless vLLM runs the model in-cluster."""
        if self.ray.processor == "http":
            super().start()

    def close(self) -> None:
        super().close()
        if self._ray_started:
            import ray

            ray.shutdown()
            self._ray_started = False

    def _init_ray(self) -> None:
        """Join the cluster (or start a local instance) unless Ray is up already; quiet Ray Data's logging."""
        import ray

        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report from a library run
            kw: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
            if self.ray.address:
                ray.init(address=self.ray.address, **kw)
            else:
                ray.init(num_cpus=max(2, self.ray.workers), include_dashboard=False, **kw)
            self._ray_started = True
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = bool(self.progress and sys.stderr.isatty())
        ctx.print_on_execution_start = False

    @property
    def shards(self) -> Path:
        assert self.cache_path is not None
        return self.cache_path.parent / SHARDS_DIR

    # ---- running --------------------------------------------------------------------------------------
    def run_iter(self, requests: Sequence[ChatRequest], desc: str = "llm") -> Iterator[tuple[int, ChatResult]]:
        """Yield (index, result): cache hits first, then results block by block as the dataset streams back.
        Raises BudgetExceeded at the end when a budget held requests back (they were never scheduled)."""
        self.start()
        cache = self._open_cache()
        if cache is not None:
            for shard in sorted(self.shards.glob("shard-*.parquet")) if self.shards.is_dir() else []:
                list(self._ingest(cache, shard, {}))  # a killed run's answers: into the cache, counted once
        cached, where, jsons = self.plan(requests)
        yield from cached
        if not where:
            return
        if self.ray.processor == "http":
            self._call(self._preflight())
        todo, budget = self.take_within_budget({k: jsons[v[0]] for k, v in where.items()})
        if todo:
            yield from self._run_dataset(cache, todo, where)
        if budget:
            raise BudgetExceeded(budget)

    def _run_dataset(self, cache: Cache, todo: dict[str, str], where: dict[str, list[int]]
                     ) -> Iterator[tuple[int, ChatResult]]:
        import ray

        self._init_ray()
        items = [{"key": k, "body": json.dumps(chat_body(self.model, request_from_json(rj)))} for k, rj in todo.items()]
        ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / self.ray.batch_size)))
        out = PROCESSORS[self.ray.processor](self)(ds)
        for name in ("ray.data", "ray.data._internal.execution.streaming_executor", "ray.data._internal.progress"):
            logging.getLogger(name).setLevel(logging.ERROR)  # set up by Ray by now; the stage prints its summary
        self.shards.mkdir(exist_ok=True)
        try:
            for table in out.iter_batches(batch_size=None, batch_format="pyarrow"):
                rows = [{"key": r["key"], "request": todo[r["key"]], "response": r.get("response") or "",
                         "error": r.get("error") or r.get("__inference_error__") or ""} for r in table.to_pylist()]
                yield from self._ingest(cache, self._write_shard(rows), where)
        except ray.exceptions.RayError as e:
            raise PersonagenError(f"the Ray engine failed ({type(e).__name__}: {str(e).splitlines()[0][:300]}); "
                                  f"finished answers are cached, rerun to continue") from None

    def _write_shard(self, rows: list[dict]) -> Path:
        """One block of results as a parquet shard, written to a temp name and renamed into place."""
        import polars as pl

        path = self.shards / f"shard-{time.time_ns():020d}-{os.getpid()}.parquet"
        atomic_write_parquet(path, pl.DataFrame(rows, schema={c: pl.String for c in SHARD_COLUMNS}))
        return path

    def _ingest(self, cache: Cache, shard: Path, where: dict[str, list[int]]) -> Iterator[tuple[int, ChatResult]]:
        """A shard into the cache (one transaction; results already cached are not counted again), then
        removed; yields this run's results from it."""
        import polars as pl

        try:
            rows = pl.read_parquet(shard).to_dicts()
        except Exception:  # noqa: BLE001 - a shard cut short by a kill: its answers are asked again
            shard.unlink(missing_ok=True)
            return
        reqs = {r["key"]: r["request"] for r in rows}
        done = {r["key"]: json.loads(r["response"]) for r in rows if not r["error"] and r["response"]}
        failed = {r["key"]: r["error"] or "empty response" for r in rows if r["key"] not in done}
        if not where:  # a leftover shard: count only what was not cached yet
            have = cache.get_many(done)
            done = {k: v for k, v in done.items() if k not in have}
        yield from self.record_outcome(done, failed, reqs, where,
                                       lambda d, f: cache.put_many(self.identity, d, f, self.run_id))
        shard.unlink(missing_ok=True)


__all__ = ["RayClient", "RayOptions", "PROCESSORS"]
