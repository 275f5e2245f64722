"""`personagen describe`: pool marginals vs the weighted census (thin: parse, call, print)."""

from __future__ import annotations

import json

import click

from personagen.commands.types import PlotFile


@click.command()
@click.argument("lib", type=click.Path())
@click.option("--census", type=click.Path(), default=None, help="PUMS file to compare with (default: the manifest's).")
@click.option("--plot", type=PlotFile(), default=None, help="Write a PNG comparison plot.")
@click.option("--calibration", default=None, help="Describe this calibration's weighted panel (pool vs weighted vs "
              "census, TVD and ASMD before/after, Kish ESS, design effect).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
def describe(lib: str, census: str | None, plot: str | None, calibration: str | None, as_json: bool) -> None:
    """Pool marginals vs the PWGTP-weighted census, with total variation distance per attribute."""
    from personagen.census import describe_library, plot_describe

    if calibration is not None:
        _describe_weighted(lib, census, plot, calibration, as_json)
        return

    res = describe_library(lib, census=census)
    if plot:
        plot_describe(res, plot)
        res["plot"] = plot
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(f"{res['library']}: {res['n_personas']} personas vs {res['census']} "
               f"({res['census_records']} records, population {res['census_population']:,})")
    click.echo(f"{'attribute':<18} {'TVD':>6}  largest gap (pool vs census)")
    for name, d in res["attributes"].items():
        cats = set(d["pool"]) | set(d["census"])
        k = max(cats, key=lambda x: abs(d["pool"].get(x, 0) - d["census"].get(x, 0)))
        click.echo(f"{name:<18} {d['tvd']:>6.3f}  {k}: {d['pool'].get(k, 0):.1%} vs {d['census'].get(k, 0):.1%}")
    if plot:
        click.echo(f"plot: {plot}")


def _describe_weighted(lib: str, census: str | None, plot: str | None, calibration: str, as_json: bool) -> None:
    """`describe --calibration NAME`: the weighted panel beside the pool and the census."""
    import polars as pl

    from personagen.calibrate import DescribeOptions, describe_calibration, plot_calibration
    from personagen.library import Library

    library = Library.open(lib)
    res = describe_calibration(library, DescribeOptions(calibration=calibration, census=census))
    if plot:
        w = pl.read_parquet(library.calibration_dir(res["calibration"]) / "weights.parquet")
        fitted = w.filter(pl.col("asked")) if "asked" in w.columns else w
        plot_calibration(res, fitted["weight"].to_numpy(), plot)
        res["plot"] = plot
    if as_json:
        click.echo(json.dumps(res))
        return
    click.echo(f"{res['calibration']}: {res['n_personas']} personas fitted (of {res['n_built']}); Kish ESS "
               f"{res['ess']:.1f}, design effect {res['design_effect']:.2f}, {res['nonzeros']} with weight, "
               f"largest weight {res['max_weight']:.3f}, top 10 hold {res['top10_weight_share']:.0%}")
    click.echo(f"{'attribute':<18} {'TVD pool':>9} {'TVD weighted':>13} {'ASMD pool':>10} {'ASMD weighted':>14}")

    def f(x: float | None, w: int) -> str:
        return f"{x:>{w}.3f}" if x is not None else f"{'–':>{w}}"

    for name, d in res["attributes"].items():
        click.echo(f"{name:<18} {f(d.get('tvd_before'), 9)} {f(d.get('tvd_after'), 13)} "
                   f"{f(d.get('asmd_before'), 10)} {f(d.get('asmd_after'), 14)}")
    if res["moved_furthest_from_census"]:
        click.echo("weighting moved these furthest from the census: " + ", ".join(res["moved_furthest_from_census"]))
    for n in res["caveats"]:
        click.echo(f"warning: {n}", err=True)
    for n in res["notes"]:
        click.echo(f"note: {n}", err=True)
    if plot:
        click.echo(f"plot: {plot}")
