"""Prompt-mixture stage (paper 001): a weighted set of system prompts whose answers match a target distribution."""

from personagen.mixture.algorithms import (
    ALGORITHMS,
    EM_INITS,
    PAPER_K,
    WEIGHT_FITS,
    MixtureOptions,
    MixtureResult,
    run_search,
    wasserstein1,
    weights_eg,
    weights_slsqp,
)
from personagen.mixture.evaluate import EvalOptions, evaluate_mixture
from personagen.mixture.scenarios import (
    MOBLAB_GAMES,
    Scenario,
    big5_observed,
    big5_scenario,
    moblab_observed,
    moblab_scenario,
)
from personagen.mixture.searching import (
    MixtureRunOptions,
    Primitives,
    load_ipip_target,
    load_target,
    mixture_library,
    search,
)

__all__ = [
    "ALGORITHMS", "EM_INITS", "MOBLAB_GAMES", "PAPER_K", "WEIGHT_FITS", "EvalOptions", "MixtureOptions", "MixtureResult",
    "Primitives", "Scenario", "big5_observed", "big5_scenario", "evaluate_mixture", "load_ipip_target",
    "load_target", "mixture_library", "moblab_observed", "moblab_scenario", "run_search", "search",
    "wasserstein1", "weights_eg", "weights_slsqp", "MixtureRunOptions",
]
