"""CLI: `personagen publish`, `personagen pull`, `personagen sample-panel` (thin wrappers over personagen.publish)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.errors import BadInput


@click.command("publish")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--repo", default=None, help="Hub dataset repo ORG/NAME (required unless --out).")
@click.option("--calibration", default=None, help="Calibration NAME (default: the library's only one).")
@click.option("--private", is_flag=True, help="Create the repo private.")
@click.option("--revision", default=None, help="Branch to commit to (created if missing).")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Write the dataset folder here instead of pushing.")
@click.option("--templates", type=click.Path(file_okay=False), default=None, help="Folder overriding templates.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
def publish(lib: Path, repo: str | None, calibration: str | None, private: bool, revision: str | None,
            out: Path | None, templates: str | None, as_json: bool) -> None:
    """Export LIB + one calibration as a Hub dataset (token from $HF_TOKEN; endpoint from $HF_ENDPOINT)."""
    from personagen.publish import export_panel, publish_panel

    if out is not None and (private or revision):
        raise BadInput("--private/--revision apply to a push; drop them with --out DIR")
    if out is not None:
        res = export_panel(lib, out, calibration=calibration, repo=repo, templates=templates).to_dict()
        click.echo(f"wrote {res['path']} ({res['n_personas']} personas, {res['n_responses']} responses, "
                   f"calibration {res['calibration']})", err=as_json)
    else:
        if repo is None:
            raise BadInput("--repo ORG/NAME is required to push (or give --out DIR)")
        res = publish_panel(lib, repo, calibration=calibration, private=private, revision=revision,
                            templates=templates)
        click.echo(f"pushed {res['repo']}@{res['revision']} commit {res['commit']} "
                   f"({res['n_personas']} personas)", err=as_json)
    for x in res["left_out"]:
        click.echo(f"left out: {x['item']}", err=True)
    if as_json:
        click.echo(json.dumps(res, default=str))


@click.command("pull")
@click.argument("repo")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None, help="Library folder to write.")
@click.option("--revision", default=None, help="Branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
def pull(repo: str, out: Path | None, revision: str | None, as_json: bool) -> None:
    """Download a published panel ORG/NAME (or read an exported folder) into a library."""
    from personagen.publish import pull_panel

    lib = pull_panel(repo, out, revision=revision)
    src = lib.manifest.get("config", {}).get("source", {})
    n = lib.personas().height
    click.echo(f"wrote {lib.path} ({n} personas) from {repo}", err=as_json)
    if as_json:
        click.echo(json.dumps({"path": str(lib.path), "n_personas": n, "source": src,
                               "calibrations": lib.calibrations()}))


@click.command("sample-panel")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("-n", "n", type=int, required=True, help="Number of draws.")
@click.option("--seed", type=int, default=0, show_default=True)
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
    df = _sample(lib, n, seed=seed, calibration=calibration)
    if out is not None:
        atomic_write_parquet(out, df)
    uniq = df["persona_id"].n_unique()
    if as_json:
        keep = [c for c in df.columns if not c.startswith("text_")]
        click.echo(json.dumps({"n": n, "seed": seed, "unique_personas": uniq, "path": str(out) if out else None,
                               "rows": df.select(keep).to_dicts()}, default=str))
    else:
        click.echo(f"sampled {n} draws ({uniq} distinct personas) from {lib}"
                   + (f" -> {out}" if out else ""))
