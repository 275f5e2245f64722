"""CLI: `personagen enrich`, `personagen endow`, `personagen mixture` (thin wrappers over the stages)."""

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


@click.command("enrich")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--categories", multiple=True,
              help="Trait categories (repeat or comma-separate): quirks, mannerisms, personal_time, lifestyle, "
                   "ideology, political_views, religion. Default: all.")
@click.option("--max-retries", type=int, default=3, show_default=True, help="Resamples per rejected trait.")
@click.option("--limit", type=int, default=None, help="Enrich at most N personas.")
@click.option("--fresh", is_flag=True, help="Re-enrich personas already enriched.")
@click.option("--dedup-threshold", type=float, default=0.8, show_default=True,
              help="Jaccard threshold of the near-duplicate report.")
@click.option("--max-tokens", type=int, default=96, show_default=True, help="Output cap per trait.")
@_CONC
@_TEMPLATES
@_JSON
def enrich(lib: Path, backend: str, base_url: str | None, model: str | None, categories: tuple[str, ...],
           max_retries: int, limit: int | None, fresh: bool, dedup_threshold: float, max_tokens: int, concurrency: int,
           templates: str | None, as_json: bool) -> None:
    """Add open-ended traits (PERSONA-style) to census personas, judge-filtered; report near-duplicates."""
    from personagen.enrich.traits import DEFAULT_CATEGORIES, enrich_library

    cats = [c.strip() for x in categories for c in x.split(",") if c.strip()] or list(DEFAULT_CATEGORIES)
    rep = enrich_library(_lib(lib), backend=backend, base_url=base_url, model=model, categories=cats,
                         max_retries=max_retries, limit=limit, fresh=fresh, templates=templates,
                         dedup_threshold=dedup_threshold, concurrency=concurrency,
                         max_tokens=max_tokens)
    click.echo(f"enriched {rep['n_personas']} personas ({', '.join(cats)}); rejections by rule "
               f"{rep['rejections_by_rule']}; {rep['duplicates']['n_pairs']} near-duplicate pairs", err=as_json)
    for c, v in rep["per_category"].items():
        click.echo(f"  {c}: rejection rate {v['rejection_rate']:.2%} ({v['rejected']}/{v['generated']})", err=as_json)
    if as_json:
        click.echo(json.dumps(rep, default=str))


@click.command("endow")
@click.argument("lib", type=click.Path(file_okay=False, path_type=Path))
@click.option("--survey", "survey_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Survey parquet.")
@click.option("--budget", type=int, required=True, help="Number of agents to generate (P2P N_A).")
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--strategy", type=click.Choice(["active", "vanilla", "random-census"]), default="active",
              show_default=True)
@click.option("--bank", type=click.Path(exists=False, path_type=Path), default=None,
              help="Folder of extra attribute-bank YAML files.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--initial-per-mode", type=int, default=10, show_default=True)
@click.option("--step-size", type=int, default=None, help="Agents per active step (default max(modes, N/10)).")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Softmax temperature over modes.")
@click.option("--lowest-k", type=int, default=3, show_default=True, help="Questions patched per step.")
@click.option("--patch-ratio", type=float, default=0.75, show_default=True, help="Step budget share for patches.")
@click.option("--mix-after", type=int, default=2, show_default=True, help="Patches before a question uses mixed modes.")
@click.option("--per-call", type=int, default=2, show_default=True, help="Personas per endowment call.")
@click.option("--split", default="train", show_default=True, help="Survey split the pool answers.")
@click.option("--max-tokens", type=int, default=320, show_default=True, help="Output cap per endowment call.")
@_CONC
@_TEMPLATES
@_JSON
def endow(lib: Path, survey_path: Path, budget: int, backend: str, base_url: str | None, model: str | None,
          strategy: str, bank: Path | None, seed: int, initial_per_mode: int, step_size: int | None,
          temperature: float, lowest_k: int, patch_ratio: float, mix_after: int, per_call: int, split: str,
          max_tokens: int, concurrency: int, templates: str | None, as_json: bool) -> None:
    """Generate a P2P agent pool for a survey (active | vanilla | random-census)."""
    from personagen.endow.active import endow_library
    from personagen.surveys import load

    log = endow_library(_lib(lib), load(survey_path), budget=budget, strategy=strategy, backend=backend,
                        base_url=base_url, model=model, bank=bank, seed=seed, initial_per_mode=initial_per_mode,
                        step_size=step_size, temperature=temperature, lowest_k=lowest_k, patch_ratio=patch_ratio,
                        mix_after=mix_after, per_call=per_call, split=split, templates=templates,
                        concurrency=concurrency, max_tokens=max_tokens)
    summary = {k: log.get(k) for k in ("strategy", "survey_id", "budget", "n_generated", "by_source",
                                       "final_mean_entropy", "failures", "answers", "seconds")}
    click.echo(f"endow {strategy}: {log['n_generated']} agents; final mean entropy "
               f"{log.get('final_mean_entropy')}; failures {log.get('failures', {})}", err=as_json)
    if as_json:
        click.echo(json.dumps(summary, default=str))


@click.command("mixture")
@click.option("--target", "target", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV/TSV/parquet with the numeric target.")
@click.option("--column", default=None, help="Target column (needed when there are several numeric ones).")
@click.option("--ipip-domain", "ipip_domain", default=None, metavar="E|N|A|C|O",
              help="Target = Big Five domain score (1-5 keyed item mean) from IPIP 50-item columns E1..O10; "
                   "instead of --column. Range defaults to 1-5.")
@click.option("--question", default=None, help="Question the personas answer with a number.")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Library to create (or add to).")
@_BACKEND
@_BASE_URL
@_MODEL
@click.option("--method", type=click.Choice(["em", "gb"]), default="em", show_default=True)
@click.option("--components", type=int, default=4, show_default=True)
@click.option("--iters", type=int, default=3, show_default=True)
@click.option("--samples", type=int, default=10, show_default=True)
@click.option("--range", "value_range", type=(float, float), default=None, help="LO HI of valid answers.")
@click.option("--name", default="mixture", show_default=True, help="Calibration name.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--prompt-tokens", type=int, default=120, show_default=True, help="Output cap of craft/improve.")
@_CONC
@_TEMPLATES
@_JSON
def mixture(target: Path, column: str | None, ipip_domain: str | None, question: str | None, out: Path,
            backend: str, base_url: str | None, model: str | None, method: str, components: int, iters: int, samples: int,
            value_range: tuple[float, float] | None, name: str, seed: int, prompt_tokens: int, concurrency: int,
            templates: str | None, as_json: bool) -> None:
    """Search a weighted mixture of system prompts matching a scalar target (EM or gradient boosting)."""
    from personagen.endow.mixture import mixture_library

    rep = mixture_library(target, out, column=column, question=question, method=method, components=components,
                          iters=iters, samples=samples, backend=backend, base_url=base_url, model=model, seed=seed,
                          name=name, templates=templates, concurrency=concurrency, value_range=value_range,
                          prompt_tokens=prompt_tokens, ipip_domain=ipip_domain)
    wd = rep["metrics"]["train"]["wd"]["value"]
    click.echo(f"mixture {method}: {rep['n_personas']} prompts, ESS {rep['ess']:.2f}, train normalised W1 "
               f"{wd if wd is None else round(wd, 4)}; wrote {out}", err=as_json)
    if as_json:
        click.echo(json.dumps({k: rep[k] for k in ("name", "method", "n_personas", "nonzeros", "ess", "metrics",
                                                   "baselines")}, default=str))
