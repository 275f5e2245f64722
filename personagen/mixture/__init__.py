"""Prompt-mixture stage (paper 001): a weighted set of system prompts whose answers match a target distribution."""

from personagen.mixture.search import (
    fit_simplex_weights,
    load_ipip_target,
    load_target,
    mixture_library,
    search,
    wasserstein1,
)

__all__ = ["fit_simplex_weights", "load_ipip_target", "load_target", "mixture_library", "search", "wasserstein1"]
