"""Batched calls for the stages that write text with a model (enrich, endow, mixture).

Stages take an already-created client (anything with `.run(requests, desc=...)` returning results with
`.text` and `.error`); `open_client` creates the real one (an LLMClient used as a context manager).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

from personagen.llm.client import ChatRequest, LLMClient
from personagen.templating import render


def seed_of(*parts: object) -> int:
    """A stable 31-bit seed from arbitrary parts (same inputs → same request → cache hit)."""
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def request(user: str, *, system: str | None = None, temperature: float = 0.0, max_tokens: int = 128,
            seed: int | None = None, stop: list[str] | None = None) -> ChatRequest:
    """Build a ChatRequest from a system and user text."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return ChatRequest(messages=messages, temperature=temperature, max_tokens=max_tokens, seed=seed, stop=stop)


def prompt(name: str, templates: str | os.PathLike | None = None, **ctx: object) -> str:
    """Render a prompt template (templates/<name>, or the user's --templates folder first)."""
    return render(name, templates, **ctx)


def texts(client: Any, requests: Sequence[Any], desc: str) -> list[str | None]:
    """Run requests; return each result's text (None for an error or empty reply)."""
    if not requests:
        return []
    results = client.run(list(requests), desc=desc)
    out: list[str | None] = []
    for r in results:
        t = getattr(r, "text", None)
        out.append(t if (t and not getattr(r, "error", None)) else None)
    return out


@contextlib.contextmanager
def open_client(backend: str, *, base_url: str | None = None, model: str | None = None,
                cache_path: str | os.PathLike | None = None, client: Any = None, **kw: Any) -> Iterator[Any]:
    """Yield `client` if given, else an LLMClient.create(...) used as a context manager."""
    if client is not None:
        yield client
        return
    c = LLMClient.create(backend=backend, base_url=base_url, model=model, cache_path=cache_path, **kw)
    with c:
        yield c


def client_stats(client: Any) -> dict:
    """The client's usage counters (empty dict for fakes without them)."""
    s = getattr(client, "stats", None)
    return dict(s) if isinstance(s, dict) else {}


def model_name(client: Any) -> str:
    """The model name a client reports (for the manifest history)."""
    return str(getattr(client, "model_name", "unknown"))
