"""`personagen sample-panel`: a weighted draw of personas from a library (thin wrapper over personagen.publish)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import click

from personagen.commands.types import SEED, Count
from personagen.errors import BadInput


@click.command("sample-panel")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "n", type=Count(1, 10_000_000), required=True, help="Number of draws.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--calibration", default=None, help="Calibration NAME (default: the only one / pulled weights).")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the sample to FILE.parquet.")
@click.option("--json", "as_json", is_flag=True, help="Print the sample as one JSON object.")
def sample_panel(lib: Path, n: int, seed: int, calibration: str | None, out: Path | None, as_json: bool) -> None:
    """Draw a weighted sample of N personas from LIB (with replacement, probability = weight)."""
    from personagen.publish import sample_panel as _sample
    from personagen.store import atomic_write_parquet

    if out is not None and out.suffix != ".parquet":
        raise BadInput(f"-o {out}: output must be a .parquet file")
    if out is not None and not out.parent.exists():
        raise BadInput(f"-o {out}: directory {out.parent} does not exist")
    with warnings.catch_warnings(record=True) as caught:  # library warnings as plain `warning:` lines
        warnings.simplefilter("always")
        df = _sample(lib, n, seed=seed, calibration=calibration)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    if out is not None:
        atomic_write_parquet(out, df)
    uniq = df["persona_id"].n_unique()
    if as_json:
        keep = [c for c in df.columns if not c.startswith("text_")]
        click.echo(json.dumps({"n": n, "seed": seed, "unique_personas": uniq,
                               "warnings": [str(w.message) for w in caught], "path": str(out) if out else None,
                               "rows": df.select(keep).to_dicts()}, default=str))
    else:
        click.echo(f"sampled {n} draws ({uniq} distinct personas) from {lib}"
                   + (f" -> {out}" if out else "; nothing written (give -o FILE.parquet to save the draws, "
                                                "or --json to print them)"))
