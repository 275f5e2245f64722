"""finetune stage (SubPOP, paper 003): training triples, subpopulation steering prompts, LoRA fine-tuning
with the forward-KL / WD loss, bounds and baselines. torch/transformers/peft are the `[train]` extra and are
imported only inside the functions that need them."""

from personagen.finetune.bounds import (
    BOUND_DISTANCES,
    HumanBound,
    example_wd,
    group_means,
    human_bound,
    relative_improvement,
    respondents_for,
    train_marginal,
    uniform_wd,
)
from personagen.finetune.data import (
    PAPER_GROUPS_22,
    Example,
    export_hub_config,
    export_jsonl,
    open_survey,
    read_jsonl,
    survey_examples,
    training_examples,
)
from personagen.finetune.evaluate import METHODS, Predictions, predict
from personagen.finetune.fewshot import HashedTfidf, fewshot_prompts, nearest
from personagen.finetune.losses import LOSSES, forward_kl, wd_loss
from personagen.finetune.overlap import EMBEDDERS, OVERLAP_THRESHOLD, overlapping, resolve_embedder
from personagen.finetune.steering import (
    FORMATS,
    Steering,
    fewshot_prompt,
    parse_distribution,
    question_prompt,
    steering_text,
)
from personagen.finetune.train import (
    FinetuneOptions,
    FinetuneResult,
    finetune,
    micro_batches,
    validation_loss,
)

__all__ = [
    "EMBEDDERS",
    "OVERLAP_THRESHOLD",
    "overlapping",
    "resolve_embedder",
    "PAPER_GROUPS_22",
    "BOUND_DISTANCES",
    "Example",
    "FORMATS",
    "FinetuneOptions",
    "FinetuneResult",
    "HashedTfidf",
    "HumanBound",
    "LOSSES",
    "METHODS",
    "Predictions",
    "Steering",
    "example_wd",
    "export_hub_config",
    "export_jsonl",
    "fewshot_prompt",
    "fewshot_prompts",
    "finetune",
    "forward_kl",
    "group_means",
    "human_bound",
    "micro_batches",
    "nearest",
    "open_survey",
    "parse_distribution",
    "predict",
    "question_prompt",
    "read_jsonl",
    "relative_improvement",
    "respondents_for",
    "steering_text",
    "survey_examples",
    "train_marginal",
    "training_examples",
    "uniform_wd",
    "validation_loss",
    "wd_loss",
]
