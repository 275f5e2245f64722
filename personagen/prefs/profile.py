"""Persona profiles for role-play, and PERSONA's LLM demographic-consistency filter.

PERSONA (Castricato et al. 2024, §3.1) writes each persona as a dictionary of attributes (Appendix C) and, on top
of the sampling rules, "query[s] GPT-4 to further filter out inconsistent ones, removing approximately 8.5% of
configurations". `attributes` gives the dictionary, `profile_text` renders it (templates/prefs/persona.j2), and
`consistency_filter` is the judge. It fails closed: a verdict that says neither CONSISTENT nor INCONSISTENT is
retried with a new seed and then rejected, and every rejection is counted by reason (the attribute the judge
named, "unnamed", or "unparsed").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from personagen.prefs import calls

# Library bookkeeping columns that are not part of who the persona is.
_NOT_ATTRIBUTES = {"persona_id", "source", "mode", "enriched", "weight_census", "pwgtp", "weight",
                   "enrich_consistent", "serialno", "sporder", "puma", "st"}


def _label(column: str) -> str:
    if column.startswith("big5_"):  # "big5_openness_level" -> "openness" (Appendix C: "Openness: High")
        column = column.removeprefix("big5_").removesuffix("_level")
    return column.removeprefix("trait_").replace("_", " ").strip()


def attributes(row: dict[str, Any]) -> dict[str, str]:
    """The persona's attributes as {label: value} (Appendix C's dictionary), nulls and bookkeeping left out."""
    out: dict[str, str] = {}
    for k, v in row.items():
        if k in _NOT_ATTRIBUTES or k.startswith(("text_", "_")) or k.endswith("_code") or v is None:
            continue
        if f"{k}_level" in row and row[f"{k}_level"] is not None:  # Appendix C gives levels, not raw scores
            continue
        if isinstance(v, float):
            if math.isnan(v):
                continue
            v = round(v, 1)
        s = str(v).strip()
        if s:
            out[_label(k)] = s
    return out


def profile_text(attrs: dict[str, str], templates: Any = None) -> str:
    """The persona profile shown to the role-playing model (templates/prefs/persona.j2)."""
    return calls.prompt("persona.j2", templates, attributes=attrs)


def persona_profiles(personas: pl.DataFrame, style: str = "attributes", templates: Any = None) -> dict[str, str]:
    """{persona_id: profile}: the attribute dictionary (paper default) or a rendered text column (`text_<style>`)."""
    out = {}
    col = f"text_{style}"
    for row in personas.iter_rows(named=True):
        if style != "attributes" and row.get(col):
            out[row["persona_id"]] = str(row[col])
        else:
            out[row["persona_id"]] = profile_text(attributes(row), templates)
    return out


@dataclass
class ConsistencyResult:
    """Per-persona verdicts of the demographic consistency judge, and rejections counted by reason."""

    verdicts: pl.DataFrame  # persona_id, consistent (bool), reason (str | None)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    @property
    def kept(self) -> list[str]:
        return self.verdicts.filter(pl.col("consistent"))["persona_id"].to_list()

    def to_dict(self) -> dict[str, Any]:
        n = self.verdicts.height
        rej = n - len(self.kept)
        return {"judged": n, "rejected": rej, "rejection_rate": round(rej / n, 4) if n else 0.0,
                "rejected_by_reason": self.rejected_by_reason, "calls": self.calls}


def parse_consistency(text: str | None, labels: list[str]) -> tuple[str, str | None]:
    """Judge reply → ("consistent" | "inconsistent" | "unparsed", named attribute or None)."""
    if not text:
        return "unparsed", None
    t = text.strip().lower()
    if re.search(r"\binconsistent\b|\bnot consistent\b", t):
        named = next((lab for lab in sorted(labels, key=len, reverse=True) if lab.lower() in t), None)
        return "inconsistent", named
    if re.search(r"\bconsistent\b", t):
        return "consistent", None
    return "unparsed", None


def consistency_filter(personas: pl.DataFrame, client: Any, *, max_retries: int = 1,
                       templates: Any = None) -> ConsistencyResult:
    """§3.1's LLM filter of inconsistent demographic profiles, failing closed (see module doc)."""
    rows = personas.to_dicts()
    attrs = [attributes(r) for r in rows]
    verdict: list[tuple[str, str | None]] = [("unparsed", None)] * len(rows)
    todo, n_calls = list(range(len(rows))), 0
    for attempt in range(max_retries + 1):
        reqs = [calls.chat(calls.prompt("consistency.j2", templates, attributes=attrs[i]), max_tokens=24,
                           temperature=0.0 if attempt == 0 else 0.7,
                           seed=calls.seed_of("consistency", rows[i]["persona_id"], attempt)) for i in todo]
        n_calls += len(reqs)
        for i, text in zip(todo, calls.texts(client, reqs, desc="prefs-consistency")):
            verdict[i] = parse_consistency(text, list(attrs[i]))
        todo = [i for i in todo if verdict[i][0] == "unparsed"]
        if not todo:
            break
    reasons: dict[str, int] = {}
    out = []
    for r, (v, named) in zip(rows, verdict):
        reason = None if v == "consistent" else ("unparsed" if v == "unparsed" else (named or "unnamed"))
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
        out.append({"persona_id": r["persona_id"], "consistent": v == "consistent", "reason": reason})
    frame = pl.DataFrame(out, schema={"persona_id": pl.String, "consistent": pl.Boolean, "reason": pl.String})
    return ConsistencyResult(frame, dict(sorted(reasons.items())), n_calls)
