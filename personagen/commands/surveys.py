"""`personagen surveys import|show`: thin CLI over personagen.surveys."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import click

from personagen.commands.types import SEED, Count
from personagen.errors import BadInput
from personagen.surveys import FORMATS, OVERALL, Survey, import_survey, load


@click.group("surveys")
def surveys() -> None:
    """Import survey targets into the survey parquet format and inspect them."""


@surveys.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(sorted(FORMATS), case_sensitive=False))
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="SURVEY.parquet to write")
@click.option("--refused", type=click.Choice(["drop", "keep"]), default="drop", show_default=True,
              help="drop the Refused option and renormalise, or keep it as an option")
@click.option("--seed", type=SEED, default=0, show_default=True, help="seed of the 70/15/15 question split")
@click.option("--survey-id", default=None, help="survey id (default: derived from the file name)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary last")
def import_cmd(fmt: str, path: Path, out: Path, refused: str, seed: int, survey_id: str | None,
               as_json: bool) -> None:
    """Import PATH in FORMAT (opinionqa | subpop | wvs | generic) and write it atomically to -o."""
    if out.suffix.lower() != ".parquet":
        raise BadInput(f"{out}: output must be a .parquet file")
    if out.exists() and out.is_dir():
        raise BadInput(f"{out}: is a directory")
    with warnings.catch_warnings(record=True) as caught:  # skipped questions: one warning line each
        warnings.simplefilter("always")
        survey = import_survey(fmt, path, refused=refused, seed=seed, survey_id=survey_id)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    survey.save(out)
    s = {**summary(survey), "skipped_questions": survey.skipped_questions, "skipped": survey.import_notes,
         "provenance": survey.provenance}
    for note in survey.import_notes:  # "56 of 78 info.csv questions have no human answers"
        click.echo(f"skipped: {note}", err=True)
    if as_json:
        click.echo(json.dumps({"path": str(out), **s}))
    else:
        click.echo(f"wrote {out}: {s['survey_id']}, {s['n_questions']} questions "
                   f"({', '.join(f'{k} {v}' for k, v in s['splits'].items())}), {s['n_groups']} groups"
                   + (f"; {len(s['skipped_questions'])} question(s) skipped" if s["skipped_questions"] else ""))
        if survey.provenance:
            click.echo(f"licence: {survey.provenance['licence']}")


@surveys.command("show")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("-n", "--questions", "n_show", type=Count(1), default=3, show_default=True, help="questions to print")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
def show(path: Path, n_show: int, as_json: bool) -> None:
    """Print a survey's id, split counts, groups per attribute and a few questions."""
    survey = load(path)
    s = summary(survey, n_examples=n_show)
    if as_json:
        click.echo(json.dumps(s))
        return
    click.echo(f"survey {s['survey_id']}  ({path})")
    click.echo(f"questions: {s['n_questions']}  " + "  ".join(f"{k}: {v}" for k, v in s["splits"].items())
               + f"  with ordinals: {s['n_ordinal']}")
    click.echo(f"groups: {s['n_groups']}")
    prov = survey.provenance or {}
    click.echo(f"source: {prov.get('source', 'not recorded (imported before provenance was kept)')}"
               + (f"  ({prov['format']}, imported {prov.get('imported_at')})" if prov else ""))
    if prov:
        click.echo(f"licence: {prov.get('licence')}")
    for attr, groups in s["attributes"].items():
        click.echo(f"  {attr} ({len(groups)}): {', '.join(groups)}")
    target = OVERALL if s["has_overall"] else None
    for q in s["examples"]:
        click.echo(f"\n[{q['qid']}] ({q['split']}) {q['question']}")
        for o in q["options"]:
            share = f"{o['share']:.3f}" if o["share"] is not None else "  -  "
            pos = f"  ordinal {o['ordinal']:g}" if o["ordinal"] is not None else ""
            click.echo(f"   {share}  {o['option']}{pos}")
        if target is None:
            click.echo(f"   (no overall group; shares shown for {q['group']!r})")


def summary(survey: Survey, n_examples: int = 3) -> dict[str, Any]:
    """JSON-ready summary: id, question counts per split, groups per attribute, example questions."""
    splits = Counter(survey.split_of(q) for q in survey.qids)
    attrs = survey.attributes()
    has_overall = OVERALL in survey.groups()
    group = OVERALL if has_overall else survey.groups()[0]
    dists = survey.distributions(group)
    examples = []
    for q in survey.qids[: max(n_examples, 0)]:
        ords = survey.ordinal(q)
        examples.append({
            "qid": q, "question": survey.question(q).text, "split": survey.split_of(q), "group": group,
            "options": [{"option": o, "share": dists.get(q, {}).get(o),
                         "ordinal": None if ords is None else ords[i]} for i, o in enumerate(survey.options(q))],
        })
    return {
        "survey_id": survey.survey_id, "n_questions": len(survey.qids),
        "splits": {k: splits.get(k, 0) for k in ("train", "valid", "test")},
        "n_ordinal": sum(survey.ordinal(q) is not None for q in survey.qids),
        "n_groups": len(survey.groups()), "has_overall": has_overall,
        "attributes": attrs, "examples": examples, "provenance": survey.provenance,
    }
