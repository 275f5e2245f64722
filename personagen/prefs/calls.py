"""Model access for the prefs stage: request building, stable seeds and text results over personagen.llm.

Every call goes through `personagen.llm.LLMClient` (SQLite cache, retries, accounting), so a rerun of the
same plan is answered from the cache and pays nothing twice. Stages take an already-open client.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from personagen.llm import ChatRequest, LLMClient
from personagen.templating import render


def seed_of(*parts: object) -> int:
    """A stable 31-bit seed from arbitrary parts (same inputs → same request → cache hit)."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def chat(user: str, *, system: str | None = None, temperature: float = 0.0, max_tokens: int = 128,
         seed: int | None = None) -> ChatRequest:
    """One chat request from an optional system text and a user text."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return ChatRequest(messages=messages, temperature=temperature, max_tokens=max_tokens, seed=seed)


def prompt(name: str, templates: str | os.PathLike | None = None, **ctx: object) -> str:
    """Render templates/prefs/<name> (or the user's --templates folder first)."""
    return render(f"prefs/{name}", templates, **ctx).strip()


def texts(client: Any, requests: Sequence[ChatRequest], desc: str) -> list[str | None]:
    """Run requests; each result's text, None for an error or an empty reply."""
    if not requests:
        return []
    out: list[str | None] = []
    for r in client.run(list(requests), desc=desc):
        t = getattr(r, "text", None)
        out.append(t.strip() if (t and t.strip() and not getattr(r, "error", None)) else None)
    return out


@contextlib.contextmanager
def open_client(backend: str, *, base_url: str | None, model: str | None, cache_path: os.PathLike | str,
                concurrency: int = 4, client: Any = None) -> Iterator[Any]:
    """Yield `client` when given (tests, evaluations sharing one), else a new LLMClient as a context manager."""
    if client is not None:
        yield client
        return
    with LLMClient.create(backend=backend, base_url=base_url, model=model, cache_path=cache_path,
                          concurrency=concurrency) as c:
        yield c


def stats(client: Any) -> dict:
    """The client's usage counters (requests_sent, cache_hits, tokens, cost)."""
    s = getattr(client, "stats", None)
    return dict(s) if isinstance(s, dict) else {}


def model_of(client: Any) -> str:
    return str(getattr(client, "model_name", "unknown"))
