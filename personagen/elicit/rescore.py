"""`--min-mass` as a scoring choice: re-apply the threshold to stored logprob answers, with no model call.

Every logprob answer whose option letters got any probability is stored as option rows (the renormalised
distribution) with its covered letter mass in `mass`; `valid` is `mass >= min_mass`. Changing the threshold
therefore only rewrites `valid` from the stored masses. Answers with no letter mass at all (or no
logprobs) stay invalid whatever the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from personagen.locking import library_lock
from personagen.store import atomic_write_parquet

HIGH_INVALID_SHARE = 0.2  # warn above this share of invalid answers


@dataclass(frozen=True)
class Rescore:
    """Answers (persona-question pairs) of one survey/model/mode after re-scoring, and how many changed."""

    answers: int
    invalid: int
    changed: int

    @property
    def invalid_share(self) -> float:
        return self.invalid / self.answers if self.answers else 0.0


def rescore_logprobs(lib: Any, survey_id: str, model: str, min_mass: float) -> Rescore:
    """Set `valid = mass >= min_mass` on this survey/model's stored logprob rows (under the library lock)."""
    with library_lock(lib.path):
        r = lib.responses()
        if "mass" not in r.columns or r.height == 0:
            return Rescore(0, 0, 0)
        mine = (pl.col("survey_id") == survey_id) & (pl.col("model") == model) & (pl.col("mode") == "logprobs")
        scorable = mine & pl.col("option").is_not_null() & pl.col("mass").is_not_null() & (pl.col("mass") > 0)
        new_valid = pl.when(scorable).then(pl.col("mass") >= min_mass).otherwise(pl.col("valid"))
        out = r.with_columns(new_valid.alias("valid"))
        flipped = (out["valid"] != r["valid"]).fill_null(False)
        if flipped.any():
            atomic_write_parquet(lib.responses_path, out)
        changed = out.filter(flipped).select("persona_id", "qid").unique().height
        per = out.filter(mine).group_by("persona_id", "qid").agg(pl.col("valid").any().alias("ok"))
        return Rescore(per.height, int((~per["ok"]).sum()), changed)


def with_validity(lib: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """Add the library-wide answer counts of this survey/model/mode to an elicit summary: `answers_total`,
    `invalid_total` (answers without any valid row) and `invalid_share`."""
    r = lib.responses()
    mine = r.filter((pl.col("survey_id") == summary["survey_id"]) & (pl.col("model") == summary["model"])
                    & (pl.col("mode") == summary["mode"]))
    if summary.get("style") and "style" in mine.columns:  # answers before the style column: narrative
        mine = mine.filter(pl.col("style").fill_null("narrative") == summary["style"])
    per = mine.group_by("persona_id", "qid").agg(pl.col("valid").fill_null(False).any().alias("ok"))
    n, bad = per.height, int((~per["ok"]).sum()) if per.height else 0
    summary.update(answers_total=n, invalid_total=bad, invalid_share=round(bad / n, 4) if n else 0.0)
    return summary


def invalid_warning(summary: dict[str, Any], min_mass: float) -> str | None:
    """A one-line warning when more than 20% of the answers are invalid, saying what to do."""
    share = summary.get("invalid_share") or 0.0
    if share <= HIGH_INVALID_SHARE:
        return None
    hint = (f"re-run elicit with a lower --min-mass (e.g. {min_mass / 2:g}; re-scores stored logprobs, no new "
            "model calls)" if summary.get("mode") == "logprobs" else "try --mode logprobs or more --samples")
    return (f"{summary['invalid_total']} of {summary['answers_total']} answers ({share:.0%}) are invalid; "
            f"{hint}, or calibrate with --drop-incomplete")


__all__ = ["rescore_logprobs", "with_validity", "invalid_warning", "Rescore", "HIGH_INVALID_SHARE"]
