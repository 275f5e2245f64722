"""CLI: `personagen prefs` (PERSONA preference pairs) and `personagen prefs-eval` (their validation)."""

from __future__ import annotations

import json
from pathlib import Path

import click

_BACKEND = click.option("--backend", type=click.Choice(["local", "openai"]), default="local", show_default=True,
                        help="Model backend (local = bundled SmolLM2 server).")
_BASE_URL = click.option("--base-url", default=None, help="OpenAI-compatible base URL (--backend openai).")
_MODEL = click.option("--model", default=None, help="Model name (--backend openai).")
_CONC = click.option("--concurrency", type=int, default=4, show_default=True, help="Parallel requests.")
_TEMPLATES = click.option("--templates", type=click.Path(file_okay=False), default=None,
                          help="Folder overriding shipped prompt templates.")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print a JSON result last.")


def _lib(path: Path):  # noqa: ANN202
    from personagen.library import Library

    return Library.open(path)


def _echo_dry_run(est: dict, as_json: bool) -> None:
    for name in ("this_run", "paper"):
        e = est[name]
        t = e["total"]
        click.echo(f"{name}: {e['n_pairs']:,} pairs, {e['n_prompts']:,} prompts classified -> {t['calls']:,} calls, "
                   f"{t['input_tokens']:,} input + {t['output_tokens']:,} output tokens, "
                   f"${t['cost_usd']:,.2f} at {e['price_model']} prices"
                   + ("" if e["priced"] else " (model not in the price table: $0)"), err=as_json)


@click.command("prefs")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--prompts", "prompts", required=True,
              help="Prompt file (.jsonl with 'prompt', .csv/.parquet with a prompt column) or a Hub dataset ORG/NAME.")
@click.option("--prompt-column", default="prompt", show_default=True, help="Column holding the prompt text.")
@click.option("--topic-column", default="topic", show_default=True, help="Column holding a topic (optional).")
@click.option("--revision", default=None, help="Hub dataset revision (with a Hub --prompts).")
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--personas", type=int, default=None, help="Personas drawn from LIB (default: all).")
@click.option("--per-persona", type=int, default=150, show_default=True, help="Prompts per persona from train prompts.")
@click.option("--train-per-persona", type=int, default=None,
              help="Of those, train pairs; the rest are test_seen (default: 2/3, the paper's 100 of 150).")
@click.option("--heldout-per-persona", type=int, default=50, show_default=True,
              help="Prompts per persona from held-out prompts (test_unseen).")
@click.option("--heldout-fraction", type=float, default=868 / 3868, show_default=True,
              help="Share of curated prompts held out (paper: 868 of 3,868).")
@click.option("--no-classify", is_flag=True, help="Skip the controversy classifier (keep every rule-filtered question).")
@click.option("--prompt-limit", type=int, default=None, help="Classify at most N rule-filtered prompts.")
@click.option("--consistency-judge", is_flag=True, help="Drop personas an LLM judge finds inconsistent (§3.1).")
@click.option("--profile", default="attributes", show_default=True,
              help="Persona profile: attributes (paper) or a rendered text style (narrative, bio, qa, portray).")
@click.option("--answer-tokens", type=int, default=256, show_default=True)
@click.option("--critique-tokens", type=int, default=256, show_default=True)
@click.option("--base-per-prompt", is_flag=True, help="One base answer per prompt (cheaper; paper: one per pair).")
@click.option("--max-retries", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="Regenerate pairs already in preferences.parquet (cache still applies).")
@click.option("--dry-run", is_flag=True, help="Print calls, tokens and cost (this run and the paper's); send nothing.")
@click.option("--price-model", default="gpt-4", show_default=True, help="Model whose prices cost a --dry-run.")
@_CONC
@_TEMPLATES
@_JSON
def prefs(lib: Path, prompts: str, prompt_column: str, topic_column: str, revision: str | None, backend: str,
          base_url: str | None, model: str | None, personas: int | None, per_persona: int,
          train_per_persona: int | None, heldout_per_persona: int, heldout_fraction: float, no_classify: bool,
          prompt_limit: int | None, consistency_judge: bool, profile: str, answer_tokens: int, critique_tokens: int,
          base_per_prompt: bool, max_retries: int, seed: int, fresh: bool, dry_run: bool, price_model: str,
          concurrency: int, templates: str | None, as_json: bool) -> None:
    """PERSONA preference pairs: curate prompts, base answer + DPF rewrite per (persona, prompt) -> LIB/preferences.parquet."""
    from personagen.prefs import CurateOptions, PairOptions, PrefsOptions, dry_run_library, make_preferences

    cur = CurateOptions(prompts, prompt_column=prompt_column, topic_column=topic_column, classify=not no_classify,
                        heldout_fraction=heldout_fraction, seed=seed, max_retries=max_retries, limit=prompt_limit,
                        revision=revision)
    tpp = train_per_persona if train_per_persona is not None else round(per_persona * 2 / 3)
    pair = PairOptions(personas=personas, per_persona=per_persona, train_per_persona=tpp,
                       heldout_per_persona=heldout_per_persona, seed=seed, answer_tokens=answer_tokens,
                       critique_tokens=critique_tokens, base_per_prompt=base_per_prompt, max_retries=max_retries)
    opts = PrefsOptions(cur, pair, backend=backend, base_url=base_url, model=model, concurrency=concurrency,
                        profile=profile, consistency_judge=consistency_judge, templates=templates, fresh=fresh)
    library = _lib(lib)
    if dry_run:
        est = dry_run_library(library, opts, model if (backend == "openai" and model) else price_model)
        _echo_dry_run(est, as_json)
        if as_json:
            click.echo(json.dumps(est, default=str))
        return
    res = make_preferences(library, opts).to_dict()
    p = res["pairs"]
    click.echo(f"curation {res['curation']['counts']}", err=as_json)
    if res["consistency"]:
        click.echo(f"consistency judge: rejected {res['consistency']['rejected_by_reason']}", err=as_json)
    click.echo(f"wrote {res['path']}: {p['total_pairs']} pairs ({p['new_pairs']} new, splits {p['splits']}); "
               f"dropped {p['dropped']}; {p['llm'].get('requests_sent', 0)} model calls sent", err=as_json)
    if as_json:
        click.echo(json.dumps(res, default=str))


@click.command("prefs-eval")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--limit", type=int, default=200, show_default=True, help="Pairs judged by the evaluator.")
@click.option("--second-backend", type=click.Choice(["local", "openai"]), default=None,
              help="A second role-playing model (default: the same model with another template and temperature).")
@click.option("--second-base-url", default=None)
@click.option("--second-model", default=None)
@click.option("--second-temperature", type=float, default=1.0, show_default=True)
@click.option("--loo-attributes", default="", help="Comma-separated attribute labels for the leave-one-out analysis.")
@click.option("--loo-personas", type=int, default=40, show_default=True)
@click.option("--loo-base", type=int, default=3, show_default=True, help="Attributes of a LOO persona without a_i.")
@click.option("--loo-questions", type=int, default=20, show_default=True)
@click.option("--answer-tokens", type=int, default=256, show_default=True, help="LOO answer/critique cap.")
@click.option("--max-retries", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_CONC
@_TEMPLATES
@_JSON
def prefs_eval(lib: Path, backend: str, base_url: str | None, model: str | None, limit: int,
               second_backend: str | None, second_base_url: str | None, second_model: str | None,
               second_temperature: float, loo_attributes: str, loo_personas: int, loo_base: int, loo_questions: int,
               answer_tokens: int, max_retries: int, seed: int, concurrency: int, templates: str | None, as_json: bool) -> None:
    """Validate LIB/preferences.parquet: evaluator check, two-role-player κ, leave-one-out κ -> LIB/prefs/eval/."""
    from personagen.prefs import EvalOptions, ModelSpec, evaluate_library

    attrs = tuple(a.strip() for a in loo_attributes.split(",") if a.strip())
    opts = EvalOptions(limit=limit, second_temperature=second_temperature, loo_attributes=attrs,
                       loo_personas=loo_personas, loo_base=loo_base, loo_questions=loo_questions, seed=seed,
                       max_retries=max_retries, answer_tokens=answer_tokens, templates=templates)
    spec = ModelSpec(backend, base_url, model, concurrency)
    second = ModelSpec(second_backend, second_base_url, second_model, concurrency) if second_backend else None
    res = evaluate_library(_lib(lib), opts, spec, second).to_dict()
    ev, ag = res["evaluator"], res["agreement"]
    click.echo(f"evaluator prefers chosen: {ev['prefers_chosen']}/{ev['parsed']} = {ev['rate']} (paper 0.96); "
               f"two role-players kappa {ag['kappa']} over {ag['n']} pairs", err=as_json)
    for a, s in res["loo"].items():
        click.echo(f"  LOO {a}: kappa median {s['median']} ({s['defined']}/{s['n']} defined)", err=as_json)
    if as_json:
        click.echo(json.dumps(res, default=str))
