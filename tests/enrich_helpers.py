"""Shared helpers for the enrich / endow / mixture tests: a scripted fake client and tiny fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import polars as pl

from personagen.library import Library
from personagen.surveys import Survey


class FakeClient:
    """Stands in for personagen.llm.LLMClient: `reply(user_text, system_text, request)` scripts the output."""

    model_name = "fake"

    def __init__(self, reply: Callable[[str, str, object], str | None]):
        self.reply = reply
        self.calls: list[tuple[str, str]] = []
        self.stats = {"requests_sent": 0}

    def run(self, requests: list, desc: str = "llm") -> list:
        out = []
        for r in requests:
            sys_ = next((m["content"] for m in r.messages if m["role"] == "system"), "")
            user = r.messages[-1]["content"]
            self.calls.append((desc, user))
            self.stats["requests_sent"] += 1
            try:
                text = self.reply(user, sys_, r)
                out.append(SimpleNamespace(text=text, error=None if text is not None else "boom"))
            except Exception as e:  # noqa: BLE001 - a scripted failure becomes an error result
                out.append(SimpleNamespace(text=None, error=str(e)))
        return out

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *a: object) -> None:
        return None


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
