"""Model access for the prefs stage, over personagen.llm's batched-call helpers.

Every call goes through `personagen.llm.LLMClient` (SQLite cache, retries, accounting), so a rerun of the
same plan is answered from the cache and pays nothing twice. The stage takes an already-open client.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from personagen import llm
from personagen.llm import ChatRequest, open_client, seed_of  # noqa: F401
from personagen.llm import client_stats as stats  # noqa: F401  (re-exported for the stage)
from personagen.llm import model_name as model_of  # noqa: F401

chat = llm.request  # one chat request from an optional system text and a user text


def prompt(name: str, templates: str | os.PathLike | None = None, **ctx: object) -> str:
    """Render templates/prefs/<name> (or the user's --templates folder first)."""
    return llm.prompt(f"prefs/{name}", templates, **ctx).strip()


def texts(client: Any, requests: Sequence[ChatRequest], desc: str) -> list[str | None]:
    """Run requests; each result's stripped text, None for an error or a blank reply."""
    return [t.strip() if t and t.strip() else None for t in llm.texts(client, requests, desc)]
