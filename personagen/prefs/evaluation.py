"""Validation of PERSONA preference pairs (Castricato et al. 2024, §3.2 and §4).

- Evaluator check (§3.2): a role-playing evaluator — the model with the persona profile as its system message —
  picks which of the two answers it prefers; the paper finds the persona prefers the DPF rewrite 96% of the time.
  The two answers are shown in a seeded random order per pair, so a model that always says "A" scores 50%.
- Agreement between two role-players (§4.2, Fig. 8–9): Cohen's kappa between two evaluators judging the same
  personas and pairs, overall and per persona. With only the bundled model, the second evaluator is the same model
  under another system template and sampling temperature (a stand-in for a second model, reported as such);
  `second_client` may be any other model.
- Leave-one-out attribute analysis (§4.1, Fig. 5): for each attribute a_i, `loo_personas` personas of
  `loo_base` attributes without a_i and the same personas with a_i; baseline answers to `loo_questions`
  questions are critiqued and refined (Appendix B) for each persona of the pair, then both personas pick
  between the two refinements (`loo_design="refinements"`, the default); κ between the two annotators over
  the questions, one κ per persona pair, and the distribution per attribute. Lower κ = more influence.
  §4.1 says "we critiqued and refined all 20 baseline answers ... for the given persona" and measures
  agreement "between the original persona and the persona with the LOO attribute"; it does not say which two
  answers the annotators compare. Comparing the two personas' refinements is our reading: it is the one that
  yields the κ distributions of Fig. 5. `loo_design="baseline"` (baseline vs the with-a_i refinement, our
  former reading) makes both personas pick the rewrite almost always, so κ is mostly undefined (p_e = 1) or
  near 0 at high raw agreement (18/20 alike gives κ ≈ −0.05). An undefined κ is reported as undefined.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from personagen.errors import BadInput
from personagen.prefs import calls
from personagen.prefs.kappa import cohen_kappa, paired, summary
from personagen.prefs.pairs import PairOptions, base_requests, dpf_rewrite
from personagen.prefs.profile import attributes, profile_text

LOO_DESIGNS = ("refinements", "baseline")


@dataclass(frozen=True)
class EvalOptions:
    """What to validate and at what size (defaults follow §4.1: 40 personas × 20 questions, 3 + 1 attributes)."""

    limit: int | None = 200  # pairs judged by the evaluator (None: all)
    second_temperature: float = 1.0  # the stand-in second role-player's sampling temperature
    loo_attributes: tuple[str, ...] = ()  # attribute labels for the LOO analysis (empty: skip it)
    loo_personas: int = 40
    loo_base: int = 3
    loo_questions: int = 20
    seed: int = 0
    max_retries: int = 1
    answer_tokens: int = 256  # LOO baseline answers and refinements (as `prefs --answer-tokens`)
    templates: str | None = None
    loo_design: str = "refinements"  # §4.1 as we read it (module doc); "baseline": our former reading

    def __post_init__(self) -> None:
        if self.loo_design not in LOO_DESIGNS:
            raise BadInput(f"--loo-design {self.loo_design!r}: expected one of {', '.join(LOO_DESIGNS)}")
        if self.answer_tokens < 8:
            raise BadInput(f"--answer-tokens {self.answer_tokens}: must be >= 8")
        if self.limit is not None and self.limit < 1:
            raise BadInput(f"--limit {self.limit}: must be >= 1")
        if min(self.loo_personas, self.loo_base, self.loo_questions) < 1:
            raise BadInput("--loo-personas / --loo-base / --loo-questions: must be >= 1")
        if not 0.0 <= self.second_temperature <= 2.0:
            raise BadInput(f"--second-temperature {self.second_temperature}: must be in [0, 2]")


@dataclass
class EvalResult:
    """Evaluator check, two-annotator agreement and LOO κ per attribute (also report.json / report.md / PNG)."""

    evaluator: dict[str, Any]
    agreement: dict[str, Any]
    loo: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def parse_choice(text: str | None) -> str | None:
    """Evaluator reply → "A", "B" or None (the first standalone A/B, e.g. "B", "Answer A.", "(b)")."""
    if not text:
        return None
    m = re.search(r"(?<![A-Za-z])([AaBb])(?![A-Za-z])", text.strip())
    return m.group(1).upper() if m else None


def judge(items: list[dict], client: Any, *, variant: str = "first", temperature: float = 0.0,
          max_retries: int = 1, templates: Any = None, tag: str = "") -> list[str | None]:
    """Role-play each item {persona_id, prompt_id, persona, prompt, chosen, rejected}; the label is "chosen" or
    "rejected" (which one the persona prefers), None when no parsable answer came after the retries."""
    order = [calls.seed_of("order", it["persona_id"], it["prompt_id"], tag) % 2 == 0 for it in items]
    labels: list[str | None] = [None] * len(items)
    todo = list(range(len(items)))
    for attempt in range(max_retries + 1):
        reqs = []
        for i in todo:
            it = items[i]
            first, second = (it["chosen"], it["rejected"]) if order[i] else (it["rejected"], it["chosen"])
            reqs.append(calls.chat(
                calls.prompt("evaluate.j2", templates, prompt=it["prompt"], first=first, second=second),
                system=calls.prompt("evaluator_system.j2", templates, persona=it["persona"], variant=variant),
                temperature=temperature if attempt == 0 else max(temperature, 0.7), max_tokens=4,
                seed=calls.seed_of("judge", variant, tag, it["persona_id"], it["prompt_id"], attempt)))
        for i, text in zip(todo, calls.texts(client, reqs, desc=f"prefs-judge-{variant}")):
            c = parse_choice(text)
            labels[i] = None if c is None else ("chosen" if (c == "A") == order[i] else "rejected")
        todo = [i for i in todo if labels[i] is None]
        if not todo:
            break
    return labels


def evaluator_check(labels: list[str | None]) -> dict[str, Any]:
    """§3.2: the share of judged pairs where the persona prefers `chosen` (paper: 0.96)."""
    parsed = [x for x in labels if x is not None]
    k = sum(x == "chosen" for x in parsed)
    return {"pairs": len(labels), "parsed": len(parsed), "unparsed": len(labels) - len(parsed),
            "prefers_chosen": k, "rate": round(k / len(parsed), 4) if parsed else None, "paper_rate": 0.96}


def agreement(items: list[dict], a: list[str | None], b: list[str | None], configs: dict) -> dict[str, Any]:
    """§4.2: κ between two role-players over all pairs both labelled, and the per-persona κ distribution."""
    x, y = paired(a, b)
    per: dict[str, tuple[list, list]] = {}
    for it, la, lb in zip(items, a, b):
        if la is not None and lb is not None:
            per.setdefault(it["persona_id"], ([], []))
            per[it["persona_id"]][0].append(la)
            per[it["persona_id"]][1].append(lb)
    kappas = {p: cohen_kappa(u, v) for p, (u, v) in per.items()}
    k = cohen_kappa(x, y)
    return {"kappa": None if math.isnan(k) else round(k, 4), "n": len(x),
            "raw_agreement": round(sum(u == v for u, v in zip(x, y)) / len(x), 4) if x else None,
            "per_persona": summary(list(kappas.values())), "configs": configs,
            "per_persona_kappa": {p: (None if math.isnan(v) else round(v, 4)) for p, v in kappas.items()}}


def loo_personas(personas: pl.DataFrame, attribute: str, opts: EvalOptions) -> list[tuple[dict, dict]]:
    """§4.1: `loo_personas` pairs (persona of `loo_base` attributes without a_i, the same plus a_i), drawn from
    library personas that have a_i (the paper's filtering: e.g. only personas with a disability for its type)."""
    rows = [attributes(r) for r in personas.iter_rows(named=True)]
    rows = [r for r in rows if attribute in r and len(r) > opts.loo_base]
    if not rows:
        raise BadInput(f"--loo-attributes: no persona has attribute {attribute!r} and {opts.loo_base} others")
    rng = np.random.default_rng([opts.seed, calls.seed_of("loo", attribute)])
    out = []
    for _ in range(opts.loo_personas):
        r = rows[int(rng.integers(len(rows)))]
        others = sorted(k for k in r if k != attribute)
        keep = [others[int(i)] for i in sorted(rng.choice(len(others), size=opts.loo_base, replace=False))]
        base = {k: r[k] for k in keep}
        out.append((base, {**base, attribute: r[attribute]}))
    return out


def loo_attribute(attribute: str, personas: pl.DataFrame, questions: list[dict], client: Any,
                  opts: EvalOptions, pair_opts: PairOptions) -> list[float]:
    """§4.1 for one attribute: one κ per persona pair (without a_i vs with a_i) over the questions."""
    base = calls.texts(client, base_requests(questions, pair_opts), desc="prefs-loo-base")
    qs = [{**q, "rejected": b} for q, b in zip(questions, base) if b]
    hi_items, lo_items = [], []
    for j, (lo, hi) in enumerate(loo_personas(personas, attribute, opts)):
        pid = f"loo:{attribute}:{j}"
        p_hi, p_lo = profile_text(hi, opts.templates), profile_text(lo, opts.templates)
        for q in qs:
            common = {"persona_id": pid, "prompt_id": q["prompt_id"], "prompt": q["prompt"], "rejected": q["rejected"],
                      "j": j}
            hi_items.append({**common, "persona": p_hi})
            lo_items.append({**common, "persona": p_lo, "persona_id": f"{pid}:without"})
    dpf_rewrite(hi_items, client, pair_opts, opts.templates)
    if opts.loo_design == "refinements":
        dpf_rewrite(lo_items, client, pair_opts, opts.templates)
        ok = [i for i, (h, w) in enumerate(zip(hi_items, lo_items)) if h.get("chosen") and w.get("chosen")]
        # both annotators pick between the refinement for the persona with a_i and the one without it
        with_items = [{**hi_items[i], "rejected": lo_items[i]["chosen"]} for i in ok]
        without_items = [{**with_items[k], "persona": lo_items[i]["persona"]} for k, i in enumerate(ok)]
    else:
        ok = [i for i, it in enumerate(hi_items) if it.get("chosen")]
        with_items = [hi_items[i] for i in ok]
        without_items = [{**hi_items[i], "persona": lo_items[i]["persona"]} for i in ok]
    kw = {"max_retries": opts.max_retries, "templates": opts.templates, "tag": "loo"}
    la, lb = judge(without_items, client, **kw), judge(with_items, client, **kw)
    per: dict[int, tuple[list, list]] = {j: ([], []) for j in range(opts.loo_personas)}
    for it, x, y in zip(with_items, la, lb):
        if x is not None and y is not None:
            per[it["j"]][0].append(x)
            per[it["j"]][1].append(y)
    return [cohen_kappa(u, v) for u, v in per.values()]


def evaluate(pairs: pl.DataFrame, personas: pl.DataFrame, prompts: pl.DataFrame, client: Any, opts: EvalOptions,
             second_client: Any = None) -> EvalResult:
    """Evaluator check + two-annotator agreement on (up to `limit`) pairs, then LOO per requested attribute."""
    if pairs.height == 0:
        raise BadInput("preferences.parquet has no pairs to evaluate (run `personagen prefs` first)")
    sample = pairs if opts.limit is None or opts.limit >= pairs.height else \
        pairs.sample(opts.limit, seed=opts.seed, shuffle=False)
    items = sample.to_dicts()
    first = judge(items, client, max_retries=opts.max_retries, templates=opts.templates)
    second = judge(items, second_client or client, variant="second", temperature=opts.second_temperature,
                   max_retries=opts.max_retries, templates=opts.templates, tag="second")
    configs = {"first": {"model": calls.model_of(client), "system": "evaluator_system.j2 (first)",
                         "temperature": 0.0},
               "second": {"model": calls.model_of(second_client or client), "system": "evaluator_system.j2 (second)",
                          "temperature": opts.second_temperature,
                          "stand_in": second_client is None}}
    res = EvalResult(evaluator_check(first), agreement(items, first, second, configs))
    if opts.loo_attributes:
        qs = prompts.sample(min(opts.loo_questions, prompts.height), seed=opts.seed).select("prompt_id", "prompt")
        questions = [{**q, "persona_id": ""} for q in qs.to_dicts()]
        pair_opts = PairOptions(seed=opts.seed, base_per_prompt=True, max_retries=opts.max_retries,
                                answer_tokens=opts.answer_tokens, critique_tokens=opts.answer_tokens)
        for a in opts.loo_attributes:
            ks = loo_attribute(a, personas, questions, client, opts, pair_opts)
            res.loo[a] = {**summary(ks), "kappas": [None if math.isnan(k) else round(k, 4) for k in ks]}
    return res


def write_report(res: EvalResult, out: Path) -> list[str]:
    """report.json, report.md (tables) and eval.png (LOO κ per attribute; per-persona κ of the two role-players)."""
    from personagen.prefs.report import render_markdown, render_plot
    from personagen.store import atomic_write_json, atomic_write_text

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", res.to_dict())
    atomic_write_text(out / "report.md", render_markdown(res.to_dict()))
    render_plot(res.to_dict(), out / "eval.png")
    return ["report.json", "report.md", "eval.png"]
