"""`personagen calibrate`: fit persona weights to a survey wave or to census margins (thin CLI)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from personagen.calibrate import BASES, DEFAULT_REPLICATES, METHODS, PULLS, REPLICATE_PENALTIES, SEARCHES
from personagen.commands._options import PER_SPLIT, QUESTIONS, selected_survey
from personagen.commands.types import SEED, Count, Name


@click.command("calibrate")
@click.argument("lib", type=click.Path(path_type=Path))
@click.option("--survey", "survey", type=click.Path(path_type=Path), default=None,
              help="Survey parquet (from `personagen surveys import`).")
@click.option("--census-margins", "census_margins", default=None, metavar="VARS",
              help="Comma-separated persona columns matched to the census source's PWGTP-weighted margins.")
@click.option("--target", "group", default="overall", show_default=True,
              help="Survey group to calibrate to (e.g. a SubPOP group or 'Northeast').")
@click.option("--method", type=click.Choice(METHODS), default="simplex", show_default=True)
@click.option("--block-weighting", is_flag=True, help="Weight rows 1/K so every question counts equally.")
@click.option("--pull", type=click.Choice(PULLS), default="l2", show_default=True,
              help="Penalty pulling weights toward the base weights (simplex).")
@click.option("--base", type=click.Choice(BASES), default="uniform", show_default=True,
              help="Base weights w0: uniform or the personas' census PWGTP shares.")
@click.option("--max-agents", type=Count(1), default=None, help="Refit on the K largest weights (compact panel).")
@click.option("--model", default=None, help="Use responses of this model (needed when several are present).")
@click.option("--mode", default=None, help="Use responses of this mode (sample|logprobs).")
@click.option("--drop-incomplete", is_flag=True, help="Exclude personas lacking answers instead of refusing.")
@click.option("--split-seed", type=SEED, default=None, help="Re-split the survey's questions with this seed.")
@click.option("--folds", type=Count(2, 1000), default=None, help="CV folds (grouped by question).")
@click.option("--lam-search", "lam_search", type=click.Choice(SEARCHES), default="refine", show_default=True,
              help="How CV walks the simplex λ grid: coarse-to-fine, stopping two coarse values past the best, then "
                   "refining outward from it while the curve falls (the full grid's choice when the CV curve is "
                   "unimodal, ~50% of the fits) or every value.")
@click.option("--replicates", type=Count(0, 1000), default=DEFAULT_REPLICATES, show_default=True,
              help="Half-sample replicate weights (refits at the chosen penalty) stored as rep_1..rep_R for standard "
                   "errors; 0 = none.")
@click.option("--replicate-penalty", "replicate_penalty", type=click.Choice(REPLICATE_PENALTIES), default="fixed",
              show_default=True, help="Replicates refit at the chosen penalty, or re-choose it by CV in each (R × "
              "the CV's cost; measured to recover little of the penalty's selection variance: docs/estimate.md).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@QUESTIONS
@PER_SPLIT
@click.option("--name", type=Name(), default=None, help="Calibration name (folder under LIB/calibrations).")
@click.option("--overwrite", is_flag=True, help="Replace an existing calibration of the same name.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def calibrate(lib: Path, survey: Path | None, census_margins: str | None, group: str, method: str,
              block_weighting: bool, pull: str, base: str, max_agents: int | None, model: str | None,
              mode: str | None, drop_incomplete: bool, split_seed: int | None, folds: int | None, lam_search: str,
              replicates: int, replicate_penalty: str, seed: int, questions: str | None, per_split: int | None,
              name: str | None, overwrite: bool, as_json: bool) -> None:
    """Fit persona weights of LIB to a survey (--survey) and/or census margins (--census-margins)."""
    from personagen.calibrate import CalibrateOptions, calibrate_library
    from personagen.errors import BadInput
    from personagen.library import Library

    if survey is None and not census_margins:
        raise BadInput("give --survey SURVEY or --census-margins VARS")
    opts = CalibrateOptions(method=method, group=group, census_margins=census_margins,
                            block_weighting=block_weighting, pull=pull, seed=seed, name=name, max_agents=max_agents,
                            split_seed=split_seed, base=base, model=model, mode=mode,
                            drop_incomplete=drop_incomplete, folds=folds, lam_search=lam_search, overwrite=overwrite,
                            replicates=replicates, replicate_penalty=replicate_penalty)
    library = Library.open(lib)
    if survey is not None and (questions is not None or per_split is not None):
        survey = selected_survey(survey, questions, per_split, seed)
    with warnings.catch_warnings(record=True) as caught:  # show library warnings as plain one-liners
        warnings.simplefilter("always")
        cal = calibrate_library(library, survey, opts)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    rep = cal.report
    if as_json:
        click.echo(json.dumps({"path": str(cal.path), **rep.to_dict()}, default=str))
        return
    click.echo(f"calibration {rep.name} -> {cal.path}")
    click.echo(f"  method {rep.method}  λ={_num(rep.lam)}  α={_num(rep.alpha)}  nonzeros {rep.nonzeros}/"
               f"{rep.n_personas}  ESS {rep.ess:.1f}  negative {rep.negative_weights}")
    for s in rep.metrics:
        ua = rep.metric(s, "mse", "uniform_average")
        click.echo(f"  {s:5s} MSE {rep.metric(s, 'mse'):.3e} (equal weights {ua:.3e})  "
                   f"1-JSD {rep.metric(s, 'one_minus_jsd'):.4f}")
    rp = rep.replicates
    click.echo(f"  replicate weights: {rp.r} {rp.method} (refits at the chosen penalty, {rp.seconds} s)"
               if rp is not None and rp.r else
               "  replicate weights: none (--replicates 0): estimate gives no standard errors")
    for n in rep.notes:
        click.echo(f"  note: {n}")


def _num(x: float | None) -> str:
    """A penalty for display: 4 significant digits, '-' when not used."""
    return "-" if x is None else f"{x:.4g}"
