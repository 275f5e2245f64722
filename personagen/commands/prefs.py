"""`personagen prefs`: PERSONA preference pairs (thin wrapper over personagen.prefs)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from personagen.commands._options import BACKEND, BASE_URL, CONC, JSON, MODEL, TEMPLATES, open_library
from personagen.commands.types import SEED, Count, Real


def _echo_dry_run(est: dict, as_json: bool) -> None:
    for name in ("this_run", "paper"):
        e = est[name]
        t = e["total"]
        cost = (f"${t['cost_usd']:,.2f} at {e['price_model']} prices" if e["priced"] else
                f"cost unknown ({e['price_model']!r} is not in the price table; --price-model names one that is)")
        judged = next((r["calls"] for r in e["steps"] if r["step"] == "consistency"), 0)
        click.echo(f"{name}: {e['n_pairs']:,} pairs, {e['n_prompts']:,} prompts classified, {judged:,} personas judged "
                   f"-> {t['calls']:,} calls, "
                   f"{t['input_tokens']:,} input + {t['output_tokens']:,} output tokens, {cost}", err=as_json)


@click.command("prefs")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--prompts", "prompts", required=True,
              help="Prompt file (.jsonl with 'prompt', .csv/.parquet with a prompt column) or a Hub dataset ORG/NAME.")
@click.option("--prompt-column", default="prompt", show_default=True, help="Column holding the prompt text.")
@click.option("--topic-column", default="topic", show_default=True, help="Column holding a topic (optional).")
@click.option("--revision", default=None, help="Hub dataset revision (with a Hub --prompts).")
@BACKEND
@BASE_URL
@MODEL
@click.option("--personas", type=Count(1, 10_000_000), default=None, help="Personas drawn from LIB (default: all).")
@click.option("--per-persona", type=Count(0, 100_000), default=150, show_default=True, help="Prompts per persona from train prompts.")
@click.option("--train-per-persona", type=Count(0, 100_000), default=None,
              help="Of those, train pairs; the rest are test_seen (default: 2/3, the paper's 100 of 150).")
@click.option("--heldout-per-persona", type=Count(0, 100_000), default=50, show_default=True,
              help="Prompts per persona from held-out prompts (test_unseen).")
@click.option("--heldout-fraction", type=Real(0.0, 1.0), default=868 / 3868, show_default=True,
              help="Share of curated prompts held out (paper: 868 of 3,868).")
@click.option("--no-classify", is_flag=True, help="Skip the controversy classifier (keep every rule-filtered question).")
@click.option("--prompt-limit", type=Count(1, 10_000_000), default=None, help="Classify at most N rule-filtered prompts.")
@click.option("--consistency-judge/--no-consistency-judge", default=True, show_default=True,
              help="Drop personas an LLM judge finds inconsistent (§3.1; the paper removes about 8.5%).")
@click.option("--profile", default="attributes", show_default=True,
              help="Persona profile: attributes (paper) or a rendered text style (narrative, bio, qa, portray).")
@click.option("--answer-tokens", type=Count(8, 100_000), default=256, show_default=True)
@click.option("--critique-tokens", type=Count(8, 100_000), default=256, show_default=True)
@click.option("--base-per-prompt", is_flag=True, help="One base answer per prompt (cheaper; paper: one per pair).")
@click.option("--max-retries", type=Count(0, 100), default=1, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--fresh", is_flag=True, help="Regenerate pairs already in preferences.parquet (cache still applies).")
@click.option("--dry-run", is_flag=True, help="Print calls, tokens and cost (this run and the paper's); send nothing.")
@click.option("--price-model", default="gpt-4", show_default=True, help="Model whose prices cost a --dry-run.")
@CONC
@TEMPLATES
@JSON
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
    library = open_library(lib)
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
