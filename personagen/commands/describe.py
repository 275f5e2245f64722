"""`personagen describe`: pool marginals vs the weighted census (thin: parse, call, print)."""

from __future__ import annotations

import json

import click

from personagen.commands.types import PlotFile


@click.command()
@click.argument("lib", type=click.Path())
@click.option("--census", type=click.Path(), default=None, help="PUMS file to compare with (default: the manifest's).")
@click.option("--plot", type=PlotFile(), default=None, help="Write a PNG comparison plot.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
def describe(lib: str, census: str | None, plot: str | None, as_json: bool) -> None:
    """Pool marginals vs the PWGTP-weighted census, with total variation distance per attribute."""
    from personagen.census import describe_library, plot_describe

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
