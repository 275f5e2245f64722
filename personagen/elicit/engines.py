"""Elicitation engines: what sends the model calls for a run. A registry, so a new engine is one entry.

- ``single``: one process, the async client with bounded concurrency (the default).
- ``ray``: the work list as a Ray Dataset answered by a ray.data.llm processor (HTTP endpoint or vLLM engine
  replicas) on a local Ray instance or a cluster (``--ray-address``); needs the ``[ray]`` extra.

Both give the stage the same client interface (same cache keys, budgets, results), so prompts, answer
matching, logprob scoring, dry runs and summaries are the stage's own and identical across engines.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from personagen.errors import BadInput
from personagen.llm import LLMClient, RayClient, RayOptions

RAY_HINT = "pip install 'personagen[ray]'"


@dataclass(frozen=True)
class EngineOptions:
    """Which engine runs the model calls and its settings (Ray: cluster address, workers, processor)."""

    engine: str = "single"
    ray_address: str | None = None
    ray_workers: int = 2
    ray_batch_size: int = 8
    ray_processor: str = "http"
    vllm_engine: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise BadInput(f"--engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        if self.engine != "ray" and (self.ray_address or self.ray_processor != "http" or self.vllm_engine):
            raise BadInput("--ray-address/--ray-processor/--vllm-engine need --engine ray")


def _single(opts: EngineOptions, client_kw: dict[str, Any]) -> LLMClient:
    return LLMClient.create(**client_kw)


def _ray(opts: EngineOptions, client_kw: dict[str, Any]) -> LLMClient:
    if importlib.util.find_spec("ray") is None:
        raise BadInput(f"--engine ray needs Ray: {RAY_HINT}")
    backend = client_kw.get("backend", "local")
    if backend == "openai-batch":
        raise BadInput("--engine ray: not with --backend openai-batch (the provider schedules a batch itself)")
    if opts.ray_processor == "vllm" and backend != "openai":
        raise BadInput("--ray-processor vllm: use --backend openai with --model set to the model path or id")
    ray_opts = RayOptions(address=opts.ray_address, workers=opts.ray_workers, batch_size=opts.ray_batch_size,
                          processor=opts.ray_processor, engine_kwargs=dict(opts.vllm_engine))
    client = RayClient.create(**client_kw)
    client.ray = ray_opts
    return client


ENGINES: dict[str, Callable[[EngineOptions, dict[str, Any]], LLMClient]] = {"single": _single, "ray": _ray}


def make_client(opts: EngineOptions, **client_kw: Any) -> LLMClient:
    """A client for the engine (nothing started): `client_kw` are LLMClient.create's options."""
    return ENGINES[opts.engine](opts, client_kw)


__all__ = ["EngineOptions", "ENGINES", "make_client"]
