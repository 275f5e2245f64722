"""`personagen enrich`: open-ended traits for census personas (thin wrapper over personagen.enrich)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands._options import BACKEND, BASE_URL, CONC, JSON, MODEL, TEMPLATES, open_library
from personagen.commands.types import Count, Real


@click.command("enrich")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@BACKEND
@BASE_URL
@MODEL
@click.option("--categories", multiple=True,
              help="Trait categories (repeat or comma-separate): quirks, mannerisms, personal_time, lifestyle, "
                   "ideology, political_views, religion. Default: all.")
@click.option("--max-retries", type=Count(0, 100), default=3, show_default=True, help="Resamples per rejected trait.")
@click.option("--limit", type=Count(1), default=None, help="Enrich at most N personas.")
@click.option("--fresh", is_flag=True, help="Re-enrich personas already enriched.")
@click.option("--dedup-threshold", type=Real(0.0, 1.0, lo_open=True), default=0.8, show_default=True,
              help="Jaccard threshold of the near-duplicate report.")
@click.option("--max-tokens", type=Count(1, 100_000), default=96, show_default=True, help="Output cap per trait.")
@CONC
@TEMPLATES
@JSON
def enrich(lib: Path, backend: str, base_url: str | None, model: str | None, categories: tuple[str, ...],
           max_retries: int, limit: int | None, fresh: bool, dedup_threshold: float, max_tokens: int, concurrency: int,
           templates: str | None, as_json: bool) -> None:
    """Add open-ended traits (PERSONA-style) to census personas, judge-filtered; report near-duplicates."""
    from personagen.enrich import DEFAULT_CATEGORIES, enrich_library

    cats = [c.strip() for x in categories for c in x.split(",") if c.strip()] or list(DEFAULT_CATEGORIES)
    rep = enrich_library(open_library(lib), backend=backend, base_url=base_url, model=model, categories=cats,
                         max_retries=max_retries, limit=limit, fresh=fresh, templates=templates,
                         dedup_threshold=dedup_threshold, concurrency=concurrency,
                         max_tokens=max_tokens)
    click.echo(f"enriched {rep['n_personas']} personas ({', '.join(cats)}); rejections by rule "
               f"{rep['rejections_by_rule']}; {rep['duplicates']['n_pairs']} near-duplicate pairs", err=as_json)
    for c, v in rep["per_category"].items():
        click.echo(f"  {c}: rejection rate {v['rejection_rate']:.2%} ({v['rejected']}/{v['generated']})", err=as_json)
    if as_json:
        click.echo(json.dumps(rep, default=str))
