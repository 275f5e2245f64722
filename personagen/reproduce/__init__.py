"""Reproduction stage: one driver per paper that reruns its protocol and prints its table beside ours."""

from personagen.reproduce.p2p import P2PReproOptions, P2PReproResult, reproduce_p2p
from personagen.reproduce.plan import p2p_plan, promptmix_plan
from personagen.reproduce.promptmix import PromptMixReproOptions, PromptMixReproResult, reproduce_promptmix
from personagen.reproduce.subpop import (
    BoundsOptions,
    SubpopOptions,
    SubpopResult,
    bounds_markdown,
    reproduce_subpop,
    subpop_bounds,
    subpop_markdown,
)
from personagen.reproduce.tables import p2p_markdown, promptmix_markdown

__all__ = [
    "BoundsOptions",
    "P2PReproOptions",
    "P2PReproResult",
    "PromptMixReproOptions",
    "PromptMixReproResult",
    "SubpopOptions",
    "SubpopResult",
    "p2p_markdown",
    "p2p_plan",
    "promptmix_markdown",
    "promptmix_plan",
    "reproduce_p2p",
    "reproduce_promptmix",
    "reproduce_subpop",
    "subpop_bounds",
    "bounds_markdown",
    "subpop_markdown",
]
