"""Reproduction stage: one driver per paper that reruns its protocol and prints its table beside ours."""

from personagen.reproduce.subpop import SubpopOptions, SubpopResult, reproduce_subpop, subpop_markdown

__all__ = [
    "SubpopOptions",
    "SubpopResult",
    "reproduce_subpop",
    "subpop_markdown",
]
