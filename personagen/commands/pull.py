"""`personagen pull`: a published panel into a library (thin wrapper over personagen.publish)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("pull")
@click.argument("repo")
@click.option("-o", "--out", type=click.Path(path_type=Path), default=None, help="Library folder to write.")
@click.option("--revision", default=None, help="Branch, tag or commit.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")
def pull(repo: str, out: Path | None, revision: str | None, as_json: bool) -> None:
    """Download a published panel ORG/NAME (or read an exported folder) into a library."""
    from personagen.publish import PullOptions, pull_panel

    lib = pull_panel(repo, out, PullOptions(revision=revision))
    src = lib.manifest.get("config", {}).get("source", {})
    n = lib.personas().height
    click.echo(f"wrote {lib.path} ({n} personas) from {repo}", err=as_json)
    if as_json:
        click.echo(json.dumps({"path": str(lib.path), "n_personas": n, "source": src,
                               "calibrations": lib.calibrations()}))
