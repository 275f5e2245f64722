"""Shared helpers for the enrich / endow / mixture tests: a real client on a scripted loopback server, fixtures."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
from loopback import LoopbackServer

from personagen import Library
from personagen.llm import LLMClient
from personagen.surveys import Survey

Reply = Callable[[str, str, dict], "str | None"]


@contextlib.contextmanager
def scripted_client(tmp_path: Path, reply: Reply, *, max_retries: int = 1,
                    concurrency: int = 4) -> Iterator[tuple[LLMClient, LoopbackServer]]:
    """A real LLMClient (SQLite cache at tmp_path/llm.sqlite, retries, accounting) talking to a real
    OpenAI-format server on loopback whose replies are scripted: `reply(user_text, system_text, body)` gets
    the last user message, the system message ("" if none) and the whole request JSON (seed, temperature,
    ...). None or an exception answers HTTP 500 (retried `max_retries` times, then an error result)."""

    def responder(body: dict) -> str | None:
        msgs = body.get("messages") or []
        system = next((m["content"] for m in msgs if m.get("role") == "system"), "")
        user = msgs[-1]["content"] if msgs else ""
        return reply(user, system, body)

    with LoopbackServer(model="scripted", responder=responder) as srv:
        client = LLMClient.create(backend="openai", base_url=srv.base_url, model=srv.model,
                                  cache_path=tmp_path / "llm.sqlite", concurrency=concurrency, progress=False,
                                  max_retries=max_retries)
        client.backoff_base = 0.001  # scripted 500s retry at once
        with client:
            yield client, srv


def census_library(path: Path, n: int = 4) -> Library:
    """A small library of census-like personas with narratives."""
    lib = Library.init(path, seed=0)
    rows = []
    for i in range(n):
        rows.append({
            "persona_id": f"p{i:03d}", "source": "census", "mode": None, "enriched": False,
            "weight_census": 1.0 / n, "age": 30 + 7 * i, "sex": "Female" if i % 2 else "Male",
            "state": "Vermont", "occupation": ["teacher", "farmer", "nurse", "welder"][i % 4],
            "text_narrative": f"You are a {30 + 7 * i}-year-old {'woman' if i % 2 else 'man'} living in "
                              f"Vermont who works as a {['teacher', 'farmer', 'nurse', 'welder'][i % 4]}.",
        })
    df = pl.DataFrame(rows, schema_overrides={"mode": pl.String, "weight_census": pl.Float64})
    lib.write_personas(df)
    return lib


def small_survey(n_questions: int = 4, split: str = "train") -> Survey:
    qs = []
    texts = ["Should the government do more to reduce income inequality?",
             "How much do you trust scientists?",
             "Is the national economy getting better or worse?",
             "How often do you attend religious services?",
             "Do you favour stricter gun laws?"]
    for i in range(n_questions):
        opts = ["Yes", "No"] if i % 2 == 0 else ["A lot", "Some", "Not at all"]
        share = 1 / len(opts)
        qs.append({"qid": f"Q{i + 1}", "question": texts[i % len(texts)], "options": opts,
                   "ordinal": list(range(1, len(opts) + 1)), "split": split if isinstance(split, str) else split[i],
                   "targets": {"overall": {o: share for o in opts}}})
    return Survey.from_records("toy", qs)
