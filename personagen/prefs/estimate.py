"""`personagen prefs --dry-run`: calls, tokens and cost of a run, and of the paper's full configuration, sending
nothing. PERSONA §3.2: 1,586 personas × (150 train-pool + 50 held-out) prompts = 317,200 pairs, 8,011 prompts
through the controversy classifier. Every pair costs three calls (base answer, critique, revision, Fig. 4).
§3.1's consistency judge asks one call per persona of the library before any is drawn; the paper's 1,586 are
what was left after it removed about 8.5%, so its configuration counts round(1,586 / 0.915) = 1,733 judged.
The counts follow the run: the judge only when it is on, the classifier only with classification on and on at
most --prompt-limit prompts, one base answer per planned prompt with --base-per-prompt. They are first attempts:
an unparsed verdict or a failed pair is asked again up to --max-retries times.

Input tokens are measured on the actual templates filled with sampled personas and prompts, the answer and
critique slots filled with text of their full output budget, at ~4 characters per token plus 4 per message and
3 per request (the LLM client's estimate without a tokenizer); output tokens are the per-call caps, so the figure
is an upper bound for outputs. Price: personagen.llm.PriceTable (datasets/prices.yaml) for the named model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from personagen.llm import PriceTable
from personagen.prefs import calls
from personagen.prefs.pairs import PairOptions

PAPER = {"personas": 1586, "per_persona": 150, "heldout_per_persona": 50, "prompts": 8011, "judged": 1733}
JUDGE_TOKENS = 24  # the consistency judge's reply cap (profile.consistency_filter)
_FILLER = "word "  # 5 characters ≈ 1.25 tokens; used to fill an answer slot to its token budget


@dataclass(frozen=True)
class StepCost:
    """Per-call input and output tokens of one pipeline step."""

    name: str
    input_tokens: float
    output_tokens: int


def tokens(messages: list[dict]) -> int:
    """~4 characters per token plus the chat template's per-message overhead (as LLMClient estimates)."""
    return math.ceil(sum(len(str(m.get("content") or "")) / 4.0 + 4 for m in messages)) + 3


def _filler(n_tokens: int) -> str:
    return (_FILLER * math.ceil(n_tokens * 4 / len(_FILLER)))[: n_tokens * 4]


def judge_cost(attrs: list[dict[str, str]], templates: Any = None) -> StepCost:
    """Mean input tokens of the §3.1 consistency judge's call over sampled personas' attribute dictionaries."""
    n = [tokens(calls.chat(calls.prompt("consistency.j2", templates, attributes=a)).messages) for a in attrs]
    return StepCost("consistency", sum(n) / len(n) if n else 0.0, JUDGE_TOKENS)


def step_costs(prompts: list[str], profiles: list[str], opts: PairOptions, templates: Any = None) -> list[StepCost]:
    """Mean input tokens per call of each step over the sampled prompts × profiles."""
    ans, crit = _filler(opts.answer_tokens), _filler(opts.critique_tokens)
    cls, base, cri, rev = [], [], [], []
    for i, p in enumerate(prompts):
        persona = profiles[i % len(profiles)]
        cls.append(tokens(calls.chat(calls.prompt("classify.j2", templates, prompt=p)).messages))
        base.append(tokens(calls.chat(p).messages))
        cri.append(tokens(calls.chat(calls.prompt("critique.j2", templates, completion=ans, persona=persona,
                                                  instruction=p)).messages))
        rev.append(tokens(calls.chat(calls.prompt("revise.j2", templates, completion=ans, instruction=p,
                                                  critique=crit)).messages))

    def mean(v: list[int]) -> float:
        return sum(v) / len(v)

    return [StepCost("classify", mean(cls), 8), StepCost("base", mean(base), opts.answer_tokens),
            StepCost("critique", mean(cri), opts.critique_tokens), StepCost("revise", mean(rev), opts.answer_tokens)]


def estimate(costs: list[StepCost], *, n_prompts: int, n_pairs: int, price_model: str,
             prices: PriceTable | None = None, n_calls: dict[str, int] | None = None) -> dict[str, Any]:
    """Calls, tokens and USD per step and in total for `n_prompts` classified and `n_pairs` DPF pairs;
    `n_calls` overrides a step's count (consistency: personas judged; classify, base: what the run sends)."""
    table = prices or PriceTable.load()
    rows = []
    for c in costs:
        n = (n_calls or {}).get(c.name, n_prompts if c.name == "classify" else n_pairs)
        it, ot = round(c.input_tokens * n), c.output_tokens * n
        rows.append({"step": c.name, "calls": n, "input_tokens": it, "output_tokens": ot,
                     "cost_usd": round(table.cost(price_model, it, ot), 2)})
    total = {k: sum(r[k] for r in rows) for k in ("calls", "input_tokens", "output_tokens")}
    total["cost_usd"] = round(sum(r["cost_usd"] for r in rows), 2)
    return {"price_model": price_model, "priced": table.lookup(price_model) is not None, "n_prompts": n_prompts,
            "n_pairs": n_pairs, "steps": rows, "total": total}


def dry_run(prompts: pl.DataFrame, profiles: list[str], n_personas: int, opts: PairOptions, price_model: str,
            templates: Any = None, sample: int = 64, *, judge: list[dict[str, str]] | None = None, n_judged: int = 0,
            n_classified: int | None = None, n_base: int | None = None) -> dict[str, Any]:
    """Estimates for this run (rule-filtered prompts, planned pairs) and for the paper's full configuration.

    `judge`: sampled personas' attribute dictionaries (the judge's prompt size) and `n_judged` the personas it
    asks about (0: judge off); `n_classified`: prompts sent to the classifier (default all); `n_base`: base
    answers (default one per pair)."""
    train = int((prompts["split"] == "train").sum()) if "split" in prompts.columns else prompts.height
    held = prompts.height - train
    pairs_here = n_personas * (min(opts.per_persona, train) + min(opts.heldout_per_persona, held))
    texts = prompts["prompt"].head(sample).to_list()
    costs = [judge_cost(judge or [{}], templates), *step_costs(texts, profiles[:sample] or [""], opts, templates)]
    here = {"consistency": n_judged, "classify": prompts.height if n_classified is None else n_classified,
            "base": pairs_here if n_base is None else n_base}
    paper_pairs = PAPER["personas"] * (PAPER["per_persona"] + PAPER["heldout_per_persona"])
    return {"this_run": estimate(costs, n_prompts=here["classify"], n_pairs=pairs_here, price_model=price_model,
                                 n_calls=here),
            "paper": {**estimate(costs, n_prompts=PAPER["prompts"], n_pairs=paper_pairs, price_model=price_model,
                                 n_calls={"consistency": PAPER["judged"]}), "config": PAPER},
            "per_call": [c.__dict__ for c in costs]}
