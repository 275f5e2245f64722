"""`personagen endow`: grow a pool of endowed agents for a survey (P2P stage 1) and its baselines.

Strategies:
- active (Prompts to Proxies, Wang, Khoo & Wang 2025, §3): initial endowments for every mode (bank modes
  plus the survey-level learned attributes), then steps driven by the Tracker (entropy, eq. 5 mode scores,
  softmax over modes, multinomial allocation, patching of the lowest-entropy questions with question-level
  attributes, mixed modes after t patches) until the budget N_A is reached;
- vanilla: topic-only endowments (no attributes), P2P's "vanilla" baseline;
- random-census: a uniform random sample of the library's census personas of the same size (no model).

The pool's answers (needed by the Tracker) come from a light elicitation through personagen.llm: each new
agent answers the survey's train questions once (sampled, letter answers; invalid answers count as
missing). Generated personas are appended to LIB/personas.parquet (source bank | learned | mixed, mode,
weight_census null, text_narrative from the endowment); the run log (per step: allocation, probabilities,
entropies, patched questions, failure counts) goes to LIB/endow/<strategy>/run_log.json with a PNG plot,
and the latest run's log is also LIB/endow/run_log.json.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np
import polars as pl

from personagen import llm
from personagen.elicit import build_messages, match_answer
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
from personagen.llm import ChatRequest

STRATEGIES = ("active", "vanilla", "random-census")


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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = log["steps"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
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
    plt.close(fig)


def endow_library(lib: Any, survey: Any, *, budget: int, strategy: str = "active", backend: str = "local",
                  base_url: str | None = None, model: str | None = None, bank: str | os.PathLike | None = None,
                  seed: int = 0, initial_per_mode: int = 10, step_size: int | None = None,
                  temperature: float = 1.0, lowest_k: int = 3, patch_ratio: float = 0.75, mix_after: int = 2,
                  per_call: int = 2, split: str = "train", templates: str | os.PathLike | None = None,
                  fallback: str = "attributes", client: Any = None, concurrency: int = 4,
                  max_tokens: int = 320) -> dict:
    """Generate `budget` agents for `survey` into the library (see module docstring); returns the run log."""
    from personagen.store import atomic_write_json

    if strategy not in STRATEGIES:
        raise BadInput(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if budget < 1:
        raise BadInput(f"--budget {budget}: must be at least 1")
    if not 0 <= patch_ratio <= 1:
        raise BadInput(f"patch ratio {patch_ratio}: must be in [0, 1]")
    if temperature <= 0:
        raise BadInput(f"temperature {temperature}: must be > 0")
    qids = survey.split_qids(split) or list(survey.qids)
    out_dir = lib.path / "endow" / strategy
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    try:
        existing = lib.personas()
    except BadInput:
        existing = pl.DataFrame({"persona_id": pl.Series([], dtype=pl.String)})
    log: dict[str, Any] = {"strategy": strategy, "survey_id": survey.survey_id, "budget": budget, "seed": seed,
                           "qids": qids, "steps": []}

    if strategy == "random-census":
        cen = existing.filter(pl.col("source") == "census") if "source" in existing.columns else existing
        if cen.height == 0:
            raise BadInput(f"{lib.path}: no census personas to sample for --strategy random-census")
        rng = np.random.default_rng(seed)
        take = rng.choice(cen.height, size=min(budget, cen.height), replace=False)
        ids = [cen["persona_id"][int(i)] for i in sorted(take)]
        log.update({"persona_ids": ids, "n_generated": len(ids), "seconds": round(time.time() - t0, 2)})
        atomic_write_json(out_dir / "run_log.json", log)
        atomic_write_json(lib.path / "endow" / "run_log.json", log)
        lib.record("endow", strategy=strategy, survey_id=survey.survey_id, budget=budget, n=len(ids))
        return log

    rng = np.random.default_rng(seed)
    prefix = f"endow-{strategy}-s{seed}"
    n_opts = [len(survey.options(q)) for q in qids]
    counters = Counters()
    topic = _topic(survey, qids)
    made: list[Endowment] = []
    rows: list[dict] = []
    answers_rows: list[dict] = []

    with llm.open_client(backend, base_url=base_url, model=model, cache_path=lib.llm_db, client=client,
                           concurrency=concurrency) as c:

        def realise(specs: list[dict], step: int) -> tuple[list[Endowment], np.ndarray]:
            groups = generate_endowments(c, specs, topic=topic, counters=counters, templates=templates,
                                         fallback=fallback, salt=(prefix, step), max_tokens=max_tokens)
            new = [e for g in groups for e in g]
            ids = [f"{prefix}-{len(made) + i:05d}" for i in range(len(new))]
            texts = [e.narrative(templates) for e in new]
            ans = elicit_pool(c, texts, ids, survey, qids, templates=templates) if new else \
                np.zeros((0, len(qids)), dtype=int)
            for pid, e, text, a in zip(ids, new, texts, ans):
                rows.append({"persona_id": pid, "source": e.source, "mode": e.mode, "enriched": False,
                             "weight_census": None, "text_narrative": text, "endow_strategy": strategy,
                             "endow_step": step, "endowment": endowment_json(e)})
                for q, k in zip(qids, a):
                    answers_rows.append({"persona_id": pid, "qid": q,
                                         "option": survey.options(q)[k] if k >= 0 else None, "valid": bool(k >= 0)})
            made.extend(new)
            return new, ans

        def specs_for(mode_counts: dict[str, int], attr_fn: Any, source_fn: Any) -> list[dict]:
            specs = []
            for m, n in mode_counts.items():
                for k in _split(n, per_call):
                    specs.append({"source": source_fn(m), "mode": m, "attributes": attr_fn(m), "n": k})
            return specs

        if strategy == "vanilla":
            step_n = step_size or max(1, min(budget, 10))
            pool = np.zeros((0, len(qids)), dtype=int)
            step = 0
            while len(made) < budget:
                n = min(step_n, budget - len(made))
                specs = [{"source": "learned", "mode": "vanilla", "attributes": [], "n": k, "vanilla": True}
                         for k in _split(n, per_call)]
                before = len(made)
                _, ans = realise(specs, step)
                pool = np.vstack([pool, ans])
                h = answer_entropies(pool, n_opts)
                log["steps"].append({"step": step, "budget": n, "generated_by_mode": {"vanilla": len(made) - before},
                                     "n_pool_after": len(made), "mean_entropy_after": float(h.mean()),
                                     "entropies_after": dict(zip(qids, map(float, h)))})
                step += 1
                if len(made) == before:
                    break
        else:
            bank_obj = load_bank(bank)
            learned = learn_survey_attributes(c, [survey.question(q).text for q in qids], counters=counters,
                                              templates=templates, max_tokens=min(200, max_tokens))
            modes = bank_obj.names() + (["learned"] if len(learned) >= 2 else [])
            log["learned_attributes"] = learned
            qlearned: dict[str, list[str]] = {}

            def attrs(m: str) -> list[str]:
                if m == "learned":
                    k = int(rng.integers(min(3, len(learned)), min(10, len(learned)) + 1))
                    return [learned[i] for i in sorted(rng.choice(len(learned), size=k, replace=False))]
                return bank_obj.sample(m, rng)

            def source(m: str) -> str:
                return "learned" if m == "learned" else "bank"

            tracker = Tracker(list(qids), n_opts, list(modes), temperature=temperature, lowest_k=lowest_k,
                              patch_ratio=patch_ratio, mix_after=mix_after, seed=seed)
            # initial round: initial_per_mode for every mode, capped at half the budget
            cap = max(1, math.ceil(budget / 2))
            n0 = max(1, min(initial_per_mode, cap // len(modes)))
            init_modes = list(modes)
            if n0 * len(modes) > cap:
                init_modes = [modes[i] for i in sorted(rng.choice(len(modes), size=cap, replace=False))]
            init = {m: n0 for m in init_modes}
            new, ans = realise(specs_for(init, attrs, source), 0)
            tracker.add(ans, [e.mode for e in new])
            h = tracker.question_entropy()
            log["steps"].append({"step": 0, "kind": "initial", "budget": sum(init.values()), "allocation": init,
                                 "generated_by_mode": _count_modes(new), "n_pool_after": len(made),
                                 "mean_entropy_after": float(h.mean()), "entropies_after": dict(zip(qids, map(float, h)))})
            step = 1
            step_n = step_size or max(1, max(len(modes), budget // 10))
            while len(made) < budget:
                n = min(step_n, budget - len(made))
                plan = tracker.plan_step(n)
                specs = specs_for(plan["allocation"], attrs, source)
                need = [p["qid"] for p in plan["patches"] if p["qid"] not in qlearned]
                if need:
                    qlearned.update(learn_question_attributes(
                        c, {q: (survey.question(q).text, survey.options(q)) for q in need},
                        counters=counters, templates=templates, max_tokens=min(160, max_tokens)))
                for p in plan["patches"]:
                    q = p["qid"]
                    ql = qlearned.get(q) or []
                    for k in _split(p["n"], per_call):
                        bm = bank_obj.names()[int(rng.integers(len(bank_obj.names())))]
                        if p["mixed"] or not ql:
                            # mixed mode: question attributes + a bank mode's (bank only if none were learned)
                            part = [ql[i] for i in sorted(rng.choice(len(ql), size=min(5, len(ql)), replace=False))] \
                                if ql else []
                            extra = bank_obj.sample(bm, rng, k_min=3, k_max=10 - len(part))
                            spec = {"source": "mixed" if ql else "bank", "mode": f"mixed:{q}+{bm}" if ql else bm,
                                    "attributes": (part + extra)[:10]}
                        else:
                            kk = int(rng.integers(min(3, len(ql)), min(10, len(ql)) + 1))
                            spec = {"source": "learned", "mode": f"patch:{q}",
                                    "attributes": [ql[i] for i in sorted(rng.choice(len(ql), size=kk, replace=False))]}
                        specs.append({**spec, "n": k, "qid": q, "question": survey.question(q).text})
                before = len(made)
                new, ans = realise(specs, step)
                tracker.add(ans, [e.mode for e in new])
                h = tracker.question_entropy()
                plan.update({"step": step, "kind": "active", "generated_by_mode": _count_modes(new),
                             "n_pool_after": len(made), "mean_entropy_after": float(h.mean()),
                             "entropies_after": dict(zip(qids, map(float, h))), "patch_counts": dict(tracker.patch_counts)})
                log["steps"].append(plan)
                step += 1
                if len(made) == before:  # fallback="skip" and nothing parsed: stop rather than loop
                    break
        stats = llm.client_stats(c)
        mname = llm.model_name(c)

    rows = rows[:budget] if len(rows) > budget else rows
    new_df = pl.DataFrame(rows, schema={"persona_id": pl.String, "source": pl.String, "mode": pl.String,
                                        "enriched": pl.Boolean, "weight_census": pl.Float64,
                                        "text_narrative": pl.String, "endow_strategy": pl.String,
                                        "endow_step": pl.Int64, "endowment": pl.String})
    if existing.height:
        keep = existing.filter(~pl.col("persona_id").str.starts_with(prefix + "-"))
        merged = pl.concat([keep, new_df], how="diagonal_relaxed")
    else:
        merged = new_df
    lib.write_personas(merged)
    from personagen.store import atomic_write_parquet

    atomic_write_parquet(out_dir / "answers.parquet",
                         pl.DataFrame(answers_rows, schema={"persona_id": pl.String, "qid": pl.String,
                                                            "option": pl.String, "valid": pl.Boolean}))
    valid = sum(1 for r in answers_rows if r["valid"])
    log.update({
        "n_generated": new_df.height, "persona_ids": new_df["persona_id"].to_list(),
        "by_source": dict(new_df.group_by("source").len().iter_rows()) if new_df.height else {},
        "failures": counters.as_dict(), "answers": {"total": len(answers_rows), "valid": valid},
        "final_mean_entropy": log["steps"][-1]["mean_entropy_after"] if log["steps"] else None,
        "model": mname, "llm": stats, "seconds": round(time.time() - t0, 2),
        "params": {"initial_per_mode": initial_per_mode, "step_size": step_size, "temperature": temperature,
                   "lowest_k": lowest_k, "patch_ratio": patch_ratio, "mix_after": mix_after, "per_call": per_call,
                   "split": split, "bank": str(bank) if bank else None, "max_tokens": max_tokens},
    })
    atomic_write_json(out_dir / "run_log.json", log)
    atomic_write_json(lib.path / "endow" / "run_log.json", log)
    if log["steps"]:
        _plot(log, out_dir / "run_log.png")
        _plot(log, lib.path / "endow" / "run_log.png")
    lib.record("endow", strategy=strategy, survey_id=survey.survey_id, budget=budget, n=new_df.height,
               model=mname, failures=counters.as_dict())
    return log


def _count_modes(es: list[Endowment]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in es:
        out[e.mode] = out.get(e.mode, 0) + 1
    return out
