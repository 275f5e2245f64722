"""Honest calibration reports: say plainly when the calibrated panel does worse on held-out questions than
a trivial baseline (equal weights over the personas, or the uniform distribution over options), and when
the held-out split has too few questions for its bootstrap intervals to mean much."""

from __future__ import annotations

from typing import Any

MIN_HELDOUT_QUESTIONS = 5
BASELINE_NAMES = {"uniform_average": "the equal-weight panel", "uniform_distribution": "the uniform distribution",
                  "census_base": "the census base weights"}


def _value(block: Any, metric: str = "mse") -> float | None:
    try:
        v = block[metric]["value"]
    except (KeyError, TypeError):
        return None
    return float(v) if v is not None else None


def honesty_notes(report: dict[str, Any], split: str = "test") -> list[str]:
    """Warnings for the report: losses to baselines on `split` (MSE) and a held-out split that is too small."""
    notes: list[str] = []
    n_q = (report.get("n_questions") or {}).get(split)
    if n_q is not None and 0 < n_q < MIN_HELDOUT_QUESTIONS:
        notes.append(f"the {split} split has only {n_q} question(s) (< {MIN_HELDOUT_QUESTIONS}): its metrics and "
                     f"intervals say little; use a survey with more questions or re-split with --split-seed")
    mine = _value((report.get("metrics") or {}).get(split))
    if mine is None:
        return notes
    for key, label in BASELINE_NAMES.items():
        theirs = _value(((report.get("baselines") or {}).get(key) or {}).get(split))
        if theirs is not None and mine > theirs:
            notes.append(f"WORSE THAN BASELINE: on the {split} split the calibrated panel's MSE {mine:.3g} is "
                         f"higher than {label}'s {theirs:.3g}; do not use these weights as they are")
    return notes


__all__ = ["honesty_notes", "MIN_HELDOUT_QUESTIONS"]
