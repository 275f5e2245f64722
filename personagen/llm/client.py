"""LLMClient: the one place personagen talks to models.

A synchronous facade over the async `openai` client running on a private event-loop thread: bounded
concurrency, retries with exponential backoff + jitter (honouring Retry-After), a SQLite cache/log
(LIB/llm.sqlite), in-run deduplication of identical requests, per-run budgets and token/cost accounting
(their rules: personagen.llm.accounting) and a progress display (personagen.llm.progress). Several processes
share one cache: a request in flight is claimed in it, so a second process waits for the first's answer
instead of paying again. Error text is redacted (personagen.llm.redaction) before it is stored or shown. Backends: ``openai`` (any OpenAI-compatible URL) and ``local`` (bundled SmolLM2).
"""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import json
import os
import queue
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personagen.errors import BadInput, PersonagenError
from personagen.llm.accounting import Ledger, projected_tokens, read_usage
from personagen.llm.cache import Cache, canonical_json, request_key
from personagen.llm.local import LOCAL_ALIAS, LocalServer, local_available, model_identity
from personagen.llm.multi import n_supported, send_n
from personagen.llm.prices import PriceTable
from personagen.llm.progress import progress_bar
from personagen.llm.redaction import redact, register_secret

BACKENDS = ("local", "openai", "openai-batch", "hf")
# backends served by a subclass, as (module, class): imported on use (the subclass imports this module)
BACKEND_CLASSES = {"openai-batch": ("personagen.llm.batch_api", "BatchClient")}
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
KEY_ENVS = ("OPENAI_API_KEY", "PERSONAGEN_API_KEY")
NO_KEY = "sk-no-key-needed"
RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
DEFAULT_TIMEOUT_S = 120.0  # per HTTP request; a request that timed out is sent again at most once
MAX_LOGPROB = 1e-6  # a log probability is <= 0 (this much float noise allowed)
_SLOT: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("personagen_llm_slot", default=None)


class BudgetExceeded(PersonagenError):
    """A per-run budget (max_requests / max_tokens_budget) stopped the run; finished results are cached.

    `results` holds the results in request order, None where the request did not run."""

    def __init__(self, msg: str, results: list[ChatResult | None] | None = None):
        super().__init__(msg)
        self.results = results or []


@dataclass
class ChatRequest:
    """One chat-completions request (every field is part of the cache key)."""

    messages: list[dict]
    temperature: float = 0.0
    max_tokens: int = 256
    logprobs: bool = False
    top_logprobs: int | None = None
    seed: int | None = None
    stop: list[str] | None = None
    n: int = 1  # completions per request (the API's `n`; see personagen.llm.multi for servers without it)
    extra: dict[str, Any] | None = None  # extra body fields: answer constraints (personagen.llm.constrain)

    def params(self) -> dict[str, Any]:
        p = {"temperature": float(self.temperature), "max_tokens": int(self.max_tokens),
             "logprobs": bool(self.logprobs), "top_logprobs": self.top_logprobs,
             "seed": self.seed, "stop": list(self.stop) if self.stop else None}
        if self.n > 1:  # only then: single-completion cache keys stay what they always were
            p["n"] = int(self.n)
        if self.extra:  # only then: unconstrained cache keys stay what they always were
            p["extra"] = dict(self.extra)
        return p


@dataclass
class ChatResult:
    """The outcome of a request; `error` is set (and text None) when it failed after retries."""

    text: str | None
    top_logprobs: list[dict[str, float]] | None
    cached: bool
    error: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    finish_reason: str | None = None
    latency_s: float = 0.0
    response: dict[str, Any] | None = None  # the compact parsed response (what the cache stores)
    texts: list[str | None] | None = None  # every completion's text when the request asked for n > 1
    invalid: str | None = None  # why a paid answer (HTTP 200) was unusable (`error` says so too)


def _is_loopback(url: str) -> bool:
    host = (urllib.parse.urlparse(url).hostname or "").lower()
    return host in ("localhost", "127.0.0.1", "::1") or host.startswith("127.")


def _api_key(base_url: str) -> str:
    for env in KEY_ENVS:
        v = os.environ.get(env)
        if v:
            return v
    if _is_loopback(base_url):
        return NO_KEY
    raise BadInput(f"OPENAI_API_KEY not set (needed for {base_url}); export OPENAI_API_KEY or PERSONAGEN_API_KEY")


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait from retry-after-ms / Retry-After (seconds or an HTTP date), if given."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        try:
            dt = email.utils.parsedate_to_datetime(ra)
            return max(0.0, dt.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _parse_response(data: Any) -> dict[str, Any]:
    """Compact form of an OpenAI chat-completions JSON: text, per-token top logprobs, finish, usage (None when
    unreadable: the answer is kept, its tokens estimated). ValueError/TypeError/KeyError when unusable."""
    try:
        return _parse_body(data)
    except AttributeError as e:  # a field that should be an object is not
        raise ValueError(f"malformed response ({e})") from None


def _parse_body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"response is a JSON {type(data).__name__}, not an object")
    choices = data.get("choices") or []
    if not choices:
        inner = data.get("error")
        if inner:
            msg = inner.get("message") if isinstance(inner, dict) else inner
            raise ValueError(f"error in an HTTP 200 response: {redact(str(msg))[:200]}")
        raise ValueError("response has no choices")
    if not all(isinstance(c, dict) for c in choices):
        raise ValueError("response choices are not objects")
    ch = choices[0]
    msg = ch.get("message") or {}
    text = msg.get("content")
    tops = None
    lp = ch.get("logprobs")
    if lp and lp.get("content") is not None:
        tops = [_token_logprobs(tok) for tok in lp["content"]]
    texts = [(c.get("message") or {}).get("content") for c in choices] if len(choices) > 1 else None
    return {"text": text, "texts": texts, "top_logprobs": tops, "finish_reason": ch.get("finish_reason"),
            "usage": read_usage(data.get("usage"))}


def _token_logprobs(tok: dict) -> dict[str, float]:
    """{token: logprob} of one position's alternatives; a logprob that is not a number <= 0 is a ValueError."""
    d: dict[str, float] = {}
    for alt in tok.get("top_logprobs") or tok.get("top_probs") or [tok]:  # top_probs: llama.cpp post-sampling
        t, v = alt.get("token"), alt.get("logprob", _log(alt.get("prob")))
        if t is None or v is None:
            continue
        v = float(v)
        if not v <= MAX_LOGPROB:  # also NaN
            raise ValueError(f"logprob {v} of token {str(t)[:20]!r} is not <= 0")
        if t not in d or v > d[t]:
            d[t] = min(v, 0.0)
    return d


def _log(prob: Any) -> float | None:
    """log(prob) for servers that report probabilities (llama.cpp's post_sampling_probs); None when absent."""
    import math

    return math.log(prob) if isinstance(prob, (int, float)) and prob > 0 else None


def chat_body(model: str, req: ChatRequest) -> dict[str, Any]:
    """The chat-completions request body for `req` (what is sent online and what a batch file line holds)."""
    body: dict[str, Any] = {"model": model, "messages": req.messages, "temperature": req.temperature,
                            "max_tokens": req.max_tokens}
    if req.logprobs:
        body["logprobs"] = True
        if req.top_logprobs is not None:
            body["top_logprobs"] = req.top_logprobs
    if req.seed is not None:
        body["seed"] = req.seed
    if req.stop:
        body["stop"] = req.stop
    if req.n > 1:
        body["n"] = req.n
    if req.extra:
        body.update(req.extra)
    return body


def cached_result(response_json: str, input_tokens: int, output_tokens: int) -> ChatResult:
    """A ChatResult from a cache row (cost 0: it was paid when first asked)."""
    d = json.loads(response_json)
    return ChatResult(text=d["text"], texts=d.get("texts"), top_logprobs=d["top_logprobs"], cached=True,
                      error=None, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=0.0,
                      finish_reason=d.get("finish_reason"), response=d)


def request_from_json(request_json: str) -> ChatRequest:
    """The ChatRequest back from its cache payload (model identity + messages + every parameter)."""
    p = json.loads(request_json)
    return ChatRequest(messages=p["messages"], temperature=p["temperature"], max_tokens=p["max_tokens"],
                       logprobs=p["logprobs"], top_logprobs=p["top_logprobs"], seed=p["seed"], stop=p["stop"],
                       n=int(p.get("n") or 1), extra=p.get("extra"))


def _heuristic_tokens(messages: list[dict]) -> int:
    """~4 characters per token plus the chat template's per-message overhead."""
    return projected_tokens(messages, 0)


@dataclass
class _RunState:
    results: list[ChatResult | None] = field(default_factory=list)
    fatal: BaseException | None = None
    budget: str | None = None


@dataclass(frozen=True)
class _Endpoint:
    """Where a backend's requests go: base URL (None until a local server starts), API model name, the model
    identity recorded in the cache and manifest, and the local server to start (local backend only)."""

    base_url: str | None
    model: str
    identity: str
    local_server: Any = None


def _local_endpoint(base_url: str | None, model: str | None) -> _Endpoint:
    if base_url:
        raise BadInput("--base-url is for --backend openai (the local backend runs its own server)")
    if model not in (None, LOCAL_ALIAS, "local"):
        raise BadInput(f"--model {model!r}: the local backend serves only {LOCAL_ALIAS!r}")
    reason = local_available()
    if reason:
        raise BadInput(reason)
    _name, identity = model_identity()
    return _Endpoint(None, LOCAL_ALIAS, identity, LocalServer())


def _openai_endpoint(base_url: str | None, model: str | None) -> _Endpoint:
    if not model:
        raise BadInput("--model is required for --backend openai and openai-batch")
    base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_URL).rstrip("/")
    try:
        parts = urllib.parse.urlparse(base_url)
        parts.port  # noqa: B018 - validates the port
    except ValueError as e:
        raise BadInput(f"--base-url {_public(base_url)!r}: not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(f"--base-url {base_url!r}: expected an http(s) URL")
    return _Endpoint(base_url, model, model)


def _hf_endpoint(base_url: str | None, model: str | None, adapter: str | os.PathLike | None = None) -> _Endpoint:
    """An in-process transformers model (a folder or .gguf; None: the bundled SmolLM2) + optional LoRA adapter
    behind a loopback OpenAI endpoint; the identity holds both content hashes."""
    from personagen.llm.hf import HFServer, hf_identity, train_available

    if base_url:
        raise BadInput("--base-url is for --backend openai (the hf backend runs in-process)")
    reason = train_available()
    if reason:
        raise BadInput(reason)
    server = HFServer(model, adapter)
    return _Endpoint(None, server.alias, hf_identity(server.ref, adapter), server)


# backend name -> how its endpoint is validated and set up (BACKENDS lists the names)
BACKEND_ENDPOINTS: dict[str, Callable[..., _Endpoint]] = {
    "local": _local_endpoint,
    "openai": _openai_endpoint,
    "openai-batch": _openai_endpoint,  # same endpoint and identity: batch results fill the online cache
    "hf": _hf_endpoint,
}
assert tuple(BACKEND_ENDPOINTS) == BACKENDS


class LLMClient:
    """See module doc. Build with `LLMClient.create(...)`; use as a context manager."""

    def __init__(self, *, backend: str, base_url: str | None, model: str, cache_path: str | os.PathLike | None,
                 concurrency: int, fresh: bool, max_requests: int | None, max_tokens_budget: int | None,
                 prices: PriceTable, progress: bool, timeout: float, max_retries: int, identity: str,
                 local_server: Any = None, time_limit_s: float | None = None):
        self.backend = backend
        self.base_url = base_url
        self.model = model  # the name sent to the API
        self.model_name = model if backend in ("openai", "openai-batch") else identity.split("@")[0]  # local/hf: content identity
        self.identity = identity
        self.cache_path = Path(cache_path) if cache_path else None
        self.concurrency = max(1, int(concurrency))
        self.fresh = fresh
        self.ledger = Ledger(prices, model, max_requests, max_tokens_budget, time_limit_s)
        self.progress = progress
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = 0.5
        self.backoff_max = 30.0
        self.run_id = uuid.uuid4().hex[:12]
        self._local = local_server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._aclient: Any = None
        self._cache: Cache | None = None
        self._checked = False

    # ---- accounting (personagen.llm.accounting owns the rules; these names stay for the stages) -------------
    @property
    def stats(self) -> dict[str, Any]:
        return self.ledger.stats

    @property
    def prices(self) -> PriceTable:
        return self.ledger.prices

    @prices.setter
    def prices(self, table: PriceTable) -> None:
        self.ledger.prices = table

    @property
    def max_requests(self) -> int | None:
        return self.ledger.max_requests

    @max_requests.setter
    def max_requests(self, v: int | None) -> None:
        self.ledger.max_requests = v

    @property
    def max_tokens_budget(self) -> int | None:
        return self.ledger.max_tokens_budget

    @max_tokens_budget.setter
    def max_tokens_budget(self, v: int | None) -> None:
        self.ledger.max_tokens_budget = v

    # ---- construction ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, backend: str = "local", base_url: str | None = None, model: str | None = None,
               cache_path: str | os.PathLike | None = None, concurrency: int = 4, fresh: bool = False,
               max_requests: int | None = None, max_tokens_budget: int | None = None,
               prices: str | os.PathLike | dict | None = None, progress: bool = True,
               timeout: float = DEFAULT_TIMEOUT_S, max_retries: int = 5, adapter: str | os.PathLike | None = None,
               time_limit_s: float | None = None) -> LLMClient:
        """Validate options (BadInput naming the bad one) and build a client; nothing is started or sent."""
        if adapter is not None and backend != "hf":
            raise BadInput("--adapter needs --backend hf")
        if backend not in BACKENDS:
            raise BadInput(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        if concurrency < 1:
            raise BadInput(f"--concurrency {concurrency}: must be at least 1")
        for opt, v in (("--max-requests", max_requests), ("--token-budget", max_tokens_budget)):
            if v is not None and not (isinstance(v, int) and v >= 1):
                raise BadInput(f"{opt} {v}: must be a whole number of at least 1")
        for opt, t in (("--timeout", timeout), ("--time-limit", time_limit_s)):
            if t is not None and not (isinstance(t, (int, float)) and 0 < t < float("inf")):
                raise BadInput(f"{opt} {t}: must be a positive number of seconds")
        table = PriceTable.load(prices)
        ep = BACKEND_ENDPOINTS[backend](base_url, model, **({"adapter": adapter} if adapter is not None else {}))
        klass = cls
        if backend in BACKEND_CLASSES:
            import importlib

            mod, name = BACKEND_CLASSES[backend]
            klass = getattr(importlib.import_module(mod), name)
        return klass(backend=backend, base_url=ep.base_url, model=ep.model, cache_path=cache_path,
                   concurrency=concurrency, fresh=fresh, max_requests=max_requests,
                   max_tokens_budget=max_tokens_budget, prices=table, progress=progress, timeout=timeout,
                   max_retries=max_retries, identity=ep.identity, local_server=ep.local_server,
                   time_limit_s=time_limit_s)

    # ---- lifecycle ------------------------------------------------------------------------------------
    def __enter__(self) -> LLMClient:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the local server (local backend), the loop thread and the async client."""
        if self._loop is not None:
            return
        if self._local is not None:
            self.base_url = self._local.start()
        assert self.base_url is not None
        key = NO_KEY if self.backend == "local" else _api_key(self.base_url)
        register_secret(key)
        import openai

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="personagen-llm", daemon=True)
        self._thread.start()

        async def make() -> Any:
            return openai.AsyncOpenAI(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout)

        self._aclient = self._call(make())
        self.ledger.start_clock()  # the run's time limit counts from here (the server is up, the client ready)

    def close(self) -> None:
        """Close the async client, stop the loop thread and the local server; close the cache."""
        if self._loop is not None:
            if self._aclient is not None:
                try:
                    self._call(self._aclient.close())
                except Exception:  # noqa: BLE001 - best effort on shutdown
                    pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None
            self._aclient = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        if self._local is not None:
            self._local.stop()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _open_cache(self) -> Cache | None:
        if self._cache is None and self.cache_path is not None:
            if not self.cache_path.parent.is_dir():
                raise BadInput(f"{self.cache_path}: directory {self.cache_path.parent} does not exist")
            self._cache = Cache(self.cache_path)
        return self._cache

    # ---- keys -----------------------------------------------------------------------------------------
    def request_payload(self, req: ChatRequest) -> dict[str, Any]:
        """What identifies a request in the cache: model identity, messages, every sampling parameter."""
        return {"model": self.identity, "messages": req.messages, **req.params()}

    def key(self, req: ChatRequest) -> str:
        return request_key(self.request_payload(req))

    # ---- preflight ------------------------------------------------------------------------------------
    async def _preflight(self) -> None:
        """Reach the server once and check that it serves the model (clear errors before any work)."""
        import openai

        if self._checked:
            return
        try:
            page = await self._aclient.models.list()
            ids = [m.id for m in page.data]
        except openai.APIConnectionError as e:
            raise PersonagenError(redact(f"cannot reach the model server at {self.base_url} ({type(e).__name__}: "
                                         f"{e.__cause__ or e})")) from None
        except openai.AuthenticationError:
            raise BadInput(f"the API key was rejected by {self.base_url} (check OPENAI_API_KEY)") from None
        except openai.APIStatusError:
            ids = []  # servers without /models: the first call will tell
        if ids and self.model not in ids:
            shown = ", ".join(sorted(ids)[:10])
            raise BadInput(f"--model {self.model!r}: not served by {self.base_url} (available: {shown})")
        self._checked = True

    # ---- estimation -----------------------------------------------------------------------------------
    def estimate(self, requests: Sequence[ChatRequest]) -> dict[str, Any]:
        """Calls that would be sent (after cache and dedup), their input/output tokens and USD, sending nothing.

        Input tokens: exact from the local server's /tokenize on a sample of prompts (scaled by characters
        for the rest); ~4 chars/token otherwise. Output tokens: max_tokens (1 for logprob requests)."""
        keys = [self.key(r) for r in requests]
        cached: set[str] = set()
        if not self.fresh and self.cache_path is not None:
            ro = self._cache or Cache(self.cache_path, readonly=True)
            cached = set(ro.get_many(keys))
            if ro is not self._cache:
                ro.close()
        todo: dict[str, ChatRequest] = {}
        for k, r in zip(keys, requests):
            if k not in cached and k not in todo:
                todo[k] = r
        reqs = list(todo.values())
        per_sample = n_supported(self, self._cache) is False  # then the prompt is paid once per sample
        in_tok = [t * (r.n if per_sample else 1) for t, r in zip(self._count_input_tokens(reqs), reqs)]
        out_tok = [(1 if (r.logprobs and r.max_tokens <= 1) else int(r.max_tokens)) * r.n for r in reqs]
        cost = sum(self.prices.cost(self.model, i, o) for i, o in zip(in_tok, out_tok))
        return {"requests": sum(r.n if per_sample else 1 for r in reqs), "cached": sum(1 for k in keys if k in cached),
                "input_tokens": int(sum(in_tok)), "output_tokens": int(sum(out_tok)), "cost_usd": cost,
                "priced": self.prices.lookup(self.model) is not None, "key_set": self._key_set()}

    def _key_set(self) -> bool:
        """Whether a request would carry a usable API key (local and loopback servers need none)."""
        if self.backend == "local" or _is_loopback(self.base_url or ""):
            return True
        return any(os.environ.get(env) for env in KEY_ENVS)

    def _count_input_tokens(self, reqs: list[ChatRequest]) -> list[int]:
        if not reqs:
            return []
        if self.backend != "local":
            return [_heuristic_tokens(r.messages) for r in reqs]
        return self._local.count_tokens([r.messages for r in reqs])

    def take_within_budget(self, todo: dict[str, str]) -> tuple[dict[str, str], str | None]:
        """For engines that schedule a whole work list up front (batch files, Ray datasets): the requests
        ({key: request json}) the budgets allow, and the budget message when some were held back. Tokens are
        projected as prompt estimate + max_tokens and never exceeded (their real count comes later)."""
        projected = {}
        if self.max_tokens_budget is not None:
            for k, rj in todo.items():
                req = request_from_json(rj)
                projected[k] = projected_tokens(req.messages, req.max_tokens)
        return self.ledger.take_within_budget(todo, projected)

    def plan(self, requests: Sequence[ChatRequest]) -> tuple[list[tuple[int, ChatResult]], dict[str, list[int]],
                                                             list[str]]:
        """For engines that schedule a whole work list up front: the cache hits as (index, result), the keys
        still to ask with the indices each answers ({key: [indices]}: identical requests asked once), and
        every request's canonical JSON. Counts the hits and duplicates in `stats`."""
        cache = self._open_cache()
        if cache is None:
            raise BadInput(f"--backend {self.backend}: this engine needs the library's cache (llm.sqlite)")
        jsons = [canonical_json(self.request_payload(r)) for r in requests]
        keys = [request_key_from_json(j) for j in jsons]
        hits = {} if self.fresh else cache.get_many(keys)
        cached = [(i, cached_result(*hits[k])) for i, k in enumerate(keys) if k in hits]
        where: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            if k not in hits:
                where.setdefault(k, []).append(i)
        self.stats["cache_hits"] += len(cached)
        self.stats["deduplicated"] += sum(len(v) - 1 for v in where.values())
        return cached, where, jsons

    def record_outcome(self, done: dict[str, dict], failed: dict[str, str], requests: dict[str, str],
                       where: dict[str, list[int]], commit: Any) -> Iterator[tuple[int, ChatResult]]:
        """Cost and count results that came back from an up-front engine ({key: parsed response} and
        {key: error}), store them with `commit(done_rows, failed_rows)` (one cache transaction), then yield
        (index, result) for this run's requests (`where`); other keys (an earlier run's work) are only stored."""
        rows, results = [], {}
        for k, parsed in done.items():
            req = request_from_json(requests[k])
            u, cost = self.ledger.settle(parsed["usage"], projected_tokens(req.messages, req.max_tokens))
            parsed = {**parsed, "usage": u}
            rows.append({"key": k, "request": requests[k], "response": canonical_json(parsed),
                         "input_tokens": u["input"], "output_tokens": u["output"], "cost_usd": cost})
            results[k] = ChatResult(text=parsed["text"], top_logprobs=parsed["top_logprobs"], cached=False,
                                    error=None, input_tokens=u["input"], output_tokens=u["output"], cost_usd=cost,
                                    finish_reason=parsed["finish_reason"], response=parsed)
        for k, e in failed.items():
            results[k] = ChatResult(text=None, top_logprobs=None, cached=False, error=e)
        commit(rows, [{"key": k, "error": e} for k, e in failed.items()])
        st = self.stats
        st["requests_sent"] += len(results)
        st["errors"] += len(failed)
        for k, res in results.items():
            for j, i in enumerate(where.get(k, ())):
                yield i, res if j == 0 else ChatResult(**{**res.__dict__, "cost_usd": 0.0, "cached": True})

    # ---- running --------------------------------------------------------------------------------------
    def run(self, requests: Sequence[ChatRequest], desc: str = "llm") -> list[ChatResult]:
        """Send (or read from cache) every request; results in request order. Failed requests carry `error`."""
        out: list[ChatResult | None] = [None] * len(requests)
        try:
            for i, res in self.run_iter(requests, desc=desc):
                out[i] = res
        except BudgetExceeded as e:
            e.results = out
            raise
        return out  # type: ignore[return-value]

    def run_iter(self, requests: Sequence[ChatRequest], desc: str = "llm") -> Iterator[tuple[int, ChatResult]]:
        """Yield (index, result) as results finish (cache hits first). Raises BudgetExceeded at the end if a
        budget stopped the run, BadInput on a wrong model/key, after yielding everything that finished."""
        self.start()
        requests = list(requests)
        q: queue.SimpleQueue = queue.SimpleQueue()
        done = object()
        state = _RunState(results=[None] * len(requests))

        async def main() -> None:
            try:
                await self._run_async(requests, q, state, desc)
            finally:
                q.put(done)

        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(main(), self._loop)
        finished = False
        try:
            while True:
                item = q.get()
                if item is done:
                    break
                if isinstance(item, list):  # a batch of cache hits
                    yield from item
                else:
                    yield item
            fut.result()
            finished = True
        finally:
            if not finished and not fut.done():
                fut.cancel()
                try:
                    fut.result(timeout=30)
                except BaseException:  # noqa: BLE001 - cancelled on purpose
                    pass
        if state.fatal is not None:
            raise state.fatal
        if state.budget is not None:
            raise BudgetExceeded(f"{state.budget}; finished answers are kept, rerun to go on", state.results)

    async def _run_async(self, requests: list[ChatRequest], q: queue.SimpleQueue, state: _RunState,
                         desc: str) -> None:
        payloads = [self.request_payload(r) for r in requests]
        jsons = [canonical_json(p) for p in payloads]
        keys = [request_key_from_json(j) for j in jsons]
        bar = progress_bar(len(requests), desc, self.progress)
        try:
            groups = self._serve_cached(keys, q, state)
            self.stats["cache_hits"] += len(requests) - sum(len(v) for v in groups.values())
            self.stats["deduplicated"] += sum(len(v) - 1 for v in groups.values())
            bar.update(len(requests) - sum(len(v) for v in groups.values()))
            if not groups:
                return
            await self._preflight()
            cache = self._open_cache()  # created only once the server has accepted the model and key
            tasks = await self._dispatch(requests, jsons, groups, cache, q, state, bar)
            await self._wait_in_flight(tasks, state)
        finally:
            bar.close()

    async def _dispatch(self, requests: list[ChatRequest], jsons: list[str], groups: dict[str, list[int]],
                        cache: Cache | None, q: queue.SimpleQueue, state: _RunState, bar: Any) -> set[asyncio.Task]:
        """Start one task per distinct request, at most `concurrency` at once, while no budget is reached: each
        holds a request-budget slot and reserves its projected tokens before it is sent (the budgets are checked
        again once a concurrency slot is free, so only requests already in flight can overshoot them)."""
        led = self.ledger
        sem = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task] = set()

        async def one(k: str, idxs: list[int], est: int) -> None:
            slot = [1]
            _SLOT.set(slot)
            try:
                res = await self._claimed_send(requests[idxs[0]], k, jsons[idxs[0]], cache)
                for j, i in enumerate(idxs):
                    r = res if j == 0 else ChatResult(**{**res.__dict__, "cost_usd": 0.0, "cached": True})
                    state.results[i] = r
                    q.put((i, r))
                bar.update(len(idxs))
            except _Fatal as e:
                state.fatal = e.exc
            except _BudgetStop as e:
                state.budget = state.budget or str(e)
            finally:
                led.slots_held -= slot[0]  # held but never sent (another process paid, or stopped)
                led.reserved_tokens -= est
                sem.release()

        for k, idxs in groups.items():
            if state.fatal is not None or state.budget is not None:
                break
            state.budget = led.budget_reached()
            if state.budget is not None:
                break
            left = led.time_left()
            try:
                await asyncio.wait_for(sem.acquire(), None if left is None else max(left, 0.0))
            except TimeoutError:
                state.budget = led.budget_reached()
                break
            state.budget = led.budget_reached()  # results that came back while waiting count
            if state.fatal is not None or state.budget is not None:
                sem.release()
                break
            r0 = requests[idxs[0]]
            est = projected_tokens(r0.messages, r0.max_tokens) if led.max_tokens_budget is not None else 0
            led.reserved_tokens += est
            led.hold_slot()
            t = asyncio.create_task(one(k, idxs, est))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        return tasks

    async def _wait_in_flight(self, tasks: set[asyncio.Task], state: _RunState) -> None:
        """Wait for the requests in flight; at the time limit, abandon those still running (say so)."""
        if not tasks:
            return
        left = self.ledger.time_left()
        _done, pending = await asyncio.wait(list(tasks), timeout=None if left is None else max(left, 0.0))
        if pending:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            state.budget = (f"time limit reached ({self.ledger.time_limit_s:g} s); {len(pending)} request(s) in "
                            "flight abandoned (a provider may bill them)")

    def _serve_cached(self, keys: list[str], q: queue.SimpleQueue, state: _RunState) -> dict[str, list[int]]:
        """Hand cached answers to the consumer (in batches); return the misses grouped by request key (dedupe)."""
        hits = {} if self.fresh else self._read_hits(keys)
        groups: dict[str, list[int]] = {}
        batch: list[tuple[int, ChatResult]] = []
        for i, k in enumerate(keys):
            if k in hits:
                res = cached_result(*hits[k])
                state.results[i] = res
                batch.append((i, res))
                if len(batch) >= 256:
                    q.put(batch)
                    batch = []
            else:
                groups.setdefault(k, []).append(i)
        if batch:
            q.put(batch)
        return groups

    def handles_n(self) -> bool:
        """Whether requests with n > 1 are safe to give this client: it splits them into seeded single calls
        where the server lacks `n` (clients that override run_iter, e.g. Ray, send requests as they are)."""
        return type(self).run_iter is LLMClient.run_iter

    @staticmethod
    def _cached_result(hit: tuple[str, int, int]) -> ChatResult:
        """A ChatResult from a cache row (for personagen.llm.multi, which cannot import this module)."""
        return _hit_result(hit)

    def _read_hits(self, keys: list[str]) -> dict[str, tuple[str, int, int]]:
        """Cached answers for `keys`, read without creating or writing the cache file."""
        if self._cache is not None:
            return self._cache.get_many(keys)
        if self.cache_path is None or not self.cache_path.exists():
            return {}
        ro = Cache(self.cache_path, readonly=True)
        try:
            return ro.get_many(keys)
        finally:
            ro.close()

    async def _claimed_send(self, req: ChatRequest, key: str, req_json: str, cache: Cache | None) -> ChatResult:
        """Send `req` unless another process is already paying for it: then its cached answer is used."""
        hit = await self._claim_or_wait(key, cache)
        if hit is not None:  # another process paid for it while we waited
            self.stats["cache_hits"] += 1
            return _hit_result(hit)
        try:
            return await send_n(self, req, key, req_json, cache)
        finally:
            if cache is not None and not self.fresh:
                cache.release(key)

    async def _claim_or_wait(self, key: str, cache: Cache | None) -> tuple[str, int, int] | None:
        """Claim `key` in the shared cache, or wait while another process holds it. Returns the cached
        answer if one appeared (nothing to send), None once this process holds the claim and must send."""
        if cache is None or self.fresh:
            return None
        delay = 0.02
        while True:
            if cache.claim(key):
                hit = cache.get_many([key]).get(key)
                if hit is not None:
                    cache.release(key)
                return hit
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)
            hit = cache.get_many([key]).get(key)
            if hit is not None:
                return hit

    async def _send(self, req: ChatRequest, key: str, req_json: str, cache: Cache | None) -> ChatResult:
        """One request with retries; records success/failure in the cache/log. Every HTTP request counts against
        the request budget; every HTTP 200 is paid (its usage counted), and one whose body is unusable, like one
        that timed out (the server may have answered and billed it), is sent again at most once."""
        import openai

        kwargs = chat_body(self.model, req)
        projected = projected_tokens(req.messages, req.max_tokens)
        if req.extra:  # fields outside the openai SDK's signature travel in extra_body
            kwargs["extra_body"] = {k: kwargs.pop(k) for k in req.extra}
        t0 = time.perf_counter()
        attempt = timeouts = 0
        paid: list[tuple[dict[str, int], float]] = []
        while True:
            attempt += 1
            wait: float | None = None
            self._take_request()
            try:
                body = await self._post(kwargs)
            except openai.NotFoundError as e:
                raise _Fatal(BadInput(f"--model {self.model!r}: {self.base_url} answered 404 "
                                      f"({_err_msg(e)})")) from None
            except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
                raise _Fatal(BadInput(f"{self.base_url} rejected the API key ({_err_msg(e)})")) from None
            except openai.APIStatusError as e:
                err = f"HTTP {e.status_code}: {_err_msg(e)}"
                if e.status_code not in RETRY_STATUS and e.status_code < 500:
                    return self._fail(key, err, t0, attempt, cache, paid)
                wait = _retry_after(e.response.headers)
            except openai.APITimeoutError as e:
                err = f"{type(e).__name__}: {e.__cause__ or e} (after {self.timeout:g} s)"
                timeouts += 1
                if timeouts > 1:
                    return self._fail(key, err, t0, attempt, cache, paid)
            except openai.APIConnectionError as e:
                err = f"{type(e).__name__}: {e.__cause__ or e}"
            else:
                parsed, err = self._read_paid(body, projected, paid)
                if parsed is not None:
                    break
                if len(paid) > 1:
                    return self._fail(key, err, t0, attempt, cache, paid, invalid=True)
            if attempt > self.max_retries:
                return self._fail(key, err, t0, attempt, cache, paid)
            self.stats["retries"] += 1
            if wait is None:
                wait = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
            await asyncio.sleep(min(wait, 120.0))
        return self._succeed(key, req_json, parsed, t0, attempt, cache, paid)

    def _take_request(self) -> None:
        """Count the HTTP request about to be sent against the request budget (the slot the dispatcher held for
        this request's first one, else a new slot), or stop this request with _BudgetStop."""
        slot = _SLOT.get()
        held = bool(slot and slot[0])
        if held:
            slot[0] = 0  # type: ignore[index]
        if not self.ledger.take_request(held):
            raise _BudgetStop(f"request budget reached ({self.max_requests} HTTP requests)")

    async def _post(self, kwargs: dict[str, Any]) -> bytes:
        """POST one chat completion; the raw body of its HTTP 200 (time spent counted in stats["http_s"])."""
        th = time.perf_counter()
        try:
            raw = await self._aclient.chat.completions.with_raw_response.create(**kwargs)
            return raw.http_response.content
        finally:
            self.stats["http_s"] += time.perf_counter() - th

    def _read_paid(self, body: bytes, projected: int, paid: list[tuple[dict[str, int], float]]
                   ) -> tuple[dict[str, Any] | None, str]:
        """The parsed answer of an HTTP 200 (None and the reason when its body is unusable); either way the call
        is paid: its usage (estimated when unreadable) and cost go into `paid` and the ledger."""
        try:
            data = json.loads(body)
        except ValueError as e:
            data, why = None, f"unusable response (HTTP 200): not JSON ({e})"
        parsed = None
        if data is not None:
            try:
                parsed = _parse_response(data)
                why = ""
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                why = f"unusable response (HTTP 200): {e}"
        usage = parsed["usage"] if parsed is not None else \
            read_usage(data.get("usage")) if isinstance(data, dict) else None
        paid.append(self.ledger.settle(usage, projected))
        if parsed is not None:
            parsed["usage"] = paid[-1][0]
        return parsed, redact(why)

    def _succeed(self, key: str, req_json: str, parsed: dict[str, Any], t0: float, attempts: int,
                 cache: Cache | None, paid: list[tuple[dict[str, int], float]]) -> ChatResult:
        """The result of an answered request (its cost: every paid call it took), cached and logged."""
        latency = time.perf_counter() - t0
        u = parsed["usage"]
        inp, out, cost = _paid_totals(paid)
        res = ChatResult(text=parsed["text"], texts=parsed.get("texts"), top_logprobs=parsed["top_logprobs"],
                         cached=False, error=None, input_tokens=inp, output_tokens=out, cost_usd=cost,
                         finish_reason=parsed["finish_reason"], latency_s=latency, response=parsed)
        self.stats["requests_sent"] += 1
        if cache is not None:
            cache.put(key, self.identity, req_json, canonical_json(parsed), input_tokens=u["input"],
                      output_tokens=u["output"], cost_usd=cost, latency_s=latency, attempts=attempts,
                      run_id=self.run_id)
        return res

    def _fail(self, key: str, err: str, t0: float, attempts: int, cache: Cache | None,
              paid: list[tuple[dict[str, int], float]] | None = None, invalid: bool = False) -> ChatResult:
        """The result of a request that failed (or whose paid answers were unusable: `invalid`), logged."""
        err = redact(err)
        latency = time.perf_counter() - t0
        inp, out, cost = _paid_totals(paid or [])
        self.stats["invalid" if invalid else "errors"] += 1
        self.stats["requests_sent"] += 1
        if cache is not None:
            cache.log_error(key, self.identity, err, latency_s=latency, attempts=attempts, run_id=self.run_id,
                            input_tokens=inp, output_tokens=out, cost_usd=cost)
        return ChatResult(text=None, top_logprobs=None, cached=False, error=err, latency_s=latency,
                          input_tokens=inp, output_tokens=out, cost_usd=cost, invalid=err if invalid else None)


def _paid_totals(paid: list[tuple[dict[str, int], float]]) -> tuple[int, int, float]:
    """Input tokens, output tokens and USD of a request's paid calls (each HTTP 200 it took)."""
    return (sum(u["input"] for u, _ in paid), sum(u["output"] for u, _ in paid), sum(c for _, c in paid))


def _hit_result(hit: tuple[str, int, int]) -> ChatResult:
    """A ChatResult from a cache row given as the (response json, input tokens, output tokens) tuple."""
    return cached_result(*hit)


def _public(url: str) -> str:
    """A URL for messages: user:password@ dropped (never print credentials)."""
    head, sep, rest = url.partition("//")
    netloc, slash, path = rest.partition("/")
    return redact(head + sep + netloc.rpartition("@")[2] + slash + path)


class _BudgetStop(Exception):
    """A budget (requests, time) left no room for a further HTTP request of a request in flight."""


class _Fatal(Exception):
    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.exc = exc


def _err_msg(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        m = inner.get("message") if isinstance(inner, dict) else body.get("message")
        if m:
            return redact(str(m))[:200]
    return redact(str(getattr(e, "message", e)))[:200]


def request_key_from_json(j: str) -> str:
    import hashlib

    return hashlib.sha256(j.encode("utf-8")).hexdigest()


__all__ = ["LLMClient", "ChatRequest", "ChatResult", "BudgetExceeded", "request_key"]
