"""`personagen build` (thin: parse options, call the stage, print)."""

from __future__ import annotations

import json

import click

from personagen.commands.types import SEED, Count


@click.command()
@click.option("-o", "--out", "out", required=True, type=click.Path(), help="Library directory to create.")
@click.option("--census", type=click.Path(), default=None, help="PUMS person file: csv, csv.gz, Census zip, parquet.")
@click.option("--state", default=None, help="State postal code (e.g. VT): filter --census, or fetch its Census file.")
@click.option("--year", type=int, default=None, help="PUMS year for --state downloads (default 2018).")
@click.option("-n", "n", type=Count(1, 10_000_000), default=1000, show_default=True, help="Number of personas.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed (bit-identical reruns).")
@click.option("--min-age", type=Count(0, 120), default=18, show_default=True, help="Youngest age kept.")
@click.option("--style", "styles", multiple=True, help="Render style (repeatable): narrative, qa, bio, portray, all.")
@click.option("--with-replacement/--without-replacement", "with_replacement", default=None,
              help="PWGTP draws with replacement (repeats possible), or force distinct people. Default: distinct "
                   "people (Pareto πps) when the file has enough records for a self-weighting draw, else with "
                   "replacement.")
@click.option("--templates", type=click.Path(), default=None, help="Folder of templates overriding shipped ones.")
@click.option("--cache-dir", type=click.Path(), default=None, help="Census download cache (default XDG cache).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
def build(out: str, census: str | None, state: str | None, year: int | None, n: int, seed: int, min_age: int,
          styles: tuple[str, ...], with_replacement: bool | None, templates: str | None, cache_dir: str | None,
          as_json: bool) -> None:
    """Build a persona library from ACS PUMS persons, sampled by PWGTP."""
    from personagen.errors import BadInput
    from personagen.pipeline import build_library

    if census is None and state is None:
        raise BadInput("give --census PATH or --state XX [--year YYYY]")
    lib = build_library(out, census=census, n=n, seed=seed, state=state, year=year, min_age=min_age,
                        replace=with_replacement, styles=styles or ("narrative",), templates=templates,
                        cache_dir=cache_dir, progress=True)
    rec = lib.manifest["history"][-1]
    removed = rec.get("rules_removed", {})
    c = lib.manifest["census"]
    click.echo(f"census: {c['path']} (year {c['year']}, {rec['records_read']} records read, "
               f"{rec['records_eligible']} eligible)", err=as_json)
    click.echo("consistency rules removed: " + (", ".join(f"{k}={v}" for k, v in removed.items()) or "none"),
               err=as_json)
    cfg = lib.manifest["config"]
    how = "distinct people" if not cfg["replace"] else (
        "drawn with replacement" + ("; too few records for a self-weighting distinct draw"
                                    if cfg.get("sampling_chosen") == "default" else ""))
    click.echo(f"built {rec['n']} personas ({rec['unique_records']} distinct records, {how}) "
               f"in {rec['seconds']:.2f}s "
               f"-> {lib.path}", err=as_json)
    if as_json:
        click.echo(json.dumps({"library": str(lib.path), "n": rec["n"], "census": c, "seed": lib.manifest["seed"],
                               "config": lib.manifest["config"], "rules_removed": removed,
                               "records_read": rec["records_read"], "records_eligible": rec["records_eligible"],
                               "unknown_codes": rec.get("unknown_codes", {}), "seconds": rec["seconds"],
                               "unique_records": rec["unique_records"],
                               "stage_seconds": rec.get("stage_seconds", {})}))
