"""`personagen endow`: grow a pool of endowed agents for a survey (P2P stage 1) and its baselines.

Strategies:
- active (Prompts to Proxies, paper 000, §3.3 and Alg. 1; the loop is in personagen.endow.aeg): initial
  endowments for every mode (bank modes plus the survey-level learned attributes), then `n_updates` steps
  driven by the Tracker (eq. 4 entropy, eq. 5 mode scores, softmax over modes, multinomial allocation,
  patching of the lowest-entropy questions with question-level attributes, mixed modes with the
  top-performing mode after t patches) until the budget N_A is reached;
- vanilla: topic-only endowments (no attributes), P2P's "vanilla" baseline;
- random-census: a uniform random sample of the library's census personas of the same size (no model).

The pool's answers (needed by the Tracker) come from a light elicitation through personagen.llm: each new
agent answers the survey's train questions once (sampled, letter answers; invalid answers count as
missing). Generated personas are appended to LIB/personas.parquet (source bank | learned | mixed, mode,
weight_census null, text_narrative from the endowment); the run log (per step: allocation, probabilities,
entropies, patched questions, failure counts) goes to LIB/endow/<strategy>/run_log.json with a PNG plot,
and the latest run's log is also LIB/endow/run_log.json. The pool's answers are written in the library's
response schema to LIB/endow/<strategy>/responses.parquet and LIB/endow/responses.parquet, and every
Tracker update of an active run to LIB/endow/tracker.jsonl (pool, modes, eq. 4 entropies, eq. 5 scores,
softmax probabilities), so the scores can be recomputed from the responses.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen import llm
from personagen.elicit import build_messages, match_answer
from personagen.endow.aeg import (
    AttributeSource,
    StepPlan,
    initial_allocation,
    plan_record,
    plan_specs,
    plan_update,
    step_sizes,
)
from personagen.endow.bank import load_bank
from personagen.endow.model import (
    Counters,
    Endowment,
    endowment_json,
    generate_endowments,
    learn_question_attributes,
    learn_survey_attributes,
)
from personagen.endow.tracker import Tracker, answer_entropies
from personagen.errors import BadInput
from personagen.library import RESPONSE_SCHEMA, Library
from personagen.llm import ChatRequest
from personagen.options import options_record, stage_options
from personagen.store import atomic_write_json, atomic_write_parquet, atomic_write_text
from personagen.surveys import Survey

STRATEGIES = ("active", "vanilla", "random-census")
TRACKER_LOG = "tracker.jsonl"  # LIB/endow/tracker.jsonl: one line per Tracker update (Alg. 1 lines 5 and 22)


def elicit_pool(client: Any, narratives: list[str], ids: list[str], survey: Any, qids: list[str], *,
                templates: str | os.PathLike | None = None) -> np.ndarray:
    """Each new agent answers each question once (sampled) with elicit's own survey-conductor prompt and
    answer matcher; returns (agents × questions) option indices, −1 where the answer matched no option."""

    reqs, where = [], []
    for a, (text, pid) in enumerate(zip(narratives, ids)):
        for j, q in enumerate(qids):
            msgs = build_messages(text, survey.question(q).text, survey.options(q), templates=templates)
            reqs.append(ChatRequest(messages=msgs, temperature=1.0, max_tokens=6, seed=llm.seed_of(pid, q)))
            where.append((a, j))
    out = np.full((len(narratives), len(qids)), -1, dtype=int)
    for (a, j), text in zip(where, llm.texts(client, reqs, desc="endow-elicit")):
        idx, _how = match_answer(text, survey.options(qids[j]))
        out[a, j] = -1 if idx is None else idx
    return out


def _topic(survey: Any, qids: list[str]) -> str:
    qs = [survey.question(q).text.strip() for q in qids[:3]]
    qs = [q if len(q) < 140 else q[:137] + "..." for q in qs]
    return "questions such as " + "; ".join(f'"{q}"' for q in qs)


def _split(n: int, per_call: int) -> list[int]:
    calls = max(1, math.ceil(n / per_call))
    base, extra = divmod(n, calls)
    return [base + (1 if i < extra else 0) for i in range(calls) if base + (1 if i < extra else 0) > 0]


def _plot(log: dict, path: Any) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = log["steps"]
    fig = Figure(figsize=(11, 4))  # its own Agg canvas: the caller's pyplot backend is left alone
    FigureCanvasAgg(fig)
    (a1, a2) = fig.subplots(1, 2)
    xs = [s["n_pool_after"] for s in steps]
    a1.plot(xs, [s["mean_entropy_after"] for s in steps], marker="o")
    a1.set_xlabel("agents in pool")
    a1.set_ylabel("mean normalised question entropy")
    a1.set_ylim(0, 1.02)
    a1.set_title(f"endow {log['strategy']}: pool entropy")
    modes = sorted({m for s in steps for m in s.get("generated_by_mode", {})})
    bottom = np.zeros(len(steps))
    for m in modes:
        v = np.array([s.get("generated_by_mode", {}).get(m, 0) for s in steps], dtype=float)
        a2.bar(range(len(steps)), v, bottom=bottom, label=m)
        bottom += v
    a2.set_xlabel("step")
    a2.set_ylabel("agents generated")
    a2.set_title("allocation per step")
    if modes and len(modes) <= 16:
        a2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@dataclass(frozen=True)
class EndowOptions:
    """Every option of `endow_library` (docs/design.md §3 `endow`), validated once when built."""

    budget: int
    strategy: str = "active"
    backend: str = "local"
    base_url: str | None = None
    model: str | None = None
    bank: str | os.PathLike | None = None
    seed: int = 0
    initial_per_mode: int = 10
    n_updates: int = 10
    step_size: int | None = None
    temperature: float = 1.0
    lowest_k: int = 3
    patch_ratio: float = 0.75
    mix_after: int = 1  # App. C.1: mixed modes enter "from the second step onward" (2nd time lowest, > 1)
    per_call: int = 2
    split: str = "train"
    templates: str | os.PathLike | None = None
    fallback: str = "attributes"
    concurrency: int = 4
    max_tokens: int = 320

    def __post_init__(self) -> None:  # messages name the Python argument; the CLI shows its flag
        checks = [
            (self.strategy not in STRATEGIES, "strategy", f"{self.strategy!r}: expected one of "
                                                           f"{', '.join(STRATEGIES)}"),
            (self.budget < 1, "budget", f"{self.budget}: must be at least 1"),
            (not 0 <= self.patch_ratio <= 1, "patch_ratio", f"{self.patch_ratio}: must be in [0, 1]"),
            (self.temperature <= 0, "temperature", f"{self.temperature}: must be > 0"),
            (self.n_updates < 1, "n_updates", f"{self.n_updates}: must be at least 1"),
        ]
        for bad, name, why in checks:
            if bad:
                raise BadInput(f"{name} {why}", field=name)

    def params(self) -> dict[str, Any]:
        """The tuning parameters as the run log records them."""
        return {"initial_per_mode": self.initial_per_mode, "n_updates": self.n_updates, "step_size": self.step_size,
                "temperature": self.temperature, "lowest_k": self.lowest_k, "patch_ratio": self.patch_ratio,
                "mix_after": self.mix_after, "per_call": self.per_call, "split": self.split,
                "bank": str(self.bank) if self.bank else None, "max_tokens": self.max_tokens}


def endow_library(lib: Library, survey: Survey, options: EndowOptions | None = None, *, client: Any = None,
                  **deprecated: Any) -> dict:
    """Generate `budget` agents for `survey` into the library (see module docstring); returns the run log.

    options: an `EndowOptions` (required: it holds the budget; keyword arguments instead are deprecated, one
    release), recorded whole in the manifest entry; `client` reuses an open LLM client (left open)."""
    o = stage_options(EndowOptions, options, deprecated, "endow_library")
    qids = survey.split_qids(o.split) or list(survey.qids)
    out_dir = lib.path / "endow" / o.strategy
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        existing = lib.personas()
    except BadInput:
        existing = pl.DataFrame({"persona_id": pl.Series([], dtype=pl.String)})
    log: dict[str, Any] = {"strategy": o.strategy, "survey_id": survey.survey_id, "budget": o.budget,
                           "seed": o.seed, "qids": qids, "steps": []}
    if o.strategy == "random-census":
        return _random_census(lib, survey, existing, o, log, out_dir, t0)
    with llm.open_client(o.backend, base_url=o.base_url, model=o.model, cache_path=lib.llm_db, client=client,
                         concurrency=o.concurrency) as c, \
            llm.progress_bar(o.budget, f"endow {o.strategy}", True, unit="agent") as bar:  # lines also between calls
        run = _Run(c, survey, qids, o, log, lib.path / "endow")
        run.bar = bar
        STRATEGY_RUNS[o.strategy](run)
        stats = llm.client_stats(c)
        mname = llm.model_name(c)
    new_df = run.write(lib, existing, out_dir)
    log.update({"model": mname, "llm": stats, "seconds": round(time.time() - t0, 2), "params": o.params()})
    _write_log(lib, log, out_dir, plot=bool(log["steps"]))
    lib.record("endow", strategy=o.strategy, survey_id=survey.survey_id, budget=o.budget, n=new_df.height,
               model=mname, failures=run.counters.as_dict(), options=options_record(o, llm.redact))
    return log


def _write_log(lib: Library, log: dict[str, Any], out_dir: Path, *, plot: bool) -> None:
    """The run log in the strategy's folder and as LIB/endow/run_log.json (the latest run), with plots."""
    atomic_write_json(out_dir / "run_log.json", log)
    atomic_write_json(lib.path / "endow" / "run_log.json", log)
    if plot:
        _plot(log, out_dir / "run_log.png")
        _plot(log, lib.path / "endow" / "run_log.png")


def _random_census(lib: Library, survey: Survey, existing: pl.DataFrame, o: EndowOptions, log: dict[str, Any],
                   out_dir: Path, t0: float) -> dict:
    """The random-census baseline: a uniform sample of the library's census personas (no model)."""
    cen = existing.filter(pl.col("source") == "census") if "source" in existing.columns else existing
    if cen.height == 0:
        raise BadInput(f"{lib.path}: no census personas to sample for --strategy random-census")
    rng = np.random.default_rng(o.seed)
    take = rng.choice(cen.height, size=min(o.budget, cen.height), replace=False)
    ids = [cen["persona_id"][int(i)] for i in sorted(take)]
    log.update({"persona_ids": ids, "n_generated": len(ids), "seconds": round(time.time() - t0, 2)})
    _write_log(lib, log, out_dir, plot=False)
    lib.record("endow", strategy=o.strategy, survey_id=survey.survey_id, budget=o.budget, n=len(ids))
    return log


class _Run:
    """One generation run: realises endowment specs into agents, has them answer, and keeps the rows."""

    def __init__(self, client: Any, survey: Survey, qids: list[str], o: EndowOptions, log: dict[str, Any],
                 log_dir: Path):
        self.c, self.survey, self.qids, self.o, self.log, self.log_dir = client, survey, qids, o, log, log_dir
        self.rng = np.random.default_rng(o.seed)
        self.prefix = f"endow-{o.strategy}-s{o.seed}"
        self.n_opts = [len(survey.options(q)) for q in qids]
        self.counters = Counters()
        self.topic = _topic(survey, qids)
        self.made: list[Endowment] = []
        self.rows: list[dict] = []
        self.answers_rows: list[dict] = []
        self.bar: Any = None  # the run's progress (agents made of the budget)

    def realise(self, specs: list[dict], step: int) -> tuple[list[Endowment], np.ndarray, list[str]]:
        """Generate the agents of `specs`, let each answer the questions once, and keep their rows."""
        o, survey, qids = self.o, self.survey, self.qids
        groups = generate_endowments(self.c, specs, topic=self.topic, counters=self.counters, templates=o.templates,
                                     fallback=o.fallback, salt=(self.prefix, step), max_tokens=o.max_tokens)
        new = [e for g in groups for e in g]
        ids = [f"{self.prefix}-{len(self.made) + i:05d}" for i in range(len(new))]
        texts = [e.narrative(o.templates) for e in new]
        ans = elicit_pool(self.c, texts, ids, survey, qids, templates=o.templates) if new else \
            np.zeros((0, len(qids)), dtype=int)
        for pid, e, text, a in zip(ids, new, texts, ans):
            self.rows.append({"persona_id": pid, "source": e.source, "mode": e.mode, "enriched": False,
                              "weight_census": None, "text_narrative": text, "endow_strategy": o.strategy,
                              "endow_step": step, "endowment": endowment_json(e)})
            for q, k in zip(qids, a):
                self.answers_rows.append({"persona_id": pid, "survey_id": survey.survey_id, "qid": q,
                                          "option": survey.options(q)[k] if k >= 0 else None,
                                          "prob": 1.0 if k >= 0 else None, "mode": "sample", "n": 1,
                                          "valid": bool(k >= 0)})
        self.made.extend(new)
        if self.bar is not None:
            self.bar.update(len(new))
        return new, ans, ids

    def entropies(self, h: np.ndarray) -> dict[str, Any]:
        return {"n_pool_after": len(self.made), "mean_entropy_after": float(h.mean()),
                "entropies_after": dict(zip(self.qids, map(float, h)))}

    def write(self, lib: Library, existing: pl.DataFrame, out_dir: Path) -> pl.DataFrame:
        """Append the new personas (replacing an earlier run with the same prefix), the answers, the log's totals."""
        budget = self.o.budget
        rows = self.rows[:budget] if len(self.rows) > budget else self.rows
        new_df = pl.DataFrame(rows, schema=PERSONA_ROW_SCHEMA)
        lib.upsert_personas(new_df, replace_prefix=self.prefix)  # re-read under the lock: others' rows stay
        # the pool's answers in the library's response schema, so eq. 4-5 can be recomputed from them
        resp = pl.DataFrame([{**r, "model": llm.model_name(self.c)} for r in self.answers_rows],
                            schema=RESPONSE_SCHEMA)
        atomic_write_parquet(out_dir / "responses.parquet", resp)
        atomic_write_parquet(lib.path / "endow" / "responses.parquet", resp)
        valid = sum(1 for r in self.answers_rows if r["valid"])
        steps = self.log["steps"]
        self.log.update({
            "n_generated": new_df.height, "persona_ids": new_df["persona_id"].to_list(),
            "by_source": dict(new_df.group_by("source").len().iter_rows()) if new_df.height else {},
            "failures": self.counters.as_dict(), "answers": {"total": len(self.answers_rows), "valid": valid},
            "final_mean_entropy": steps[-1]["mean_entropy_after"] if steps else None,
        })
        return new_df


PERSONA_ROW_SCHEMA = {"persona_id": pl.String, "source": pl.String, "mode": pl.String, "enriched": pl.Boolean,
                      "weight_census": pl.Float64, "text_narrative": pl.String, "endow_strategy": pl.String,
                      "endow_step": pl.Int64, "endowment": pl.String}


def _run_vanilla(run: _Run) -> None:
    """P2P's vanilla baseline: topic-only endowments, `step_size` agents a step until the budget."""
    o = run.o
    step_n = o.step_size or max(1, min(o.budget, 10))
    pool = np.zeros((0, len(run.qids)), dtype=int)
    step = 0
    while len(run.made) < o.budget:
        n = min(step_n, o.budget - len(run.made))
        specs = [{"source": "learned", "mode": "vanilla", "attributes": [], "n": k, "vanilla": True}
                 for k in _split(n, o.per_call)]
        before = len(run.made)
        _, ans, _ = run.realise(specs, step)
        pool = np.vstack([pool, ans])
        h = answer_entropies(pool, run.n_opts)
        run.log["steps"].append({"step": step, "budget": n, "generated_by_mode": {"vanilla": len(run.made) - before},
                                 **run.entropies(h)})
        step += 1
        if len(run.made) == before:
            break


def _run_active(run: _Run) -> None:
    """P2P Alg. 1 (see personagen.endow.aeg): attribute learner → initial stage over every mode → `n_updates`
    tracker-driven update steps; one tracker snapshot per update goes to LIB/endow/tracker.jsonl."""
    o, survey, c, rng = run.o, run.survey, run.c, run.rng
    learned = learn_survey_attributes(c, [survey.question(q).text for q in run.qids], counters=run.counters,
                                      templates=o.templates, max_tokens=min(200, o.max_tokens))
    attrs = AttributeSource(load_bank(o.bank), learned)
    modes = attrs.bank.names() + (["learned"] if learned else [])
    run.log["learned_attributes"] = learned
    tracker = Tracker(list(run.qids), run.n_opts, list(modes), temperature=o.temperature, lowest_k=o.lowest_k,
                      patch_ratio=o.patch_ratio, mix_after=o.mix_after, seed=o.seed)
    jsonl = run.log_dir / TRACKER_LOG
    lines: list[str] = []

    def update(step: int, new: list[Endowment], ans: np.ndarray, ids: list[str]) -> None:
        tracker.add(ans, [e.mode for e in new], ids)
        lines.append(json.dumps(tracker.snapshot(step)))
        atomic_write_text(jsonl, "\n".join(lines) + "\n")

    def learn(need: list[str]) -> dict[str, list[str]]:
        got = learn_question_attributes(c, {q: (survey.question(q).text, survey.options(q)) for q in need},
                                        counters=run.counters, templates=o.templates,
                                        max_tokens=min(160, o.max_tokens))
        run.counters.question_learner_empty += sum(1 for q in need if not got.get(q))
        return got

    init = initial_allocation(modes, o.budget, o.initial_per_mode, rng)
    plan0 = StepPlan(0, sum(init.values()), init, [], [], {}, {})
    new, ans, ids = run.realise(plan_specs(plan0, attrs, rng, o.per_call, lambda q: ""), 0)
    update(0, new, ans, ids)
    run.log["steps"].append({"step": 0, "kind": "initial", "budget": plan0.budget, "allocation": init,
                             "generated_by_mode": _count_modes(new), **run.entropies(tracker.question_entropy())})
    for step, n in enumerate(step_sizes(o.budget, tracker.n_agents, o.n_updates, o.step_size), start=1):
        n = min(n, o.budget - tracker.n_agents)
        if n <= 0:
            break
        plan = plan_update(tracker, attrs, step, n, learn)
        new, ans, ids = run.realise(plan_specs(plan, attrs, rng, o.per_call, lambda q: survey.question(q).text), step)
        update(step, new, ans, ids)
        run.log["steps"].append(plan_record(plan, _count_modes(new), tracker, tracker.n_agents))
        if not new:  # fallback="skip" and nothing parsed: stop rather than loop
            break
    run.log["tracker_log"] = str(jsonl)


# strategy name -> how it grows the pool (random-census needs no model and is handled before a client opens)
STRATEGY_RUNS: dict[str, Callable[[_Run], None]] = {"active": _run_active, "vanilla": _run_vanilla}


def _count_modes(es: list[Endowment]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in es:
        out[e.mode] = out.get(e.mode, 0) + 1
    return out
