"""`personagen publish`: a library and one calibration as a Hub dataset (thin wrapper over personagen.publish)."""

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
    from personagen.publish import PublishOptions, export_panel, publish_panel

    if out is not None and (private or revision):
        raise BadInput("--private/--revision apply to a push; drop them with --out DIR")
    opts = PublishOptions(calibration=calibration, templates=templates, private=private, revision=revision)
    if out is not None:
        res = export_panel(lib, out, opts, repo=repo).to_dict()
        click.echo(f"wrote {res['path']} ({res['n_personas']} personas, {res['n_answers']} answers (persona x "
                   f"question) as {res['n_responses']} option rows, calibration {res['calibration']})", err=as_json)
    else:
        if repo is None:
            raise BadInput("--repo ORG/NAME is required to push (or give --out DIR)")
        res = publish_panel(lib, repo, opts)
        click.echo(f"pushed {res['repo']}@{res['revision']} commit {res['commit']} "
                   f"({res['n_personas']} personas)", err=as_json)
    for x in res["left_out"]:
        click.echo(f"left out: {x['item']}", err=True)
    if as_json:
        click.echo(json.dumps(res, default=str))
