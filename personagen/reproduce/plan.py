"""`--dry-run`: the model calls and tokens a reproduction would make, without making any.

Calls follow the run's schedule. A local P2P run (budget 4, 8 questions, 2 updates, vanilla + k-means): 150
planned, 151 made; the run added 8 JSON repairs of malformed endowment replies, and the plan's upper bounds
(3 question-learner calls per step, medoid answers that were cache hits) were 7 too high. Token counts are estimates: prompt tokens ≈ rendered characters / 4; output tokens
are the requests' caps (an upper bound); dollars come from the price table when --model names a priced model.
Counts are for the configuration given (the paper's when the defaults are kept) and assume no cache hits;
retries of invalid answers and JSON repairs are not counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

CHARS_PER_TOKEN = 4
PERSONA_CHARS = 450  # a typical endowment narrative (2-4 sentences + attribute values)
ENDOW_PROMPT_CHARS = 1100  # system + endowment prompt with 10 attributes
ANSWER_TOKENS = 6  # elicitation answers (a letter)


def _tok(chars: float) -> int:
    return int(math.ceil(chars / CHARS_PER_TOKEN))


def _add(plan: dict[str, dict], part: str, calls: int, in_tok: int, out_tok: int) -> None:
    p = plan.setdefault(part, {"calls": 0, "input_tokens": 0, "output_tokens": 0})
    p["calls"] += int(calls)
    p["input_tokens"] += int(calls * in_tok)
    p["output_tokens"] += int(calls * out_tok)


def _wave_questions(wave: Path) -> tuple[int, float]:
    """(questions the run asks, mean characters of question + options): the questions with human answers, as
    the run imports them (info.csv lists more: 78 rows on W26, 22 with answers)."""
    import warnings

    from personagen.surveys import import_opinionqa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a skipped messy question is reported by the run itself
        s = import_opinionqa(wave)
    chars = [len(s.question(q).text) + sum(len(o) + 4 for o in s.options(q)) for q in s.qids]
    return len(s.qids), (sum(chars) / len(chars) if chars else 0.0)


def dollars(model: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """The price of the counted tokens from datasets/prices.yaml (+ $PERSONAGEN_PRICES); None when unknown."""
    if not model:
        return None
    from personagen.llm import PriceTable

    p = PriceTable.load().lookup(model)
    return None if p is None else (input_tokens * p.input + output_tokens * p.output) / 1e6


def p2p_plan(opts: Any) -> dict[str, Any]:
    """Calls and tokens per wave for `reproduce p2p` (opts: P2PReproOptions)."""
    from personagen.endow import load_bank, planned_calls
    from personagen.reproduce.p2p import KMEANS_EXPAND

    waves = {}
    for wave in opts.waves:
        q, qchars = _wave_questions(Path(wave))
        q = min(q, opts.max_questions or q, len(opts.questions or ()) or q, 3 * (opts.per_split or q))
        q_train = int(round(0.7 * q))
        elicit_in = _tok(PERSONA_CHARS + qchars + 300)
        n, rep = opts.budget, opts.repeats
        gen_calls = math.ceil(n / opts.per_call)
        plan: dict[str, dict] = {}
        act = planned_calls(len(load_bank().modes) + 1, n, opts.updates_for(Path(wave)), opts.per_call, q_train)
        _add(plan, "P2P endowments", rep * act["endowment_calls"], _tok(ENDOW_PROMPT_CHARS), opts.max_tokens)
        _add(plan, "P2P attribute learner", rep * act["learner_calls"], _tok(ENDOW_PROMPT_CHARS), opts.max_tokens)
        _add(plan, "P2P answers", rep * n * q, elicit_in, ANSWER_TOKENS)  # Stage 1's Q_train answers are reused
        if "vanilla" in opts.baselines:
            _add(plan, "Vanilla endowments", rep * gen_calls, _tok(ENDOW_PROMPT_CHARS // 2), opts.max_tokens)
            _add(plan, "Vanilla answers", rep * n * q, elicit_in, ANSWER_TOKENS)
        if "persona" in opts.baselines and opts.census_lib is not None:  # the run skips it without a library
            _add(plan, "PERSONA-style answers", rep * n * q, elicit_in, ANSWER_TOKENS)
        if "kmeans" in opts.baselines:
            big = math.ceil(n * KMEANS_EXPAND)  # the vanilla library is topped up to 10/3·N_A, then clustered
            more = big - n if "vanilla" in opts.baselines else big
            _add(plan, "k-means endowments", rep * math.ceil(more / opts.per_call), _tok(ENDOW_PROMPT_CHARS // 2),
                 opts.max_tokens)
            # every new vanilla agent answers Q_train while the pool grows; the N_A medoids answer the rest (≤:
            # a medoid that is a vanilla-baseline agent is a cache hit)
            _add(plan, "k-means answers", rep * (more * q_train + n * (q - q_train)), elicit_in, ANSWER_TOKENS)
        total = {k: sum(p[k] for p in plan.values()) for k in ("calls", "input_tokens", "output_tokens")}
        total["usd"] = dollars(opts.model, total["input_tokens"], total["output_tokens"])
        waves[Path(wave).name] = {"questions": q, "n_updates": opts.updates_for(Path(wave)), "parts": plan,
                                  "total": total}
    grand = {k: sum(w["total"][k] for w in waves.values()) for k in ("calls", "input_tokens", "output_tokens")}
    grand["usd"] = dollars(opts.model, grand["input_tokens"], grand["output_tokens"])
    return {"waves": waves, "total": grand, "budget": opts.budget, "repeats": opts.repeats, "model": opts.model,
            "note": __doc__.split("\n\n")[1].replace("\n", " ")}


def promptmix_plan(opts: Any) -> dict[str, Any]:
    """Calls and tokens for `reproduce promptmix` (opts: PromptMixReproOptions); every improve round counted."""
    from personagen.reproduce.promptmix import scenario_and_data

    dims = {}
    for d in opts.dim_list:
        sc, _ = scenario_and_data(opts, d)
        s_in = _tok(len(sc.question) + 300)
        c_in = _tok(len(sc.question) + 1400)
        s_out = 40 if sc.signs else 8
        plan: dict[str, dict] = {}
        n, r = opts.samples, opts.improve_rounds
        for m in opts.methods:
            k = opts.k(m)
            crafts = k * (1 + opts.iters) if m == "em" else k
            _add(plan, f"{m.upper()} craft/improve", crafts * (1 + r), c_in, opts.prompt_tokens)
            _add(plan, f"{m.upper()} samples", crafts * (1 + r) * n + (n if m == "gb" else 0), s_in, s_out)
            _add(plan, f"{m.upper()} evaluation draws", opts.draws, s_in, s_out)
        _add(plan, "Fixed System Prompt", opts.draws, s_in, s_out)
        if opts.personahub is not None:
            _add(plan, "Persona Hub", opts.draws, s_in + _tok(200), s_out)
        dims[d] = {"parts": plan,
                   "total": {k: sum(p[k] for p in plan.values()) for k in ("calls", "input_tokens", "output_tokens")}}
    grand = {k: sum(x["total"][k] for x in dims.values()) for k in ("calls", "input_tokens", "output_tokens")}
    grand["usd"] = dollars(opts.model, grand["input_tokens"], grand["output_tokens"])
    return {"target": opts.target, "model": opts.model, "dims": dims, "total": grand, "note": __doc__.split("\n\n")[1].replace("\n", " ")}
