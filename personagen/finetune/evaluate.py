"""Predictions of the SubPOP baselines and of a fine-tuned model on evaluation examples (paper 003, sec. 4.1):
zero-shot QA/BIO/PORTRAY steering read from first-token option logprobs, and the few-shot JSON baseline
(greedy generation parsed as a distribution; an unparsable answer counts as uniform and is reported)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from personagen.finetune.data import Example
from personagen.finetune.fewshot import K_SHOTS, fewshot_prompts
from personagen.finetune.steering import Steering, parse_distribution, question_prompt

TOKENS_PER_OPTION = 12  # "'A': 0.050, " is 10 SmolLM2 tokens (digits split one by one); 2 spare


def fewshot_max_tokens(n_options: int) -> int:
    """Generation cap for the few-shot answer: room for the whole Fig. 15 dict of n options (three decimals)
    plus braces and a little slack, so 7+ option questions are not cut into unparsable JSON."""
    return TOKENS_PER_OPTION * n_options + 16


@dataclass
class Predictions:
    """One distribution per example (option order), and how many answers were unusable (set to uniform)."""

    method: str
    dists: list[list[float]]
    invalid: int = 0


def _zero_shot(fmt: str) -> Callable:
    def run(scorer: object, tests: Sequence[Example], train: Sequence[Example], k: int) -> Predictions:
        prompts = [question_prompt(Steering(e.attribute, e.group, fmt), e.question, e.options) for e in tests]
        return Predictions(f"zero_shot_{fmt}", scorer.distributions(prompts, [len(e.options) for e in tests]))

    return run


def _few_shot(scorer: object, tests: Sequence[Example], train: Sequence[Example], k: int) -> Predictions:
    prompts = fewshot_prompts(tests, train, k)
    texts: list[str] = [""] * len(tests)
    for n in sorted({len(e.options) for e in tests}):  # one cap per option count (the cache keys on it)
        idx = [i for i, e in enumerate(tests) if len(e.options) == n]
        for i, t in zip(idx, scorer.generate([prompts[i] for i in idx], fewshot_max_tokens(n))):
            texts[i] = t
    dists, bad = [], 0
    for e, t in zip(tests, texts):
        d = parse_distribution(t, len(e.options))
        if d is None:
            bad += 1
            d = [1 / len(e.options)] * len(e.options)
        dists.append(d)
    return Predictions("few_shot", dists, bad)


METHODS: dict[str, Callable] = {
    "zero_shot_qa": _zero_shot("qa"),
    "zero_shot_bio": _zero_shot("bio"),
    "zero_shot_portray": _zero_shot("portray"),
    "few_shot": _few_shot,
}


def predict(method: str, scorer: object, tests: Sequence[Example], train: Sequence[Example] = (),
            k: int = K_SHOTS) -> Predictions:
    """Run one baseline (a METHODS name) with a scorer that has `distributions` and `generate` (llm.HFScorer)."""
    return METHODS[method](scorer, tests, train, k)
