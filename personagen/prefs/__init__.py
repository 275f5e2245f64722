"""prefs stage: PERSONA preference pairs (Castricato et al. 2024) — prompt curation, DPF pairs, role-play
validation (evaluator check, two-role-player κ, leave-one-out attribute κ), the LLM consistency filter, and the
trainer-ready export used by `personagen publish`."""

from personagen.prefs.estimate import PAPER, dry_run
from personagen.prefs.evaluation import EvalOptions, EvalResult, evaluate, parse_choice
from personagen.prefs.export import trainer_rows
from personagen.prefs.kappa import cohen_kappa
from personagen.prefs.pairs import PairOptions, PairsResult, parse_critique, parse_revision, plan_pairs
from personagen.prefs.profile import ConsistencyResult, consistency_filter, parse_consistency
from personagen.prefs.prompts import (
           CurateOptions,
           CurationResult,
           curate,
           parse_controversial,
           rule_filter,
           split_by_topic,
)
from personagen.prefs.run import (
           ModelSpec,
           PrefsOptions,
           PrefsResult,
           dry_run_library,
           evaluate_library,
           make_preferences,
           read_preferences,
)

__all__ = ["PAPER", "CurateOptions", "CurationResult", "ConsistencyResult", "EvalOptions", "EvalResult",
           "ModelSpec", "PairOptions", "PairsResult", "PrefsOptions", "PrefsResult", "cohen_kappa",
           "consistency_filter", "curate", "dry_run", "dry_run_library", "evaluate", "evaluate_library",
           "make_preferences", "parse_choice", "parse_consistency", "parse_controversial", "parse_critique",
           "parse_revision", "plan_pairs", "read_preferences", "rule_filter", "split_by_topic", "trainer_rows"]
