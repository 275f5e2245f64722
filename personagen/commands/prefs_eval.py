"""`personagen prefs-eval`: validate PERSONA preference pairs (thin wrapper over personagen.prefs)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands._options import BACKEND, BASE_URL, CONC, JSON, MODEL, TEMPLATES, open_library
from personagen.commands.types import SEED, Count, Real


@click.command("prefs-eval")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@BACKEND
@BASE_URL
@MODEL
@click.option("--limit", type=Count(1, 10_000_000), default=200, show_default=True, help="Pairs judged by the evaluator.")
@click.option("--second-backend", type=click.Choice(["local", "openai"]), default=None,
              help="A second role-playing model (default: the same model with another template and temperature).")
@click.option("--second-base-url", default=None)
@click.option("--second-model", default=None)
@click.option("--second-temperature", type=Real(0.0, 2.0), default=1.0, show_default=True)
@click.option("--loo-attributes", default="", help="Comma-separated attribute labels for the leave-one-out analysis.")
@click.option("--loo-personas", type=Count(1, 100_000), default=40, show_default=True)
@click.option("--loo-base", type=Count(1, 1000), default=3, show_default=True, help="Attributes of a LOO persona without a_i.")
@click.option("--loo-questions", type=Count(1, 100_000), default=20, show_default=True)
@click.option("--loo-design", type=click.Choice(["refinements", "baseline"]), default="refinements", show_default=True,
              help="What LOO annotators compare: the two personas' refinements (§4.1 as read) or baseline vs rewrite.")
@click.option("--answer-tokens", type=Count(8, 100_000), default=256, show_default=True, help="LOO answer/critique cap.")
@click.option("--max-retries", type=Count(0, 100), default=1, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@CONC
@TEMPLATES
@JSON
def prefs_eval(lib: Path, backend: str, base_url: str | None, model: str | None, limit: int,
               second_backend: str | None, second_base_url: str | None, second_model: str | None,
               second_temperature: float, loo_attributes: str, loo_personas: int, loo_base: int, loo_questions: int,
               loo_design: str, answer_tokens: int, max_retries: int, seed: int, concurrency: int, templates: str | None, as_json: bool) -> None:
    """Validate LIB/preferences.parquet: evaluator check, two-role-player κ, leave-one-out κ -> LIB/prefs/eval/."""
    from personagen.prefs import EvalOptions, ModelSpec, evaluate_library

    attrs = tuple(a.strip() for a in loo_attributes.split(",") if a.strip())
    opts = EvalOptions(limit=limit, second_temperature=second_temperature, loo_attributes=attrs,
                       loo_personas=loo_personas, loo_base=loo_base, loo_questions=loo_questions, seed=seed,
                       max_retries=max_retries, answer_tokens=answer_tokens, templates=templates, loo_design=loo_design)
    spec = ModelSpec(backend, base_url, model, concurrency)
    second = ModelSpec(second_backend, second_base_url, second_model, concurrency) if second_backend else None
    res = evaluate_library(open_library(lib), opts, spec, second).to_dict()
    ev, ag = res["evaluator"], res["agreement"]
    click.echo(f"evaluator prefers chosen: {ev['prefers_chosen']}/{ev['parsed']} = {ev['rate']} (paper 0.96); "
               f"two role-players kappa {_k(ag['kappa'], ag['n'])} over {ag['n']} pairs", err=as_json)
    for a, s in res["loo"].items():
        click.echo(f"  LOO {a}: kappa median {_k(s['median'], s['n'])} ({s['defined']}/{s['n']} defined)", err=as_json)
    if as_json:
        click.echo(json.dumps(res, default=str))


def _k(x: float | None, n: int) -> str:
    """κ as printed: "undefined" when labels exist but κ has no value (both annotators gave one label)."""
    return "undefined" if x is None and n else str(x)
