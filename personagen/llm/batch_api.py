"""The OpenAI Batch API backend (``--backend openai-batch``): half-price, provider-side scale, resumable.

The requests a run still needs (after the SQLite cache and in-run deduplication) are written as JSONL
request files within the provider's limits (50,000 requests and 200 MB per file), uploaded to the files
endpoint (purpose "batch") and submitted as batches against /v1/chat/completions with a 24 h completion
window. The client then polls every open batch with exponential backoff, downloads each finished batch's
output and error files and maps every line's ``custom_id`` (the request's cache key, a sha256) back to the
requests, hence to (persona, question).

Resumable: each input file is recorded in LIB/llm.sqlite (table ``batches``, with its requests in
``batch_requests``) before its batch is created, and the batch id right after; a killed run's next run finds
the open batches (a file recorded without a batch id is looked up in the provider's batch list first) and
polls them instead of submitting again. A batch's results are cached, its failures logged and the batch
marked collected in one transaction, so results land in the same cache as the online path and a rerun
never asks a finished answer again. An expired batch's unfinished requests (error code ``batch_expired``,
or no line at all) are submitted again, only those; other failed lines are error results (a rerun retries
them). Costs use the price table at batch prices (each model's ``batch`` multiplier, default 0.5).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from personagen.errors import BadInput, PersonagenError
from personagen.llm.cache import Cache
from personagen.llm.client import (
    BudgetExceeded,
    ChatRequest,
    ChatResult,
    LLMClient,
    _api_key,
    _err_msg,
        _parse_response,
    chat_body,
    request_from_json,
)

ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
MAX_FILE_REQUESTS = 50_000  # the provider's limits for one batch input file
MAX_FILE_BYTES = 200 * 1024 * 1024
POLL_ENV = "PERSONAGEN_BATCH_POLL"  # "FIRST[,MAX]" seconds between status checks
TERMINAL = ("completed", "failed", "expired", "cancelled")
RESUBMIT_CODES = ("batch_expired",)


@dataclass(frozen=True)
class BatchOptions:
    """Request-file limits and the polling schedule (first wait, doubling up to the longest wait)."""

    max_file_requests: int = MAX_FILE_REQUESTS
    max_file_bytes: int = MAX_FILE_BYTES
    poll_first_s: float = 10.0
    poll_max_s: float = 300.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_file_requests <= MAX_FILE_REQUESTS:
            raise BadInput(f"max_file_requests {self.max_file_requests}: must be 1..{MAX_FILE_REQUESTS}")
        if not 1024 <= self.max_file_bytes <= MAX_FILE_BYTES:
            raise BadInput(f"max_file_bytes {self.max_file_bytes}: must be 1024..{MAX_FILE_BYTES}")
        if not 0 < self.poll_first_s <= self.poll_max_s:
            raise BadInput(f"{POLL_ENV}: need 0 < first wait <= longest wait (got {self.poll_first_s}, "
                           f"{self.poll_max_s})")

    @classmethod
    def from_env(cls) -> BatchOptions:
        """Defaults, with the polling schedule from $PERSONAGEN_BATCH_POLL ("FIRST[,MAX]" seconds) if set."""
        env = os.environ.get(POLL_ENV)
        if not env:
            return cls()
        first, _, most = env.partition(",")
        try:
            return cls(poll_first_s=float(first), poll_max_s=float(most or first))
        except ValueError:
            raise BadInput(f"{POLL_ENV}={env!r}: expected FIRST[,MAX] seconds") from None


@dataclass
class _Outcome:
    """What one finished batch gave: parsed responses, failures, and requests to submit again."""

    done: dict[str, dict] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)


def _line_error(resp: dict, err: dict | None) -> str:
    """One line's failure as text: the error object's code/message, else the response's status and message."""
    if err:
        return f"{err.get('code') or 'error'}: {err.get('message') or ''}".strip()
    body = resp.get("body") or {}
    inner = body.get("error") if isinstance(body, dict) else None
    msg = inner.get("message") if isinstance(inner, dict) else str(body)[:200]
    return f"HTTP {resp.get('status_code')}: {msg}"


def _batch_error(batch: Any) -> str:
    """Why a terminal batch left requests without a line (validation errors, cancellation, lost lines)."""
    errs = getattr(getattr(batch, "errors", None), "data", None) or []
    if errs:
        e = errs[0]
        return f"batch {batch.status}: {getattr(e, 'code', '')}: {getattr(e, 'message', '')}"
    return f"batch {batch.status}: request missing from its output"


class BatchClient(LLMClient):
    """LLMClient whose requests go through the provider's Batch API (see module doc). Same keys, cache,
    results and budgets as the online client; `run_iter` yields results as whole batches finish."""

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self.prices = self.prices.batch_prices()
        self.options = BatchOptions.from_env()
        self.stats.update(batches_submitted=0, batches_resumed=0, batches_resubmitted=0)
        self._sync: Any = None

    @property
    def endpoint(self) -> str:
        """The base URL without credentials: which provider a recorded batch belongs to."""
        u = urllib.parse.urlsplit(self.base_url or "")
        netloc = (u.hostname or "") + (f":{u.port}" if u.port else "")
        return urllib.parse.urlunsplit((u.scheme, netloc, u.path, "", ""))

    def start(self) -> None:
        """The online client's start (used for the model check) plus a synchronous client for files/batches."""
        super().start()
        if self._sync is None:
            import openai

            self._sync = openai.OpenAI(api_key=_api_key(self.base_url or ""), base_url=self.base_url,
                                       max_retries=self.max_retries, timeout=self.timeout)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        super().close()

    # ---- running --------------------------------------------------------------------------------------
    def run_iter(self, requests: Sequence[ChatRequest], desc: str = "llm") -> Iterator[tuple[int, ChatResult]]:
        """Yield (index, result): cache hits first, then each batch's results as it finishes. Raises
        BudgetExceeded at the end when a budget held requests back (they were not submitted)."""
        import openai
        from tqdm import tqdm

        self.start()
        cache = self._open_cache()
        cached, where, jsons = self.plan(requests)
        bar = tqdm(total=len(requests), desc=desc, unit="req", file=sys.stderr, dynamic_ncols=True,
                   disable=not (self.progress and sys.stderr.isatty()))
        budget = None
        try:
            bar.update(len(cached))
            yield from cached
            if not where:
                return
            self._call(self._preflight())
            open_ = self._resume(cache)
            in_flight = {k for f, _ in open_ for k in cache.batch_requests(f)}
            todo, budget = self.take_within_budget({k: jsons[v[0]] for k, v in where.items() if k not in in_flight})
            open_ += self._submit(cache, todo)
            for i, res in self._poll(cache, dict(open_), where):
                bar.update(1)
                yield i, res
        except openai.AuthenticationError:
            raise BadInput(f"{self.endpoint} rejected the API key (check OPENAI_API_KEY)") from None
        except openai.APIError as e:
            raise PersonagenError(f"batch API at {self.endpoint}: {type(e).__name__}: {_err_msg(e)}") from None
        finally:
            bar.close()
        if budget:
            raise BudgetExceeded(budget)

    # ---- submitting -----------------------------------------------------------------------------------
    def _submit(self, cache: Cache, todo: dict[str, str]) -> list[tuple[str, str]]:
        """Pack `todo` ({key: request json}) into request files within the limits; upload, record, create."""
        out: list[tuple[str, str]] = []
        chunk: dict[str, str] = {}
        lines: list[bytes] = []
        size = 0
        for k, rj in todo.items():
            line = (json.dumps({"custom_id": k, "method": "POST", "url": ENDPOINT,
                                "body": chat_body(self.model, request_from_json(rj))}, ensure_ascii=False)
                    + "\n").encode("utf-8")
            if len(line) > self.options.max_file_bytes:
                raise PersonagenError(f"one request is {len(line)} bytes, over the batch file limit")
            if chunk and (len(chunk) >= self.options.max_file_requests
                          or size + len(line) > self.options.max_file_bytes):
                out.append(self._submit_file(cache, chunk, b"".join(lines)))
                chunk, lines, size = {}, [], 0
            chunk[k] = rj
            lines.append(line)
            size += len(line)
        if chunk:
            out.append(self._submit_file(cache, chunk, b"".join(lines)))
        return out

    def _submit_file(self, cache: Cache, chunk: dict[str, str], data: bytes) -> tuple[str, str]:
        f = self._sync.files.create(file=("personagen-batch.jsonl", data, "application/jsonl"), purpose="batch")
        cache.add_batch_file(f.id, self.endpoint, self.identity, chunk)  # before the batch exists
        batch_id = self._create(f.id)
        cache.set_batch_id(f.id, batch_id)
        return f.id, batch_id

    def _create(self, file_id: str) -> str:
        b = self._sync.batches.create(input_file_id=file_id, endpoint=ENDPOINT, completion_window=COMPLETION_WINDOW,
                                      metadata={"source": "personagen", "model": self.identity})
        self.stats["batches_submitted"] += 1
        return b.id

    def _resume(self, cache: Cache) -> list[tuple[str, str]]:
        """This endpoint's and model's open batches; a file recorded without a batch id (killed between
        upload and create) is matched in the provider's batch list, else its batch is created now."""
        out = []
        for file_id, batch_id in cache.open_batches(self.endpoint, self.identity):
            if batch_id is None:
                batch_id = next((b.id for b in self._sync.batches.list(limit=100) if b.input_file_id == file_id),
                                None) or self._create(file_id)
                cache.set_batch_id(file_id, batch_id)
            out.append((file_id, batch_id))
        self.stats["batches_resumed"] += len(out)
        return out

    # ---- polling and collecting -----------------------------------------------------------------------
    def _poll(self, cache: Cache, pending: dict[str, str], where: dict[str, list[int]]
              ) -> Iterator[tuple[int, ChatResult]]:
        """Check every open batch, collect the finished ones, wait (doubling, jittered), until none is open."""
        delay = self.options.poll_first_s
        while pending:
            finished = False
            for file_id, batch_id in list(pending.items()):
                b = self._sync.batches.retrieve(batch_id)
                if b.status not in TERMINAL:
                    continue
                finished = True
                del pending[file_id]
                reqs = cache.batch_requests(file_id)
                outcome = self._read(b, reqs)
                yield from self.record_outcome(
                    outcome.done, outcome.failed, reqs, where,
                    lambda d, f, fid=file_id: cache.collect_batch(fid, self.identity, d, f, self.run_id))
                if outcome.unfinished:
                    self.stats["batches_resubmitted"] += 1
                    pending.update(self._submit(cache, {k: reqs[k] for k in outcome.unfinished}))
            if pending and not finished:
                time.sleep(delay * random.uniform(0.8, 1.0))
                delay = min(delay * 2, self.options.poll_max_s)

    def _lines(self, file_id: str | None) -> list[dict]:
        if not file_id:
            return []
        text = self._sync.files.content(file_id).text
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def _read(self, batch: Any, reqs: dict[str, str]) -> _Outcome:
        """Sort a terminal batch's lines (output and error files) into done / failed / to submit again."""
        out = _Outcome()
        for line in self._lines(batch.output_file_id) + self._lines(batch.error_file_id):
            k = line.get("custom_id")
            if k not in reqs or k in out.done:
                continue
            resp, err = line.get("response") or {}, line.get("error")
            if resp.get("status_code") == 200 and not err:
                try:
                    out.done[k] = _parse_response(resp.get("body") or {})
                    out.failed.pop(k, None)
                except (ValueError, KeyError, TypeError) as e:
                    out.failed[k] = f"malformed response: {e}"
            elif err and err.get("code") in RESUBMIT_CODES:
                out.unfinished.append(k)
            else:
                out.failed[k] = _line_error(resp, err)
        seen = set(out.done) | set(out.failed) | set(out.unfinished)
        rest = [k for k in reqs if k not in seen]
        if batch.status == "expired":
            out.unfinished += rest
        else:
            out.failed.update({k: _batch_error(batch) for k in rest})
        return out


__all__ = ["BatchClient", "BatchOptions", "ENDPOINT", "COMPLETION_WINDOW", "MAX_FILE_REQUESTS", "MAX_FILE_BYTES"]
