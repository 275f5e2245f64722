"""Active endowment generation, the loop of P2P Alg. 1 (paper 000, §3.3 and Appendix D.3).

- Lines 1–2: the attribute bank (core, thematic, theoretical templates) plus the survey-level attributes the
  attribute learner derives from Q_train (mode ``learned``).
- Lines 3–5 (initial sampling stage): an equal number of endowments from every mode (paper: 10 per mode);
  under a budget too small for that, an equal number from as many modes as half the budget allows.
- Lines 6–23 (expansion stage): `n_updates` update steps (paper: 10) share the rest of the budget N_A.
  Each step: Tracker scores and softmax probabilities (eq. 5, Alg. 2), the lowest-k questions get the
  patch share ρ of the step budget (new → attribute learner, repeated → their learned attributes, seen
  more than t times → mixed mode with the top-performing mode), the rest is allocated Multinomial(B, p).
- An attribute learner that returns nothing for a question is *counted* (`question_learner_empty`) and
  written in the step log (`patch_failures`); that question's patch budget goes back to the multinomial
  allocation of the same step (the paper does not say; this keeps the budget and makes the loss visible).

Each Tracker update (after the initial stage and after every update step) appends one line to the run log
(`tracker.jsonl`, see `Tracker.snapshot`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from personagen.endow.bank import MAX_ATTRIBUTES, AttributeBank
from personagen.endow.tracker import Tracker, patch_split, update_schedule

MIXED_QUESTION_ATTRIBUTES = 5  # a mixed mode takes ≤ 5 question attributes, the rest (to 10) from the top mode


def initial_allocation(modes: list[str], budget: int, per_mode: int, rng: np.random.Generator) -> dict[str, int]:
    """Alg. 1 line 3: equal-mode sampling, `per_mode` each, capped so the initial stage uses ≤ half the budget
    (the expansion stage needs the rest); when even one per mode exceeds that, a random subset of modes gets 1."""
    cap = max(1, math.ceil(budget / 2))
    n0 = max(1, min(per_mode, cap // max(1, len(modes))))
    chosen = list(modes)
    if n0 * len(modes) > cap:
        chosen = [modes[i] for i in sorted(rng.choice(len(modes), size=cap, replace=False))]
    return {m: n0 for m in chosen}


@dataclass
class AttributeSource:
    """Where each mode's attributes come from: bank modes, the survey-level learned list, per-question lists."""

    bank: AttributeBank
    learned: list[str]
    questions: dict[str, list[str]] = field(default_factory=dict)
    mixed: dict[str, tuple[str, str]] = field(default_factory=dict)  # mixed mode -> (qid, top mode)

    def _draw(self, items: list[str], k: int, rng: np.random.Generator) -> list[str]:
        k = min(k, len(items))
        return [items[i] for i in sorted(rng.choice(len(items), size=k, replace=False))] if k else []

    def sample(self, mode: str, rng: np.random.Generator, k: int = MAX_ATTRIBUTES) -> list[str]:
        """§4.2: draw k (paper: 10) attributes for one endowment from the mode (all of them if it has fewer)."""
        if mode in self.bank.modes:
            return self.bank.sample(mode, rng, k_min=k, k_max=k)
        if mode == "learned":
            return self._draw(self.learned, k, rng)
        if mode in self.mixed:
            q, top = self.mixed[mode]
            part = self._draw(self.questions.get(q, []), min(MIXED_QUESTION_ATTRIBUTES, k), rng)
            return part + self.sample(top, rng, k - len(part))
        if mode.startswith("patch:"):
            return self._draw(self.questions.get(mode[len("patch:"):], []), k, rng)
        raise KeyError(mode)

    def source(self, mode: str) -> str:
        if mode in self.bank.modes:
            return "bank"
        return "mixed" if mode in self.mixed else "learned"


@dataclass
class StepPlan:
    """One update step: the multinomial allocation plus patch/mixed-mode budgets, and what failed."""

    step: int
    budget: int
    allocation: dict[str, int]
    patches: list[dict]
    failures: list[str]
    scores: dict[str, float]
    probabilities: dict[str, float]


def plan_update(tracker: Tracker, attrs: AttributeSource, step: int, budget: int,
                learn: Callable[[list[str]], dict[str, list[str]]]) -> StepPlan:
    """Alg. 1 lines 7–19 for one step: scores → patches (learning new questions' attributes) → allocation."""
    snap = tracker.snapshot(step)
    rest, patches = tracker.plan_patches(budget)
    need = [p["qid"] for p in patches if not attrs.questions.get(p["qid"])]  # new, or empty last time
    if need:
        attrs.questions.update(learn(need))
    kept, failures = [], []
    for p in patches:
        if not attrs.questions.get(p["qid"]):
            failures.append(p["qid"])
            rest += p["n"]
            continue
        if p["kind"] == "mixed":
            mode = f"mixed:{p['qid']}+{p['top_mode']}"
            attrs.mixed[mode] = (p["qid"], p["top_mode"])
        else:
            mode = f"patch:{p['qid']}"
        kept.append({**p, "mode": mode})
    alloc = tracker.allocate(rest, list(tracker.modes))
    return StepPlan(step, budget, alloc, kept, failures, snap["scores"], snap["probabilities"])


def plan_specs(plan: StepPlan, attrs: AttributeSource, rng: np.random.Generator, per_call: int,
               question_text: Callable[[str], str]) -> list[dict]:
    """Endowment-model requests for a plan: one spec per call of ≤ per_call personas, each with its own draw."""
    specs = []
    for m, n in plan.allocation.items():
        for k in _chunks(n, per_call):
            specs.append({"source": attrs.source(m), "mode": m, "attributes": attrs.sample(m, rng), "n": k})
    for p in plan.patches:
        for k in _chunks(p["n"], per_call):
            specs.append({"source": attrs.source(p["mode"]), "mode": p["mode"], "attributes": attrs.sample(p["mode"], rng),
                          "n": k, "qid": p["qid"], "question": question_text(p["qid"])})
    return specs


def _chunks(n: int, per_call: int) -> list[int]:
    calls = max(1, math.ceil(n / max(1, per_call)))
    base, extra = divmod(n, calls)
    return [x for x in (base + (1 if i < extra else 0) for i in range(calls)) if x > 0]


def step_sizes(budget: int, initial: int, n_updates: int, step_size: int | None) -> list[int]:
    """The expansion schedule: `n_updates` even steps (Alg. 1, paper 10), or fixed `step_size` steps if set."""
    if step_size:
        rest = max(0, budget - initial)
        return [min(step_size, rest - i) for i in range(0, rest, step_size)]
    return update_schedule(budget, initial, n_updates)


def planned_calls(n_modes: int, budget: int, n_updates: int, per_call: int, n_train: int, *,
                  per_mode: int = 10, lowest_k: int = 3, patch_ratio: float = 0.75) -> dict[str, int]:
    """Endowment-model and attribute-learner calls of one active run (Alg. 1), for `--dry-run`: the initial
    stage exactly (per-mode chunks of ≤ per_call personas), each update step's patches exactly, the
    multinomial part as ceil(rest / per_call) (a split over several modes can add a call per extra mode),
    and up to `lowest_k` question-learner calls per step (fewer when a patched question repeats)."""
    init = initial_allocation([str(i) for i in range(n_modes)], budget, per_mode, np.random.default_rng(0))
    endow = sum(len(_chunks(n, per_call)) for n in init.values())
    learner = 1  # the survey-level attribute learner
    k = min(lowest_k, n_train)
    for b in update_schedule(budget, sum(init.values()), n_updates):
        rest, per_q = patch_split(b, k, patch_ratio)
        endow += math.ceil(rest / per_call) + sum(len(_chunks(n, per_call)) for n in per_q if n)
        learner += len(per_q)
    return {"endowment_calls": endow, "learner_calls": learner}


def plan_record(plan: StepPlan, generated: dict[str, int], tracker: Tracker, n_made: int) -> dict[str, Any]:
    """The run_log.json entry of an update step."""
    h = tracker.question_entropy()
    return {"step": plan.step, "kind": "active", "budget": plan.budget, "allocation": plan.allocation,
            "patches": plan.patches, "patch_failures": plan.failures, "scores": plan.scores,
            "probabilities": plan.probabilities, "generated_by_mode": generated, "n_pool_after": n_made,
            "mean_entropy_after": float(h.mean()) if len(h) else 0.0,
            "entropies_after": dict(zip(tracker.qids, map(float, h))), "times_lowest": dict(tracker.low_counts)}
