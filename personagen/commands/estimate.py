"""`personagen estimate`: weighted answer shares of a calibrated panel, with intervals (thin CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands.types import PlotFile


@click.command("estimate")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--survey", "survey", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Survey parquet whose questions the panel answered (from `personagen surveys import`).")
@click.option("--calibration", default=None, help="Calibration NAME (default: the library's only one).")
@click.option("--by", default=None, metavar="COL[,COL...]", help="Also estimate per value of these persona columns.")
@click.option("--questions", default=None, metavar="QID[,QID...]", help="Only these questions.")
@click.option("--level", type=float, default=0.95, show_default=True, help="Interval level.")
@click.option("--model", default=None, help="Responses of this model (default: the calibration's).")
@click.option("--mode", default=None, help="Responses of this mode (default: the calibration's).")
@click.option("--plot", type=PlotFile(), default=None, help="Write a PNG: one panel per question.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the table to FILE.csv or FILE.parquet.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with `rows` last.")
def estimate(lib: Path, survey: Path, calibration: str | None, by: str | None, questions: str | None, level: float,
             model: str | None, mode: str | None, plot: str | None, out: Path | None, as_json: bool) -> None:
    """Weighted answer shares of LIB's calibrated panel for SURVEY's questions, overall and by group, with a
    sampling interval (replicate weights) and a prediction interval (held-out questions' errors)."""
    from personagen.calibrate import EstimateOptions, estimate_library
    from personagen.errors import BadInput
    from personagen.store import atomic_write_bytes, atomic_write_parquet

    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise BadInput(f"-o {out}: must end in .csv or .parquet")
    if out is not None and not out.parent.exists():
        raise BadInput(f"-o {out}: directory {out.parent} does not exist")
    opts = EstimateOptions(calibration=calibration, by=by or (), questions=questions, level=level, model=model,
                           mode=mode)
    est = estimate_library(lib, survey, opts)
    if out is not None:
        if out.suffix == ".parquet":
            atomic_write_parquet(out, est.table)
        else:
            atomic_write_bytes(out, est.table.write_csv().encode())
    if plot:
        from personagen.calibrate import plot_estimate

        plot_estimate(est.table, plot, title=f"{est.calibration}: weighted shares (level {level:g})")
    for n in est.notes:
        click.echo(f"note: {n}", err=True)
    if as_json:
        click.echo(json.dumps(est.to_dict(), default=str))
        return
    _print_table(est)


def _print_table(est) -> None:  # noqa: ANN001
    click.echo(f"{'qid':<14} {'option':<28} {'group':<14} {'est':>6} {'se':>6} {'interval':>15} "
               f"{'prediction':>15} {'n':>5} {'ess':>6} {'target':>6} split")

    def f(x: float | None, w: int = 6) -> str:
        return f"{x:>{w}.3f}" if x is not None else f"{'–':>{w}}"

    for r in est.table.iter_rows(named=True):
        iv = f"[{f(r['lo'], 5)},{f(r['hi'], 5)}]" if r["lo"] is not None else f"{'–':>15}"
        pv = f"[{f(r['plo'], 5)},{f(r['phi'], 5)}]" if r["plo"] is not None else f"{'–':>15}"
        click.echo(f"{r['qid'][:14]:<14} {r['option'][:28]:<28} {str(r['group'])[:14]:<14} {f(r['estimate'])} "
                   f"{f(r['se'])} {iv:>15} {pv:>15} {r['n']:>5} {r['ess']:>6.1f} {f(r['target'])} {r['split']}")
    for key, g in est.prediction["groups"].items():
        if g.get("halfwidth") is not None:
            click.echo(f"prediction interval {key}: ±{g['halfwidth']:.3f} from {g['heldout_questions']} held-out "
                       f"questions; coverage {g['coverage']:.2f} (leave-one-question-out) vs sampling interval "
                       f"{g['sampling_coverage'] if g['sampling_coverage'] is not None else float('nan'):.2f}; "
                       f"assumes new questions resemble the held-out ones")
        elif g.get("note"):
            click.echo(f"prediction interval {key}: {g['note']}")
