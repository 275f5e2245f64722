"""Caveats that travel with a calibration: one-line warnings (each says what to do) for panels that rest on
too little, recorded in report.json `caveats`, printed by `calibrate` as `warning:` lines, and carried by
`publish` into personagen.json and the dataset card.

Thresholds (docs/estimate.md says why): Kish ESS below 30 (a share's normal interval needs about 30
independent answers) or below 5% of the personas fitted; fewer than 10 training questions (the CV that
chose the penalty then rests on a handful of folds of one or two questions); a held-out split (valid, test)
empty or below 5 questions (its metrics and the prediction interval say little); fewer than 10 personas
keeping a weight; fewer than half of the built personas asked.
"""

from __future__ import annotations

from personagen.calibration_report import CalibrationReport

MIN_ESS = 30.0
MIN_ESS_SHARE = 0.05
MIN_TRAIN_QUESTIONS = 10
MIN_HELDOUT = 5
MIN_NONZEROS = 10
MIN_ASKED_SHARE = 0.5


def _ess_caveat(rep: CalibrationReport) -> list[str]:
    ess, n = rep.ess, rep.n_personas
    if n and (ess < MIN_ESS or ess < MIN_ESS_SHARE * n):
        return [f"effective sample size {ess:.1f} of {n} personas fitted (< {MIN_ESS:g} or < "
                f"{MIN_ESS_SHARE:.0%}): the panel's answers rest on a few personas; elicit more personas, "
                "train on more questions, or use --base census / a stronger pull (raise λ) for a flatter panel"]
    return []


def _split_caveats(rep: CalibrationReport) -> list[str]:
    nq = rep.n_questions
    out = []
    n_train = nq.get("train", 0)
    if n_train < MIN_TRAIN_QUESTIONS:
        out.append(f"only {n_train} training question(s) (< {MIN_TRAIN_QUESTIONS}): the penalty was chosen by "
                   "cross-validation on too few questions and the weights may fit noise; elicit more questions "
                   "(elicit --split all / --max-questions) or re-split with --split-seed")
    for s in ("valid", "test"):
        k = nq.get(s, 0)
        if k < MIN_HELDOUT:
            what = "is empty" if k == 0 else f"has only {k} question(s) (< {MIN_HELDOUT})"
            out.append(f"the held-out {s} split {what}: held-out metrics and the prediction interval of "
                       "`estimate` cannot be trusted; elicit the held-out questions (elicit --split all) or "
                       "re-split with --split-seed")
    return out


def calibration_caveats(rep: CalibrationReport, *, census: bool = False) -> list[str]:
    """The warnings a calibration report earns (empty when none applies)."""
    out = _ess_caveat(rep)
    if not census:
        out += _split_caveats(rep)
    nz, n = rep.nonzeros, rep.n_personas
    if n and nz < MIN_NONZEROS:
        out.append(f"only {nz} persona(s) keep a weight (< {MIN_NONZEROS}) at the chosen penalty "
                   f"λ={rep.lam!r} α={rep.alpha!r}: estimates repeat those personas; fix a larger "
                   "penalty, use --base census, or elicit more personas")
    built, asked = rep.personas_built, rep.personas_asked
    if built and asked is not None and asked < MIN_ASKED_SHARE * built:
        out.append(f"only {asked} of {built} built personas answered and were fitted; the other {built - asked} "
                   "carry weight 0 (asked = false in weights.parquet), so the panel does not stand for the built "
                   "pool; elicit all personas (elicit without --limit)")
    return out


__all__ = ["calibration_caveats", "MIN_ESS", "MIN_ESS_SHARE", "MIN_TRAIN_QUESTIONS", "MIN_HELDOUT",
           "MIN_NONZEROS", "MIN_ASKED_SHARE"]
