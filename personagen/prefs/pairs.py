"""PERSONA preference pairs by Direct Principle Feedback (Castricato et al. 2024, §3.2 "Preference Dataset
Curation", Fig. 4, Appendix B).

For each pair, a prompt x_i and a persona p_i are drawn *independently* (the paper's deliberate design: no
topic-demographic correlation to learn). The rejected answer is y_i^l ~ π(y | x_i), the model answering the
question alone (the "representative user"); the chosen answer is the DPF rewrite y_i^w ~ π(y | y_i^l, x_i, p_i, r):
a critique of y_i^l in the persona's shoes (Appendix B critique prompt) followed by a revision that follows the
critique without naming the persona's attributes (Appendix B revision prompt). The tuple is p_i, x_i, y^w ≻ y^l.

Split (§3.2): per persona, K = 150 prompts from the train prompts, of which 100 are `train` pairs and 50 are
`test_seen` pairs (prompts other personas train on), plus 50 prompts from the held-out prompts (`test_unseen`).
A pair whose base answer, critique or revision is empty, or whose revision equals the base answer, is retried
with a new seed (`max_retries`) and then dropped and counted by reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from personagen.errors import BadInput
from personagen.prefs import calls

PAIR_SCHEMA: dict[str, Any] = {
    "persona_id": pl.String, "prompt_id": pl.String, "prompt": pl.String, "topic": pl.String, "split": pl.String,
    "persona": pl.String, "rejected": pl.String, "chosen": pl.String, "critique": pl.String,
    "model_rejected": pl.String, "model_chosen": pl.String,
}
SPLITS = ("train", "test_seen", "test_unseen")
DROP_REASONS = ("base_empty", "critique_empty", "revision_empty", "revision_identical")


@dataclass(frozen=True)
class PairOptions:
    """How many pairs per persona (§3.2 defaults) and how the DPF calls are sampled."""

    personas: int | None = None  # personas drawn from the library (None: all)
    per_persona: int = 150  # prompts per persona from the train prompts (§3.2)
    train_per_persona: int = 100  # of those, `train` pairs; the rest are `test_seen` (§3.2)
    heldout_per_persona: int = 50  # prompts per persona from the held-out prompts, `test_unseen` (§3.2)
    seed: int = 0
    answer_tokens: int = 256
    critique_tokens: int = 256
    base_temperature: float = 0.7
    base_per_prompt: bool = False  # share one base answer per prompt (cheaper; the paper samples one per pair)
    max_retries: int = 1
    chunk: int = 256  # pairs written per step (a killed run loses at most one chunk; the cache keeps its calls)

    def __post_init__(self) -> None:
        if self.personas is not None and self.personas < 1:
            raise BadInput(f"--personas {self.personas}: must be >= 1")
        if self.per_persona < 0 or self.heldout_per_persona < 0:
            raise BadInput("--per-persona / --heldout-per-persona: must be >= 0")
        if not 0 <= self.train_per_persona <= self.per_persona:
            raise BadInput(f"--train-per-persona {self.train_per_persona}: must be in [0, --per-persona]")
        if self.answer_tokens < 8 or self.critique_tokens < 8:
            raise BadInput("--answer-tokens / --critique-tokens: must be >= 8")
        if self.max_retries < 0 or self.chunk < 1:
            raise BadInput("--max-retries must be >= 0 and chunk >= 1")
        if not 0.0 <= self.base_temperature <= 2.0:
            raise BadInput(f"--base-temperature {self.base_temperature}: must be in [0, 2]")


@dataclass
class PairsResult:
    """What one run produced: pairs written (new and total), drops by reason, per-split counts, usage."""

    new_pairs: int
    total_pairs: int
    planned: int
    dropped: dict[str, int] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    llm: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sample_personas(ids: list[str], n: int | None, seed: int) -> list[str]:
    """n persona ids drawn uniformly without replacement (all when n is None or ≥ the library)."""
    if n is None or n >= len(ids):
        return list(ids)
    rng = np.random.default_rng([seed, 1])
    return [ids[i] for i in sorted(rng.choice(len(ids), size=n, replace=False))]


def plan_pairs(persona_ids: list[str], prompts: pl.DataFrame, opts: PairOptions) -> pl.DataFrame:
    """§3.2 sampling: per persona, prompts drawn independently of who the persona is (a seed per persona id).

    Returns persona_id, prompt_id, prompt, topic, split for every planned pair."""
    train = prompts.filter(pl.col("split") == "train")
    held = prompts.filter(pl.col("split") == "heldout")
    k, h = min(opts.per_persona, train.height), min(opts.heldout_per_persona, held.height)
    n_train = min(opts.train_per_persona, k)
    rows = []
    for pid in persona_ids:
        rng = np.random.default_rng([opts.seed, calls.seed_of("plan", pid)])
        for j, i in enumerate(rng.choice(train.height, size=k, replace=False)):
            rows.append((pid, int(i), "train" if j < n_train else "test_seen", train))
        for i in rng.choice(held.height, size=h, replace=False):
            rows.append((pid, int(i), "test_unseen", held))
    out = [{"persona_id": pid, "prompt_id": src["prompt_id"][i], "prompt": src["prompt"][i],
            "topic": src["topic"][i], "split": split} for pid, i, split, src in rows]
    return pl.DataFrame(out, schema={c: PAIR_SCHEMA[c] for c in ("persona_id", "prompt_id", "prompt", "topic",
                                                                "split")})


def parse_revision(text: str | None) -> str | None:
    """Appendix B format "REVISED PREFERENCE: ... DONE" → the revised answer (the whole reply if unlabelled)."""
    if not text:
        return None
    m = re.search(r"revised preference\s*:\s*", text, re.I)
    body = text[m.end():] if m else text
    body = re.split(r"\n?\s*\bDONE\b\s*$", body.strip())[0]
    body = body.strip().strip("\"'").strip()
    return body or None


def parse_critique(text: str | None) -> str | None:
    """Appendix B format "EVALUATION: ... SUGGESTIONS: ... DONE" → the critique text (without DONE)."""
    if not text:
        return None
    body = re.split(r"\n?\s*\bDONE\b\s*$", text.strip())[0].strip()
    return body or None


def _norm(s: str) -> str:
    return re.sub(r"\W+", " ", s).strip().lower()


def base_requests(todo: list[dict], opts: PairOptions) -> list[Any]:
    """y^l ~ π(y | x): the question alone, no persona (one sample per pair, or per prompt if base_per_prompt)."""
    return [calls.chat(p["prompt"], temperature=opts.base_temperature, max_tokens=opts.answer_tokens,
                       seed=calls.seed_of("base", opts.seed, p["prompt_id"],
                                          "" if opts.base_per_prompt else p["persona_id"])) for p in todo]


def _dpf(todo: list[dict], client: Any, opts: PairOptions, templates: Any, attempt: int) -> None:
    """One critique + revision round (Appendix B) for pairs that have a base answer; fills critique/chosen."""
    temp = 0.0 if attempt == 0 else 0.7
    crit = [calls.chat(calls.prompt("critique.j2", templates, completion=p["rejected"], persona=p["persona"],
                                    instruction=p["prompt"]), temperature=temp, max_tokens=opts.critique_tokens,
                       seed=calls.seed_of("critique", p["persona_id"], p["prompt_id"], attempt)) for p in todo]
    for p, text in zip(todo, calls.texts(client, crit, desc="prefs-critique")):
        p["critique"] = parse_critique(text)
    ok = [p for p in todo if p["critique"]]
    rev = [calls.chat(calls.prompt("revise.j2", templates, completion=p["rejected"], instruction=p["prompt"],
                                   critique=p["critique"]), temperature=temp, max_tokens=opts.answer_tokens,
                      seed=calls.seed_of("revise", p["persona_id"], p["prompt_id"], attempt)) for p in ok]
    for p, text in zip(ok, calls.texts(client, rev, desc="prefs-revise")):
        p["chosen"] = parse_revision(text)


def why_dropped(p: dict) -> str | None:
    """The drop reason of a pair dict (DROP_REASONS), None when it is a usable pair."""
    if not p.get("rejected"):
        return "base_empty"
    if not p.get("critique"):
        return "critique_empty"
    if not p.get("chosen"):
        return "revision_empty"
    if _norm(p["chosen"]) == _norm(p["rejected"]):
        return "revision_identical"
    return None


def dpf_rewrite(todo: list[dict], client: Any, opts: PairOptions, templates: Any = None) -> None:
    """Critique + revise every pair dict (keys persona_id, prompt_id, prompt, persona, rejected), retrying a
    failed pair with a new seed up to opts.max_retries times; sets `critique` and `chosen` (None if it failed)."""
    for p in todo:
        p.setdefault("critique", None)
        p.setdefault("chosen", None)
    for attempt in range(opts.max_retries + 1):
        _dpf(todo, client, opts, templates, attempt)
        todo = [p for p in todo if why_dropped(p)]
        if not todo:
            break


def run_chunk(chunk: list[dict], client: Any, opts: PairOptions, templates: Any) -> tuple[list[dict], dict]:
    """Base answers then DPF with retries for one chunk of planned pairs -> (finished rows, drops by reason)."""
    for p, text in zip(chunk, calls.texts(client, base_requests(chunk, opts), desc="prefs-base")):
        p["rejected"], p["critique"], p["chosen"] = text, None, None
    dpf_rewrite([p for p in chunk if p["rejected"]], client, opts, templates)
    drops = dict.fromkeys(DROP_REASONS, 0)
    done = []
    model = calls.model_of(client)
    for p in chunk:
        why = why_dropped(p)
        if why:
            drops[why] += 1
        else:
            done.append({**p, "model_rejected": model, "model_chosen": model})
    return done, drops
