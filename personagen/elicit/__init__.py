"""elicit stage: ask every persona every survey question through personagen.llm; answers -> responses.parquet.

The face: `elicit_library` (ElicitOptions in, an ElicitSummary out; ElicitFailed when answers failed), the prompt builder and answer matcher that
other stages reuse (endow's answer pool), the row builders, and the engine registry (single process, Ray).
"""

from personagen.elicit.engines import ENGINES, EngineOptions, make_client
from personagen.elicit.matching import MAX_OPTIONS, letter_distribution, letters_for, match_answer
from personagen.elicit.order import ORDERS, display_order, stays_last
from personagen.elicit.rescore import invalid_warning, rescore_logprobs
from personagen.elicit.run import (
    MODES,
    SPLITS,
    ElicitOptions,
    build_messages,
    check_errors,
    consolidate_parts,
    elicit_library,
    logprob_rows,
    sample_rows,
)
from personagen.elicit.summary import ElicitFailed, ElicitSummary

__all__ = [
    "MAX_OPTIONS", "MODES", "SPLITS", "ElicitOptions", "build_messages", "check_errors", "consolidate_parts",
    "elicit_library", "letter_distribution", "letters_for", "logprob_rows", "match_answer", "sample_rows",
    "ENGINES", "EngineOptions", "make_client",
    "elicit_library", "invalid_warning", "letter_distribution", "letters_for", "logprob_rows", "match_answer",
    "rescore_logprobs", "sample_rows",
    "ORDERS", "display_order", "stays_last",
    "ElicitFailed", "ElicitSummary",
]
