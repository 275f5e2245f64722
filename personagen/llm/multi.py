"""Several completions of one prompt: the API's `n` where the server honours it, else one call per sample.

`elicit --mode sample --samples K` asks for K answers to the same prompt. With `n=K` the prompt is paid
once; the bundled llama.cpp server (and some others) rejects `n > 1`, so the request is then split into K
single requests with seeds seed, seed+1, ..., seed+K-1 -- exactly the requests (and cache keys) a
per-sample run makes. What the server supports is learnt from its first answer (a 4xx rejection, or fewer
choices than asked) and remembered per backend and model in llm.sqlite, so a rejected `n` is tried once.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from personagen.llm.cache import Cache, canonical_json, request_key

_MEMORY: dict[str, bool] = {}  # this process: flag name -> n supported


def _flag(client: Any) -> str:
    where = client.base_url if client.backend == "openai" else "local"
    return f"n_supported:{client.identity}@{where}"


def n_supported(client: Any, cache: Cache | None) -> bool | None:
    """True/False once learnt (the bundled local server: False), None while unknown."""
    if client.backend == "local":
        return False
    name = _flag(client)
    if name in _MEMORY:
        return _MEMORY[name]
    v = cache.get_flag(name) if cache is not None else None
    return None if v is None else v == "1"


def _learn(client: Any, cache: Cache | None, ok: bool) -> None:
    name = _flag(client)
    _MEMORY[name] = ok
    if cache is not None:
        cache.set_flag(name, "1" if ok else "0")


def singles(req: Any) -> list[Any]:
    """The K single-completion requests equivalent to one request with n=K (seeds seed..seed+K-1)."""
    base = req.seed or 0
    return [dataclasses.replace(req, n=1, seed=base + j) for j in range(req.n)]


async def send_n(client: Any, req: Any, key: str, req_json: str, cache: Cache | None) -> Any:
    """Send `req` (any n). For n > 1: one call with `n` when supported (or not yet known), else singles."""
    if req.n <= 1:
        return await client._send(req, key, req_json, cache)
    known = n_supported(client, cache)
    if known is None:  # the first n-request probes alone; concurrent ones wait for what it learns
        lock = client.__dict__.setdefault("_n_probe_lock", asyncio.Lock())
        async with lock:
            known = n_supported(client, cache)
            if known is None:
                res = await client._send(req, key, req_json, cache)
                verdict = _verdict(res, req.n)
                if verdict is None:
                    return res  # a failure of the call, not a rejection of `n`: nothing learnt
                _learn(client, cache, verdict)
                if verdict:
                    return res
                if res.error is None:  # fewer choices than asked: keep those paid for, ask only the rest
                    return await _send_singles(client, req, cache, [res])
                known = False
    if known:
        return await client._send(req, key, req_json, cache)
    return await _send_singles(client, req, cache)


def _verdict(res: Any, n: int) -> bool | None:
    """True: the server honoured `n`; False: it rejected it (4xx) or gave fewer choices; None: no telling."""
    if res.error is None:
        return res.texts is not None and len(res.texts) == n
    return False if res.error.startswith("HTTP 4") else None


async def _send_singles(client: Any, req: Any, cache: Cache | None, got: list[Any] | None = None) -> Any:
    """The K single requests, one after another (each cached, claimed and paid once), merged into one result.
    `got`: a paid answer to the n-request that returned fewer choices: its choices stand for the first seeds."""
    results = list(got or [])
    have = sum(len(r.texts) if r.texts else 1 for r in results)
    for sub in singles(req)[have:]:
        j = canonical_json(client.request_payload(sub))
        k = request_key(client.request_payload(sub))
        hit = (cache.get_many([k]).get(k) if cache is not None and not client.fresh else None) \
            or await client._claim_or_wait(k, cache)
        if hit is not None:
            client.stats["cache_hits"] += 1
            results.append(client._cached_result(hit))
            continue
        try:
            results.append(await client._send(sub, k, j, cache))
        finally:
            if cache is not None and not client.fresh:
                cache.release(k)
    errors = [r.error for r in results if r.error and not r.invalid]
    usable = [r for r in results if not r.invalid]
    if not usable:  # every answer paid for was unusable
        errors = [results[0].error]
    first = results[0]
    texts = [t for r in results for t in ((r.texts or [r.text]) if not r.invalid else [None])]
    return dataclasses.replace(
        first, texts=texts[:req.n], error=errors[0] if errors else None, invalid=None if usable else first.invalid,
        cached=all(r.cached for r in results), input_tokens=sum(r.input_tokens for r in results),
        output_tokens=sum(r.output_tokens for r in results), cost_usd=sum(r.cost_usd for r in results),
        latency_s=sum(r.latency_s for r in results))


__all__ = ["send_n", "n_supported", "singles"]
